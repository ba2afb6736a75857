"""How ``cpu_threads`` runs parallel regions entered by several host threads at once.

Numba runs a ``prange`` loop on one of its threading layers. The default one it
falls back to, ``workqueue``, is not thread safe: two host threads entering
parallel regions at the same time abort the process, so every region must hold
one process-wide lock, and an event-processing job with many host threads runs
its ``cpu_threads`` kernels one at a time. ``tbb`` and ``omp`` are thread safe.

Unless ``NUMBA_THREADING_LAYER`` is set, Numba is asked for a thread-safe layer
(``threadsafe``: ``tbb``, else ``omp``); if neither loads, ``workqueue`` runs,
with the lock. The layer is loaded by the first parallel region, so that first
region runs under the lock, and the layer Numba chose decides the rest.

GNU OpenMP's ``omp`` layer is not fork safe: a process forked after a parallel
region cannot run one (use ``multiprocessing``'s ``spawn`` start method there, or
``NUMBA_THREADING_LAYER=workqueue``).

Example::

    >>> run_parallel(lambda: None)  # a parallel driver's call goes here
"""
from __future__ import annotations

import os
import threading
from typing import Callable

import numba

LAYER_VAR = "NUMBA_THREADING_LAYER"
#: the layers on which parallel regions may run from several host threads at once
THREAD_SAFE_LAYERS = frozenset({"tbb", "omp"})

_lock = threading.Lock()
_thread_safe: bool | None = None  # unknown until the first region has loaded a layer


def ask_for_a_thread_safe_layer() -> None:
    """Ask Numba for a thread-safe layer, unless the user chose one (call before the
    first parallel region)."""
    if not os.environ.get(LAYER_VAR, "").strip():
        numba.config.THREADING_LAYER = "threadsafe"  # type: ignore[attr-defined]


def run_parallel(region: Callable[[], None]) -> None:
    """Run ``region``, a call of a parallel driver: at once on a thread-safe layer,
    under the process-wide lock on ``workqueue`` (and for the region that loads the
    layer). When no thread-safe layer loads, ``workqueue`` is selected and the region
    runs on it.

    Example::

        >>> ran = []
        >>> run_parallel(lambda: ran.append(True)); ran
        [True]
    """
    global _thread_safe
    if _thread_safe:
        region()
        return
    with _lock:
        if _thread_safe is not None:
            region()
            return
        try:
            region()
        except ValueError as err:  # no thread-safe layer could be loaded
            if "threading layer" not in str(err) or os.environ.get(LAYER_VAR, "").strip():
                raise
            numba.config.THREADING_LAYER = "workqueue"  # type: ignore[attr-defined]
            region()
        _thread_safe = layer_name() in THREAD_SAFE_LAYERS


def layer_name() -> str:
    """The layer in use (after the first parallel region), else ``"not loaded yet"``.

    Example::

        >>> layer_name() in {"tbb", "omp", "workqueue", "not loaded yet"}
        True
    """
    try:
        return str(numba.threading_layer())
    except ValueError:
        return "not loaded yet"
