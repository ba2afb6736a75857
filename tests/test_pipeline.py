"""The event-processing framework: results independent of scheduling, ExternalWork,
copies on demand, failures kept to their event, filters."""
from __future__ import annotations

import time

import numpy as np
import pytest

import portable as pt
import portable.pipeline as pp
from portable.testing import every_backend, is_simulated
from test_pipeline_helpers import (Count, Hits, Make, Results, Scale, Total, collector, reference,
                                   slow_sum, wait_for_flag)


def events_for(backend):
    return 4 if is_simulated(backend) else 12


def threads_for(backend, threads):
    """The CUDA simulator cannot run kernels from two host threads at once: one there."""
    return 1 if is_simulated(backend) else threads


def run_chain(backend, streams, threads, jitter_ms=0.0, host_hits=True, events=None):
    results = Results()
    modules = [collector(results, host_hits), Total, Count, pp.module(Scale, factor=3.0), Make]
    report = pp.Process(modules, source=lambda n: None, threads=threads_for(backend, threads),
                        streams=streams,
                        backends={backend: 1}, max_events=events or events_for(backend),
                        jitter_ms=jitter_ms).run()
    return report, results.by_event


@every_backend
def test_many_streams_match_one_stream_and_numpy(backend):
    one, serial = run_chain(backend, streams=1, threads=1)
    assert one.failed == 0 and one.events == events_for(backend)
    assert serial == {n: reference(n) for n in range(events_for(backend))}
    for streams, threads in ((3, 2), (2, 1)):
        report, results = run_chain(backend, streams, threads, jitter_ms=3.0)
        assert report.failed == 0
        assert results == serial


@every_backend
def test_host_consumers_get_one_copy_and_unconsumed_products_none(backend):
    gpu = not pt.get_backend(backend).host_memory
    events = events_for(backend)
    report, results = run_chain(backend, streams=2, threads=2)
    # 'scaled' goes to Total on the host; Hits to Collect: one copy each per event
    assert report.copies == (2 * events if gpu else 0)
    report, results = run_chain(backend, streams=2, threads=2, host_hits=False)
    assert report.copies == (events if gpu else 0)
    assert all("y" not in values for values in results.values())


@every_backend
def test_external_work_produce_sees_the_finished_work(backend):
    rounds = 2000 if is_simulated(backend) else 3_000_000
    expected = 0
    for k in range(rounds):
        expected = (expected + k * k) % 1000003
    seen = {}

    class Slow(pp.ExternalWork):
        def register(self, reg):
            self.out = reg.produces(int)

        def acquire(self, event, ctx):
            device = ctx.alloc(1, np.int64)
            ctx.launch(slow_sum, 1, rounds, device)
            self.host = ctx.host_alloc(1, np.int64)
            ctx.copy(self.host, device)

        def produce(self, event, ctx):
            seen[event.number] = int(self.host[0])
            event.put(self.out, seen[event.number])

    report = pp.Process([Slow], source=range(3), threads=1, streams=2,
                        backends={backend: 1}).run()
    assert report.failed == 0 and seen == {0: expected, 1: expected, 2: expected}


@pytest.mark.parametrize("backend", ["cpu_serial", "cpu_threads"])
def test_external_work_leaves_the_worker_free(backend):
    """One worker thread, two slots: while event 0 waits for device work that only ends
    when event 1's plain module has run, the worker must be free to run it."""
    flag = np.zeros(1, np.int64)
    seen = {}

    class Gate(pp.ExternalWork):
        def register(self, reg):
            self.out = reg.produces(int, "seen")

        def acquire(self, event, ctx):
            self.seen = ctx.alloc(1, np.int64)
            limit = 300_000_000 if event.number == 0 else 0
            ctx.launch(wait_for_flag, 1, flag, limit, self.seen)

        def produce(self, event, ctx):
            event.put(self.out, int(self.seen[0]))

    class Release(pp.Producer):
        def produce(self, event, ctx):
            if event.number == 1:
                flag[0] = 1

    class Keep(pp.Analyzer):
        def register(self, reg):
            self.seen = reg.consumes(int, "seen")

        def analyze(self, event, ctx):
            seen[event.number] = event.get(self.seen)

    report = pp.Process([Gate, Release, Keep], source=range(2), threads=1, streams=2,
                        backends={backend: 1}).run()
    assert report.failed == 0
    assert seen[0] == 1, "the worker thread was blocked while event 0's device work ran"


