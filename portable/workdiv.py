"""Work division: how many blocks, threads per block and elements per thread.

The GPU convention is many threads per block and one element per thread; the
CPU convention is one thread per block and many elements per thread.
:func:`make_workdiv` picks the right one for the queue's device.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from .device import Device
from .checks import expect_count, expect_device
from .errors import LaunchError

Dims = tuple[int, ...]

#: threads per block that :func:`make_workdiv` uses on GPUs
GPU_BLOCK_THREADS = 256
#: blocks per core that :func:`make_workdiv` gives ``cpu_threads``: with one
#: block per core, a 16-core machine reached a third of its memory bandwidth
#: on saxpy; with 16 per core, as much as a hand-written ``prange`` loop
CPU_BLOCKS_PER_CORE = 16


def _dims(value: int | Sequence[int], what: str, least: int = 1) -> Dims:
    dims = tuple(value) if isinstance(value, (tuple, list)) else (value,)
    if not 1 <= len(dims) <= 3:
        raise LaunchError(f"WorkDiv {what}={value!r}: 1 to 3 dimensions are supported")
    if any(not isinstance(d, (int, np.integer)) or isinstance(d, bool) or d < least
           for d in dims):
        raise LaunchError(f"WorkDiv {what}={value!r}: every extent must be an integer "
                          f">= {least}")
    return tuple(int(d) for d in dims)


@dataclass(frozen=True, init=False)
class WorkDiv:
    """Blocks per grid, threads per block and elements per thread, per dimension.

    Scalars make a 1-D work division; tuples of length 2 or 3 an n-D one, the
    last dimension being the fastest-varying (CUDA's ``x``). In an n-D
    division every extent is an n-tuple, except that a scalar 1 means 1 in
    every dimension.

    Example::

        >>> import portable as pt
        >>> wd = pt.WorkDiv(blocks=4, threads=1, elements=100)
        >>> wd.ndim, wd.total_threads, wd.capacity
        (1, 4, 400)
    """

    blocks: Dims
    threads: Dims
    elements: Dims

    def __init__(self, blocks: int | Sequence[int], threads: int | Sequence[int] = 1,
                 elements: int | Sequence[int] = 1) -> None:
        b, t, e = _dims(blocks, "blocks"), _dims(threads, "threads"), _dims(elements, "elements")
        ndim = max(len(b), len(t), len(e))
        # a scalar 1 means "1 in every dimension"
        b, t, e = (x * ndim if x == (1,) else x for x in (b, t, e))
        if not len(b) == len(t) == len(e) == ndim:
            raise LaunchError(
                f"WorkDiv dimensions disagree: blocks={blocks!r}, threads={threads!r}, "
                f"elements={elements!r}; give each as a scalar or a tuple of one length")
        object.__setattr__(self, "blocks", b)
        object.__setattr__(self, "threads", t)
        object.__setattr__(self, "elements", e)

    @property
    def ndim(self) -> int:
        """Number of dimensions (1 to 3)."""
        return len(self.blocks)

    @property
    def total_threads(self) -> int:
        """Threads in the whole grid."""
        return math.prod(self.blocks) * math.prod(self.threads)

    @property
    def capacity(self) -> int:
        """Elements covered by one pass of the grid (threads x elements per thread)."""
        return self.total_threads * math.prod(self.elements)

    def validate(self, device: Device) -> None:
        """Raise :class:`LaunchError` if the division exceeds ``device``'s limits."""
        lim = device.limits
        per_block = math.prod(self.threads)
        if per_block > lim.max_threads_per_block:
            hint = (" (this backend runs one thread per block: use threads=1 and "
                    "elements>1, or pt.make_workdiv)"
                    if device.backend.one_thread_per_block else "")
            raise LaunchError(
                f"{self} asks for {per_block} threads per block but {device} allows at "
                f"most {lim.max_threads_per_block}{hint}")
        offset = 3 - self.ndim
        for d in range(self.ndim):
            if self.threads[d] > lim.max_block_dims[offset + d]:
                raise LaunchError(
                    f"{self}: threads[{d}]={self.threads[d]} exceeds {device}'s block "
                    f"limit {lim.max_block_dims[offset + d]} in that dimension")
            if self.blocks[d] > lim.max_grid_dims[offset + d]:
                raise LaunchError(
                    f"{self}: blocks[{d}]={self.blocks[d]} exceeds {device}'s grid "
                    f"limit {lim.max_grid_dims[offset + d]} in that dimension")

    def __str__(self) -> str:
        def fmt(d: Dims) -> str:
            return str(d[0]) if len(d) == 1 else str(d)
        return (f"WorkDiv(blocks={fmt(self.blocks)}, threads={fmt(self.threads)}, "
                f"elements={fmt(self.elements)})")


def make_workdiv(device: Device, extent: int | Sequence[int],
                 threads: int | None = None) -> WorkDiv:
    """A work division covering ``extent`` with the device's convention.

    On GPUs: ``threads`` (default 256) threads per block, one element each,
    and enough blocks to cover every element in one pass — so grid-stride
    loops run once per thread, which keeps the most loads in flight. On the
    CPU backends: one thread per block, each block taking a contiguous chunk;
    one block on ``cpu_serial``, 16 per core on ``cpu_threads`` (``threads`` is a
    GPU setting: the CPU backends keep one thread per block whatever it says, so one
    call serves every backend).

    Example::

        >>> import portable as pt
        >>> print(pt.make_workdiv(pt.get_device("cpu_serial"), 1000))
        WorkDiv(blocks=1, threads=1, elements=1000)
    """
    device = expect_device(device, "device", "pt.make_workdiv")
    ext = _dims(extent, "extent", least=0)
    if threads is not None:
        expect_count(threads, "threads", "pt.make_workdiv", least=1)
    if not device.backend.one_thread_per_block:
        per_block = threads or GPU_BLOCK_THREADS
        if len(ext) == 1:
            blocks = max(1, -(-ext[0] // per_block))
            return WorkDiv(min(blocks, device.limits.max_grid_dims[2]), per_block, 1)
        # n-D: a square-ish block in the last two dimensions.
        tx = min(per_block, 32)
        ty = max(1, per_block // tx)
        t = (1,) * (len(ext) - 2) + (ty, tx)
        b = tuple(max(1, -(-n // k)) for n, k in zip(ext, t))
        return WorkDiv(b, t, (1,) * len(ext))
    cores = max(1, device.limits.multiprocessors)
    # several blocks per core, so the thread pool can balance them
    wanted = 1 if cores == 1 else CPU_BLOCKS_PER_CORE * cores
    if len(ext) == 1:
        blocks = max(1, min(wanted, ext[0]))
        return WorkDiv(blocks, 1, max(1, -(-ext[0] // blocks)))
    blocks0 = max(1, min(wanted, ext[0]))
    b = (blocks0,) + (1,) * (len(ext) - 1)
    e = tuple(max(1, -(-n // k)) for n, k in zip(ext, b))
    return WorkDiv(b, (1,) * len(ext), e)
