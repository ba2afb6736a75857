"""Where the framework's buffers come from: per event, from the device's caching
allocator, given back when the event's queues are idle; and copies of device
products to the host.

:func:`allocator_for` is the one place that names the allocator.

Example::

    >>> import numpy as np, portable as pt
    >>> q = pt.Queue(pt.get_device("cpu_serial"), blocking=False)
    >>> memory = EventMemory()
    >>> memory.alloc(q, 4, np.int32).shape
    (4,)
    >>> q.synchronize(); memory.release()
"""
from __future__ import annotations

import threading
from typing import Any, Sequence

import numpy as np

from ..allocator import ALIGNMENT, CachingAllocator, caching_allocator
from ..checks import describe
from ..collection import PortableCollection
from ..device import Device, get_device
from ..errors import ArgumentError
from ..layout import Layout
from ..memory import address_of, memcpy
from ..queue import Queue


def allocator_for(device: Device, pinned: bool) -> CachingAllocator:
    """The allocator of ``device``'s memory (of pinned host memory if ``pinned``)."""
    return caching_allocator(device, pinned=pinned)


class EventMemory:
    """The buffers taken for one event: valid until the event ends, then given back
    (on the queue each was taken for, whose work is done by then)."""

    def __init__(self) -> None:
        self._taken: list[tuple[CachingAllocator, Any, Queue]] = []
        self._lock = threading.Lock()

    def alloc(self, queue: Queue, shape: int | Sequence[int], dtype: Any,
              pinned: bool = False) -> Any:
        """An uninitialised buffer on ``queue``'s device (pinned host memory if
        ``pinned``), for work on ``queue``."""
        allocator = allocator_for(queue.device, pinned)
        array = allocator.alloc(queue, shape, dtype)
        with self._lock:
            self._taken.append((allocator, array, queue))
        return array

    def collection(self, queue: Queue, layout: type[Layout], size: int,
                   capacity: int | None = None, pinned: bool = False) -> PortableCollection:
        """An uninitialised collection on ``queue``'s device (in pinned host memory if
        ``pinned``), its first byte on the layout's alignment."""
        capacity = size if capacity is None else capacity
        nbytes = layout.byte_size(capacity)
        spare = 0 if ALIGNMENT % layout.alignment == 0 else layout.alignment
        raw = self.alloc(queue, nbytes + spare, np.uint8, pinned)
        start = -address_of(raw) % layout.alignment
        device = get_device("cpu_serial") if pinned else queue.device
        return PortableCollection(layout, size, device, capacity=capacity,
                                  buffer=raw[start:start + nbytes])

    def host_copy(self, queue: Queue, value: Any) -> Any:
        """A pinned host copy of the device product ``value`` (a collection or an
        array), made by one memcpy ordered on ``queue``."""
        if isinstance(value, PortableCollection):
            copy = self.collection(queue, value.layout, value.size, value.capacity, pinned=True)
            copy.copy_from(queue, value)
            return copy
        array = self.alloc(queue, value.shape, value.dtype, pinned=True)
        memcpy(queue, array, value)
        return array

    def release(self) -> None:
        """Give every buffer back; call once the event's queues are idle."""
        with self._lock:
            taken, self._taken = self._taken, []
        for allocator, array, queue in taken:
            allocator.free(array, queue)


class Staging:
    """One module's static host buffers in one slot, by name: the same array for
    every event (pinned on a GPU), kept for the life of the job.

    Example::

        >>> import numpy as np, portable as pt
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> staging = Staging("Unpack")
        >>> a = staging.get(q, "hits", 4, np.float32)
        >>> a is staging.get(q, "hits", (4,), np.float32)
        True
        >>> staging.get(q, "hits", 5, np.float32)
        Traceback (most recent call last):
        ...
        portable.errors.ArgumentError: ctx.staging in module 'Unpack': buffer 'hits' has shape (4,) and dtype float32, asked for shape (5,) and dtype float32; one name holds one shape and dtype (size it at the capacity), use another name for another buffer
    """

    def __init__(self, module: str) -> None:
        self.module = module
        self._buffers: dict[str, np.ndarray] = {}

    def get(self, queue: Queue, name: str, shape: int | Sequence[int],
            dtype: Any) -> np.ndarray:
        """The buffer ``name`` (made on first use, uninitialised)."""
        found = self._buffers.get(name)
        dims = (shape,) if type(shape) is int else tuple(shape)  # type: ignore[arg-type]
        if found is not None and found.shape == dims and found.dtype == dtype:
            return found
        where = f"ctx.staging in module {self.module!r}"
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"{where}: argument 'name' must be a non-empty str, got "
                                f"{describe(name)}")
        if found is not None:
            raise ArgumentError(
                f"{where}: buffer {name!r} has shape {found.shape} and dtype {found.dtype}, "
                f"asked for shape {dims} and dtype {np.dtype(dtype)}; one name holds one "
                f"shape and dtype (size it at the capacity), use another name for another "
                f"buffer")
        allocator = allocator_for(queue.device, pinned=queue.backend.pinned_host_memory)
        array = allocator.alloc(queue, dims, dtype)  # never freed: it stays with the slot
        self._buffers[name] = array
        return array


def is_memory(value: Any, device: Device) -> bool:
    """Whether ``value`` is a collection or an array in ``device``'s memory."""
    return isinstance(value, PortableCollection) or (
        not isinstance(value, (bool, int, float, complex, str, bytes)) and
        device.backend.as_array(value) is not None)
