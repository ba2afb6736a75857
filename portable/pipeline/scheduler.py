"""Running events: host threads run module calls as their inputs become ready; a
small pool of waiting threads blocks on queue events (device work, copies), so no
worker ever waits for a device.

Each slot processes one event at a time and takes the next one from the source
once every queue the event used has finished its work. Within an event, the first
consumer of a device product on the product's device reuses the producer's queue;
the other consumers wait for the product's queue event (``queue.wait_for``).
Consumers on the host, or on another backend, get one copy per event (pinned host
memory, one memcpy on a queue of the slot) once its event has completed.
"""
from __future__ import annotations

import random
import threading
import time
import traceback
from typing import Any, Callable, Sequence

from ..device import Device
from ..event import Event as QueueEvent
from ..queue import Queue
from .context import Context
from .errors import GraphCaptureError, OverCapacity, PipelineError
from .event import Event, Product
from .graph import Graph
from .graphmode import SlotGraphs
from .graphrun import GraphRunner
from .memory import EventMemory, is_memory
from .module import Analyzer, ExternalWork, Filter, Producer, decision, stages
from .report import Failure, GraphStats, ModuleTime
from .slot import Slot
from .threads import Threads
from .source import EventSource
from .tokens import Token


class EventRun:
    """The state of one event in one slot."""

    def __init__(self, slot: Slot, number: int, input: Any, graph: Graph) -> None:
        self.slot, self.number, self.input = slot, number, input
        self.lock = threading.Lock()
        self.products: dict[Token, Product] = {}
        self.waiting = {name: len(needs) for name, needs in graph.depends_on.items()}
        self.blocked: set[str] = set()  # modules whose dependents skip this event
        self.finished = 0
        self.failure: Failure | None = None
        self.queues: dict[int, tuple[Queue, list[str]]] = {}  # id -> queue, its users
        self.holder: dict[int, str] = {}  # queue id -> the module that last took it
        self.next_queue: dict[Device, int] = {}
        self.memory = EventMemory()
        self.over: str | None = None  # why a stage said the event is over capacity

    def fresh_queue(self, device: Device, user: str) -> Queue:
        """A queue of the slot that no module has used yet in this event."""
        k = self.next_queue.get(device, 0)
        self.next_queue[device] = k + 1
        queue = self.slot.queue(device, k)
        self.use(queue, user)
        return queue

    def use(self, queue: Queue, user: str) -> None:
        self.queues.setdefault(id(queue), (queue, []))[1].append(user)
        self.holder[id(queue)] = user


