"""A queue-ordered caching allocator for device memory and pinned host memory.

Memory from the backend is slow to get and to give back (a ``cuMemAlloc`` and
``cuMemFree`` pair takes about a hundred microseconds and waits for the device).
:class:`CachingAllocator` keeps the blocks it is given back and hands them out
again, after the design of CMSSW's caching allocator (itself after cub's):

* a request is rounded up to a power-of-two *bin* of at least 256 bytes; a
  request larger than ``max_bin_bytes`` (1 GiB by default) is allocated and
  given back to the backend directly, uncached;
* every block starts on a 256-byte boundary, so a collection layout (aligned
  to 128 bytes by default) can adopt it;
* a block freed on a queue remembers the queue and an :class:`~portable.Event`
  recorded there at the free (none on a blocking queue, whose work is done when
  it returns). It is handed out again at once to a request on the same queue,
  whose order makes that safe, and to a request on another queue only once the
  event has completed;
* the cache holds at most ``max_cached_bytes``; a freed block that does not
  fit goes back to the backend;
* when the backend cannot allocate, every cached block is given back and the
  allocation is tried once more; then a :class:`~portable.PortableError` names
  the request, the device and the state of the cache.

Rules for the arrays :meth:`CachingAllocator.alloc` returns:

* each is an array of the backend's own kind (a NumPy array on the CPU backends
  and for pinned memory, a device array on CUDA) of exactly the shape and dtype
  asked for, C-contiguous, viewing the start of a cached block;
* its contents are not initialised: a reused block keeps what its last user
  wrote (it is not zeroed; use :func:`~portable.memset`);
* free it exactly once, with ``free(array, queue)`` on the queue that uses it
  last: work enqueued there before the free still runs safely. After the free
  the array must not be used, since its memory goes to the next request (a
  request of the same shape and dtype may even get the same array object back:
  making a device array costs more than the rest of an allocation); an array
  never freed keeps its block for good.

One allocator serves one device and any number of host threads.
"""
from __future__ import annotations

import os
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from .checks import describe, expect_count, expect_device, expect_flag, expect_queue
from .device import Device
from .errors import ArgumentError, PortableError
from .event import Event
from .memory import _shape, aligned_bytes, buffer_dtype, request_bytes
from .queue import Queue

#: every block starts on a multiple of this many bytes
ALIGNMENT = 256
#: the smallest bin: smaller requests take a block of this size
MIN_BIN_BYTES = 256
#: requests larger than this are not cached, by default
DEFAULT_MAX_BIN_BYTES = 2**30
#: the default cap on cached device memory where the backend cannot tell the device's size
DEFAULT_DEVICE_CACHE_BYTES = 8 * 2**30
#: the default cap on cached host memory is this fraction of the machine's memory
HOST_CACHE_FRACTION = 1 / 4

_BYTE = np.dtype(np.uint8)


@dataclass(frozen=True)
class AllocatorStats:
    """A snapshot of a :class:`CachingAllocator`'s counters.

    ``requests`` counts calls of ``alloc``, of which ``hits`` reused a cached block
    and ``misses`` took new memory from the backend. Bytes are block sizes (the bin,
    not the request): ``live_bytes`` in arrays not yet freed, ``cached_bytes`` held
    for reuse, ``peak_bytes`` the most held from the backend at once (live and cached).
    """

    requests: int
    hits: int
    misses: int
    live_bytes: int
    live_blocks: int
    cached_bytes: int
    cached_blocks: int
    peak_bytes: int


@dataclass(eq=False)
class _Block:
    """Memory from the backend: ``size`` usable bytes from byte ``offset`` of ``raw``."""

    raw: Any
    offset: int
    size: int
    cached: bool  # whether it returns to the cache when freed
    queue: Queue | None = None  # freed on this queue, whose work may still use it
    event: Event | None = None  # recorded on ``queue`` at the free (kept for the next one)
    view_key: tuple[tuple[int, ...], np.dtype] | None = None  # the last array handed out
    view: Any = None

    def ready_for(self, queue: Queue) -> bool:
        """Whether a request on ``queue`` may have the block now."""
        return self.queue is None or self.queue is queue or (
            self.event is not None and self.event.query())


