"""Graph mode of the pipeline: how a path splits into segments and host steps, when
graph mode runs (and why not), stage / staging / OverCapacity on every backend, and
on a GPU: replayed events equal eager ones, fallbacks, and the capture rules."""
from __future__ import annotations

import copy
import threading

import numpy as np
import pytest

import portable as pt
import portable.pipeline as pp
from portable.pipeline import cli
from portable.pipeline.graph import Graph
from portable.pipeline.segments import DEVICE, DEVICE_THEN_HOST, HOST, plan_path
from portable.pipeline.tokens import Registration

CAPACITY = 256


class Cells(pt.Layout):
    a = pt.column(np.int32)
    b = pt.column(np.int32)
    c = pt.column(np.int32)


@pt.kernel
def transform(acc, cells, n):
    for i in acc.uniform_elements(cells.capacity):
        if i < n[0]:
            cells.b[i] = (cells.a[i] * cells.a[i]) % 1009 + i
            cells.c[i] = cells.b[i] ^ cells.a[i]
        else:
            cells.b[i] = 0
            cells.c[i] = 0


@pt.kernel
def total(acc, cells, out):
    for i in acc.uniform_elements(cells.capacity):
        acc.atomic_add(out, 0, cells.c[i])


@pt.kernel
def doubled(acc, cells, out):
    for i in acc.uniform_elements(cells.capacity):
        out[i] = 2 * cells.c[i] + 1


def values(number: int) -> np.ndarray:
    """Event ``number``'s input: 40-240 values, every 13th event over capacity."""
    n = CAPACITY + 50 if number % 13 == 5 else 40 + (number * 37) % 200
    rng = np.random.default_rng(number)
    return rng.integers(0, 5000, n).astype(np.int32)


def reference(number: int) -> tuple[int, np.ndarray]:
    a = values(number).astype(np.int64)
    b = (a * a) % 1009 + np.arange(len(a))
    c = b ^ a
    return int(c.sum()), c.astype(np.int32)


class Unpack(pp.Producer):
    """Stages the event's values at the capacity; an event over capacity gets a
    larger collection, filled from the host."""
    capturable = True

    def register(self, reg):
        self.out = reg.produces(Cells)
        self.count = reg.produces(np.ndarray, "n")

    def stage(self, event, ctx):
        self.n = len(event.input)
        if self.n > CAPACITY:
            raise pp.OverCapacity(f"{self.n} values > capacity {CAPACITY}")
        staged = ctx.staging("a", CAPACITY, np.int32)
        staged[:self.n] = event.input
        staged[self.n:] = -7  # poison: the kernels must stop at n
        ctx.staging("n", 1, np.int32)[0] = self.n

    def produce(self, event, ctx):
        capacity = max(CAPACITY, self.n)
        cells = ctx.collection(Cells, capacity)
        n = ctx.alloc(1, np.int32)
        if self.n > CAPACITY:
            padded = np.zeros(capacity, np.int32)
            padded[:self.n] = event.input
            ctx.copy(cells.column("a"), padded)
            ctx.copy(n, np.array([self.n], np.int32))
            ctx.queue.synchronize()  # the host arrays go away (an eager event may wait)
        else:
            ctx.copy(cells.column("a"), ctx.staging("a", CAPACITY, np.int32))
            ctx.copy(n, ctx.staging("n", 1, np.int32))
        event.put(self.out, cells)
        event.put(self.count, n)


class Transform(pp.Producer):
    capturable = True

    def register(self, reg):
        self.cells = reg.consumes(Cells)
        self.count = reg.consumes(np.ndarray, "n")
        self.out = reg.produces(Cells, "done")

    def produce(self, event, ctx):
        cells = event.get(self.cells)
        ctx.launch(transform, cells.capacity, cells.view(), event.get(self.count))
        event.put(self.out, cells)


