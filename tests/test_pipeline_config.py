"""The pipeline refuses bad configurations with errors naming the modules and values."""
from __future__ import annotations

import numpy as np
import pytest

import portable as pt
import portable.pipeline as pp
from portable.pipeline.weights import assign_backends


def producer(name, makes=(), takes=()):
    class Module(pp.Producer):
        def register(self, reg):
            for kind, label in makes:
                reg.produces(kind, label)
            for kind, label in takes:
                reg.consumes(kind, label)

        def produce(self, event, ctx):
            pass
    return pp.module(Module, name=name)


def build(*modules, **options):
    return pp.Process(list(modules), source=range(1), backends={"cpu_serial": 1}, **options)


def test_a_cycle_is_named():
    with pytest.raises(pp.PipelineError, match="cycle: A -> C -> B -> A"):
        build(producer("A", [(int, "a")], [(int, "c")]), producer("B", [(int, "b")], [(int, "a")]),
              producer("C", [(int, "c")], [(int, "b")]))


def test_a_product_nobody_produces_is_named():
    with pytest.raises(pp.PipelineError,
                       match=r"module 'B' consumes int 'raw', which no module produces.*"
                             r"int 'calib' by 'A'"):
        build(producer("A", [(int, "calib")]), producer("B", takes=[(int, "raw")]))


def test_two_producers_of_one_product_are_named():
    with pytest.raises(pp.PipelineError, match="int 'x' is produced by both 'A' and 'B'"):
        build(producer("A", [(int, "x")]), producer("B", [(int, "x")]))


def test_requires_names_a_filter():
    class Needs(pp.Analyzer):
        def register(self, reg):
            reg.requires("A")
    with pytest.raises(pp.PipelineError, match="requires 'A', which is not a filter"):
        build(producer("A"), Needs)


@pytest.mark.parametrize("modules, message", [
    ([42], "the module entry the int 42 is not a module"),
    ([producer("A").build()], "pass the class"),
    ([producer("A"), producer("A")], r"module names \['A'\] are used more than once"),
    ([pp.module(lambda: object(), name="f")], "module 'f': its factory returned"),
    ([], "'modules' is empty"),
])
def test_modules_must_be_modules(modules, message):
    with pytest.raises(pt.PortableError, match=message):
        pp.Process(modules, source=range(1), backends={"cpu_serial": 1})


@pytest.mark.parametrize("options, message", [
    ({"threads": 0}, "'threads' must be an integer >= 1, got 0"),
    ({"threads": -2}, "'threads' must be an integer >= 1, got -2"),
    ({"streams": 1.5}, "'streams' must be an integer >= 1"),
    ({"backends": {"cuda_gpu": 1}}, "unknown backend 'cuda_gpu'"),
    ({"backends": {"cpu_serial": -1}}, "weight of backend 'cpu_serial' must be a number >= 0"),
    ({"backends": {"cpu_serial": 0}}, "every backend weight is 0"),
    ({"backends": "cpu_serial"}, "'backends' must be a dict"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(pt.ArgumentError, match=message):
        pp.Process([producer("A")], source=range(1), **{"backends": {"cpu_serial": 1},
                                                         **options})


def test_a_callable_source_needs_a_limit():
    with pytest.raises(pt.ArgumentError, match="give max_events= or run_for="):
        pp.Process([producer("A")], source=lambda n: n, backends={"cpu_serial": 1})


def test_undeclared_get_and_put_fail_the_event():
    class Sneaky(pp.Producer):
        def register(self, reg):
            self.out = reg.produces(int)

        def produce(self, event, ctx):
            event.put(pp.Token(float), 1.0)
    report = build(Sneaky).run()
    assert report.failed == 1 and "puts float without declaring" in report.failures[0].error


def test_weights_spread_slots_by_largest_remainder():
    assert assign_backends({"cuda": 0.8, "cpu_serial": 0.2}, 5) == ["cuda"] * 4 + ["cpu_serial"]
    assert assign_backends({"cpu_serial": 0.2, "cpu_threads": 0.3, "cuda": 0.5}, 4) == \
        ["cpu_serial", "cpu_threads", "cuda", "cuda"]
    assert assign_backends({"cpu_serial": 1, "cpu_threads": 0}, 3) == ["cpu_serial"] * 3
    process = pp.Process([producer("A")], source=range(8), streams=4,
                         backends={"cpu_serial": 1, "cpu_threads": 3})
    report = process.run()
    assert report.slot_backends == ["cpu_serial"] + ["cpu_threads"] * 3
    assert sum(report.events_per_backend.values()) == 8


def test_warmup_events_are_not_counted():
    seen = []

    class Note(pp.Producer):
        def produce(self, event, ctx):
            seen.append(event.number)
    report = pp.Process([Note], source=range(10), warmup_events=3,
                        backends={"cpu_serial": 1}).run()
    assert report.events == 7 and report.warmup_events == 3 and sorted(seen) == list(range(10))
    assert report.module_times[("Note", "cpu_serial")].calls == 7
    assert report.summary().startswith("Processed 7 events in ")
    assert "Note" in report.table()


def test_token_types_are_checked_on_put():
    class Wrong(pp.Producer):
        def register(self, reg):
            self.out = reg.produces(np.ndarray)

        def produce(self, event, ctx):
            event.put(self.out, "not an array")
    report = build(Wrong).run()
    assert "put a ndarray" in report.failures[0].error