class CachingAllocator:
    """Arrays on ``device`` from a cache of blocks, reused in queue order.

    ``pinned=True`` caches page-locked host memory for fast copies with ``device``
    (NumPy arrays; on the CPU backends, whose memory is host memory, the same as
    ``pinned=False``). ``max_cached_bytes`` caps the bytes kept for reuse (default:
    a quarter of the machine's memory for host memory, a quarter of the device's
    for device memory); ``max_bin_bytes``, a power
    of two, is the largest request cached. See the module's documentation for the
    rules.

    Example::

        >>> import numpy as np, portable as pt
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> allocator = pt.CachingAllocator(q.device)
        >>> a = allocator.alloc(q, (2, 3), np.float32)
        >>> a.shape, a.dtype
        ((2, 3), dtype('float32'))
        >>> allocator.free(a, q)
        >>> b = allocator.alloc(q, 5, np.int32)   # same 256-byte bin: reused
        >>> allocator.stats.hits, allocator.stats.misses
        (1, 1)
        >>> allocator.free(b, q)
        >>> allocator.release_cache()
        256
    """

    def __init__(self, device: Device, *, pinned: bool = False,
                 max_cached_bytes: int | None = None,
                 max_bin_bytes: int = DEFAULT_MAX_BIN_BYTES) -> None:
        where = "pt.CachingAllocator"
        self.device = expect_device(device, "device", where)
        self.pinned = expect_flag(pinned, "pinned", where)
        self.max_bin_bytes = expect_count(max_bin_bytes, "max_bin_bytes", where, MIN_BIN_BYTES)
        if self.max_bin_bytes & (self.max_bin_bytes - 1):
            raise ArgumentError(f"{where}: argument 'max_bin_bytes' must be a power of two, "
                                f"got {self.max_bin_bytes}")
        backend = self.device.backend
        host_memory = backend.host_memory
        self._raw: Callable[[int], Any]
        self._view: Callable[[Any, int, tuple[int, ...], tuple[int, ...], np.dtype], Any]
        if pinned and backend.pinned_host_memory:
            self._raw, self._view = lambda n: backend.alloc_pinned((n,), _BYTE), _host_view
        elif pinned and not host_memory:
            raise ArgumentError(f"{where}: argument 'pinned' asks for page-locked host "
                                f"memory, which backend {backend.name!r} cannot allocate; "
                                f"leave pinned out")
        else:
            self._raw = lambda n: backend.alloc(self.device, (n,), _BYTE)
            self._view = backend.strided_view
        if max_cached_bytes is None:
            self.max_cached_bytes = (_host_cache_bytes() if pinned or host_memory
                                     else _device_cache_bytes(self.device))
        else:
            self.max_cached_bytes = expect_count(max_cached_bytes, "max_cached_bytes", where)
        self._lock = threading.Lock()
        self._cache: dict[int, list[_Block]] = {}  # bin size -> blocks, oldest first
        self._live: dict[int, tuple[Any, _Block]] = {}  # id(array) -> (array, block)
        self._freed: weakref.WeakValueDictionary[int, Any] = weakref.WeakValueDictionary()
        self._requests = self._hits = self._misses = 0
        self._live_bytes = self._cached_bytes = self._cached_blocks = self._peak_bytes = 0

    def alloc(self, queue: Queue, shape: int | Sequence[int], dtype: Any) -> Any:
        """An uninitialised array of ``shape`` and ``dtype``, for work on ``queue``.

        Example::

            >>> import numpy as np, portable as pt
            >>> q = pt.Queue(pt.get_device("cpu_serial"))
            >>> allocator = pt.CachingAllocator(q.device)
            >>> a = allocator.alloc(q, 1000, np.float64)
            >>> a.ctypes.data % 256, allocator.stats.live_bytes   # 8000 bytes: the 8 KiB bin
            (0, 8192)
            >>> allocator.free(a, q)
        """
        where = "allocator.alloc"
        queue = self._own_queue(queue, where)
        dims = (shape,) if type(shape) is int and shape >= 0 else _shape(shape, where)
        dt = buffer_dtype(dtype, where)
        nbytes = request_bytes(dims, dt, where)
        size = max(MIN_BIN_BYTES, 1 << (nbytes - 1).bit_length())
        cached = size <= self.max_bin_bytes
        with self._lock:
            self._requests += 1
            block = self._take(size, queue) if cached else None
            if block is None:
                self._misses += 1
            else:
                self._hits += 1
        if block is None:
            block = self._new_block(size if cached else nbytes, cached, dims, dt, where)
        if block.view_key == (dims, dt):  # the same request again: the same array object
            array = block.view
        else:
            array = self._view(block.raw, block.offset, dims, _c_strides(dims, dt.itemsize), dt)
            block.view_key, block.view = (dims, dt), array
        with self._lock:
            self._live[id(array)] = (array, block)
            self._live_bytes += block.size
            self._peak_bytes = max(self._peak_bytes, self._live_bytes + self._cached_bytes)
        return array

    def free(self, array: Any, queue: Queue) -> None:
        """Give back ``array`` (from :meth:`alloc`), last used by work on ``queue``.

        Its block is reused at once by requests on ``queue``, and by requests on other
        queues once the work enqueued on ``queue`` so far has finished.

        Example::

            >>> import numpy as np, portable as pt
            >>> q = pt.Queue(pt.get_device("cpu_serial"))
            >>> allocator = pt.CachingAllocator(q.device)
            >>> a = allocator.alloc(q, 4, np.int8)
            >>> a[:] = 7
            >>> allocator.free(a, q)
            >>> allocator.free(a, q)
            Traceback (most recent call last):
            ...
            portable.errors.ArgumentError: allocator.free: argument 'array' (the ndarray array([7, 7, 7, 7], dtype=int8)) was freed already; free each array once
        """
        where = "allocator.free"
        queue = self._own_queue(queue, where)
        with self._lock:
            entry = self._live.pop(id(array), None)
            if entry is None:
                raise self._not_live(array, where)
            block = entry[1]
            self._freed[id(array)] = array
            self._live_bytes -= block.size
        if not block.cached:
            return  # dropped: the backend gives the memory back
        if not queue.blocking:  # a blocking queue's work is done: nothing to wait for
            block.event = block.event or Event(self.device, timing=False)
            queue.backend.record_event(block.event, queue)
            block.queue = queue
        with self._lock:
            if self._cached_bytes + block.size <= self.max_cached_bytes:
                self._cache.setdefault(block.size, []).append(block)
                self._cached_bytes += block.size
                self._cached_blocks += 1

    def release_cache(self) -> int:
        """Give every cached block (none in use) back to the backend; the bytes given back.

        Example::

            >>> import numpy as np, portable as pt
            >>> q = pt.Queue(pt.get_device("cpu_serial"))
            >>> allocator = pt.CachingAllocator(q.device)
            >>> allocator.free(allocator.alloc(q, 300, np.uint8), q)   # a 512-byte block
            >>> allocator.release_cache(), allocator.stats.cached_bytes
            (512, 0)
        """
        with self._lock:
            released = self._cached_bytes
            self._cache.clear()
            self._cached_bytes = self._cached_blocks = 0
        return released

    @property
    def stats(self) -> AllocatorStats:
        """The counters now (see :class:`AllocatorStats`).

        Example::

            >>> import numpy as np, portable as pt
            >>> q = pt.Queue(pt.get_device("cpu_serial"))
            >>> allocator = pt.CachingAllocator(q.device)
            >>> a = allocator.alloc(q, 100, np.float32)
            >>> s = allocator.stats
            >>> s.requests, s.misses, s.live_bytes, s.live_blocks, s.cached_bytes
            (1, 1, 512, 1, 0)
            >>> allocator.free(a, q)
        """
        with self._lock:
            return AllocatorStats(self._requests, self._hits, self._misses, self._live_bytes,
                                  len(self._live), self._cached_bytes, self._cached_blocks,
                                  self._peak_bytes)

    def __repr__(self) -> str:
        s = self.stats
        memory = "pinned host memory for " if self.pinned else ""
        return (f"<CachingAllocator of {memory}{self.device}: {s.live_bytes} bytes in use in "
                f"{s.live_blocks} blocks, {s.cached_bytes} bytes cached in {s.cached_blocks} "
                f"blocks (cap {self.max_cached_bytes})>")

    # -- internals ---------------------------------------------------------------------
    def _own_queue(self, queue: Any, where: str) -> Queue:
        if not isinstance(queue, Queue):
            queue = expect_queue(queue, "queue", where)
        if queue.device is not self.device:
            raise ArgumentError(f"{where}: argument 'queue' runs on {queue.device}, but this "
                                f"allocator serves {self.device}; use the allocator of that "
                                f"device, pt.caching_allocator(queue.device)")
        return queue

    def _take(self, size: int, queue: Queue) -> _Block | None:
        """A cached block of ``size`` bytes that ``queue`` may have, newest first (call
        with the lock held)."""
        blocks = self._cache.get(size, [])
        for index in range(len(blocks) - 1, -1, -1):
            if blocks[index].ready_for(queue):
                self._cached_bytes -= size
                self._cached_blocks -= 1
                block = blocks.pop(index)
                block.queue = None  # keep no queue alive
                return block
        return None

    def _new_block(self, size: int, cached: bool, dims: tuple[int, ...], dt: np.dtype,
                   where: str) -> _Block:
        """A block of ``size`` new bytes; on failure the cache is given back and the
        backend asked once more."""
        try:
            return self._aligned(size, cached)
        except Exception:  # the backend's own out-of-memory error, whatever its kind
            self.release_cache()
        try:
            return self._aligned(size, cached)
        except Exception as err:
            memory = "pinned host memory for " if self.pinned else ""
            raise PortableError(
                f"{where}: cannot allocate shape {dims} of {dt} ({size} bytes) in "
                f"{memory}{self.device}, even after giving the cache back: "
                f"{type(err).__name__}: {err}; allocator state: {self!r}") from None

    def _aligned(self, size: int, cached: bool) -> _Block:
        raw, start = aligned_bytes(self._raw, size, ALIGNMENT, exact_first=True)
        return _Block(raw, start, size, cached)

    def _not_live(self, array: Any, where: str) -> ArgumentError:
        freed = self._freed.get(id(array))
        if freed is not None and freed is array:
            return ArgumentError(f"{where}: argument 'array' ({describe(array)}) was freed "
                                 f"already; free each array once")
        return ArgumentError(f"{where}: argument 'array' ({describe(array)}) was not "
                             f"allocated by this allocator of {self.device}; free it with the "
                             f"allocator whose alloc returned it (a buffer from "
                             f"pt.alloc_buffer needs no free)")


