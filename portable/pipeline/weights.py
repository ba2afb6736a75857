"""Spreading event slots over backends by weight, and over each backend's devices.

Example::

    >>> assign_backends({"cuda": 0.8, "cpu_serial": 0.2}, 4)
    ['cuda', 'cuda', 'cuda', 'cpu_serial']
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import numpy as np

from ..backend import get_backend
from ..checks import describe
from ..errors import ArgumentError, BackendError


def check_weights(weights: Any, where: str) -> dict[str, float]:
    """``weights`` (backend name -> weight >= 0, not all zero) checked: each name a
    backend that can run here."""
    if not isinstance(weights, Mapping) or not weights:
        raise ArgumentError(f"{where}: argument 'backends' must be a dict of backend name -> "
                            f"weight, e.g. {{'cuda': 0.8, 'cpu_serial': 0.2}}, got "
                            f"{describe(weights)}")
    checked: dict[str, float] = {}
    for name, weight in weights.items():
        try:
            backend = get_backend(name)
        except BackendError as err:
            raise ArgumentError(f"{where}: backends has the unknown backend {name!r}: {err}"
                                ) from None
        if isinstance(weight, (bool, np.bool_)) or not isinstance(weight, (int, float)) \
                or not math.isfinite(weight) or weight < 0:
            raise ArgumentError(f"{where}: the weight of backend {name!r} must be a number "
                                f">= 0, got {describe(weight)}")
        if weight > 0 and not backend.available:
            raise ArgumentError(f"{where}: backend {name!r} has weight {weight} but cannot run "
                                f"here ({backend.reason}); give it weight 0 or leave it out")
        checked[backend.name] = float(weight)
    if sum(checked.values()) <= 0:
        raise ArgumentError(f"{where}: every backend weight is 0 in {dict(weights)}; give at "
                            f"least one backend a positive weight")
    return checked


def assign_backends(weights: Mapping[str, float], slots: int) -> list[str]:
    """The backend of each of ``slots`` slots: the weights, normalised, times ``slots``,
    rounded by largest remainder (ties to the backend listed first); slots of one
    backend are contiguous, in the order the weights are listed.

    Example::

        >>> assign_backends({"cpu_serial": 1, "cpu_threads": 1, "cuda": 1}, 4)
        ['cpu_serial', 'cpu_serial', 'cpu_threads', 'cuda']
    """
    total = sum(weights.values())
    quotas = {name: w / total * slots for name, w in weights.items()}
    counts = {name: math.floor(q) for name, q in quotas.items()}
    names = list(weights)
    by_remainder = sorted(names, key=lambda n: (-(quotas[n] - counts[n]), names.index(n)))
    for name in by_remainder[:slots - sum(counts.values())]:
        counts[name] += 1
    return [name for name in names for _ in range(counts[name])]
