"""The GNN job on portable.pipeline: validated events, the same results on any number
of slots and threads, events over the capacity, the copy paths; on a GPU, graph mode."""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import portable as pt
import portable.pipeline as pp
from portable.pipeline import cli
from portable.testing import every_backend, is_simulated

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from examples import gnn_pipeline  # noqa: E402
from examples.gnn.generator import SHAPES, EventShape  # noqa: E402
from examples.gnn.layouts import Edges, Nodes, Particles  # noqa: E402
from examples.gnn.model import TracksterLinker  # noqa: E402


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> str:
    """Untrained weights in a file (so the jobs here need no training)."""
    torch.manual_seed(3)
    path = tmp_path_factory.mktemp("gnn") / "weights.pt"
    torch.save(TracksterLinker().state_dict(), path)
    return str(path)


def options(weights: str, *flags: str) -> Any:
    parser = cli.parser()
    gnn_pipeline.add_arguments(parser)
    return parser.parse_args(["--weights", weights, *flags])


class Keep(pp.Analyzer):
    """Keeps host copies of every event's results in ``store`` (event number -> dict)."""

    def __init__(self, store: dict[int, dict[str, Any]]) -> None:
        self.store = store

    def register(self, reg: pp.Registration) -> None:
        self.nodes = reg.consumes(Nodes, "merged", host=True)
        self.edges = reg.consumes(Edges, "scored", host=True)
        self.particles = reg.consumes(Particles, "merged", host=True)
        self.n_edges = reg.consumes(int, "edges")
        self.n_particles = reg.consumes(int, "particles")

    def analyze(self, event: pp.Event, ctx: pp.Context) -> None:
        edges, particles = event.get(self.edges), event.get(self.particles)
        n, m, p = event.input.n_nodes, event.get(self.n_edges), event.get(self.n_particles)
        order = np.lexsort((edges.column("dst")[:m], edges.column("src")[:m]))
        kept = {name: edges.column(name)[:m][order].copy()
                for name in ("src", "dst", "angle", "score")}
        kept["label"] = event.get(self.nodes).column("label")[:n].copy()
        kept.update({f"particle_{name}": particles.column(name)[:p].copy()
                     for name in ("energy", "x", "root", "n_tracksters")})
        self.store[event.number] = kept


def run(backend: str, weights: str, events: int, threads: int, streams: int, *flags: str,
        keep: dict[int, dict[str, Any]] | None = None) -> tuple[pp.Report, Any]:
    job = gnn_pipeline.assemble(options(weights, *flags))
    if keep is not None:
        job.modules.append(pp.module(Keep, store=keep))
    report = pp.Process(job.modules, job.source, threads=threads, streams=streams,
                        backends={backend: 1.0}, max_events=events).run()
    return report, job.validation


@every_backend
def test_validated_events_and_slots_give_the_results_of_one_slot(backend, weights,
                                                                  monkeypatch):
    """Every event validates on one slot, and several slots and threads give the same
    results (in the simulator, a small event on one slot only)."""
    if is_simulated(backend):
        monkeypatch.setitem(SHAPES, "micro", EventShape(jets=1.0, particles=1.0, pileup=3.0,
                                                        capacity=64, edges_per_node=8))
        report, validation = run(backend, weights, 1, 1, 1, "--shape", "micro",
                                 "--validation")
        assert (report.failed, validation.checked) == (0, 1), report.failures
        return
    events = 6
    one: dict[int, dict[str, Any]] = {}
    many: dict[int, dict[str, Any]] = {}
    report, validation = run(backend, weights, events, 1, 1, "--validation", keep=one)
    assert (report.events, report.failed) == (events, 0), report.failures
    assert validation.checked == events and not validation.failed
    report, _ = run(backend, weights, events, 2, 3, keep=many)
    assert (report.events, report.failed) == (events, 0), report.failures
    assert sorted(one) == sorted(many) == list(range(events))
    for number in range(events):
        for name, want in one[number].items():
            np.testing.assert_array_equal(many[number][name], want,
                                          err_msg=f"{name}, event {number}")


def test_events_over_the_capacity_run_with_larger_collections(weights, monkeypatch):
    small = EventShape(jets=1.5, particles=1.4, pileup=6.0, capacity=32, edges_per_node=16)
    monkeypatch.setitem(SHAPES, "small", small)
    report, validation = run("cpu_serial", weights, 6, 1, 2, "--shape", "small",
                             "--validation")
    assert (report.events, report.failed) == (6, 0), report.failures
    assert validation.checked == 6 and not validation.failed
    assert report.to_dict()["graphs"]["cpu_serial"]["fallbacks"] > 0


