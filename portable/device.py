"""Devices: one compute device of one backend, with the limits launches obey."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .backend import get_backend, selected_backend
from .checks import describe
from .errors import ArgumentError, BackendError

if TYPE_CHECKING:
    from .backend import Backend


@dataclass(frozen=True)
class DeviceLimits:
    """What one launch on a device may ask for.

    ``max_block_dims`` and ``max_grid_dims`` are given per dimension in the
    order the work division uses (the last dimension is the fastest one).
    """

    max_threads_per_block: int
    max_block_dims: tuple[int, int, int]
    max_grid_dims: tuple[int, int, int]
    multiprocessors: int
    warp_size: int


@dataclass(frozen=True, eq=False)
class Device:
    """One device of one backend.

    Example::

        >>> import portable as pt
        >>> dev = pt.get_device("cpu_serial")
        >>> dev.backend.name, dev.index
        ('cpu_serial', 0)
    """

    backend: Backend
    index: int
    name: str
    limits: DeviceLimits = field(repr=False)

    def __str__(self) -> str:
        return f"{self.backend.name}:{self.index}"

    def __repr__(self) -> str:
        return f"<Device {self} {self.name!r}>"


def devices(backend: str | Backend | None = None) -> list[Device]:
    """All devices of ``backend`` (default: the selected backend).

    Example::

        >>> import portable as pt
        >>> len(pt.devices("cpu_threads"))
        1
    """
    chosen = selected_backend() if backend is None else get_backend(backend)
    return chosen.devices()


def get_device(backend: str | Backend | None = None, index: int = 0) -> Device:
    """Device ``index`` of ``backend`` (default: the selected backend).

    Example::

        >>> import portable as pt
        >>> str(pt.get_device("cpu_serial"))
        'cpu_serial:0'
    """
    if isinstance(index, (bool, np.bool_)) or not isinstance(index, (int, np.integer)):
        raise ArgumentError(f"pt.get_device: argument 'index' must be an integer, got "
                            f"{describe(index)}")
    found = devices(backend)
    if not 0 <= index < len(found):
        name = found[0].backend.name if found else str(backend)
        raise BackendError(
            f"device index {index} is out of range: backend {name!r} has "
            f"{len(found)} device(s), indices 0..{len(found) - 1}")
    return found[index]
