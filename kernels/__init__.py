"""A kernel library written once with :mod:`portable` and run on every backend.

Each operation takes a :class:`portable.Queue` and buffers on the queue's
device (NumPy arrays on the CPU backends, numba device arrays on CUDA), checks
its arguments, then enqueues its kernels on the queue. A bad argument (of the
wrong kind, dtype, shape or device, read-only where written, sharing memory
with another argument, or out of range) raises :class:`portable.ArgumentError`
(:class:`KernelArgumentError`, its subclass, for all but a bad queue) naming
the argument and the fix, before anything is enqueued, so no buffer is
touched. :mod:`kernels.reference` holds a plain NumPy version of each.

Example::

    >>> import numpy as np, portable as pt, kernels
    >>> q = pt.Queue(pt.get_device("cpu_threads"))
    >>> out = np.empty(1, np.float64)
    >>> kernels.reduce_sum(q, np.arange(4.0), out)
    >>> float(out[0])
    6.0

The operations that need temporary buffers (:func:`histogram`,
:func:`exclusive_scan`, :func:`select_indices`, :func:`compact_where` and the
reductions) take them from the keyword argument ``alloc(shape, dtype)``, which
must return a new contiguous buffer on the queue's device (default:
:func:`portable.alloc_buffer`). Pass a caching allocator's, and give its
buffers back once the queue's work is done::

    >>> allocator = pt.CachingAllocator(q.device)
    >>> taken = []
    >>> def alloc(shape, dtype):
    ...     taken.append(allocator.alloc(q, shape, dtype))
    ...     return taken[-1]
    >>> kernels.reduce_sum(q, np.arange(4.0), out, alloc=alloc)
    >>> q.synchronize()
    >>> for buffer in taken:
    ...     allocator.free(buffer, q)
    >>> float(out[0]), len(taken)
    (6.0, 1)
"""
from ._checks import KernelArgumentError
from .compact import compact_where, select_indices
from .elementwise import axpy, elementwise_map
from .histogram import histogram
from .reduce import reduce_max, reduce_min, reduce_sum
from .scan import exclusive_scan

__all__ = [
    "KernelArgumentError", "axpy", "compact_where", "elementwise_map", "exclusive_scan",
    "histogram", "reduce_max", "reduce_min", "reduce_sum", "select_indices",
]
