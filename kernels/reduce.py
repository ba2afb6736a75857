"""Reductions of a 1-D buffer to one value: sum, minimum and maximum.

Each block combines its elements in registers, then across its threads in
block-shared memory (a tree, with a barrier between steps), and adds its
result to ``out[0]`` with ONE atomic operation. ``out[0]`` is first set to
the operation's identity by a tiny kernel on the same queue, so the whole
reduction is ordered on the queue and the host never waits.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

import portable as pt

from . import _checks as check
from ._block import add, block_reduce, maximum, minimum
from ._grid import MAX_BLOCK_THREADS, grid


@pt.kernel
def _fill(acc, out, value):
    for i in acc.uniform_elements(out.size):
        out[i] = value


@pt.device_function
def _commit_sum(acc, out, value):
    acc.atomic_add(out, 0, value)


@pt.device_function
def _commit_min(acc, out, value):
    acc.atomic_min(out, 0, value)


@pt.device_function
def _commit_max(acc, out, value):
    acc.atomic_max(out, 0, value)


#: per operation: how two values combine, and how a block's result joins out[0]
_OPERATIONS = {
    "sum": (add, _commit_sum),
    "min": (minimum, _commit_min),
    "max": (maximum, _commit_max),
}


@functools.lru_cache(maxsize=None)
def _reduce_kernel(operation: str, dtype: np.dtype) -> pt.Kernel:
    """The reduction kernel for ``operation`` over elements of ``dtype``."""
    scalar = dtype.type
    combine, commit = _OPERATIONS[operation]
    reduce_block = block_reduce(combine)

    @pt.kernel
    def reduce_kernel(acc, x, identity, out):
        scratch = acc.shared_array(MAX_BLOCK_THREADS, scalar)
        value = identity
        for i in acc.uniform_elements(x.size):
            value = combine(value, x[i])
        total = reduce_block(acc, value, scratch)
        if acc.once_per_block():
            commit(acc, out, total)
    return reduce_kernel


def _identity(operation: str, dtype: np.dtype) -> Any:
    """The value ``out[0]`` starts from: 0, or the largest (smallest) value of
    ``dtype`` for min (max); infinities for floats."""
    if operation == "sum":
        return dtype.type(0)
    if dtype.kind == "f":
        return dtype.type(np.inf if operation == "min" else -np.inf)
    info = np.iinfo(dtype)
    return dtype.type(info.max if operation == "min" else info.min)


def _reduce(operation: str, queue: pt.Queue, x: Any, out: Any) -> None:
    op = f"reduce_{operation}"
    check.check_queue(op, queue)
    x = check.buffer(queue, op, "x", x, check.NUMERIC)
    out = check.buffer(queue, op, "out", out, check.NUMERIC, output=True)
    check.same_dtype(op, "out", out, "x", x)
    check.length(op, "out", out, 1)
    if x.size == 0 and operation != "sum":
        raise check.KernelArgumentError(
            f"{op}: x is empty and has no {operation}imum; check x.size before calling")
    dtype = np.dtype(x.dtype)
    identity = _identity(operation, dtype)
    pt.launch(queue, grid(queue, 1), _fill, out, identity)
    if x.size:
        pt.launch(queue, grid(queue, x.size), _reduce_kernel(operation, dtype),
                  x, identity, out)


def reduce_sum(queue: pt.Queue, x: Any, out: Any) -> None:
    """Enqueue ``out[0] = sum(x)``.

    ``x`` is a 1-D buffer on ``queue.device`` (float32, float64, int32 or
    int64) and ``out`` a 1-element buffer of the same dtype. Integer sums are
    exact modulo 2**bits, like ``np.sum(x, dtype=x.dtype)``; float sums are
    combined in a different order than NumPy's, so they agree up to rounding.
    An empty ``x`` gives 0.

    Example::

        >>> import numpy as np, portable as pt, kernels
        >>> q = pt.Queue(pt.get_device("cpu_threads"))
        >>> out = np.empty(1, np.int64)
        >>> kernels.reduce_sum(q, np.arange(101, dtype=np.int64), out)
        >>> int(out[0])
        5050
    """
    _reduce("sum", queue, x, out)


def reduce_min(queue: pt.Queue, x: Any, out: Any) -> None:
    """Enqueue ``out[0] = min(x)``; ``x`` must not be empty (an error, raised at once).

    Dtypes as for :func:`reduce_sum`. NaNs in ``x`` give an unspecified result.

    Example::

        >>> import numpy as np, portable as pt, kernels
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> out = np.empty(1, np.float32)
        >>> kernels.reduce_min(q, np.array([3.0, -1.5, 2.0], np.float32), out)
        >>> float(out[0])
        -1.5
    """
    _reduce("min", queue, x, out)


def reduce_max(queue: pt.Queue, x: Any, out: Any) -> None:
    """Enqueue ``out[0] = max(x)``; ``x`` must not be empty (an error, raised at once).

    Dtypes as for :func:`reduce_sum`. NaNs in ``x`` give an unspecified result.

    Example::

        >>> import numpy as np, portable as pt, kernels
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> out = np.empty(1, np.int32)
        >>> kernels.reduce_max(q, np.array([3, -7, 11], np.int32), out)
        >>> int(out[0])
        11
    """
    _reduce("max", queue, x, out)