def test_edges_over_the_capacity_fail_the_event_naming_the_fix(weights, monkeypatch):
    monkeypatch.setitem(SHAPES, "cramped", EventShape(jets=1.5, particles=1.4, pileup=6.0,
                                                     capacity=128, edges_per_node=0))
    report, _ = run("cpu_serial", weights, 1, 1, 1, "--shape", "cramped")
    assert report.failed == 1
    assert "edges > the edge capacity 0; raise the shape's edges_per_node" in \
        str(report.failures[0])


@pytest.mark.parametrize("path", ["elementwise", "bulk"])
def test_copy_paths_validate(weights, path, capsys):
    status = gnn_pipeline.main(["--weights", weights, "--maxEvents", "2", "--validation",
                                "--serial", "1", "--copyPath", path, "--shape", "tiny"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "Validation: all 2 events agree with the reference" in out
    assert "Merge against truth (energy weighted, 2 events): efficiency" in out


def test_a_job_without_an_event_limit_is_refused(weights):
    with pytest.raises(SystemExit, match="give --maxEvents N or --runForMinutes M"):
        gnn_pipeline.main(["--weights", weights])


def needs_gpu() -> None:
    """Skip unless a real CUDA GPU and torch with CUDA are here."""
    if not any(b.name == "cuda" and b.available and not b.simulated
               for b in pt.all_backends()) or not torch.cuda.is_available():
        pytest.skip("needs a real CUDA GPU and torch with CUDA")


@pytest.mark.gpu
@pytest.mark.parametrize("shape,capacity", [("typical", None), ("large", None),
                                            ("typical", 300)])
def test_graph_mode_on_cuda_validates_and_equals_eager(weights, monkeypatch, shape, capacity):
    """Every event validates in graph mode on 2 slots and equals the eager job's; with
    a node capacity of 300, the larger events fall back to eager mode."""
    needs_gpu()
    if capacity is not None:
        monkeypatch.setitem(SHAPES, shape, dataclasses.replace(SHAPES[shape], capacity=capacity,
                                                               edges_per_node=10))
    events = 24
    eager: dict[int, dict[str, Any]] = {}
    graphs: dict[int, dict[str, Any]] = {}
    report, validation = run("cuda", weights, events, 1, 1, "--shape", shape, "--validation",
                             "--graphs", "off", keep=eager)
    assert (report.failed, validation.checked) == (0, events), report.failures
    job = gnn_pipeline.assemble(options(weights, "--shape", shape, "--validation"))
    job.modules.append(pp.module(Keep, store=graphs))
    report = pp.Process(job.modules, job.source, threads=2, streams=2,
                        backends={"cuda": 1.0}, max_events=events, graphs="on").run()
    assert report.failed == 0, report.failures
    assert not job.validation.failed and job.validation.checked == events
    stats = report.graphs["cuda"]
    over = sum(job.source(n).n_nodes > SHAPES[shape].capacity for n in range(events))
    assert stats.on and stats.replayed > 0 and stats.fallbacks == over
    assert (over > 0) == (capacity is not None)
    for number in range(events):
        for name in ("src", "dst", "label", "particle_root", "particle_n_tracksters"):
            np.testing.assert_array_equal(graphs[number][name], eager[number][name])
        np.testing.assert_allclose(graphs[number]["score"], eager[number]["score"], atol=1e-5)


@pytest.mark.gpu
def test_copy_paths_give_the_in_place_scores_on_cuda(weights):
    needs_gpu()
    scores = {}
    for path in ("inplace", "elementwise", "bulk"):
        keep: dict[int, dict[str, Any]] = {}
        report, _ = run("cuda", weights, 3, 1, 1, "--copyPath", path, keep=keep)
        assert report.failed == 0, report.failures
        scores[path] = keep
    # the copy paths run the model on the real rows, in place on the capacity: other
    # matrix shapes, so other summation orders (the validation's tolerance, 1e-4)
    for path in ("elementwise", "bulk"):
        for number in range(3):
            np.testing.assert_array_equal(scores[path][number]["src"],
                                          scores["inplace"][number]["src"])
            np.testing.assert_allclose(scores[path][number]["score"],
                                       scores["inplace"][number]["score"], atol=1e-4)