class Sum(pp.ExternalWork):
    capturable = True

    def register(self, reg):
        self.cells = reg.consumes(Cells, "done")
        self.out = reg.produces(int, "sum")

    def acquire(self, event, ctx):
        cells = event.get(self.cells)
        out = ctx.alloc(1, np.int32)
        pt.memset(ctx.queue, out, 0)
        ctx.launch(total, cells.capacity, cells.const_view(), out)
        self.host = ctx.host_alloc(1, np.int32)
        ctx.copy(self.host, out)

    def produce(self, event, ctx):
        event.put(self.out, int(self.host[0]))


class KeepMost(pp.Filter):
    def filter(self, event, ctx):
        return event.number % 3 != 0


class Double(pp.Producer):
    capturable = True

    def register(self, reg):
        reg.requires("KeepMost")
        self.cells = reg.consumes(Cells, "done")
        self.out = reg.produces(np.ndarray, "doubled")

    def produce(self, event, ctx):
        cells = event.get(self.cells)
        out = ctx.alloc(cells.capacity, np.int32)
        ctx.launch(doubled, cells.capacity, cells.const_view(), out)
        event.put(self.out, out)


def collector(seen):
    class Collect(pp.Analyzer):
        def register(self, reg):
            self.sum = reg.consumes(int, "sum")
            self.cells = reg.consumes(Cells, "done", host=True)

        def analyze(self, event, ctx):
            n = len(event.input)
            seen[event.number] = (event.get(self.sum),
                                  event.get(self.cells).column("c")[:n].copy())

    class CollectDoubled(pp.Analyzer):
        def register(self, reg):
            self.doubled = reg.consumes(np.ndarray, "doubled", host=True)

        def analyze(self, event, ctx):
            seen[("doubled", event.number)] = event.get(self.doubled)[:len(event.input)].copy()
    return [Collect, CollectDoubled]


def chain(seen):
    return [Unpack, Transform, Sum, KeepMost, Double] + collector(seen)


def check_results(seen, events):
    for number in range(events):
        expected_sum, expected_c = reference(number)
        got_sum, got_c = seen[number]
        assert got_sum == expected_sum, number
        np.testing.assert_array_equal(got_c, expected_c)
        if number % 3:
            np.testing.assert_array_equal(seen[("doubled", number)], 2 * expected_c + 1)
        else:
            assert ("doubled", number) not in seen


# -- the plan --------------------------------------------------------------------------


def registrations(spec):
    """Registrations from ``{name: (produces, consumes, requires)}`` (product names)."""
    regs = {}
    for name, (makes, reads, requires) in spec.items():
        reg = Registration(name)
        for label in makes:
            reg.produces(int, label)
        for label in reads:
            host = label.endswith("@host")
            reg.consumes(int, label.removesuffix("@host"), host=host)
        for f in requires:
            reg.requires(f)
        regs[name] = reg
    return regs


def plan(spec, kinds, filters=(), external=(), readers=()):
    graph = Graph.build(registrations(spec), set(filters))
    return [str(op) for op in plan_path(graph, kinds, set(filters), set(external),
                                        set(readers))]


def test_device_steps_form_one_segment_and_external_work_produce_follows_a_wait():
    spec = {"A": (["a"], [], []), "B": (["b"], ["a"], []), "C": (["c"], ["b"], []),
            "Show": ([], ["c"], [])}
    kinds = {"A": DEVICE, "B": DEVICE, "C": DEVICE_THEN_HOST, "Show": HOST}
    assert plan(spec, kinds, external={"C"}) == [
        "segment A, B, C", "wait", "produce C", "call Show"]


def test_a_host_step_between_device_steps_splits_the_segments():
    spec = {"A": (["a"], [], []), "H": (["h"], ["a@host"], []), "B": (["b"], ["a", "h"], [])}
    kinds = {"A": DEVICE, "H": HOST, "B": DEVICE}
    assert plan(spec, kinds, readers={"H"}) == [
        "segment A", "copies H", "wait", "call H", "segment B"]


def test_device_steps_behind_a_filter_get_their_own_segment():
    spec = {"A": (["a"], [], []), "F": ([], [], []), "B": (["b"], ["a"], ["F"]),
            "C": (["c"], ["a"], [])}
    kinds = {"A": DEVICE, "F": HOST, "B": DEVICE, "C": DEVICE}
    assert plan(spec, kinds, filters={"F"}) == ["segment A, C", "call F", "segment B"]


