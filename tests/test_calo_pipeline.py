"""The calorimeter clustering job on portable.pipeline: the same results on any
number of slots and threads, equal to the reference; validation that fails the job."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import portable as pt
import portable.pipeline as pp
from portable.pipeline import cli
from portable.testing import every_backend, is_simulated

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples import calo_pipeline  # noqa: E402
from ml.service import server_env_problem  # noqa: E402
from examples.calo import reference  # noqa: E402
from examples.calo.clue import ClueParams  # noqa: E402
from examples.calo.generator import SHAPES, generate  # noqa: E402
from examples.calo.layouts import Clusters, Hits, head  # noqa: E402

INTEGERS = ("cluster_id", "is_seed", "nearest_higher")
FLOATS = ("energy", "x", "y", "sigma_x", "sigma_y", "score")


def options(*flags: str) -> Any:
    """The job's options for ``flags``, tiny events by default."""
    parser = cli.parser()
    calo_pipeline.add_arguments(parser)
    return parser.parse_args(["--shape", "tiny", *flags])


class Keep(pp.Analyzer):
    """Keeps host copies of every event's results in ``store`` (event number -> dict)."""

    def __init__(self, store: dict[int, dict[str, Any]]) -> None:
        self.store = store

    def register(self, reg: pp.Registration) -> None:
        self.hits = reg.consumes(Hits, "clustered", host=True)
        self.clusters = reg.consumes(Clusters, "scored", host=True)
        self.n_clusters = reg.consumes(int, "clusters")
        self.indices = reg.consumes(np.ndarray, "selected", host=True)
        self.n_selected = reg.consumes(int, "selected")

    def analyze(self, event: pp.Event, ctx: pp.Context) -> None:
        hits = head(event.get(self.hits), event.input.n_hits)
        clusters = head(event.get(self.clusters), event.get(self.n_clusters))
        kept = {name: hits.column(name).copy() for name in INTEGERS}
        kept.update({name: clusters.column(name).copy() for name in FLOATS})
        kept["n_clusters"] = clusters.size
        kept["selected"] = event.get(self.indices)[:event.get(self.n_selected)].copy()
        self.store[event.number] = kept


def run(backend: str, events: int, threads: int, streams: int, validation: bool = True,
        keep: dict[int, dict[str, Any]] | None = None, flags: tuple[str, ...] = (),
        **process: Any) -> pp.Report:
    """Run the job's modules for ``flags`` (plus :class:`Keep` into ``keep``) on
    ``backend``; ``process``: more arguments of :class:`pp.Process`."""
    modules, source = calo_pipeline.build(options(*(["--validation"] if validation else []),
                                                  *flags))
    if keep is not None:
        modules.append(pp.module(Keep, store=keep))
    return pp.Process(modules, source, threads=threads, streams=streams,
                      backends={backend: 1.0}, max_events=events, **process).run()


@every_backend
def test_slots_and_threads_give_the_results_of_one_slot(backend):
    simulated = is_simulated(backend)
    events, threads, streams = (2, 1, 2) if simulated else (8, 2, 3)
    many: dict[int, dict[str, Any]] = {}
    one: dict[int, dict[str, Any]] = {}
    assert run(backend, events, 1, 1, keep=one).failed == 0  # compiles on one thread
    report = run(backend, events, threads, streams, keep=many)
    assert (report.events, report.failed) == (events, 0), report.failures
    params = ClueParams.for_geometry(SHAPES["tiny"].geometry)
    assert sorted(many) == sorted(one) == list(range(events))
    for number in range(events):
        got, want = many[number], one[number]
        for name in (*INTEGERS, "selected"):
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"event {number}")
        assert got["n_clusters"] == want["n_clusters"] > 0
        for name in FLOATS:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-5,
                                       err_msg=f"{name}, event {number}")
        np.testing.assert_array_equal(
            got["cluster_id"], reference.clue(generate(number, "tiny"), params).cluster_id)


@every_backend
def test_host_copies_only_with_validation(backend):
    """With validation, each GPU event copies its clustered hits, scored clusters and
    selected indices to the host once; without, nothing is copied (CPU products are
    read where they are)."""
    events = 1 if is_simulated(backend) else 2
    gpu = backend == "cuda"
    assert run(backend, events, 1, 1).copies == (3 * events if gpu else 0)
    assert run(backend, events, 1, 1, validation=False).copies == 0


def test_events_over_the_hit_capacity_run_at_their_size_and_validate():
    """With a hit capacity that some tiny events exceed, those events fall back (their
    own buffer sizes), are counted, and every event agrees with the reference."""
    capacity, events = 200, 10
    over = sum(generate(n, "tiny").n_hits > capacity for n in range(events))
    assert 0 < over < events
    report = run("cpu_serial", events, 2, 2, flags=("--hit-capacity", str(capacity)))
    assert (report.events, report.failed) == (events, 0), report.failures
    assert report.graphs["cpu_serial"].fallbacks == over


def test_more_clusters_than_the_capacity_fail_naming_the_option():
    report = run("cpu_serial", 2, 1, 1, flags=("--cluster-capacity", "2"))
    assert report.failed == 2
    assert all(f.module == "Select" and "raise --cluster-capacity" in f.error
               for f in report.failures)


