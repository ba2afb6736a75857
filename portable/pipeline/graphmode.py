"""Where graph mode runs, and the state it keeps per slot.

:func:`decide` reads ``graphs`` (``"auto"``, ``"on"``, ``"off"``), the backends' capture
trait and the modules' step kinds, and gives per backend a :class:`GraphStats` (on
or off, and why) and per slot in graph mode its plan (:mod:`.segments`).
:class:`SlotGraphs` holds a slot's graphs, their products and the memory they keep;
:class:`StepMemory` serves one device step's allocations: recorded in eager events,
served from the recorded blocks while a segment is captured (no device allocation
can happen then), and reused from the captured blocks when an event falls back.

Example::

    >>> import portable as pt
    >>> from .module import Producer, module
    >>> from .slot import Slot
    >>> from .graph import Graph
    >>> class Nothing(Producer):
    ...     def produce(self, event, ctx): pass
    >>> slot = Slot(0, pt.get_device("cpu_serial"), [module(Nothing)])
    >>> graph = Graph.build(slot.registrations, set())
    >>> stats, plans = decide("auto", [slot], graph)
    >>> stats["cpu_serial"].on, plans
    (False, {})
    >>> decide("on", [slot], graph)
    Traceback (most recent call last):
    ...
    portable.pipeline.errors.PipelineError: graphs='on' cannot run: module 'Nothing' (a Producer) is not capturable; follow the graph rules in its produce and set capturable = True; backend 'cpu_serial' runs queue work as host calls, which no graph captures; use graphs='auto' (graphs where they can run) or 'off'
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..checks import describe
from ..errors import ArgumentError
from ..queue import Queue
from .errors import GraphCaptureError, PipelineError
from .event import Product
from .graph import Graph
from .memory import EventMemory, allocator_for
from .module import ExternalWork, Filter, stages
from .report import GraphStats, ModuleTime
from .segments import Op, Segment, plan_path, step_kind
from .slot import Slot
from .tokens import Token

MODES = ("auto", "on", "off")

#: an allocation request: (pinned, shape, dtype)
Request = tuple[bool, tuple[int, ...], np.dtype]


def check_mode(graphs: Any, where: str) -> str:
    """``graphs`` if it is one of :data:`MODES`, else an ArgumentError."""
    if graphs not in MODES:
        raise ArgumentError(f"{where}: argument 'graphs' must be 'auto', 'on' or 'off', got "
                            f"{describe(graphs)}")
    return graphs


def decide(graphs: str, slots: Sequence[Slot], graph: Graph
           ) -> tuple[dict[str, GraphStats], dict[int, list[Op]]]:
    """Per backend whether graph mode runs (and why not), and per slot in graph mode
    its plan; with ``graphs="on"`` a PipelineError naming every obstacle."""
    stats: dict[str, GraphStats] = {}
    plans: dict[int, list[Op]] = {}
    obstacles: list[str] = []
    by_backend: dict[str, list[Op] | None] = {}
    for slot in slots:
        name = slot.device.backend.name
        if name not in by_backend:
            problems, ops = _slot_plan(slot, graph)
            if graphs == "off":
                stats[name] = GraphStats(False, "graphs='off'")
                ops = None
            elif problems:
                stats[name] = GraphStats(False, "; ".join(problems))
                obstacles += [p for p in problems if p not in obstacles]
                ops = None
            else:
                stats[name] = GraphStats(True)
            by_backend[name] = ops
        ops = by_backend[name]
        if ops is not None:
            plans[slot.index] = ops
    if graphs == "on" and obstacles:
        raise PipelineError(f"graphs='on' cannot run: {'; '.join(obstacles)}; use "
                            f"graphs='auto' (graphs where they can run) or 'off'")
    return stats, plans


def _slot_plan(slot: Slot, graph: Graph) -> tuple[list[str], list[Op] | None]:
    """What keeps ``slot`` from graph mode, or its plan."""
    problems, kinds = [], {}
    for name, instance in slot.modules.items():
        pinned = slot.devices[name] is not slot.device
        kind, why = step_kind(name, instance, slot.registrations[name], pinned)
        if kind is None:
            problems.append(why)
        else:
            kinds[name] = kind
    backend = slot.device.backend
    trouble = backend.capture_problem(slot.device)
    if trouble is not None:
        problems.append(trouble)
    if problems:
        return problems, None
    filters = {n for n, m in slot.modules.items() if isinstance(m, Filter)}
    external = {n for n, m in slot.modules.items() if isinstance(m, ExternalWork)}
    readers = {n for n, reg in slot.registrations.items()
               if slot.devices[n] is not slot.device or any(w.host for w in reg.consumed)}
    return [], plan_path(graph, kinds, filters, external, readers)


@dataclass
class SegmentState:
    """One segment of one slot: what its eager events allocated, then its graph, the
    products its capture put, and the memory the graph keeps."""

    segment: Segment
    staged: list[str]
    requests: dict[str, list[Request]] | None = None
    graph: Any = None
    products: dict[Token, Product] = field(default_factory=dict)
    acquired: dict[str, dict[Token, Product]] = field(default_factory=dict)
    kept: dict[str, dict[Request, list[Any]]] = field(default_factory=dict)
    replay_time: ModuleTime = field(default_factory=ModuleTime)


class SlotGraphs:
    """A slot in graph mode: its plan, its capture object (made at the first event,
    with the queue every module of the slot's device runs on) and its segments."""

    def __init__(self, slot: Slot, ops: list[Op], warmup: int) -> None:
        self.slot, self.ops, self.warmup = slot, ops, warmup
        self.events = 0  # events started in this slot
        self.capture: Any = None
        self.queue: Queue | None = None
        self.segments = {op: SegmentState(op, [m for m in op.modules
                                               if stages(slot.modules[m])])
                         for op in ops if isinstance(op, Segment)}
        self.segment_of = {m: state for state in self.segments.values()
                           for m in state.segment.modules}
        self.waits: dict[int, Any] = {}  # id(queue) -> the event recorded there to wait
        self.parts: dict[str, Any] = {}     # module -> (instance, consumed, produced)
        self.contexts: dict[str, Any] = {}  # module -> its context for host calls

    def start(self) -> Queue:
        """The slot's capture queue (the capture object is made at the first call)."""
        if self.capture is None:
            self.capture = self.slot.device.backend.graph_capture(self.slot.device)
            self.queue = self.capture.queue
        assert self.queue is not None
        return self.queue


RECORD, CAPTURE, REUSE = "record", "capture", "reuse"


class StepMemory(EventMemory):
    """The allocations of one device step: ``RECORD`` takes them from the event's
    memory and notes each request; ``CAPTURE`` serves them from ``served`` (blocks
    taken before the capture for the requests noted) and keeps them in ``kept``;
    ``REUSE`` serves from ``served`` (the kept blocks) while they match, else from
    the event's memory."""

    def __init__(self, event: EventMemory, module: str, mode: str,
                 served: dict[Request, list[Any]] | None = None,
                 kept: dict[Request, list[Any]] | None = None) -> None:
        super().__init__()
        self.event, self.module, self.mode = event, module, mode
        self.served = served if served is not None else {}
        self.kept = kept if kept is not None else {}
        self.requests: list[Request] = []

    def alloc(self, queue: Queue, shape: int | Sequence[int], dtype: Any,
              pinned: bool = False) -> Any:
        dims = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        key = (bool(pinned), tuple(int(d) for d in dims), np.dtype(dtype))
        if self.mode == RECORD:
            self.requests.append(key)
            return self.event.alloc(queue, shape, dtype, pinned)
        pool = self.served.get(key)
        if pool:
            array = pool.pop(0)
            if self.mode == CAPTURE:
                self.kept.setdefault(key, []).append(array)
            return array
        if self.mode == REUSE:
            return self.event.alloc(queue, shape, dtype, pinned)
        kind = "pinned host memory" if pinned else "device memory"
        raise GraphCaptureError(
            f"module {self.module!r} allocates {kind} of shape {key[1]} and dtype {key[2]} "
            f"while its segment is captured, which its eager events did not ask for, so "
            f"the caching allocator cannot serve it without a device allocation (none can "
            f"happen inside a capture); allocate the same shapes in every event (buffers "
            f"and collections at a fixed capacity, the per-event count on the device)")

    def release(self) -> None:
        """Nothing to give back here: the event's memory is released with the event."""


def reserve(queue: Queue, requests: list[Request]) -> dict[Request, list[Any]]:
    """Blocks for ``requests`` from the caching allocators, taken before a capture."""
    served: dict[Request, list[Any]] = {}
    for pinned, dims, dtype in requests:
        array = allocator_for(queue.device, pinned).alloc(queue, dims, dtype)
        served.setdefault((pinned, dims, dtype), []).append(array)
    return served


def give_back(queue: Queue, served: dict[Request, list[Any]]) -> None:
    """Return the reserved blocks a capture did not use."""
    for (pinned, _, _), arrays in served.items():
        for array in arrays:
            allocator_for(queue.device, pinned).free(array, queue)