def test_an_eager_external_work_waits_between_acquire_and_produce():
    spec = {"A": (["a"], [], []), "E": (["e"], ["a"], []), "B": (["b"], ["e"], [])}
    kinds = {"A": DEVICE, "E": HOST, "B": DEVICE}
    assert plan(spec, kinds, external={"E"}) == [
        "segment A", "acquire E", "wait", "produce E", "segment B"]


def test_the_chain_of_these_tests_plans_two_segments():
    slot = pp.Process(chain({}), source=range(1), backends={"cpu_serial": 1}).slots[0]
    from portable.pipeline.graphmode import _slot_plan
    graph = Graph.build(slot.registrations, {"KeepMost"})
    from portable.pipeline.segments import step_kind
    kinds = {n: step_kind(n, m, slot.registrations[n], False)[0]
             for n, m in slot.modules.items()}
    readers = {"Collect", "CollectDoubled"}
    ops = [str(op) for op in plan_path(graph, kinds, {"KeepMost"}, {"Sum"}, readers)]
    assert ops == ["segment Unpack, Transform, Sum", "wait", "produce Sum", "call KeepMost",
                   "copies Collect", "wait", "call Collect", "segment Double",
                   "copies CollectDoubled", "wait", "call CollectDoubled"]
    assert _slot_plan(slot, graph)[0] == [
        "backend 'cpu_serial' runs queue work as host calls, which no graph captures"]


# -- where graph mode runs ---------------------------------------------------------------


class Plain(pp.Producer):
    def register(self, reg):
        self.out = reg.produces(int, "x")

    def produce(self, event, ctx):
        event.put(self.out, 1)


class PlainWork(pp.ExternalWork):
    def register(self, reg):
        reg.consumes(int, "x")

    def acquire(self, event, ctx):
        pass

    def produce(self, event, ctx):
        pass


def test_graphs_on_names_every_module_that_is_not_capturable_and_the_backend():
    with pytest.raises(pp.PipelineError) as err:
        pp.Process([Plain, PlainWork], source=range(2), backends={"cpu_serial": 1},
                   graphs="on")
    message = str(err.value)
    assert "module 'Plain' (a Producer) is not capturable" in message
    assert "module 'PlainWork' (an ExternalWork) is not capturable" in message
    assert "set capturable = True" in message
    assert "backend 'cpu_serial'" in message and "graphs='auto'" in message


def test_graphs_on_with_capturable_modules_names_the_backend_only():
    with pytest.raises(pp.PipelineError, match="^graphs='on' cannot run: backend "
                                                "'cpu_threads' runs queue work"):
        pp.Process(chain({}), source=range(2), backends={"cpu_threads": 1}, graphs="on")


@pytest.mark.parametrize("bad", ["yes", True, None, "ON"])
def test_graphs_takes_auto_on_or_off(bad):
    with pytest.raises(pt.ArgumentError, match="argument 'graphs' must be 'auto', 'on' or "
                                               "'off'"):
        pp.Process([Plain], source=range(2), backends={"cpu_serial": 1}, graphs=bad)
    with pytest.raises(pt.ArgumentError, match="graph_warmup"):
        pp.Process([Plain], source=range(2), backends={"cpu_serial": 1}, graph_warmup=-1)


def test_auto_runs_eagerly_and_the_report_says_why():
    report = pp.Process([Plain, PlainWork], source=range(3), backends={"cpu_serial": 1}).run()
    stats = report.graphs["cpu_serial"]
    assert not stats.on and "'Plain' (a Producer) is not capturable" in stats.why
    assert (stats.replayed, stats.eager, stats.captures, stats.fallbacks) == (0, 0, 0, 0)
    lines = report.summary().splitlines()
    assert lines[0].startswith("Processed 3 events in ")
    assert lines[1].startswith("graphs off on cpu_serial (module 'Plain' (a Producer)")
    assert report.to_dict()["graphs"]["cpu_serial"]["on"] is False
    off = pp.Process([Plain], source=range(1), backends={"cpu_serial": 1}, graphs="off").run()
    assert off.graphs["cpu_serial"].why == "graphs='off'"


