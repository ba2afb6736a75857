"""Running one event of a slot in graph mode: the plan's ops in order, on the slot's
capture queue. A segment runs eagerly (warm-up, or an event that falls back over
capacity), is captured (once per slot, then launched for that event), or is
replayed: the captured products put again, each module's ``stage`` called, one
graph launch. Host steps run after a wait on a waiting thread, as ExternalWork's
produce does in the dependency-driven scheduler.
"""
from __future__ import annotations

import time
import traceback
from typing import TYPE_CHECKING, Any

from ..event import Event as QueueEvent
from ..queue import Queue
from .context import Context
from .errors import GraphCaptureError, OverCapacity, PipelineError
from .event import Event, Product
from .graphmode import (CAPTURE, RECORD, REUSE, SegmentState, SlotGraphs, StepMemory,
                        give_back, reserve)
from .memory import EventMemory, is_memory
from .module import Analyzer, ExternalWork, Filter, Producer, decision, stages
from .report import Failure
from .segments import HostCall, Segment, Wait
from .tokens import Token

if TYPE_CHECKING:
    from .scheduler import Scheduler

class GraphRun:
    """The state of one event of a slot in graph mode."""

    __slots__ = ("graphs", "number", "input", "products", "refused", "failure", "memory",
                 "dirty", "pending", "host_values", "staged", "over", "eager", "made_on_host",
                 "queue")

    def __init__(self, graphs: SlotGraphs, number: int, input: Any, queue: Queue) -> None:
        self.graphs, self.number, self.input, self.queue = graphs, number, input, queue
        self.products: dict[Token, Product] = {}
        self.refused: set[str] = set()
        self.failure: Failure | None = None
        self.memory = EventMemory()
        self.dirty: list[Queue] = []         # queues with work since the last wait
        self.pending: dict[str, tuple[Event, Context]] = {}  # acquired ExternalWork
        self.host_values: dict[Token, Any] = {}
        self.staged: set[str] = set()
        self.over: str | None = None         # why the event runs eagerly (over capacity)
        self.eager = False                   # whether a segment ran or was captured eagerly
        self.made_on_host: dict[Token, str] = {}  # device products of host steps


