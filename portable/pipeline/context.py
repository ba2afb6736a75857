"""What a module gets besides the event: its queue, device, and helpers that allocate,
copy and launch on that queue.

Example::

    >>> import numpy as np, portable as pt
    >>> @pt.kernel
    ... def fill(acc, out, v):
    ...     for i in acc.uniform_elements(out.size):
    ...         out[i] = v
    >>> ctx = Context(pt.Queue(pt.get_device("cpu_serial")), slot=0, memory=EventMemory())
    >>> out = ctx.alloc(3, np.int32)
    >>> ctx.launch(fill, 3, out, 7); ctx.to_host(out).tolist()
    [7, 7, 7]
    >>> ctx.memory.release()  # the framework does this when the event ends
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..collection import PortableCollection
from ..device import get_device
from ..kernel import Kernel, launch
from ..layout import Layout
from ..memory import alloc_host_buffer, memcpy
from ..queue import Queue
from ..workdiv import WorkDiv, make_workdiv
from .errors import PipelineError
from .memory import EventMemory, Staging


class Context:
    """A module call's queue (``queue``), device, backend name and event slot.

    What ``alloc``, ``collection``, ``host_alloc`` and ``to_device`` return comes from
    the event's ``memory`` and is valid until the event ends: keep a copy of what must
    outlive it."""

    def __init__(self, queue: Queue, slot: int, memory: EventMemory,
                 staged: Staging | None = None) -> None:
        self.queue = queue
        self.device = queue.device
        self.backend: str = queue.backend.name
        self.slot = slot
        self.memory = memory
        self._staged = staged

    def staging(self, name: str, shape: int | Sequence[int], dtype: Any) -> np.ndarray:
        """The module's static host buffer ``name`` in this slot: the same array for
        every event (pinned on a GPU; uninitialised at first), for ``stage`` to copy
        the event's host inputs into and the device work to copy from.

        Example::

            >>> import numpy as np, portable as pt
            >>> from .memory import Staging
            >>> q = pt.Queue(pt.get_device("cpu_serial"))
            >>> ctx = Context(q, 0, EventMemory(), Staging("Unpack"))
            >>> ctx.staging("n", 1, np.int32) is ctx.staging("n", 1, np.int32)
            True
        """
        if self._staged is None:
            raise PipelineError("ctx.staging serves the modules of a pipeline job; this "
                                "context belongs to none")
        return self._staged.get(self.queue, name, shape, dtype)

    def alloc(self, shape: int | Sequence[int], dtype: Any) -> Any:
        """An uninitialised buffer on the module's device."""
        return self.memory.alloc(self.queue, shape, dtype)

    def collection(self, layout: type[Layout], size: int,
                   capacity: int | None = None) -> PortableCollection:
        """An uninitialised collection on the module's device."""
        return self.memory.collection(self.queue, layout, size, capacity)

    def host_alloc(self, shape: int | Sequence[int], dtype: Any) -> np.ndarray:
        """Host memory for small copies from the device (pinned on a GPU)."""
        return self.memory.alloc(self.queue, shape, dtype, pinned=self.queue.backend.pinned_host_memory)

    def copy(self, dst: Any, src: Any) -> None:
        """``pt.memcpy`` on the module's queue (host <-> device or within the device)."""
        memcpy(self.queue, dst, src)

    def to_device(self, host: Any) -> Any:
        """A device copy of the host array ``host``, enqueued on the module's queue.
        ``host`` must stay unchanged until the queue has done the copy."""
        if isinstance(host, PortableCollection):
            copy = self.collection(host.layout, host.size, host.capacity)
            copy.copy_from(self.queue, host)
            return copy
        array = np.asarray(host)
        buffer = self.alloc(array.shape, array.dtype)
        memcpy(self.queue, buffer, array)
        return buffer

    def to_host(self, value: Any) -> Any:
        """A new host copy of ``value`` (an array or a collection), after waiting for
        the module's queue: a blocking call, for small results at the end of a module."""
        if isinstance(value, PortableCollection):
            copy: Any = PortableCollection(value.layout, value.size, get_device("cpu_serial"),
                                           capacity=value.capacity)
            copy.copy_from(self.queue, value)
        else:
            copy = alloc_host_buffer(value.shape, value.dtype)
            memcpy(self.queue, copy, value)
        self.queue.synchronize()
        return copy

    def launch(self, kernel: Kernel, extent_or_workdiv: int | Sequence[int] | WorkDiv,
               *args: Any) -> None:
        """Enqueue ``kernel`` on the module's queue, over a work division or over the
        backend's default one for ``extent`` elements."""
        workdiv = (extent_or_workdiv if isinstance(extent_or_workdiv, WorkDiv)
                   else make_workdiv(self.device, extent_or_workdiv))
        launch(self.queue, workdiv, kernel, *args)

