"""Exclusive prefix sums (scans) of any length, as three kernels on one queue.

The input is cut into one contiguous chunk per block. Each chunk is a run of
tiles of ``block_threads * thread_elements`` elements (one element per thread
on GPUs, one thread with many elements on the CPU):

1. every block sums its chunk (a block-shared tree reduction);
2. one block scans those chunk totals in place, giving each chunk's offset;
3. every block scans its chunk tile by tile: each thread sums its elements,
   the block scans the per-thread sums in shared memory (Hillis-Steele, with
   barriers), then each thread writes its prefixes from its offset, and the
   tile's total carries to the next tile.
"""
from __future__ import annotations

import functools
from typing import Any

import numpy as np

import portable as pt

from . import _checks as check
from ._block import add, block_reduce
from ._grid import MAX_BLOCK_THREADS, block_threads

#: elements per CPU tile (the CPU's one thread per block scans them in a row)
CPU_TILE = 4096
#: CPU chunks per core, to balance the blocks of ``cpu_threads``
CPU_CHUNKS_PER_CORE = 4
#: GPU tiles per chunk at least, and GPU chunks at most
GPU_TILES_PER_CHUNK = 2
GPU_MAX_CHUNKS = 4096

_block_sum = block_reduce(add)


@pt.device_function
def _scan_range(acc, x, out, start, end, carry, zero, scratch):
    """Exclusive scan of ``x[start:end]`` into ``out[start:end]``, starting from
    ``carry``; every thread of the block calls it with the same arguments."""
    t = acc.thread_idx
    threads = acc.block_threads
    per_thread = acc.thread_elements
    for base in range(start, end, threads * per_thread):
        first = base + t * per_thread
        last = min(first + per_thread, end)
        own = zero
        for k in range(first, last):
            own += x[k]
        scratch[t] = own
        acc.sync_block()
        offset = 1
        while offset < threads:  # inclusive scan of the per-thread sums
            before = zero
            if t >= offset:
                before = scratch[t - offset]
            acc.sync_block()
            scratch[t] += before
            acc.sync_block()
            offset *= 2
        running = carry
        if t > 0:
            running = carry + scratch[t - 1]
        for k in range(first, last):
            value = x[k]
            out[k] = running
            running += value
        carry = carry + scratch[threads - 1]
        acc.sync_block()  # the scratch is reused by the next tile


@functools.lru_cache(maxsize=None)
def _scan_kernels(dtype: np.dtype) -> tuple[pt.Kernel, pt.Kernel, pt.Kernel]:
    """The three scan kernels for elements of ``dtype``."""
    scalar = dtype.type

    @pt.kernel
    def chunk_totals(acc, x, chunk, totals):
        scratch = acc.shared_array(MAX_BLOCK_THREADS, scalar)
        for g in acc.independent_groups(totals.size):
            start = g * chunk
            own = scalar(0)
            for j in acc.independent_group_elements(min(chunk, x.size - start)):
                own += x[start + j]
            total = _block_sum(acc, own, scratch)
            if acc.once_per_block():
                totals[g] = total

    @pt.kernel
    def scan_totals(acc, totals):
        scratch = acc.shared_array(MAX_BLOCK_THREADS, scalar)
        for g in acc.independent_groups(1):
            _scan_range(acc, totals, totals, 0, totals.size, scalar(0), scalar(0), scratch)

    @pt.kernel
    def scan_chunks(acc, x, out, chunk, offsets):
        scratch = acc.shared_array(MAX_BLOCK_THREADS, scalar)
        for g in acc.independent_groups(offsets.size):
            start = g * chunk
            _scan_range(acc, x, out, start, min(start + chunk, x.size), offsets[g],
                        scalar(0), scratch)
    return chunk_totals, scan_totals, scan_chunks


def _chunking(queue: pt.Queue, n: int) -> tuple[int, pt.WorkDiv]:
    """The chunk length and the work division (one block per chunk) for ``n > 0``."""
    if not queue.backend.one_thread_per_block:
        threads, per_thread = block_threads(queue, n), 1
        tiles = -(-n // threads)
        per_chunk = max(GPU_TILES_PER_CHUNK, -(-tiles // GPU_MAX_CHUNKS))
    else:
        threads, per_thread = 1, CPU_TILE
        tiles = -(-n // CPU_TILE)
        cores = max(1, queue.device.limits.multiprocessors)
        per_chunk = -(-tiles // min(tiles, cores * CPU_CHUNKS_PER_CORE))
    chunk = per_chunk * threads * per_thread
    return chunk, pt.WorkDiv(-(-n // chunk), threads, per_thread)


def scan_offsets(queue: pt.Queue, op: str, n: int, dtype: Any, alloc: check.Alloc) -> Any:
    """The temporary buffer (one value per chunk) that :func:`scan_into` needs to
    scan ``n > 0`` elements of ``dtype``, from ``alloc``."""
    return check.temporary(queue, op, alloc, _chunking(queue, n)[1].blocks[0], dtype)


def scan_into(queue: pt.Queue, x: Any, out: Any, offsets: Any) -> None:
    """Enqueue the exclusive scan of ``x`` into ``out``, unchecked: both are
    1-D native buffers of one supported dtype and length ``n > 0`` (``out`` may
    be ``x``), and ``offsets`` comes from :func:`scan_offsets` for them."""
    chunk_totals, scan_totals, scan_chunks = _scan_kernels(np.dtype(x.dtype))
    chunk, workdiv = _chunking(queue, x.size)
    pt.launch(queue, workdiv, chunk_totals, x, chunk, offsets)
    single = pt.WorkDiv(1, block_threads(queue, offsets.size), workdiv.elements)
    pt.launch(queue, single, scan_totals, offsets)
    pt.launch(queue, workdiv, scan_chunks, x, out, chunk, offsets)


def exclusive_scan(queue: pt.Queue, x: Any, out: Any, *,
                   alloc: check.Alloc | None = None) -> None:
    """Enqueue ``out[i] = x[0] + ... + x[i - 1]`` (so ``out[0] = 0``).

    ``x`` and ``out`` are 1-D buffers on ``queue.device`` of one dtype (float32,
    float64, int32 or int64) and one length, any length. ``out`` may be ``x``
    itself (an in-place scan) but must not otherwise share memory with it (an
    error, raised at once). Integer prefixes are exact modulo 2**bits; float
    prefixes are summed in a different order than ``np.cumsum``'s, so they
    agree up to rounding. A temporary buffer of one value per block comes from
    ``alloc(shape, dtype)`` (default: :func:`portable.alloc_buffer` on
    ``queue.device``), e.g. a caching allocator's (see :mod:`kernels`).

    Example::

        >>> import numpy as np, portable as pt, kernels
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> out = np.empty(5, np.int32)
        >>> kernels.exclusive_scan(q, np.array([3, 1, 4, 1, 5], np.int32), out)
        >>> out.tolist()
        [0, 3, 4, 8, 9]
    """
    op = "exclusive_scan"
    check.check_queue(op, queue)
    alloc = check.allocator(op, queue, alloc)
    x = check.buffer(queue, op, "x", x, check.NUMERIC)
    out = check.buffer(queue, op, "out", out, check.NUMERIC, output=True)
    check.same_size(op, "out", out, "x", x)
    check.same_dtype(op, "out", out, "x", x)
    check.no_overlap(op, "out", out, "x", x, same_elements=True)
    if x.size:
        scan_into(queue, x, out, scan_offsets(queue, op, x.size, x.dtype, alloc))
