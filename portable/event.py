"""Events: markers recorded on a queue, to wait for, query and time work."""
from __future__ import annotations

from typing import Any

from .device import Device
from .checks import expect_device, expect_event, expect_flag, expect_queue
from .errors import PortableError
from .queue import Queue


class Event:
    """A marker in a queue's stream of work.

    Example::

        >>> import portable as pt
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> start, stop = pt.Event(q.device), pt.Event(q.device)
        >>> start.record(q); stop.record(q)
        >>> stop.synchronize(); stop.query()
        True
        >>> start.elapsed_ms(stop) >= 0.0
        True
    """

    def __init__(self, device: Device, timing: bool = True) -> None:
        self.device = expect_device(device, "device", "pt.Event")
        #: whether :meth:`elapsed_ms` can time it; an event only for ordering
        #: (``timing=False``) is cheaper to record and query on a GPU
        self.timing = expect_flag(timing, "timing", "pt.Event")
        self.native: Any = None  # set by the backend when first recorded

    def record(self, queue: Queue) -> None:
        """Record the event after all work enqueued on ``queue`` so far."""
        queue = expect_queue(queue, "queue", "event.record")
        if queue.device is not self.device:
            raise PortableError(
                f"an event of {self.device} cannot be recorded on a queue of "
                f"{queue.device}; create the event with pt.Event(queue.device)")
        queue.backend.record_event(self, queue)
        queue._done()

    def _require_recorded(self) -> Any:
        if self.native is None:
            raise PortableError("the event was never recorded; call event.record(queue) first")
        return self.native

    def synchronize(self) -> None:
        """Block the host until the work before the event has finished."""
        self._require_recorded().synchronize()

    def query(self) -> bool:
        """Whether the work before the event has finished, without blocking."""
        return bool(self._require_recorded().query())

    def elapsed_ms(self, end: Event) -> float:
        """Milliseconds between this event and the later event ``end``.

        Both must have completed (call ``end.synchronize()`` first).
        """
        end = expect_event(end, "end", "event.elapsed_ms")
        if not (self.timing and end.timing):
            raise PortableError("event.elapsed_ms: both events must be made with timing=True "
                                "(the default)")
        if end.device.backend is not self.device.backend:
            raise PortableError(f"event.elapsed_ms: the events are on {self.device} and "
                                f"{end.device}; time two events of one device")
        return float(self._require_recorded().elapsed_ms(end._require_recorded()))
