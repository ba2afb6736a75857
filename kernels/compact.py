"""Stream compaction: the indices of the selected elements, in order.

Built from three steps on one queue: a kernel writes a 0/1 flag per element
(plus a trailing 0), :func:`~kernels.scan.exclusive_scan` turns the flags into
output positions in place (the trailing entry becomes the count), and a
scatter kernel writes each selected index to its position.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

import portable as pt

from . import _checks as check
from ._grid import grid
from .scan import scan_into, scan_offsets

#: dtypes a mask may have (nonzero means selected)
MASK = (np.dtype(np.bool_), np.dtype(np.uint8), np.dtype(np.int32))


@pt.device_function
def _nonzero(v):
    return v != 0


@functools.lru_cache(maxsize=256)
def _flag_kernel(predicate: pt.DeviceFunction) -> pt.Kernel:
    """The kernel writing ``flags[i] = predicate(x[i])`` and ``flags[x.size] = 0``."""
    @pt.kernel
    def flag_kernel(acc, x, flags):
        for i in acc.uniform_elements(flags.size):
            selected = 0
            if i < x.size:
                if predicate(x[i]):
                    selected = 1
            flags[i] = selected
    return flag_kernel


@pt.kernel
def _scatter(acc, positions, out):
    for i in acc.uniform_elements(positions.size - 1):
        here = positions[i]
        if positions[i + 1] != here:
            out[here] = i


def _compact(queue: pt.Queue, op: str, predicate: pt.DeviceFunction, x: Any,
             out_indices: Any, alloc: check.Alloc) -> int:
    """Enqueue the selection of ``predicate`` on checked buffers, with temporaries
    from ``alloc``; return the count."""
    n = x.size
    if n == 0:
        return 0
    index_dtype = np.dtype(out_indices.dtype)
    positions = check.temporary(queue, op, alloc, n + 1, index_dtype)
    offsets = scan_offsets(queue, op, n + 1, index_dtype, alloc)
    pt.launch(queue, grid(queue, n + 1), _flag_kernel(predicate), x, positions)
    scan_into(queue, positions, positions, offsets)
    pt.launch(queue, grid(queue, n), _scatter, positions, out_indices)
    count = np.empty(1, index_dtype)
    pt.memcpy(queue, count, positions[n:])
    queue.synchronize()
    return int(count[0])


def _check_indices(op: str, queue: pt.Queue, x_name: str, x: Any, out_indices: Any) -> Any:
    """``out_indices`` checked against the input ``x`` and returned as a native buffer."""
    out_indices = check.buffer(queue, op, "out_indices", out_indices, check.INDEX, output=True)
    check.same_size(op, "out_indices", out_indices, x_name, x)
    check.no_overlap(op, "out_indices", out_indices, x_name, x)
    if x.size >= np.iinfo(out_indices.dtype).max:
        raise check.KernelArgumentError(
            f"{op}: argument {x_name!r} has {x.size} elements, too many for the "
            f"{np.dtype(out_indices.dtype)} indices of 'out_indices'; use int64 out_indices")
    return out_indices


def select_indices(queue: pt.Queue, mask: Any, out_indices: Any, *,
                   alloc: check.Alloc | None = None) -> int:
    """Write the indices ``i`` with ``mask[i]`` true (nonzero), in increasing
    order, to the front of ``out_indices``; return how many there are.

    ``mask`` is a 1-D bool, uint8 or int32 buffer on ``queue.device``;
    ``out_indices`` an int32 or int64 buffer there of the same length, not
    sharing memory with ``mask``, whose entries from the count on are left
    untouched. Returning the count as a Python int copies one value to the host
    and SYNCHRONIZES the queue: all work enqueued before has finished when this
    returns. Temporary buffers (``len(mask) + 1`` indices, and one per scan
    block) come from ``alloc(shape, dtype)`` (default: :func:`portable.alloc_buffer`
    on ``queue.device``), e.g. a caching allocator's (see :mod:`kernels`).

    Example::

        >>> import numpy as np, portable as pt, kernels
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> out = np.full(5, -1, np.int64)
        >>> kernels.select_indices(q, np.array([0, 1, 1, 0, 1], bool), out)
        3
        >>> out.tolist()
        [1, 2, 4, -1, -1]
    """
    op = "select_indices"
    check.check_queue(op, queue)
    alloc = check.allocator(op, queue, alloc)
    mask = check.buffer(queue, op, "mask", mask, MASK)
    out_indices = _check_indices(op, queue, "mask", mask, out_indices)
    return _compact(queue, op, _nonzero, mask, out_indices, alloc)


def compact_where(queue: pt.Queue, fn: pt.DeviceFunction, x: Any, out_indices: Any, *,
                  alloc: check.Alloc | None = None) -> int:
    """Write the indices ``i`` with ``fn(x[i])`` true, in increasing order, to the
    front of ``out_indices``; return how many there are.

    ``fn`` is a ``@pt.device_function`` of one value returning a bool; ``x`` a
    1-D float32, float64, int32 or int64 buffer on ``queue.device``, and
    ``out_indices`` and ``alloc`` as for :func:`select_indices` (which also
    explains the queue synchronization this needs to return the count).

    Example::

        >>> import numpy as np, portable as pt, kernels
        >>> @pt.device_function
        ... def is_large(v):
        ...     return v > 2.5
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> out = np.empty(4, np.int32)
        >>> count = kernels.compact_where(q, is_large, np.array([3.0, 1.0, 4.0, 1.5]), out)
        >>> out[:count].tolist()
        [0, 2]
    """
    op = "compact_where"
    check.check_queue(op, queue)
    alloc = check.allocator(op, queue, alloc)
    check.one_argument_function(op, fn)
    x = check.buffer(queue, op, "x", x, check.NUMERIC)
    out_indices = _check_indices(op, queue, "x", x, out_indices)
    return _compact(queue, op, fn, x, out_indices, alloc)
