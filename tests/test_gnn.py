"""The GNN example's generator, kernels and model, against NumPy references on every
backend (fresh random events, outputs poisoned before each run)."""
from __future__ import annotations

import doctest
import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import portable as pt
from portable.testing import every_backend, is_simulated

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bad_inputs import refused  # noqa: E402

from examples.gnn import reference  # noqa: E402
from examples.gnn.features import edge_features  # noqa: E402
from examples.gnn.generator import SHAPES, EventShape, generate  # noqa: E402
from examples.gnn.graph import build_graph, upload  # noqa: E402
from examples.gnn.layouts import (EDGE_FEATURES, NODE_FEATURES, Edges, Nodes,  # noqa: E402
                                  Particles)
from examples.gnn.merge import merge  # noqa: E402
from examples.gnn.model import TracksterLinker, trained, weights_path  # noqa: E402
from examples.gnn.scoring import Linker, block_tensors, score_copied  # noqa: E402
from examples.gnn.validate import FEATURE_ATOL, FEATURE_RTOL  # noqa: E402

#: events small enough for the CUDA simulator (one OS thread per GPU thread)
MICRO = EventShape(jets=1.0, particles=1.0, pileup=3.0, capacity=64, edges_per_node=8)
HOST = pt.get_device("cpu_serial")


def fresh_seed() -> int:
    """A generator seed never used before (fresh inputs on every run)."""
    return int(np.random.SeedSequence().entropy % 2**32)


def cases(queue: pt.Queue) -> list[tuple[EventShape, int]]:
    """(shape, generator seed) of the events a test runs on ``queue``'s backend."""
    if is_simulated(queue.backend.name):
        return [(MICRO, fresh_seed())]
    return [(SHAPES["typical"], fresh_seed()), (SHAPES["large"], fresh_seed())]


def poisoned_edges(queue: pt.Queue, capacity: int) -> pt.PortableCollection:
    """An ``Edges`` collection on the device with every byte 0xFF."""
    edges = pt.PortableCollection(Edges, capacity, queue.device)
    pt.memset(queue, edges.buffer, 0xFF)
    return edges


def on_host(queue: pt.Queue, collection: pt.PortableCollection) -> pt.PortableCollection:
    host = collection.to(queue, HOST)
    queue.synchronize()
    return host


def count(queue: pt.Queue, buffer) -> int:
    host = np.empty(1, np.int32)
    pt.memcpy(queue, host, buffer)
    queue.synchronize()
    return int(host[0])


def test_generator_is_seeded_and_has_the_typical_sizes():
    a, b, c = generate(5), generate(5), generate(6)
    np.testing.assert_array_equal(a.columns, b.columns)
    np.testing.assert_array_equal(a.particle, b.particle)
    assert a.n_nodes != c.n_nodes or not np.array_equal(a.columns, c.columns)
    nodes, edges = [], []
    for number in range(60):
        event = generate(number)
        src, _ = reference.build_edges(event.columns)
        nodes.append(event.n_nodes)
        edges.append(src.size)
        assert event.columns.dtype == np.float32 and event.columns.shape == (29, event.n_nodes)
        z = event.feature("barycenter_z")
        assert ((np.abs(z) > 320) & (np.abs(z) < 500)).all() and (z > 0).any() and (z < 0).any()
        assert (np.sign(z) == np.sign(event.feature("barycenter_eta"))).all()
        probabilities = event.columns[18:24]
        np.testing.assert_allclose(probabilities.sum(axis=0), 1.0, rtol=1e-5)
        assert (event.feature("raw_em_energy") <= event.feature("raw_energy")).all()
    assert 240 < np.mean(nodes) < 300 and max(nodes) < SHAPES["typical"].capacity
    assert 750 < np.mean(edges) < 1050
    assert max(edges) < SHAPES["typical"].edge_capacity


