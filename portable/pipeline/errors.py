"""Errors of the event-processing framework."""
from __future__ import annotations

from ..errors import PortableError


class PipelineError(PortableError):
    """A pipeline is misconfigured (a dependency cycle, a product nobody produces or two
    modules producing one, a bad module), or a job stopped on a failed event: the
    message names the modules, products and values involved, and the fix."""


class EventFailure(PipelineError):
    """An event failed in a module (raised by ``Process.run`` when ``stop_on_error``).

    ``failure`` holds the module name, the event number and the traceback."""

    def __init__(self, failure: object) -> None:
        super().__init__(str(failure))
        self.failure = failure


class GraphCaptureError(PipelineError):
    """A capturable module broke a rule of graph mode while its segment was captured
    (it allocated memory that the caching allocator could not serve, synchronised
    the host, or put a host product): the message names the module and the fix."""


class OverCapacity(PortableError):
    """Raised by a module's ``stage`` when an event does not fit the capacities its
    captured work was made for: the framework runs that event eagerly.

    Example::

        >>> raise OverCapacity("5000 hits > capacity 4096")
        Traceback (most recent call last):
        ...
        portable.pipeline.errors.OverCapacity: 5000 hits > capacity 4096
    """