class WrongLabel(calo_pipeline.Clue):
    """CLUE that gives hit 0 of event 2 a cluster id no cluster has."""

    def produce(self, event: pp.Event, ctx: pp.Context) -> None:
        super().produce(event, ctx)
        if event.number == 2:
            wrong = ctx.host_alloc(1, np.int32)
            wrong[0] = 1 << 20
            ctx.copy(event.get(self.uploaded).column("cluster_id")[:1], wrong)


def test_validation_fails_the_job_naming_the_event(monkeypatch, capsys):
    monkeypatch.setattr(calo_pipeline, "Clue", WrongLabel)
    status = calo_pipeline.main(["--shape", "tiny", "--maxEvents", "4", "--validation",
                                 "--serial", "1", "--numberOfStreams", "2"])
    out, err = capsys.readouterr()
    assert status == 1
    assert "Validation FAILED: 1 of 4 events differ from the NumPy reference: event 2" in err
    assert "event 2: hits.cluster_id differs at 1 of" in err
    assert "1 of 4 events failed" in err
    assert "Processed 4 events" in out


def test_command_line_prints_the_throughput_line():
    env = dict(os.environ, PORTABLE_BACKEND="cpu_serial")
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "calo_pipeline.py"),
                           "--maxEvents", "4", "--shape", "tiny", "--validation", "--histogram"],
                          capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Processed 4 events in " in done.stdout
    assert "events/s, CPU usage per thread: " in done.stdout
    assert "Validation: all 4 events agree with the NumPy reference" in done.stdout
    assert "cluster energy (GeV)" in done.stdout


@pytest.mark.parametrize("flag", ["--histogram", "--transfer"])
def test_histogram_and_transfer_add_their_modules(flag):
    modules, _ = calo_pipeline.build(options(flag))
    names = [m.name for m in modules]
    assert "Transfer" in names and ("Histogram" in names) == (flag == "--histogram")


def test_a_callable_source_makes_events_on_several_threads_at_once():
    """The generator is the job's slowest host step: two slots' threads run it together."""
    both = threading.Barrier(2, timeout=30)

    def source(number: int) -> int:
        both.wait()  # returns only once the other thread is making an event too
        return number

    class Pass(pp.Producer):
        def register(self, reg: pp.Registration) -> None:
            self.out = reg.produces(int)

        def produce(self, event: pp.Event, ctx: pp.Context) -> None:
            event.put(self.out, event.input)

    report = pp.Process([Pass], source, threads=2, streams=2, backends={"cpu_serial": 1.0},
                        max_events=4).run()
    assert (report.events, report.failed) == (4, 0)


def needs_graphs() -> None:
    """Skip unless a real CUDA GPU and torch with CUDA are here."""
    torch = pytest.importorskip("torch")
    if not any(b.name == "cuda" and b.available and not b.simulated
               for b in pt.all_backends()) or not torch.cuda.is_available():
        pytest.skip("needs a real CUDA GPU and torch with CUDA")


@pytest.mark.gpu
def test_graphs_give_the_results_of_eager_mode_and_events_over_capacity_fall_back():
    """300 events of ~1k hits (600 to 1300) with a hit capacity of 1200: on 4 slots
    and 4 threads in graph mode, every event validates and equals the eager job's
    on one slot; the events above the capacity fall back, the others replay."""
    needs_graphs()
    events, capacity, slots = 300, 1200, 4
    flags = ("--shape", "small", "--hit-capacity", str(capacity))
    eager: dict[int, dict[str, Any]] = {}
    graphs: dict[int, dict[str, Any]] = {}
    off = run("cuda", events, 1, 1, keep=eager, flags=flags, graphs="off")
    on = run("cuda", events, slots, slots, keep=graphs, flags=flags, graphs="on")
    assert (off.failed, on.failed) == (0, 0), (off.failures + on.failures)[:1]
    stats = on.graphs["cuda"]
    over = sum(generate(n, "small").n_hits > capacity for n in range(events))
    assert stats.on and stats.fallbacks == over > 0
    assert stats.replayed + stats.eager + stats.fallbacks == events
    assert stats.replayed >= events - over - 2 * slots  # a warm-up and a capture per slot
    assert sorted(graphs) == sorted(eager) == list(range(events))
    for number in range(events):
        got, want = graphs[number], eager[number]
        for name in (*INTEGERS, "selected"):
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"event {number}")
        for name in FLOATS:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-6, atol=1e-5,
                                       err_msg=f"{name}, event {number}")


@pytest.mark.gpu
def test_the_command_line_runs_the_large_events_in_graphs():
    """One host thread: the first launches of a kernel from two threads at once can
    load its module twice in a fresh process (cuda_launch's kernel entries take no lock)."""
    needs_graphs()
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "calo_pipeline.py"),
                           "--maxEvents", "12", "--shape", "large", "--validation", "--graphs",
                           "on", "--numberOfThreads", "1", "--numberOfStreams", "2"],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Validation: all 12 events agree with the NumPy reference" in done.stdout
    assert "graphs on on cuda: " in done.stdout


@pytest.mark.skipif(server_env_problem() is not None,
                    reason=f"the service path needs the Triton server environment: "
                           f"{server_env_problem()}")
def test_inference_through_the_service_validates(capsys):
    """--inference service with no server: the scorer is exported to a local
    Triton server that the job starts and stops; every event still validates."""
    status = calo_pipeline.main(["--shape", "tiny", "--maxEvents", "6", "--validation",
                                 "--serial", "1", "--numberOfStreams", "2",
                                 "--inference", "service"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "Validation: all 6 events agree with the NumPy reference" in out
