"""A job: modules, a source of events, host threads, event slots and backend weights.

Example::

    >>> import numpy as np
    >>> from portable.pipeline import Analyzer, Process, Producer
    >>> class Square(Producer):
    ...     def register(self, reg):
    ...         self.out = reg.produces(int, "square")
    ...     def produce(self, event, ctx):
    ...         event.put(self.out, event.input * event.input)
    >>> seen = {}
    >>> class Keep(Analyzer):
    ...     def register(self, reg):
    ...         self.square = reg.consumes(int, "square")
    ...     def analyze(self, event, ctx):
    ...         seen[event.number] = event.get(self.square)
    >>> report = Process([Square, Keep], source=range(4), threads=2, streams=2,
    ...                  backends={"cpu_serial": 1}).run()
    >>> report.events, sorted(seen.items())
    (4, [(0, 0), (1, 1), (2, 4), (3, 9)])
"""
from __future__ import annotations

import copy
import time
from typing import Any, Callable, Iterable, Mapping, Sequence

from ..backend import get_backend, selected_backend
from ..checks import describe, expect_count, expect_flag
from ..errors import ArgumentError
from .errors import EventFailure, PipelineError
from .graph import Graph
from .graphmode import SlotGraphs, check_mode, decide
from .module import Filter, as_spec
from .report import Report
from .scheduler import Scheduler
from .slot import Slot
from .source import EventSource
from .weights import assign_backends, check_weights


class Process:
    """Runs ``modules`` on the events of ``source``.

    ``modules``: module classes or ``pipeline.module(cls, name=..., **config)``, built
    once per slot. ``source``: ``source(event_number) -> input`` or an iterable.
    ``threads`` host threads run the module calls; ``streams`` event slots (default:
    ``threads``) each hold one event at a time, spread over ``backends`` (name ->
    weight, default: the selected backend) and over each backend's devices round
    robin. ``max_events`` and ``run_for`` (seconds) bound the timed events;
    ``warmup_events`` run first, untimed. ``stop_on_error`` stops at the first failed
    event and raises :class:`EventFailure`; otherwise failures are counted and
    reported. ``jitter_ms`` sleeps a random time up to that before each module
    call (to shake out ordering assumptions in tests); ``on_event`` is called after
    each timed event (a progress bar).

    ``graphs``: ``"auto"`` (default) runs graph mode on the slots whose backend can
    capture graphs and whose modules are all capturable device steps or host steps
    (else eagerly, the report saying why), ``"on"`` the same but a PipelineError
    naming every obstacle instead, ``"off"`` never. In graph mode each slot runs
    ``graph_warmup`` events eagerly, captures its segments at the next, then replays
    them (see docs/pipeline.md, "Graph mode").
    """

    def __init__(self, modules: Sequence[Any], source: Callable[[int], Any] | Iterable[Any],
                 threads: int = 1, streams: int | None = None,
                 backends: Mapping[str, float] | None = None, max_events: int | None = None,
                 run_for: float | None = None, warmup_events: int = 0,
                 stop_on_error: bool = False, jitter_ms: float = 0.0,
                 on_event: Callable[[], None] | None = None, graphs: str = "auto",
                 graph_warmup: int = 1) -> None:
        where = "Process"
        self.graphs = check_mode(graphs, where)
        self.graph_warmup = expect_count(graph_warmup, "graph_warmup", where)
        self.threads = expect_count(threads, "threads", where, least=1)
        self.streams = self.threads if streams is None else \
            expect_count(streams, "streams", where, least=1)
        self.max_events = None if max_events is None else \
            expect_count(max_events, "max_events", where)
        self.warmup_events = expect_count(warmup_events, "warmup_events", where)
        self.run_for = None if run_for is None else _seconds(run_for, "run_for")
        self.jitter_ms = _seconds(jitter_ms, "jitter_ms")
        self.stop_on_error = expect_flag(stop_on_error, "stop_on_error", where)
        self.on_event = on_event
        self.source = EventSource(source)
        if not self.source.bounded and self.max_events is None and self.run_for is None:
            raise ArgumentError(f"{where}: the source {describe(source)} is a callable, which "
                                f"never ends; give max_events= or run_for=")
        weights = check_weights({selected_backend().name: 1.0} if backends is None
                                else backends, where)
        specs = [as_spec(entry) for entry in _as_list(modules)]
        names = [spec.name for spec in specs]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise PipelineError(f"{where}: module names {twice} are used more than once; "
                                f"name them apart with pipeline.module(cls, name='...')")
        self.slots = self._build_slots(specs, assign_backends(weights, self.streams))
        first = self.slots[0]
        filters = {n for n, m in first.modules.items() if isinstance(m, Filter)}
        self.graph = Graph.build(first.registrations, filters)
        self.graph_stats, plans = decide(self.graphs, self.slots, self.graph)
        self.graph_slots = {index: SlotGraphs(self.slots[index], ops, self.graph_warmup)
                            for index, ops in plans.items()}

    @staticmethod
    def _build_slots(specs: list[Any], backends: list[str]) -> list[Slot]:
        slots: list[Slot] = []
        seen: dict[str, int] = {}
        for index, name in enumerate(backends):
            found = get_backend(name).devices()
            k = seen.get(name, 0)
            seen[name] = k + 1
            slot = Slot(index, found[k % len(found)], specs)
            if slots and slot.registrations != slots[0].registrations:
                changed = [n for n in slot.registrations
                           if slot.registrations[n] != slots[0].registrations[n]]
                raise PipelineError(f"modules {changed} declared other products in slot "
                                    f"{index} than in slot 0; register must declare the same "
                                    f"products in every slot")
            slots.append(slot)
        return slots

    def run(self) -> Report:
        """Run the warm-up events, then the timed ones; the report covers the latter."""
        scheduler = Scheduler(self.slots, self.graph, self.source, self.threads,
                              self.stop_on_error, self.jitter_ms,
                              graph_slots=self.graph_slots, graph_stats=self.graph_stats)
        try:
            if self.warmup_events:
                scheduler.run(self.warmup_events, None)
                self._raise_first(scheduler)
                scheduler.reset_counters()
            scheduler.on_event = self.on_event
            wall, cpu = time.perf_counter(), time.process_time()
            scheduler.run(self.max_events, self.run_for)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            self._raise_first(scheduler)
        finally:
            scheduler.close()
        return Report(events=scheduler.events, failed=len(scheduler.failures), wall_s=wall,
                      cpu_s=cpu, threads=self.threads, streams=self.streams,
                      warmup_events=self.warmup_events, copies=scheduler.copies,
                      slot_backends=[s.device.backend.name for s in self.slots],
                      events_per_backend=dict(scheduler.per_backend),
                      failures=sorted(scheduler.failures, key=lambda f: f.event),
                      module_times={**scheduler.module_times, **scheduler.replay_times()},
                      graphs=copy.deepcopy(self.graph_stats))

    def _raise_first(self, scheduler: Scheduler) -> None:
        if self.stop_on_error and scheduler.failures:
            raise EventFailure(min(scheduler.failures, key=lambda f: f.event))


def _as_list(modules: Any) -> list[Any]:
    if isinstance(modules, (str, bytes, type)) or not isinstance(modules, Iterable):
        raise ArgumentError(f"Process: argument 'modules' must be a list of modules, got "
                            f"{describe(modules)}")
    found = list(modules)
    if not found:
        raise ArgumentError("Process: argument 'modules' is empty; give at least one module")
    return found


def _seconds(value: Any, arg: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise ArgumentError(f"Process: argument {arg!r} must be a number >= 0, got "
                            f"{describe(value)}")
    return float(value)