def _c_strides(dims: tuple[int, ...], itemsize: int) -> tuple[int, ...]:
    """The byte strides of a C-contiguous array of ``dims`` (as NumPy's, an empty
    dimension counting as one)."""
    strides, step = [], itemsize
    for extent in reversed(dims):
        strides.append(step)
        step *= max(extent, 1)
    return tuple(reversed(strides))


def _host_view(buffer: np.ndarray, offset: int, shape: tuple[int, ...],
               strides: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    return np.ndarray(shape, dtype, buffer=buffer, offset=offset, strides=strides)


def _device_cache_bytes(device: Device) -> int:
    """A quarter of the device's memory, where the backend says how much it has."""
    total = device.backend.memory_bytes(device)
    return DEFAULT_DEVICE_CACHE_BYTES if total is None else total // 4


def _host_cache_bytes() -> int:
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") * HOST_CACHE_FRACTION)


_SHARED: dict[tuple[Device, bool], CachingAllocator] = {}
_SHARED_LOCK = threading.Lock()


def caching_allocator(device: Device, *, pinned: bool = False) -> CachingAllocator:
    """The allocator shared by everyone for ``device`` (of pinned host memory if
    ``pinned``), created with the default settings on first use.

    Example::

        >>> import portable as pt
        >>> dev = pt.get_device("cpu_serial")
        >>> pt.caching_allocator(dev) is pt.caching_allocator(dev)
        True
    """
    where = "pt.caching_allocator"
    key = (expect_device(device, "device", where), expect_flag(pinned, "pinned", where))
    with _SHARED_LOCK:
        found = _SHARED.get(key)
        if found is None:
            found = _SHARED[key] = CachingAllocator(key[0], pinned=key[1])
        return found