class GraphRunner:
    """Runs graph-mode events for ``scheduler``."""

    def __init__(self, scheduler: Scheduler) -> None:
        self.s = scheduler

    def run(self, graphs: SlotGraphs, item: tuple[int, Any] | None) -> None:
        """Run the slot's events from ``item`` on, one after the other, until one hands
        its rest to a waiting thread (a loop, not a recursion: an event that needs no
        wait ends in this call)."""
        while item is not None:
            run = GraphRun(graphs, item[0], item[1], graphs.start())
            graphs.events += 1
            if not self._advance(run, 0):
                return
            item = self.s._next_item()

    def resume(self, run: GraphRun, index: int) -> None:
        """Go on with an event after a wait, then with the slot's next events."""
        if self._advance(run, index):
            self.run(run.graphs, self.s._next_item())

    def _advance(self, run: GraphRun, index: int) -> bool:
        """Run the ops from ``index`` on; whether the event ended (else a wait handed
        the rest to a waiting thread)."""
        ops = run.graphs.ops
        while index < len(ops):
            op = ops[index]
            index += 1
            if run.failure is not None:
                continue
            if type(op) is Wait:
                if run.dirty and self._wait(run, index):
                    return False
                continue
            if op.guard and op.guard & run.refused:  # type: ignore[union-attr]  # no Wait here
                continue
            try:
                if type(op) is Segment:
                    self._segment(run, op)
                else:
                    self._host(run, op)  # type: ignore[arg-type]  # a HostCall
            except GraphCaptureError:
                raise
            except Exception as err:
                name = (op.module if type(op) is HostCall
                        else " / ".join(op.modules))  # type: ignore[union-attr]
                run.failure = Failure(run.number, name, run.graphs.slot.index,
                                      f"{type(err).__name__}: {err}",
                                      "".join(traceback.format_exception(err)))
        if run.dirty and self._wait(run, index):
            return False
        run.memory.release()
        self.s._count(run.graphs.slot, run.failure, run.over,
                      "eager" if run.eager else "replayed", start_next=False)
        return True

    def _wait(self, run: GraphRun, index: int) -> bool:
        """Record an event on each queue used since the last wait; whether the rest
        was handed to a waiting thread (the work is not done yet)."""
        pending = []
        for queue in run.dirty:
            event = run.graphs.waits.get(id(queue))
            if event is None:
                event = run.graphs.waits[id(queue)] = QueueEvent(queue.device, timing=False)
            event.record(queue)
            if not event.query():
                pending.append(event)
        run.dirty.clear()
        if pending:
            self.s._wait_then(pending, self.resume, run, index)
            return True
        return False

    # -- segments ------------------------------------------------------------------------
    def _segment(self, run: GraphRun, segment: Segment) -> None:
        state = run.graphs.segments[segment]
        if state.graph is not None and run.over is None:
            start = time.perf_counter()
            run.products.update(state.products)
            if not state.staged or self._stage_all(run, state):
                state.graph.launch()
                if run.queue not in run.dirty:
                    run.dirty.append(run.queue)
                state.replay_time.calls += 1
                state.replay_time.seconds += time.perf_counter() - start
                return
        run.eager = True
        if run.queue not in run.dirty:
            run.dirty.append(run.queue)
        if state.graph is None and run.over is None and state.requests is not None and \
                run.graphs.events > run.graphs.warmup and self._stage_all(run, state):
            self._capture(run, state)
            return
        mode = REUSE if state.graph is not None else RECORD
        requests = {}
        for name in segment.modules:
            memory = StepMemory(run.memory, name, mode, _copy(state.kept.get(name)))
            self._device_step(run, name, memory)
            requests[name] = memory.requests
        if mode == RECORD and run.over is None:
            state.requests = requests

    def _stage_all(self, run: GraphRun, state: SegmentState) -> bool:
        """Stage every module of the segment; False when one is over capacity."""
        for name in state.staged:
            if name not in run.staged and not self._stage(run, name):
                return False
        return True

    def _stage(self, run: GraphRun, name: str) -> bool:
        """Call the module's ``stage``; False (and the event marked) if over capacity."""
        run.staged.add(name)
        module, consumed, produces = self._parts(run, name)
        products = run.products
        inputs = {token: products[token].value for token in consumed if token in products}
        try:
            module.stage(Event(run.number, run.input, {}, inputs, name, produces),
                         self._context(run, name))
        except OverCapacity as err:
            run.over = f"{name}: {err}"
            return False
        return True

    def _parts(self, run: GraphRun, name: str) -> tuple[Any, tuple[Token, ...], set[Token]]:
        """Module ``name`` of the slot, the tokens it consumes and those it produces."""
        found = run.graphs.parts.get(name)
        if found is None:
            slot = run.graphs.slot
            reg = slot.registrations[name]
            found = run.graphs.parts[name] = (slot.modules[name],
                                              tuple(w.product for w in reg.consumed),
                                              set(reg.produced))
        return found

    def _context(self, run: GraphRun, name: str) -> Context:
        """The slot's context for module ``name``'s host calls (stage, and produce after a
        replay), with this event's memory."""
        ctx = run.graphs.contexts.get(name)
        if ctx is None:
            slot = run.graphs.slot
            ctx = run.graphs.contexts[name] = Context(self._queue(run, name), slot.index,
                                                      run.memory, slot.staging(name))
        ctx.memory = run.memory
        return ctx

    def _capture(self, run: GraphRun, state: SegmentState) -> None:
        queue = run.queue
        assert state.requests is not None
        served = {name: reserve(queue, requests) for name, requests in state.requests.items()}
        kept: dict[str, dict[Any, list[Any]]] = {name: {} for name in state.segment.modules}
        before = set(run.products)
        current = [state.segment.modules[0]]

        def work() -> None:
            for name in state.segment.modules:
                current[0] = name
                self._device_step(run, name, StepMemory(run.memory, name, CAPTURE,
                                                        served[name], kept[name]),
                                  captured=True)
        try:
            graph = run.graphs.capture.capture(work)
        except GraphCaptureError:
            raise
        except Exception as err:
            raise GraphCaptureError(
                f"module {current[0]!r} failed while its segment ({state.segment}) was "
                f"captured: {type(err).__name__}: {err}. Inside a captured segment a module "
                f"enqueues device work on ctx.queue only: no host synchronisation "
                f"(ctx.to_host, queue.synchronize, .item(), .cpu()) and no allocation "
                f"other than through ctx at fixed capacities") from err
        finally:
            for name in served:
                give_back(queue, served[name])
        state.kept = kept
        state.products = {t: p for t, p in run.products.items() if t not in before}
        state.acquired = {name: dict(run.pending[name][0].products)
                          for name in state.segment.modules if name in run.pending}
        state.graph = graph
        graph.launch()  # this event's work
        with self.s.lock:
            self.s.graph_stats[run.graphs.slot.device.backend.name].captures += 1

    def _device_step(self, run: GraphRun, name: str, memory: StepMemory,
                     captured: bool = False) -> None:
        """A device step's produce or acquire, called as Python (eagerly or under capture)."""
        slot = run.graphs.slot
        module = slot.modules[name]
        reg = slot.registrations[name]
        if captured:
            for wanted in reg.consumed:
                maker = run.made_on_host.get(wanted.product)
                if maker is not None:
                    raise GraphCaptureError(
                        f"module {name!r} reads {wanted.product}, device memory that the "
                        f"host step {maker!r} makes anew every event, but a captured segment "
                        f"reads the memory of the capture event at every replay; make "
                        f"{maker!r} capturable, or read the product on the host")
        if name not in run.staged and stages(module):
            self._stage(run, name)
        inputs = {w.product: run.products[w.product].value for w in reg.consumed}
        event = Event(run.number, run.input, {}, inputs, name, set(reg.produced))
        ctx = Context(run.queue, slot.index, memory, slot.staging(name))
        with self.s._timed(name, ctx, counted=not isinstance(module, ExternalWork)):
            if isinstance(module, ExternalWork):
                module.acquire(event, ctx)
            else:
                module.produce(event, ctx)  # type: ignore[attr-defined]  # a Producer
        if captured:
            hosted = [str(t) for t, p in event.products.items()
                      if not is_memory(p.value, ctx.device)]
            if hosted:
                raise GraphCaptureError(
                    f"module {name!r} puts {', '.join(hosted)} in host memory from its "
                    f"captured {'acquire' if isinstance(module, ExternalWork) else 'produce'}"
                    f", which a replay does not run; put device products there (host "
                    f"products belong in an ExternalWork's produce)")
        if isinstance(module, ExternalWork):
            for product in event.products.values():  # put by the device step itself
                if is_memory(product.value, ctx.device):
                    product.device, product.queue = ctx.device, run.queue
            run.pending[name] = (event, Context(run.queue, slot.index, run.memory,
                                                slot.staging(name)))
            return
        self._publish(run, name, event, ctx.device, run.queue)

    # -- host steps ----------------------------------------------------------------------
    def _host(self, run: GraphRun, op: HostCall) -> None:
        slot = run.graphs.slot
        name = op.module
        module = slot.modules[name]
        reg = slot.registrations[name]
        queue = self._queue(run, name)
        if op.part == "copies":
            self._copies(run, name, queue)
            return
        if op.part == "produce":
            assert isinstance(module, ExternalWork)
            found = run.pending.pop(name, None)
            if found is None:  # acquire was replayed
                state = run.graphs.segment_of[name]
                _, consumed, produces = self._parts(run, name)
                products = run.products
                event = Event(run.number, run.input, dict(state.acquired.get(name, {})),
                              {token: products[token].value for token in consumed}, name,
                              produces)
                ctx = self._context(run, name)
            else:
                event, ctx = found
            with self.s._timed(name, ctx):
                module.produce(event, ctx)
            self._publish(run, name, event, ctx.device, ctx.queue, host=True)
            return
        inputs = {w.product: self._input(run, w, queue) for w in reg.consumed}
        event = Event(run.number, run.input, {}, inputs, name, set(reg.produced))
        ctx = Context(queue, slot.index, run.memory, slot.staging(name))
        if name not in run.staged and stages(module):
            self._stage(run, name)
        passed = True
        with self.s._timed(name, ctx, counted=op.part != "acquire"):
            if op.part == "acquire":
                assert isinstance(module, ExternalWork)
                module.acquire(event, ctx)
            elif isinstance(module, Producer):
                module.produce(event, ctx)
            elif isinstance(module, Analyzer):
                module.analyze(event, ctx)
            elif isinstance(module, Filter):
                passed = decision(name, module.filter(event, ctx))
        if queue not in run.dirty:
            run.dirty.append(queue)
        if op.part == "acquire":
            run.pending[name] = (event, ctx)
            return
        if not passed:
            run.refused.add(name)
        self._publish(run, name, event, ctx.device, queue, host=True)

    def _input(self, run: GraphRun, wanted: Any, queue: Queue) -> Any:
        token = wanted.product
        if token in run.host_values:
            return run.host_values[token]
        return run.products[token].value

    def _copies(self, run: GraphRun, name: str, queue: Queue) -> None:
        """Host copies of the device products that ``name`` reads on the host (once per
        event and product), enqueued on the slot's queue."""
        slot = run.graphs.slot
        device = slot.devices[name]
        for wanted in slot.registrations[name].consumed:
            token = wanted.product
            product = run.products[token]
            if token in run.host_values or product.device is None:
                continue
            if not (wanted.host or product.device is not device):
                continue
            if not product.device.backend.host_memory:
                run.host_values[token] = run.memory.host_copy(run.queue, product.value)
                if run.queue not in run.dirty:
                    run.dirty.append(run.queue)
                with self.s.lock:
                    self.s.copies += 1
            else:
                run.host_values[token] = product.value

    def _queue(self, run: GraphRun, name: str) -> Queue:
        """The queue module ``name`` runs on: the slot's capture queue on the slot's
        device, the slot's first queue on another."""
        slot = run.graphs.slot
        device = slot.devices[name]
        return run.queue if device is slot.device else slot.queue(device, 0)

    def _publish(self, run: GraphRun, name: str, event: Event, device: Any, queue: Queue,
                 host: bool = False) -> None:
        missing = [str(t) for t in run.graphs.slot.registrations[name].produced
                   if t not in event.products]
        if missing:
            raise PipelineError(f"module {name!r} declared but did not put "
                                f"{', '.join(missing)} in event {run.number}; put every "
                                f"declared product with event.put(token, value)")
        for token, product in event.products.items():
            if product.device is None and is_memory(product.value, device):
                product.device, product.queue = device, queue
                if host:
                    run.made_on_host[token] = name
        run.products.update(event.products)


def _copy(kept: dict[Any, list[Any]] | None) -> dict[Any, list[Any]] | None:
    return None if kept is None else {key: list(arrays) for key, arrays in kept.items()}

