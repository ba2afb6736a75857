"""An event-processing framework in the manner of CMSSW and pixeltrack-standalone.

Modules declare what they consume and produce; a :class:`Process` runs them per
event in dependency order on several host threads and event slots, spread over
backends by weight, with asynchronous device work (``ExternalWork``), copies to
the host only when a consumer needs them, and failures kept to their event.
See ``docs/pipeline.md``.

Example::

    >>> import portable.pipeline as pp
    >>> class Double(pp.Producer):
    ...     def register(self, reg):
    ...         self.out = reg.produces(int)
    ...     def produce(self, event, ctx):
    ...         event.put(self.out, 2 * event.input)
    >>> pp.Process([Double], source=[1, 2, 3], backends={"cpu_serial": 1}).run().events
    3
"""
from .context import Context
from .errors import EventFailure, GraphCaptureError, OverCapacity, PipelineError
from .event import Event
from .module import Analyzer, ExternalWork, Filter, Module, ModuleSpec, Producer, module
from .process import Process
from .report import Failure, GraphStats, ModuleTime, Report
from .tokens import Input, Registration, Token

__all__ = [
    "Analyzer", "Context", "Event", "EventFailure", "ExternalWork", "Failure", "Filter",
    "GraphCaptureError", "GraphStats", "Input", "Module", "ModuleSpec", "ModuleTime",
    "OverCapacity", "PipelineError", "Process", "Producer",
    "Registration", "Report", "Token", "module",
]
