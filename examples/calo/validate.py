"""Checks of one event's device results against :mod:`examples.calo.reference`.

What must agree, and how closely:

* per hit, EXACTLY: ``rho``, ``delta``, ``nearest_higher``, ``is_seed`` and
  ``cluster_id`` (clusters numbered alike), hence the number of clusters;
* per cluster, ``n_hits`` and ``layer`` exactly; ``energy`` within a relative
  :data:`ENERGY_RTOL`, ``x``, ``y``, ``sigma_x``, ``sigma_y`` within
  :data:`LENGTH_ATOL` cm (float32 atomic sums, in any order, against float64);
* ``score`` within :data:`SCORE_ATOL` of the same model run on a host copy of
  the device's features (unless no model is given);
* the selection exactly: the indices of the device scores above the threshold.

Example::

    >>> import ml, portable as pt
    >>> from examples.calo.clue import ClueParams
    >>> from examples.calo.generator import SHAPES, generate
    >>> from examples.calo.model import ClusterScorer
    >>> from examples.calo.pipeline import process_event
    >>> q = pt.Queue(pt.get_device("cpu_serial"))
    >>> params = ClueParams.for_geometry(SHAPES["tiny"].geometry)
    >>> event, scorer = generate(0, "tiny"), ClusterScorer()
    >>> outputs = process_event(q, event, params, ml.Model(scorer), 0.5)
    >>> validate(q, event, params, outputs, scorer, 0.5)
    []
"""
from __future__ import annotations

import numpy as np
import torch

import portable as pt

from . import reference
from .clue import ClueParams
from .generator import Event
from .layouts import FLOAT_FEATURES, INT_FEATURES
from .pipeline import EventOutputs

#: relative tolerance on cluster energies
ENERGY_RTOL = 1e-6
#: absolute tolerance on barycentres and widths (cm)
LENGTH_ATOL = 2e-5
#: absolute tolerance on scores
SCORE_ATOL = 1e-4

HIT_RESULTS = ("rho", "delta", "nearest_higher", "is_seed", "cluster_id")


def _exact(what: str, got: np.ndarray, want: np.ndarray) -> list[str]:
    """A problem if ``got`` and ``want`` differ anywhere (NaN never equals)."""
    if got.shape != want.shape:
        return [f"{what}: {got.shape[0]} values, expected {want.shape[0]}"]
    wrong = np.flatnonzero(~(got == want))
    if wrong.size == 0:
        return []
    k = wrong[0]
    return [f"{what} differs at {wrong.size} of {got.size} entries "
            f"(first at {k}: {got[k]} instead of {want[k]})"]


def _close(what: str, got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> list[str]:
    """A problem if ``got`` is not within ``atol + rtol * |want|`` of ``want`` everywhere."""
    bad = np.flatnonzero(~(np.abs(got - want) <= atol + rtol * np.abs(want)))
    if bad.size == 0:
        return []
    k = bad[0]
    return [f"{what} off at {bad.size} of {got.size} entries (first at {k}: {got[k]} "
            f"instead of {want[k]}, beyond atol={atol} rtol={rtol})"]


def validate(queue: pt.Queue, event: Event, params: ClueParams, outputs: EventOutputs,
             scorer: torch.nn.Module | None, threshold: float) -> list[str]:
    """The problems with ``outputs`` (on ``queue``'s device) for ``event``; empty if
    none. ``scorer`` is the module the device ran (``None``: the scores came from
    elsewhere and are not checked), ``threshold`` the selection's. Copies the
    outputs to the host (synchronizing the queue), then calls :func:`check`."""
    host_device = pt.get_device("cpu_serial")
    hits = outputs.hits.to(queue, host_device)
    clusters = outputs.clusters.to(queue, host_device)
    selected = np.empty(outputs.n_selected, np.int32)
    pt.memcpy(queue, selected, outputs.selected[:outputs.n_selected])
    queue.synchronize()
    return check(event, params, hits, clusters, selected, scorer, threshold)


def check(event: Event, params: ClueParams, hits: pt.PortableCollection,
          clusters: pt.PortableCollection, selected: np.ndarray,
          scorer: torch.nn.Module | None, threshold: float) -> list[str]:
    """The problems with an event's results in host memory: the clustered ``hits``,
    the scored ``clusters`` and the ``selected`` cluster indices (just those, in
    order); empty if none. ``scorer`` and ``threshold`` as for :func:`validate`.

    Example::

        >>> import numpy as np, portable as pt
        >>> from examples.calo.clue import ClueParams
        >>> from examples.calo.generator import Event, upload
        >>> from examples.calo.layouts import Clusters
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> event = Event(np.zeros(1, np.int32), np.ones(1, np.float32),
        ...               np.ones(1, np.float32), np.ones(1, np.float32))
        >>> hits = upload(q, event)  # not clustered: every result is 0
        >>> clusters = pt.PortableCollection(Clusters, 0, q.device)
        >>> check(event, ClueParams(n_layers=1, extent=8.0), hits, clusters,
        ...       np.zeros(0, np.int32), None, 0.5)[-1]
        '0 clusters, expected 1'
    """
    want = reference.clue(event, params)
    problems = []
    for name in HIT_RESULTS:
        problems += _exact(f"hits.{name}", hits.column(name), getattr(want, name))
    if clusters.size != want.n_clusters:
        return problems + [f"{clusters.size} clusters, expected {want.n_clusters}"]

    features = reference.features(event, want.cluster_id, want.n_clusters)
    for name in INT_FEATURES:
        problems += _exact(f"clusters.{name}", clusters.column(name), getattr(features, name))
    problems += _close("clusters.energy", clusters.column("energy"), features.energy,
                       ENERGY_RTOL, 0.0)
    for name in ("x", "y", "sigma_x", "sigma_y"):
        problems += _close(f"clusters.{name}", clusters.column(name), getattr(features, name),
                           0.0, LENGTH_ATOL)

    scores = clusters.column("score")
    if scorer is not None:
        floats = np.stack([clusters.column(n) for n in FLOAT_FEATURES], axis=1)
        ints = np.stack([clusters.column(n) for n in INT_FEATURES], axis=1)
        with torch.inference_mode():
            expected = scorer(torch.from_numpy(floats), torch.from_numpy(ints)).numpy()[:, 0]
        problems += _close("clusters.score", scores, expected, 0.0, SCORE_ATOL)

    passing = np.flatnonzero(scores > np.float32(threshold))
    problems += _exact("selected clusters", selected, passing)
    return problems