@every_backend
def test_graph_edges_are_the_reference_set(queue):
    for shape, seed in cases(queue):
        event = generate(0, shape, seed=seed)
        nodes, n_nodes = upload(queue, event, shape.capacity)
        edges = poisoned_edges(queue, shape.edge_capacity)
        n_edges = count(queue, build_graph(queue, nodes, n_nodes, edges))
        src, dst = reference.build_edges(event.columns)
        host = on_host(queue, edges)
        got_src, got_dst = host.column("src")[:n_edges], host.column("dst")[:n_edges]
        assert n_edges == src.size > 0
        assert (np.diff(got_src) >= 0).all()  # sorted by src, as the scan places them
        order = np.lexsort((got_dst, got_src))
        np.testing.assert_array_equal(got_src[order], src)
        np.testing.assert_array_equal(got_dst[order], dst)
        for name in ("src", "dst"):
            assert (host.column(name)[n_edges:] == 0).all(), name


@every_backend
def test_edges_beyond_the_capacity_are_counted_not_written(queue):
    shape = MICRO if is_simulated(queue.backend.name) else SHAPES["typical"]
    event = generate(1, shape, seed=fresh_seed())
    src, dst = reference.build_edges(event.columns)
    nodes, n_nodes = upload(queue, event, shape.capacity)
    small = max(1, src.size // 2)
    edges = poisoned_edges(queue, small)
    assert count(queue, build_graph(queue, nodes, n_nodes, edges)) == src.size
    host = on_host(queue, edges)
    kept = set(zip(host.column("src").tolist(), host.column("dst").tolist()))
    assert len(kept) == small and kept <= set(zip(src.tolist(), dst.tolist()))


@every_backend
def test_edge_features_agree_with_the_reference(queue):
    for shape, seed in cases(queue):
        event = generate(2, shape, seed=seed)
        nodes, n_nodes = upload(queue, event, shape.capacity)
        edges = poisoned_edges(queue, shape.edge_capacity)
        n_edges_buffer = build_graph(queue, nodes, n_nodes, edges)
        edge_features(queue, nodes, edges, n_edges_buffer)
        n_edges = count(queue, n_edges_buffer)
        host = on_host(queue, edges)
        src, dst = host.column("src")[:n_edges], host.column("dst")[:n_edges]
        want = reference.edge_features(event.columns, src, dst)
        for k, name in enumerate(EDGE_FEATURES):
            np.testing.assert_allclose(host.column(name)[:n_edges], want[:, k],
                                       rtol=FEATURE_RTOL, atol=FEATURE_ATOL, err_msg=name)
            assert (host.column(name)[n_edges:] == 0).all(), name


def random_graph(rng: np.random.Generator, n: int, capacity: int, n_edges: int,
                 edge_capacity: int) -> tuple[pt.PortableCollection, pt.PortableCollection]:
    """Host ``Nodes`` with random energies and positions, and ``Edges`` between random
    nodes (any direction, repeats and self-loops included) with random scores."""
    nodes = pt.PortableCollection(Nodes, capacity, HOST, zero=True)
    nodes.column("raw_energy")[:n] = rng.choice([rng.uniform(0.5, 49.0), 60.0], n) * \
        rng.uniform(0.5, 1.5, n)
    for name in ("barycenter_x", "barycenter_y", "barycenter_z"):
        nodes.column(name)[:n] = rng.normal(0.0, 100.0, n)
    edges = pt.PortableCollection(Edges, edge_capacity, HOST, zero=True)
    edges.column("src")[:n_edges] = rng.integers(0, n, n_edges)
    edges.column("dst")[:n_edges] = rng.integers(0, n, n_edges)
    edges.column("score")[:n_edges] = rng.uniform(0.0, 1.0, n_edges)
    return nodes, edges


@every_backend
def test_union_find_labels_and_particles_on_random_graphs(queue):
    rng = np.random.default_rng()
    sizes = [(0, 0), (1, 0), (20, 15), (30, 60)] if is_simulated(queue.backend.name) else \
        [(0, 0), (1, 0), (50, 40), (300, 280), (1000, 3000), (1000, 600)]
    for n, m in sizes:
        capacity, edge_capacity = max(n, 1) + 7, m + 5
        host_nodes, host_edges = random_graph(rng, n, capacity, m, edge_capacity)
        nodes, edges = host_nodes.to(queue), host_edges.to(queue)
        pt.memset(queue, nodes.column("label"), 0xFF)
        particles = pt.PortableCollection(Particles, capacity, queue.device)
        pt.memset(queue, particles.buffer, 0xFF)
        n_nodes, n_edges = (pt.alloc_buffer(queue.device, 1, np.int32) for _ in range(2))
        pt.memcpy(queue, n_nodes, np.array([n], np.int32))
        pt.memcpy(queue, n_edges, np.array([m], np.int32))
        n_particles = count(queue, merge(queue, nodes, n_nodes, edges, n_edges, particles))
        src, dst = host_edges.column("src")[:m], host_edges.column("dst")[:m]
        columns = host_columns(host_nodes, n)
        passing = reference.passing(columns, src, dst, host_edges.column("score")[:m])
        want = reference.union_find(n, src[passing], dst[passing])
        got = on_host(queue, nodes).column("label")[:n]
        np.testing.assert_array_equal(got, want, err_msg=f"n={n}, m={m}")
        merged = reference.merge(columns, want)
        out = on_host(queue, particles)
        assert n_particles == merged.root.size
        np.testing.assert_array_equal(out.column("root")[:n_particles], merged.root)
        np.testing.assert_array_equal(out.column("n_tracksters")[:n_particles],
                                      merged.n_tracksters)
        for name in ("energy", "x", "y", "z"):
            np.testing.assert_allclose(out.column(name)[:n_particles], getattr(merged, name),
                                       rtol=1e-5, atol=1e-4, err_msg=name)


def host_columns(nodes: pt.PortableCollection, n: int) -> np.ndarray:
    """The (29, n) feature columns of host ``nodes``."""
    return np.stack([nodes.column(name)[:n] for name in NODE_FEATURES])


def scored_graph(queue: pt.Queue, event, shape: EventShape, linker: Linker):
    nodes, n_nodes = upload(queue, event, shape.capacity)
    edges = poisoned_edges(queue, shape.edge_capacity)
    n_edges = build_graph(queue, nodes, n_nodes, edges)
    edge_features(queue, nodes, edges, n_edges)
    linker.score(queue, nodes, edges, n_edges)
    return nodes, n_nodes, edges, n_edges


@every_backend
def test_in_place_scores_equal_the_model_on_host_tensors_and_the_copy_paths(queue):
    shape = MICRO if is_simulated(queue.backend.name) else SHAPES["typical"]
    event = generate(3, shape, seed=fresh_seed())
    torch.manual_seed(0)
    linker = Linker(TracksterLinker())
    nodes, n_nodes, edges, n_edges_buffer = scored_graph(queue, event, shape, linker)
    n_edges = count(queue, n_edges_buffer)
    host = on_host(queue, edges)
    in_place = host.column("score")[:n_edges].copy()
    src, dst = host.column("src")[:n_edges], host.column("dst")[:n_edges]
    features = reference.edge_features(event.columns, src, dst).astype(np.float32)
    with torch.no_grad():
        want = linker.module(torch.from_numpy(event.features.copy()),
                             torch.from_numpy(np.stack([src, dst], axis=1)),
                             torch.from_numpy(features),
                             torch.tensor([n_edges], dtype=torch.int32))[:, 0].numpy()
    np.testing.assert_allclose(in_place, want, atol=1e-5)
    for path in ("elementwise", "bulk"):
        pt.memset(queue, edges.column("score"), 0xFF)
        score_copied(queue, linker, nodes, n_nodes, edges, n_edges_buffer, path)
        np.testing.assert_allclose(on_host(queue, edges).column("score")[:n_edges], in_place,
                                   atol=1e-5, err_msg=path)


def test_padding_takes_no_part_in_the_scores():
    """Garbage in the padding rows (NaN features, indices of real nodes) changes no score."""
    torch.manual_seed(1)
    model = TracksterLinker().eval()
    event = generate(4)
    src, dst = reference.build_edges(event.columns)
    features = reference.edge_features(event.columns, src, dst).astype(np.float32)
    n, e = event.n_nodes, src.size
    nodes = torch.full((n + 40, 29), float("nan"))
    nodes[:n] = torch.from_numpy(event.features.copy())
    index = torch.randint(0, n, (e + 100, 2), dtype=torch.int32)
    index[:e] = torch.from_numpy(np.stack([src, dst], axis=1))
    edge_x = torch.full((e + 100, 5), float("nan"))
    edge_x[:e] = torch.from_numpy(features)
    with torch.no_grad():
        padded = model(nodes, index, edge_x, torch.tensor([e], dtype=torch.int32))[:e]
        exact = model(nodes[:n], index[:e], edge_x[:e], torch.tensor([e], dtype=torch.int32))
    torch.testing.assert_close(padded, exact, atol=1e-6, rtol=0)


def test_block_tensors_share_the_collections_memory():
    nodes = pt.PortableCollection(Nodes, 16, HOST, zero=True)
    edges = pt.PortableCollection(Edges, 32, HOST, zero=True)
    node_x, index, features, score = block_tensors(nodes, edges)
    node_x[3, 16] = 7.0
    index[5, 1] = 9
    score[2, 0] = 0.5
    assert nodes.column("raw_energy")[3] == 7.0 and edges.column("dst")[5] == 9
    assert edges.column("score")[2] == 0.5 and features.stride() == (1, 32)


def test_trained_weights_are_cached_and_separate_the_particles(tmp_path, monkeypatch):
    monkeypatch.setenv("PORTABLE_CACHE_DIR", str(tmp_path))
    path = weights_path()
    assert path is not None and path.parent == tmp_path and not path.exists()
    model = trained()
    assert path.exists()
    again = trained()
    for (name, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name
    correct = total = 0
    for number in range(5):  # events the training never saw (another generator seed)
        event = generate(number)
        src, dst = reference.build_edges(event.columns)
        features = reference.edge_features(event.columns, src, dst).astype(np.float32)
        with torch.no_grad():
            scores = model(torch.from_numpy(event.features.copy()),
                           torch.from_numpy(np.stack([src, dst], axis=1)),
                           torch.from_numpy(features),
                           torch.tensor([src.size], dtype=torch.int32))[:, 0].numpy()
        truth = event.particle[src] == event.particle[dst]
        correct += int(((scores > 0.5) == truth).sum())
        total += src.size
    assert correct / total > 0.8  # chance (the larger class) is about 0.56


@pytest.mark.parametrize("name", ["checks", "generator", "layouts", "graph", "features", "merge",
                                  "reference", "model", "scoring", "validate"])
def test_the_examples_in_the_docstrings_hold(name):
    module = importlib.import_module(f"examples.gnn.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.failed == 0 and result.attempted > 0, result


def test_weights_file_errors_name_the_file(tmp_path):
    from ml import ModelFileError
    with pytest.raises(ModelFileError, match="no such file"):
        trained(tmp_path / "missing.pt")
    wrong = tmp_path / "wrong.pt"
    torch.save({"layer.weight": torch.zeros(2)}, wrong)
    with pytest.raises(ModelFileError, match="not the weights of this model"):
        trained(wrong)


def test_bad_arguments_are_refused_before_anything_is_written():
    queue = pt.Queue(HOST)
    event = generate(0, "tiny")
    nodes, n_nodes = upload(queue, event, 128)
    edges = poisoned_edges(queue, 1024)
    particles = pt.PortableCollection(Particles, 128, HOST)
    with refused(pt.ArgumentError, "build_graph", "'edges'", "Edges", untouched=[edges.buffer]):
        build_graph(queue, nodes, n_nodes, particles)
    with refused(pt.ArgumentError, "'n_nodes'", "int32", "int64", untouched=[edges.buffer]):
        build_graph(queue, nodes, n_nodes.astype(np.int64), edges)
    with refused(pt.ArgumentError, "edge_features", "'nodes'", untouched=[edges.buffer]):
        edge_features(queue, edges, edges, n_nodes)
    small = pt.PortableCollection(Particles, 4, HOST)
    with refused(pt.ArgumentError, "'particles'", "4 rows", untouched=[nodes.buffer]):
        merge(queue, nodes, n_nodes, edges, n_nodes, small)
    with refused(pt.ArgumentError, "score_copied", "'path'", untouched=[edges.buffer]):
        score_copied(queue, Linker(TracksterLinker()), nodes, n_nodes, edges, n_nodes, "fast")
