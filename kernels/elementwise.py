"""Element-wise operations: ``axpy`` and mapping a device function."""
from __future__ import annotations

import functools
from typing import Any

import portable as pt

from . import _checks as check
from ._grid import grid


@pt.kernel
def _axpy(acc, a, x, y, out):
    for i in acc.uniform_elements(x.size):
        out[i] = a * x[i] + y[i]


def axpy(queue: pt.Queue, a: float, x: Any, y: Any, out: Any) -> None:
    """Enqueue ``out[i] = a * x[i] + y[i]``.

    ``x``, ``y`` and ``out`` are 1-D buffers on ``queue.device`` of one dtype
    (float32, float64, int32 or int64) and one length; ``a`` is converted to
    that dtype (it must be an integer that fits for integer arrays, and must
    not overflow a float dtype). Integer results wrap modulo 2**bits, as in
    NumPy. ``out`` may be exactly ``x`` or ``y`` (an in-place update) but must
    not otherwise share memory with them (an error, raised at once).

    Example::

        >>> import numpy as np, portable as pt, kernels
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> x, y = np.arange(3.0), np.ones(3)
        >>> out = np.empty(3)
        >>> kernels.axpy(q, 2.0, x, y, out)
        >>> out.tolist()
        [1.0, 3.0, 5.0]
        >>> kernels.axpy(q, 2.0, x, y, x)  # in place: x = 2 * x + y
        >>> x.tolist()
        [1.0, 3.0, 5.0]
    """
    op = "axpy"
    check.check_queue(op, queue)
    x = check.buffer(queue, op, "x", x, check.NUMERIC)
    y = check.buffer(queue, op, "y", y, check.NUMERIC)
    out = check.buffer(queue, op, "out", out, check.NUMERIC, output=True)
    for name, value in (("y", y), ("out", out)):
        check.same_size(op, name, value, "x", x)
        check.same_dtype(op, name, value, "x", x)
    check.no_overlap(op, "out", out, "x", x, same_elements=True)
    check.no_overlap(op, "out", out, "y", y, same_elements=True)
    scalar = check.real_scalar(op, "a", a, x.dtype)
    if x.size:
        pt.launch(queue, grid(queue, x.size), _axpy, scalar, x, y, out)


@functools.lru_cache(maxsize=256)
def _map_kernel(fn: pt.DeviceFunction) -> pt.Kernel:
    """The kernel ``out[i] = fn(x[i])``, one per device function."""
    @pt.kernel
    def map_kernel(acc, x, out):
        for i in acc.uniform_elements(x.size):
            out[i] = fn(x[i])
    return map_kernel


def elementwise_map(queue: pt.Queue, fn: pt.DeviceFunction, x: Any, out: Any) -> None:
    """Enqueue ``out[i] = fn(x[i])`` for a ``@pt.device_function`` ``fn`` of one value.

    ``x`` and ``out`` are 1-D buffers on ``queue.device`` of one length, each
    float32, float64, int32 or int64 (they may differ: the result of ``fn`` is
    converted to ``out``'s dtype on store, as NumPy assignment would). ``out``
    may be exactly ``x`` (same elements, same dtype size) but must not otherwise
    share memory with it. The kernel for ``fn`` is compiled once per backend and
    argument types, then cached.

    Example::

        >>> import numpy as np, portable as pt, kernels
        >>> @pt.device_function
        ... def square_plus_one(v):
        ...     return v * v + 1
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> out = np.empty(3)
        >>> kernels.elementwise_map(q, square_plus_one, np.arange(3.0), out)
        >>> out.tolist()
        [1.0, 2.0, 5.0]
    """
    op = "elementwise_map"
    check.check_queue(op, queue)
    check.one_argument_function(op, fn)
    x = check.buffer(queue, op, "x", x, check.NUMERIC)
    out = check.buffer(queue, op, "out", out, check.NUMERIC, output=True)
    check.same_size(op, "out", out, "x", x)
    check.no_overlap(op, "out", out, "x", x, same_elements=True)
    if x.size:
        pt.launch(queue, grid(queue, x.size), _map_kernel(fn), x, out)
