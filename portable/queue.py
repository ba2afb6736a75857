"""Queues: ordered streams of work (kernels, copies, events) on one device.

A *blocking* queue returns to the host only when the enqueued work is done; a
*non-blocking* queue returns at once and runs the work in order in the
background (a CUDA stream on GPUs, a worker thread on the CPU).
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .device import Device, get_device
from .checks import expect_device, expect_event, expect_flag
from .errors import PortableError

if TYPE_CHECKING:
    from .event import Event


class Queue:
    """An in-order queue of work on ``device``.

    Example::

        >>> import numpy as np, portable as pt
        >>> q = pt.Queue(pt.get_device("cpu_serial"), blocking=False)
        >>> buf = pt.alloc_buffer(q.device, 4, np.int32)
        >>> pt.memset(q, buf, 0)
        >>> q.synchronize()
        >>> buf.tolist()
        [0, 0, 0, 0]
    """

    def __init__(self, device: Device | None = None, blocking: bool = True,
                 *, _native: Any = None) -> None:
        where = "pt.Queue"
        self.device: Device = (get_device() if device is None else
                               expect_device(device, "device", where))
        self.blocking: bool = expect_flag(blocking, "blocking", where)
        self.backend = self.device.backend
        self.native: Any = (self.backend.make_stream(self.device, blocking)
                            if _native is None else _native)
        #: what the backend derives once from ``native`` (e.g. a launch handle)
        self.backend_cache: dict[str, Any] = {}

    @classmethod
    def wrap(cls, device: Device, stream: Any, blocking: bool = False) -> Queue:
        """A queue that enqueues on an existing GPU stream.

        ``stream`` may be a numba stream, a ``torch.cuda.Stream`` (anything
        with a ``cuda_stream`` handle) or a raw ``CUstream`` handle as an int.

        Example (on a CUDA machine)::

            q = pt.Queue.wrap(pt.get_device("cuda"), torch.cuda.current_stream())
        """
        device = expect_device(device, "device", "pt.Queue.wrap")
        native = device.backend.wrap_stream(device, stream)
        return cls(device, blocking, _native=native)

    def synchronize(self) -> None:
        """Block the host until all work enqueued so far has finished."""
        self.backend.synchronize(self)

    def wait_for(self, event: Event) -> None:
        """Make later work on this queue wait for ``event``; the host does not block."""
        event = expect_event(event, "event", "queue.wait_for",
                             "record one with event.record(queue)")
        if event.device.backend is not self.backend:
            raise PortableError(
                f"event on {event.device} cannot order a queue on {self.device}")
        self.backend.wait_event(self, event)

    def _done(self) -> None:
        """Called after each enqueue: a blocking queue waits for the work."""
        if self.blocking:
            self.backend.synchronize(self)

    def __repr__(self) -> str:
        kind = "blocking" if self.blocking else "non-blocking"
        return f"<Queue {kind} on {self.device}>"