def test_over_capacity_events_run_eagerly_and_are_counted_on_the_cpu():
    seen = {}
    events = 16
    report = pp.Process(chain(seen), source=values, threads=2, streams=2,
                        backends={"cpu_serial": 1}, max_events=events).run()
    assert report.failed == 0
    check_results(seen, events)
    stats = report.graphs["cpu_serial"]
    big = [n for n in range(events) if len(values(n)) > CAPACITY]
    assert stats.fallbacks == len(big) == 1
    assert stats.fallback_reasons == [f"Unpack: {CAPACITY + 50} values > capacity {CAPACITY}"]
    assert "1 events over capacity" in report.summary()


def test_staging_is_one_array_per_slot_module_and_name():
    seen_arrays = {}
    lock = threading.Lock()

    class Stage(pp.Producer):
        def register(self, reg):
            self.out = reg.produces(int)

        def stage(self, event, ctx):
            with lock:
                seen_arrays.setdefault(ctx.slot, set()).add(
                    id(ctx.staging("x", (2, 3), np.float64)))

        def produce(self, event, ctx):
            assert ctx.staging("x", (2, 3), np.float64).shape == (2, 3)
            event.put(self.out, 0)
    pp.Process([Stage], source=range(12), threads=2, streams=3,
               backends={"cpu_serial": 1}).run()
    assert sorted(seen_arrays) == [0, 1, 2]
    assert all(len(ids) == 1 for ids in seen_arrays.values())
    assert len(set.union(*seen_arrays.values())) == 3


def test_cli_takes_the_graphs_flag():
    assert cli.parse([]).graphs == "auto"
    assert cli.parse(["--graphs", "off"]).graphs == "off"
    with pytest.raises(SystemExit):
        cli.parse(["--graphs", "maybe"])
    with pytest.raises(pp.PipelineError, match="graphs='on' cannot run"):
        cli.main(lambda options: ([Plain], range(2)), ["--graphs", "on", "--serial", "1"])


# -- on a GPU ------------------------------------------------------------------------------


def needs_graphs():
    torch = pytest.importorskip("torch")
    cuda = pt.get_backend("cuda") if any(b.name == "cuda" and b.available
                                         for b in pt.all_backends()) else None
    if cuda is None or cuda.simulated or not torch.cuda.is_available():
        pytest.skip("needs a real CUDA GPU and torch with CUDA")


@pytest.mark.gpu
def test_replayed_events_equal_eager_ones_on_several_slots_and_threads():
    needs_graphs()
    events = 300
    eager, graphs = {}, {}
    off = pp.Process(chain(eager), source=values, threads=4, streams=4,
                     backends={"cuda": 1}, max_events=events, graphs="off").run()
    on = pp.Process(chain(graphs), source=values, threads=4, streams=4,
                    backends={"cuda": 1}, max_events=events, graphs="on", graph_warmup=2).run()
    assert off.failed == on.failed == 0
    assert not off.graphs["cuda"].on and on.graphs["cuda"].on
    check_results(eager, events)
    check_results(graphs, events)
    stats = on.graphs["cuda"]
    big = sum(len(values(n)) > CAPACITY for n in range(events))
    assert stats.fallbacks == big > 0
    assert stats.replayed + stats.eager + stats.fallbacks == events
    assert stats.replayed > events - 4 * 4 - big
    assert stats.captures == 4 * 2  # two segments per slot
    assert any(name.startswith("graph of Unpack, Transform, Sum") for name, _ in on.module_times)


class Grows(pp.Producer):
    capturable = True

    def register(self, reg):
        self.out = reg.produces(np.ndarray)

    def produce(self, event, ctx):
        out = ctx.alloc(1 + event.number % 5, np.int32)
        pt.memset(ctx.queue, out, 0)
        event.put(self.out, out)


class Waits(pp.Producer):
    capturable = True

    def register(self, reg):
        self.out = reg.produces(np.ndarray)

    def produce(self, event, ctx):
        out = ctx.alloc(4, np.int32)
        pt.memset(ctx.queue, out, 0)
        ctx.queue.synchronize()
        event.put(self.out, out)


