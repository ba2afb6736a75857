"""Work divisions shared by the operations of this package.

GPU grids are sized by the problem: small inputs get one small block (which
also keeps Numba's CUDA simulator, one OS thread per GPU thread, quick), large
ones many blocks of :data:`MAX_BLOCK_THREADS` threads. The CPU backends get
one thread per block, as they require.
"""
from __future__ import annotations

import portable as pt

#: threads per GPU block at most; a power of two, and the length of every
#: block-shared scratch array (the CPU backends use only its first element)
MAX_BLOCK_THREADS = 256
#: threads per GPU block at least (one warp)
MIN_BLOCK_THREADS = 32
#: elements each GPU thread handles in one pass of a grid-stride loop
ITEMS_PER_THREAD = 2
#: GPU blocks per multiprocessor at most; more work loops in the grid
BLOCKS_PER_MULTIPROCESSOR = 32


def block_threads(queue: pt.Queue, n: int) -> int:
    """Threads per block for ``n`` elements: 1 on the CPU, else the power of two
    covering ``n``, within [MIN_BLOCK_THREADS, MAX_BLOCK_THREADS]."""
    if queue.backend.one_thread_per_block:
        return 1
    threads = MIN_BLOCK_THREADS
    while threads < min(n, MAX_BLOCK_THREADS):
        threads *= 2
    return threads


def grid(queue: pt.Queue, n: int) -> pt.WorkDiv:
    """A 1-D work division for a grid-stride loop over ``n`` elements."""
    if queue.backend.one_thread_per_block:
        return pt.make_workdiv(queue.device, max(n, 1))
    threads = block_threads(queue, n)
    most = max(1, queue.device.limits.multiprocessors) * BLOCKS_PER_MULTIPROCESSOR
    blocks = min(most, max(1, -(-n // (threads * ITEMS_PER_THREAD))))
    return pt.WorkDiv(blocks, threads, 1)


def single_block(queue: pt.Queue, n: int) -> pt.WorkDiv:
    """A 1-D work division of ONE block whose threads loop over ``n`` elements."""
    if queue.backend.one_thread_per_block:
        return pt.WorkDiv(1, 1, max(n, 1))
    return pt.WorkDiv(1, block_threads(queue, n), 1)
