"""Test your kernels on every backend with one line.

``@every_backend`` runs a test once per backend that can run in this
process, handing it a ``queue`` (a blocking :class:`~portable.Queue` on that
backend's first device) or the ``backend`` name::

    import numpy as np
    from portable.testing import every_backend, test_sizes

    @every_backend
    def test_my_kernel(queue):
        for n in test_sizes(queue):
            ...  # allocate on queue.device, launch, compare with NumPy

The fixtures come with the package (a pytest plugin registered on install).
Which backends take part:

* ``cpu_serial`` and ``cpu_threads`` always;
* ``cuda`` when a GPU is present (those tests carry the ``gpu`` marker, so
  ``pytest -m gpu`` runs exactly them), or when Numba's CUDA simulator is on
  (``NUMBA_ENABLE_CUDASIM=1``, test id ``cuda-sim``; keep grids tiny);
* ``PORTABLE_TEST_BACKENDS=cuda,cpu_serial`` restricts the list.
"""
from __future__ import annotations

import os
from typing import Any, Callable, Sequence

import numpy as np
import pytest

from .backend import all_backends, get_backend
from .device import get_device
from .errors import BackendError
from .memory import alloc_buffer, memcpy, memset
from .queue import Queue

TEST_BACKENDS_VAR = "PORTABLE_TEST_BACKENDS"
#: awkward sizes every library kernel is checked at
AWKWARD_SIZES = (0, 1, 31, 1000, 2**20 + 3)
#: the largest size the CUDA simulator is given (one OS thread per GPU thread)
SIMULATOR_MAX_SIZE = 1000


def is_simulated(backend: str) -> bool:
    """Whether the backend called ``backend`` runs its kernels in a simulator on the
    host in this process (then tests keep their sizes small)."""
    found = [b for b in all_backends() if b.name == backend]
    return bool(found) and found[0].simulated


def wanted_backends() -> list[str]:
    """The backend names ``PORTABLE_TEST_BACKENDS`` lists (empty: every backend that can
    run). A name that is unknown, or known but unable to run here, is an error: a
    misspelt name must not give a green run of zero tests.

    Example::

        >>> import os
        >>> os.environ["PORTABLE_TEST_BACKENDS"] = "cpu_serial, cpu_threads"
        >>> wanted_backends()
        ['cpu_serial', 'cpu_threads']
        >>> os.environ["PORTABLE_TEST_BACKENDS"] = "cpu-serial"
        >>> wanted_backends()
        Traceback (most recent call last):
        ...
        portable.errors.BackendError: PORTABLE_TEST_BACKENDS='cpu-serial': unknown backend 'cpu-serial'. Did you mean 'cpu_serial'? Known backends: cpu_serial, cpu_threads, cuda, rocm.
        >>> del os.environ["PORTABLE_TEST_BACKENDS"]
    """
    raw = os.environ.get(TEST_BACKENDS_VAR, "")
    names = [n.strip() for n in raw.split(",") if n.strip()]
    for name in names:
        try:
            get_backend(name)
        except BackendError as err:
            raise BackendError(f"{TEST_BACKENDS_VAR}={raw!r}: {err}") from None
    return names


def backends_under_test() -> list[Any]:
    """``pytest.param`` entries, one per backend that runs in this process."""
    wanted = wanted_backends()
    params = []
    for backend in all_backends():
        if wanted and backend.name not in wanted:
            continue
        if not backend.available:
            continue
        if backend.simulated:
            params.append(pytest.param(backend.name, id=f"{backend.name}-sim"))
        elif not backend.host_memory:
            # marked gpu, and by the backend's name: `pytest -m rocm` runs the suite on rocm
            marks = [pytest.mark.gpu, getattr(pytest.mark, backend.name)]
            params.append(pytest.param(backend.name, id=backend.name, marks=marks))
        else:
            params.append(pytest.param(backend.name, id=backend.name))
    return params


def every_backend(test: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``test`` once per backend under test; it may ask for ``queue`` or ``backend``."""
    return pytest.mark.parametrize("backend", backends_under_test())(test)


def poisoned(queue: Queue, shape: int | tuple[int, ...], dtype: Any) -> Any:
    """A new buffer on ``queue.device`` with every byte 0xFF (NaN for floats, -1 for
    signed integers), so that an element a kernel fails to write shows.

    Example::

        >>> import numpy as np, portable as pt
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> host_copy(q, poisoned(q, 3, np.int32))
        array([-1, -1, -1], dtype=int32)
    """
    buf = alloc_buffer(queue.device, shape, dtype)
    memset(queue, buf, 0xFF)
    return buf


def host_copy(queue: Queue, array: Any) -> np.ndarray:
    """A new host array holding ``array`` (host or device) once ``queue``'s work so far
    has finished.

    Example::

        >>> import numpy as np, portable as pt
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> host_copy(q, np.arange(3.0))
        array([0., 1., 2.])
    """
    host = np.empty(array.shape, array.dtype)
    memcpy(queue, host, array)
    queue.synchronize()
    return host


def test_sizes(queue_or_backend: Queue | str, sizes: Sequence[int] = AWKWARD_SIZES) -> list[int]:
    """``sizes`` trimmed to what the backend can run quickly (the simulator takes small ones)."""
    name = queue_or_backend if isinstance(queue_or_backend, str) else queue_or_backend.backend.name
    if is_simulated(name):
        return [n for n in sizes if n <= SIMULATOR_MAX_SIZE]
    return list(sizes)


test_sizes.__test__ = False  # type: ignore[attr-defined]  # not a test itself


@pytest.fixture
def queue(backend: str) -> Queue:
    """A blocking queue on the first device of the parametrized ``backend``."""
    return Queue(get_device(backend))
