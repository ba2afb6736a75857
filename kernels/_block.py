"""Device functions shared by the kernels: binary combiners and a block-wide
tree reduction in block-shared memory."""
from __future__ import annotations

import functools

import portable as pt


@pt.device_function
def add(a, b):
    """``a + b``."""
    return a + b


@pt.device_function
def minimum(a, b):
    """The smaller of ``a`` and ``b``; NaN if either is NaN, as ``np.minimum``."""
    return a if a < b or a != a else b


@pt.device_function
def maximum(a, b):
    """The larger of ``a`` and ``b``; NaN if either is NaN, as ``np.maximum``."""
    return a if a > b or a != a else b


@functools.lru_cache(maxsize=None)
def block_reduce(combine: pt.DeviceFunction) -> pt.DeviceFunction:
    """A device function ``(acc, value, scratch) -> total`` combining every
    thread's ``value`` of a block with ``combine``; every thread gets the total.

    ``scratch`` is a block-shared array with one slot per thread; the block's
    thread count must be a power of two. Every thread of the block must call it.
    """
    @pt.device_function
    def reduce_block(acc, value, scratch):
        t = acc.thread_idx
        scratch[t] = value
        acc.sync_block()
        step = acc.block_threads // 2
        while step > 0:
            if t < step:
                scratch[t] = combine(scratch[t], scratch[t + step])
            acc.sync_block()
            step //= 2
        total = scratch[0]
        acc.sync_block()  # the scratch may be reused at once
        return total
    return reduce_block