class Scheduler:
    """Runs events from ``source`` on ``slots`` with ``threads`` host threads."""

    def __init__(self, slots: Sequence[Slot], graph: Graph, source: EventSource,
                 threads: int, stop_on_error: bool, jitter_ms: float = 0.0,
                 on_event: Callable[[], None] | None = None,
                 graph_slots: dict[int, SlotGraphs] | None = None,
                 graph_stats: dict[str, GraphStats] | None = None) -> None:
        self.slots, self.graph, self.source = list(slots), graph, source
        self.graph_slots = graph_slots or {}
        self.graph_stats = graph_stats if graph_stats is not None else {}
        self.graph_runner = GraphRunner(self)
        self.stop_on_error = stop_on_error
        self.jitter_s = jitter_ms / 1e3
        self._random = random.Random(0)
        self.on_event = on_event
        self.workers = Threads(threads, "pipeline-worker")
        self.waiters = Threads(min(len(self.slots), 16), "pipeline-wait")
        self.lock = threading.Lock()
        self.reset_counters()

    def reset_counters(self) -> None:
        """Start counting events, failures, copies and module time afresh."""
        self.events = 0
        self.failures: list[Failure] = []
        self.copies = 0
        self.per_backend: dict[str, int] = {}
        self.module_times: dict[tuple[str, str], ModuleTime] = {}
        for stats in self.graph_stats.values():
            stats.replayed = stats.eager = stats.fallbacks = 0
            stats.fallback_reasons = []
        for graphs in self.graph_slots.values():
            for state in graphs.segments.values():
                state.replay_time = ModuleTime()

    def replay_times(self) -> dict[tuple[str, str], ModuleTime]:
        """Host time of the segments' replays (stage calls and launch), per segment
        and backend, as rows of the module table."""
        rows: dict[tuple[str, str], ModuleTime] = {}
        for graphs in self.graph_slots.values():
            backend = graphs.slot.device.backend.name
            for segment, state in graphs.segments.items():
                if state.replay_time.calls:
                    row = rows.setdefault((f"graph of {', '.join(segment.modules)}", backend),
                                          ModuleTime())
                    row.calls += state.replay_time.calls
                    row.seconds += state.replay_time.seconds
        return rows

    def close(self) -> None:
        """Let the threads go."""
        self.workers.shutdown()
        self.waiters.shutdown()

    # -- phases ------------------------------------------------------------------------
    def run(self, events: int | None, seconds: float | None) -> None:
        """Process up to ``events`` events (or until ``seconds`` have passed, or the
        source ends) and return when every slot is idle."""
        self.source.limit(events, seconds)
        self._active = len(self.slots)
        self._idle = threading.Event()
        self._fatal: BaseException | None = None
        for slot in self.slots:
            self._submit(self.workers, self._start_next, slot)
        self._idle.wait()
        if isinstance(self._fatal, GraphCaptureError):
            raise self._fatal
        if self._fatal is not None:
            raise PipelineError(f"the job stopped: {self._fatal}") from self._fatal

    def _submit(self, pool: Threads, task: Callable[..., None],
                *args: Any) -> None:
        pool.submit(self._guarded, task, *args)

    def _guarded(self, task: Callable[..., None], *args: Any) -> None:
        try:
            task(*args)
        except BaseException as err:  # a fault of the framework or the source: stop
            self._fatal = err
            self.source.stop()
            self._idle.set()

    def _wait_then(self, events: list[QueueEvent], task: Callable[..., None],
                   *args: Any) -> None:
        """Block a waiting thread (not a worker) on ``events``, then hand ``task`` to
        the workers."""
        def wait() -> None:
            for event in events:
                event.synchronize()
            self._submit(self.workers, task, *args)
        self._submit(self.waiters, wait)

    # -- events --------------------------------------------------------------------------
    def _start_next(self, slot: Slot) -> None:
        item = self._next_item()
        if item is None:
            return
        graphs = self.graph_slots.get(slot.index)
        if graphs is not None:
            self.graph_runner.run(graphs, item)
            return
        run = EventRun(slot, item[0], item[1], self.graph)
        for name in self.graph.roots:  # a checked graph has one at least
            self._ready(run, name)

    def _next_item(self) -> tuple[int, Any] | None:
        """The source's next event for a slot; ``None`` (and the slot counted idle)
        when there is none."""
        item = self.source.next()
        if item is None:
            with self.lock:
                self._active -= 1
                if self._active == 0:
                    self._idle.set()
        return item

    def _ready(self, run: EventRun, name: str) -> None:
        if run.failure is not None or self.graph.depends_on[name] & run.blocked:
            self._complete(run, name, blocked=True)
        else:
            self._submit(self.workers, self._start_module, run, name)

    def _complete(self, run: EventRun, name: str, blocked: bool) -> None:
        with run.lock:
            if blocked:
                run.blocked.add(name)
            run.finished += 1
            ready = []
            for dependent in self.graph.dependents[name]:
                run.waiting[dependent] -= 1
                if run.waiting[dependent] == 0:
                    ready.append(dependent)
            last = run.finished == len(self.graph.order)
        for dependent in ready:
            self._ready(run, dependent)
        if last:
            self._finish(run)

    def _fail(self, run: EventRun, name: str, err: BaseException) -> None:
        with run.lock:
            if run.failure is None:
                run.failure = Failure(run.number, name, run.slot.index,
                                      f"{type(err).__name__}: {err}",
                                      "".join(traceback.format_exception(err)))
        self._complete(run, name, blocked=True)

    def _finish(self, run: EventRun) -> None:
        """Wait (on a waiting thread) for every queue the event used, then end it."""
        ends = []
        for queue, _ in run.queues.values():
            end = QueueEvent(queue.device, timing=False)
            end.record(queue)
            ends.append(end)
        pending = [end for end in ends if not end.query()]
        if pending:
            self._wait_then(pending, self._end, run)
        else:
            self._end(run)

    def _end(self, run: EventRun) -> None:
        for queue, users in run.queues.values():
            try:
                queue.synchronize()  # done by now: raises what the queued work raised
            except Exception as err:
                if run.failure is None:
                    run.failure = Failure(run.number, " / ".join(users), run.slot.index,
                                          f"{type(err).__name__}: {err} (in queued work)",
                                          "".join(traceback.format_exception(err)))
        run.memory.release()
        self._count(run.slot, run.failure, run.over)

    def _count(self, slot: Slot, failure: Failure | None, over: str | None,
               outcome: str = "", start_next: bool = True) -> None:
        """Count an ended event (``over``: why it was over capacity; ``outcome``: in
        graph mode, ``"replayed"`` or ``"eager"``), then start the slot's next one
        (unless the caller does)."""
        with self.lock:
            self.events += 1
            backend = slot.device.backend.name
            self.per_backend[backend] = self.per_backend.get(backend, 0) + 1
            stats = self.graph_stats.get(backend)
            if stats is not None:
                stats.count(over, outcome)
            if failure is not None:
                self.failures.append(failure)
                if self.stop_on_error:
                    self.source.stop()
        if self.on_event is not None:
            self.on_event()
        if start_next:
            self._start_next(slot)

    # -- modules -------------------------------------------------------------------------
    def _start_module(self, run: EventRun, name: str) -> None:
        """Pick the module's queue, order it after its inputs, start the host copies it
        needs; run it now, or once those copies are done."""
        slot = run.slot
        reg, device = slot.registrations[name], slot.devices[name]
        try:
            with run.lock:
                queue, waits, host = self._plan(run, name, device)
                host_events = [self._host_copy(run, token, name) for token in host]
            for ready in waits:
                queue.wait_for(ready)
        except Exception as err:
            self._fail(run, name, err)
            return
        inputs = {wanted.product: (run.products[wanted.product].host_value
                                   if wanted.product in host else
                                   run.products[wanted.product].value)
                  for wanted in reg.consumed}
        event = Event(run.number, run.input, {}, inputs, name, set(reg.produced))
        ctx = Context(queue, slot.index, run.memory, slot.staging(name))
        pending = [e for e in host_events if not e.query()]
        if pending:
            self._wait_then(pending, self._call, run, name, event, ctx)
        else:
            self._call(run, name, event, ctx)

    def _plan(self, run: EventRun, name: str, device: Device
              ) -> tuple[Queue, list[QueueEvent], list[Token]]:
        """The module's queue, the product events it must wait for, and the products it
        takes on the host."""
        queue: Queue | None = None
        others: list[Product] = []
        host: list[Token] = []
        for wanted in run.slot.registrations[name].consumed:
            product = run.products[wanted.product]
            if product.device is None:
                continue  # a host object, ready when put
            if wanted.host or product.device is not device:
                if not device.backend.host_memory and not wanted.host:
                    raise PipelineError(
                        f"module {name!r} runs on {device} but consumes {wanted.product} from "
                        f"{product.device}; consume it with host=True and copy it with "
                        f"ctx.to_device")
                host.append(wanted.product)
            elif queue is None and run.holder.get(id(product.queue)) == \
                    self.graph.producer_of[wanted.product]:
                queue = product.queue  # the first consumer carries on the producer's queue
            else:
                others.append(product)
        if queue is None:
            queue = run.fresh_queue(device, name)
        else:
            run.use(queue, name)
        waits = [p.ready for p in others if p.queue is not queue and p.ready is not None]
        return queue, waits, host

    def _host_copy(self, run: EventRun, token: Token, user: str) -> QueueEvent:
        """The event after which ``token``'s product is readable on the host; the first
        caller of an event makes the copy (device products only)."""
        product = run.products[token]
        if product.host_ready is None:
            assert product.device is not None and product.ready is not None
            if not product.device.backend.host_memory:
                queue = run.fresh_queue(product.device, f"copy of {token} for {user}")
                queue.wait_for(product.ready)
                product.host_value = run.memory.host_copy(queue, product.value)
                product.host_ready = QueueEvent(queue.device, timing=False)
                product.host_ready.record(queue)
                with self.lock:
                    self.copies += 1
            else:
                product.host_value, product.host_ready = product.value, product.ready
        return product.host_ready

    def _call(self, run: EventRun, name: str, event: Event, ctx: Context) -> None:
        """Run the module (``acquire`` only, for ExternalWork: ``produce`` follows once
        the queue reaches an event recorded after it)."""
        if run.failure is not None:
            self._complete(run, name, blocked=True)
            return
        module = run.slot.modules[name]
        passed = True
        try:
            with self._timed(name, ctx, counted=not isinstance(module, ExternalWork)):
                if stages(module):
                    try:
                        module.stage(event, ctx)
                    except OverCapacity as err:
                        run.over = run.over or f"{name}: {err}"
                if isinstance(module, ExternalWork):
                    module.acquire(event, ctx)
                    acquired = QueueEvent(ctx.device, timing=False)
                    acquired.record(ctx.queue)
                elif isinstance(module, Producer):
                    module.produce(event, ctx)
                elif isinstance(module, Analyzer):
                    module.analyze(event, ctx)
                elif isinstance(module, Filter):
                    passed = decision(name, module.filter(event, ctx))
            if isinstance(module, ExternalWork):
                if acquired.query():
                    self._produce(run, name, event, ctx)
                else:
                    self._wait_then([acquired], self._produce, run, name, event, ctx)
                return
            self._publish(run, name, event, ctx)
        except Exception as err:
            self._fail(run, name, err)
            return
        self._complete(run, name, blocked=not passed)

    def _produce(self, run: EventRun, name: str, event: Event, ctx: Context) -> None:
        module = run.slot.modules[name]
        assert isinstance(module, ExternalWork)
        if run.failure is not None:
            self._complete(run, name, blocked=True)
            return
        try:
            with self._timed(name, ctx):
                module.produce(event, ctx)
            self._publish(run, name, event, ctx)
        except Exception as err:
            self._fail(run, name, err)
            return
        self._complete(run, name, blocked=False)

    def _publish(self, run: EventRun, name: str, event: Event, ctx: Context) -> None:
        """Hand the module's products to the event, with the queue that made them and
        an event recorded there after the module's work."""
        missing = [str(t) for t in run.slot.registrations[name].produced
                   if t not in event.products]
        if missing:
            raise PipelineError(f"module {name!r} declared but did not put "
                                f"{', '.join(missing)} in event {run.number}; put every "
                                f"declared product with event.put(token, value)")
        ready: QueueEvent | None = None
        for product in event.products.values():
            if is_memory(product.value, ctx.device):
                if ready is None:
                    ready = QueueEvent(ctx.device, timing=False)
                    ready.record(ctx.queue)
                product.device, product.queue, product.ready = ctx.device, ctx.queue, ready
        with run.lock:
            run.products.update(event.products)

    def _timed(self, name: str, ctx: Context, counted: bool = True) -> _Timer:
        """Times a module call (``counted``: as one call; ExternalWork counts its
        produce, not its acquire); first sleeps up to ``jitter_ms`` when set."""
        if self.jitter_s:
            time.sleep(self._random.uniform(0.0, self.jitter_s))
        return _Timer(self, (name, ctx.backend), counted)


class _Timer:
    """Adds the host time of a ``with`` block to a module's row."""

    def __init__(self, scheduler: Scheduler, key: tuple[str, str], counted: bool) -> None:
        self.scheduler, self.key, self.counted = scheduler, key, counted

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        elapsed = time.perf_counter() - self.start
        with self.scheduler.lock:
            row = self.scheduler.module_times.setdefault(self.key, ModuleTime())
            row.calls += self.counted
            row.seconds += elapsed

