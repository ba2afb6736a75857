"""Reductions of a 1-D buffer to one value: sum, minimum and maximum.

Two launches of one kernel on the queue: every block combines its elements in
registers, then across its threads in block-shared memory (a tree, with a
barrier between steps), and writes its result to a buffer of one partial per
block; then a single block combines the partials into ``out[0]`` the same way.
No atomics are involved, so the result does not depend on which block finishes
first (a float sum gives the same bits on every run on one device), and the
host never waits.

Minimum and maximum follow ``np.min``/``np.max``: a NaN anywhere in the input
makes the result NaN, on every backend.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

import portable as pt

from . import _checks as check
from ._block import add, block_reduce, maximum, minimum
from ._grid import MAX_BLOCK_THREADS, grid, single_block

#: per operation: how two values combine (NaN-propagating for min and max)
_COMBINE = {"sum": add, "min": minimum, "max": maximum}


@functools.lru_cache(maxsize=None)
def _reduce_kernel(operation: str, dtype: np.dtype) -> pt.Kernel:
    """The kernel writing ``partials[b]`` = the ``operation`` of the elements of
    ``x`` that block ``b`` visits, for elements of ``dtype``."""
    scalar = dtype.type
    combine = _COMBINE[operation]
    reduce_block = block_reduce(combine)

    @pt.kernel
    def reduce_kernel(acc, x, identity, partials):
        scratch = acc.shared_array(MAX_BLOCK_THREADS, scalar)
        value = identity
        for i in acc.uniform_elements(x.size):
            value = combine(value, x[i])
        total = reduce_block(acc, value, scratch)
        if acc.once_per_block():
            partials[acc.block_idx] = total
    return reduce_kernel


def _identity(operation: str, dtype: np.dtype) -> Any:
    """The value a thread starts from: 0, or the largest (smallest) value of
    ``dtype`` for min (max); infinities for floats."""
    if operation == "sum":
        return dtype.type(0)
    if dtype.kind == "f":
        return dtype.type(np.inf if operation == "min" else -np.inf)
    info = np.iinfo(dtype)
    return dtype.type(info.max if operation == "min" else info.min)


def _reduce(operation: str, queue: pt.Queue, x: Any, out: Any,
            alloc: check.Alloc | None) -> None:
    op = f"reduce_{operation}"
    check.check_queue(op, queue)
    alloc = check.allocator(op, queue, alloc)
    x = check.buffer(queue, op, "x", x, check.NUMERIC)
    out = check.buffer(queue, op, "out", out, check.NUMERIC, output=True)
    check.same_dtype(op, "out", out, "x", x)
    check.length(op, "out", out, 1)
    check.no_overlap(op, "out", out, "x", x)
    if x.size == 0 and operation != "sum":
        raise check.KernelArgumentError(
            f"{op}: argument 'x' is empty and has no {operation}imum; check x.size before "
            f"calling")
    dtype = np.dtype(x.dtype)
    kernel, identity = _reduce_kernel(operation, dtype), _identity(operation, dtype)
    spread = grid(queue, x.size)
    partials = check.temporary(queue, op, alloc, spread.blocks[0], dtype)
    pt.launch(queue, spread, kernel, x, identity, partials)
    pt.launch(queue, single_block(queue, partials.size), kernel, partials, identity, out)


def reduce_sum(queue: pt.Queue, x: Any, out: Any, *,
               alloc: check.Alloc | None = None) -> None:
    """Enqueue ``out[0] = sum(x)``.

    ``x`` is a 1-D buffer on ``queue.device`` (float32, float64, int32 or
    int64) and ``out`` a 1-element buffer of the same dtype. Integer sums are
    exact modulo 2**bits, like ``np.sum(x, dtype=x.dtype)``; float sums are
    combined in a different order than NumPy's, so they agree up to rounding;
    NaNs and infinities propagate as in ``np.sum`` (``inf + -inf`` is NaN).
    An empty ``x`` gives 0. ``out`` must not share memory with ``x``. A
    temporary buffer of one value per block comes from ``alloc(shape, dtype)``
    (default: :func:`portable.alloc_buffer` on ``queue.device``), e.g. a caching
    allocator's (see :mod:`kernels`).

    Example::

        >>> import numpy as np, portable as pt, kernels
        >>> q = pt.Queue(pt.get_device("cpu_threads"))
        >>> out = np.empty(1, np.int64)
        >>> kernels.reduce_sum(q, np.arange(101, dtype=np.int64), out)
        >>> int(out[0])
        5050
    """
    _reduce("sum", queue, x, out, alloc)


def reduce_min(queue: pt.Queue, x: Any, out: Any, *,
               alloc: check.Alloc | None = None) -> None:
    """Enqueue ``out[0] = min(x)``; ``x`` must not be empty (an error, raised at once).

    Dtypes, ``out`` and ``alloc`` as for :func:`reduce_sum`. As with ``np.min``, a NaN
    anywhere in ``x`` makes the result NaN.

    Example::

        >>> import numpy as np, portable as pt, kernels
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> out = np.empty(1, np.float32)
        >>> kernels.reduce_min(q, np.array([3.0, -1.5, 2.0], np.float32), out)
        >>> float(out[0])
        -1.5
        >>> kernels.reduce_min(q, np.array([3.0, np.nan, 2.0], np.float32), out)
        >>> float(out[0])
        nan
    """
    _reduce("min", queue, x, out, alloc)


def reduce_max(queue: pt.Queue, x: Any, out: Any, *,
               alloc: check.Alloc | None = None) -> None:
    """Enqueue ``out[0] = max(x)``; ``x`` must not be empty (an error, raised at once).

    Dtypes, ``out`` and ``alloc`` as for :func:`reduce_sum`. As with ``np.max``, a NaN
    anywhere in ``x`` makes the result NaN.

    Example::

        >>> import numpy as np, portable as pt, kernels
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> out = np.empty(1, np.int32)
        >>> kernels.reduce_max(q, np.array([3, -7, 11], np.int32), out)
        >>> int(out[0])
        11
    """
    _reduce("max", queue, x, out, alloc)