class PutsHost(pp.Producer):
    capturable = True

    def register(self, reg):
        self.out = reg.produces(int)

    def produce(self, event, ctx):
        event.put(self.out, event.number)


@pytest.mark.gpu
@pytest.mark.parametrize("module, says", [
    (Grows, "module 'Grows' allocates device memory of shape (2,)"),
    (Waits, "module 'Waits' failed while its segment (segment Waits) was captured"),
    (PutsHost, "module 'PutsHost' puts int in host memory"),
])
def test_a_module_that_breaks_the_capture_rules_is_named(module, says):
    needs_graphs()
    with pytest.raises(pp.GraphCaptureError, match=says.replace("(", r"\(").replace(")", r"\)")):
        pp.Process([module], source=range(6), backends={"cuda": 1}, max_events=6,
                   graphs="on").run()
    # the device still works afterwards
    seen = {}
    report = pp.Process(chain(seen), source=values, backends={"cuda": 1}, max_events=4,
                        graphs="on").run()
    assert report.failed == 0
    check_results(seen, 4)


@pytest.mark.gpu
def test_a_torch_model_in_place_on_a_collection_is_captured_and_equals_eager():
    needs_graphs()
    torch = pytest.importorskip("torch")
    ml = pytest.importorskip("ml")

    class Feats(pt.Layout):
        f0 = pt.column(np.float32)
        f1 = pt.column(np.float32)
        f2 = pt.column(np.float32)
        f3 = pt.column(np.float32)
        score = pt.column(np.float32)

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))
    on_host = copy.deepcopy(net)
    model = ml.Model(net)
    names = ("f0", "f1", "f2", "f3")

    def features(number):
        rng = np.random.default_rng(1000 + number)
        return rng.standard_normal((4, 20 + number % 200)).astype(np.float32)

    class Load(pp.Producer):
        capturable = True

        def register(self, reg):
            self.out = reg.produces(Feats)

        def stage(self, event, ctx):
            staged = ctx.staging("features", (4, CAPACITY), np.float32)
            staged[...] = 0
            staged[:, :event.input.shape[1]] = event.input

        def produce(self, event, ctx):
            feats = ctx.collection(Feats, CAPACITY)
            staged = ctx.staging("features", (4, CAPACITY), np.float32)
            for k, name in enumerate(names):
                ctx.copy(feats.column(name), staged[k])
            event.put(self.out, feats)

    class Score(pp.ExternalWork):
        capturable = True

        def register(self, reg):
            self.feats = reg.consumes(Feats)
            self.out = reg.produces(np.ndarray, "scores")

        def acquire(self, event, ctx):
            feats = event.get(self.feats)
            inputs, outputs = ml.SoAMetadata(feats), ml.SoAMetadata(feats)
            inputs.append_block("x", *names)
            outputs.append_block("y", "score")
            model(ml.ModelMetadata(inputs, outputs), queue=ctx.queue)
            self.host = ctx.host_alloc(CAPACITY, np.float32)
            ctx.copy(self.host, feats.column("score"))

        def produce(self, event, ctx):
            event.put(self.out, self.host[:event.input.shape[1]].copy())

    def run(graphs):
        seen = {}

        class Keep(pp.Analyzer):
            def register(self, reg):
                self.scores = reg.consumes(np.ndarray, "scores")

            def analyze(self, event, ctx):
                seen[event.number] = event.get(self.scores)
        report = pp.Process([Load, Score, Keep], source=features, threads=2, streams=2,
                            backends={"cuda": 1}, max_events=60, graphs=graphs).run()
        assert report.failed == 0
        return report, seen
    off, eager = run("off")
    on, replayed = run("on")
    assert on.graphs["cuda"].replayed >= 60 - 2 * 2
    with torch.no_grad():
        for number in (0, 7, 59):
            x = torch.from_numpy(features(number).T.copy())
            np.testing.assert_allclose(eager[number], on_host(x)[:, 0].numpy(), rtol=1e-4,
                                       atol=1e-5)
    for number in range(60):
        np.testing.assert_array_equal(replayed[number], eager[number])
