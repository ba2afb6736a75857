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