@every_backend
def test_a_failing_module_fails_only_its_events(backend):
    class Fragile(pp.Analyzer):
        def register(self, reg):
            self.above = reg.consumes(int, "above")

        def analyze(self, event, ctx):
            if event.number in (1, 3):
                raise RuntimeError(f"bad event {event.number}")

    results = Results()
    modules = [Make, Count, pp.module(Scale), Total, Fragile, collector(results)]
    events = events_for(backend)
    report = pp.Process(modules, source=lambda n: None, threads=threads_for(backend, 2),
                        streams=2, backends={backend: 1}, max_events=events).run()
    assert report.events == events and report.failed == 2
    assert [(f.event, f.module) for f in report.failures] == [(1, "Fragile"), (3, "Fragile")]
    assert "bad event 3" in report.failures[1].traceback
    good = [n for n in range(events) if n not in (1, 3)]
    assert {n: results.by_event[n] for n in good} == {n: reference(n) for n in good}
    with pytest.raises(pp.EventFailure, match="event 1 failed in module 'Fragile'"):
        pp.Process(modules, source=range(events), threads=1, streams=1,
                   backends={backend: 1}, stop_on_error=True).run()


def test_a_missing_put_fails_the_event():
    class Lazy(pp.Producer):
        def register(self, reg):
            self.out = reg.produces(int)

        def produce(self, event, ctx):
            pass

    report = pp.Process([Lazy], source=range(2), backends={"cpu_serial": 1}).run()
    assert report.failed == 2 and "did not put int" in report.failures[0].error


def test_filters_stop_what_depends_on_them():
    ran = Results()

    class Even(pp.Filter):
        def filter(self, event, ctx):
            return event.number % 2 == 0

    class AfterEven(pp.Producer):
        def register(self, reg):
            reg.requires("Even")
            self.out = reg.produces(int)

        def produce(self, event, ctx):
            ran.add(event.number, after=True)
            event.put(self.out, event.number)

    class Downstream(pp.Analyzer):
        def register(self, reg):
            self.value = reg.consumes(int)

        def analyze(self, event, ctx):
            ran.add(event.number, downstream=event.get(self.value))

    class Always(pp.Analyzer):
        def analyze(self, event, ctx):
            ran.add(event.number, always=True)

    report = pp.Process([Downstream, AfterEven, Even, Always], source=range(5), threads=2,
                        backends={"cpu_serial": 1}).run()
    assert report.failed == 0 and report.events == 5
    assert ran.by_event == {n: ({"after": True, "downstream": n, "always": True} if n % 2 == 0
                                else {"always": True}) for n in range(5)}


def test_modules_run_as_their_inputs_become_ready():
    """Two independent chains: a slow module of one does not hold the other back."""
    order = []

    def step(name, consumes=None, delay=0.0):
        class Step(pp.Producer):
            def register(self, reg):
                self.inp = reg.consumes(int, consumes) if consumes else None
                self.out = reg.produces(int, name)

            def produce(self, event, ctx):
                time.sleep(delay)
                order.append(name)
                event.put(self.out, 0)
        return pp.module(Step, name=name)

    pp.Process([step("slow", delay=0.3), step("a"), step("b", "a"), step("c", "b")],
               source=range(1), threads=2, backends={"cpu_serial": 1}).run()
    assert order == ["a", "b", "c", "slow"]


@every_backend
def test_a_module_pinned_to_another_backend_gets_host_copies(backend):
    if backend == "cpu_serial":
        pytest.skip("the pinned module runs on cpu_serial itself")
    seen = Results()

    class OnHost(pp.Analyzer):
        backend = "cpu_serial"

        def register(self, reg):
            self.hits = reg.consumes(Hits)

        def analyze(self, event, ctx):
            seen.add(event.number, y=event.get(self.hits).column("y").tolist(), on=ctx.backend)

    events = events_for(backend)
    report = pp.Process([Make, OnHost], source=range(events), threads=threads_for(backend, 2),
                        streams=2, backends={backend: 1}).run()
    assert report.failed == 0
    assert report.copies == (events if not pt.get_backend(backend).host_memory else 0)
    assert seen.by_event == {n: {"y": reference(n)["y"], "on": "cpu_serial"}
                             for n in range(events)}
