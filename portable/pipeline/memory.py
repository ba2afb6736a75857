"""Where the framework's buffers come from, and its copies of device products to the host.

Every buffer a module allocates through its context goes through :func:`allocate`,
the one place to plug a caching allocator in.

Example::

    >>> import numpy as np, portable as pt
    >>> allocate(pt.get_device("cpu_serial"), 4, np.int32).shape
    (4,)
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..collection import PortableCollection
from ..device import Device, get_device
from ..layout import Layout
from ..memory import alloc_buffer, alloc_host_buffer, memcpy
from ..queue import Queue


def allocate(device: Device, shape: int | Sequence[int], dtype: Any) -> Any:
    """An uninitialised buffer on ``device``."""
    return alloc_buffer(device, shape, dtype)


def allocate_collection(device: Device, layout: type[Layout], size: int,
                        capacity: int | None = None) -> PortableCollection:
    """A collection on ``device`` whose bytes come from :func:`allocate`, aligned as the
    layout asks."""
    capacity = size if capacity is None else capacity
    nbytes = layout.byte_size(capacity)
    raw = allocate(device, nbytes, np.uint8)
    if _address(raw) % layout.alignment:
        raw = allocate(device, nbytes + layout.alignment, np.uint8)
    start = -_address(raw) % layout.alignment
    return PortableCollection(layout, size, device, capacity=capacity,
                              buffer=raw[start:start + nbytes])


def host_buffer(shape: int | Sequence[int], dtype: Any, pinned: bool) -> np.ndarray:
    """Host memory for copies from a device: page-locked when ``pinned``."""
    return alloc_host_buffer(shape, dtype, pinned=pinned)


def is_memory(value: Any, device: Device) -> bool:
    """Whether ``value`` is a collection or an array in ``device``'s memory."""
    return isinstance(value, PortableCollection) or (
        not isinstance(value, (bool, int, float, complex, str, bytes)) and
        device.backend.as_array(value) is not None)


def copy_to_host(queue: Queue, value: Any) -> Any:
    """A pinned host copy of the device product ``value`` (a collection or an array),
    made by one memcpy ordered on ``queue``; done once ``queue``'s work so far is."""
    host = get_device("cpu_serial")
    if isinstance(value, PortableCollection):
        raw = host_buffer(value.nbytes + value.layout.alignment, np.uint8, pinned=True)
        start = -_address(raw) % value.layout.alignment
        copy = PortableCollection(value.layout, value.size, host, capacity=value.capacity,
                                  buffer=raw[start:start + value.nbytes])
        copy.copy_from(queue, value)
        return copy
    array = host_buffer(value.shape, value.dtype, pinned=True)
    memcpy(queue, array, value)
    return array


def _address(array: Any) -> int:
    interface = getattr(array, "__cuda_array_interface__", None)
    if interface is not None:
        return int(interface["data"][0] or 0)
    return int(array.ctypes.data)
