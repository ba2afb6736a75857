"""The calorimeter clustering example on every backend, against its NumPy reference."""
from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import ml
import portable as pt
from portable.testing import every_backend, host_copy, is_simulated, poisoned

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from examples.calo import reference  # noqa: E402
from examples.calo.clue import (ClueParams, build_tiles, cluster, device_count,  # noqa: E402
                                enqueue_cluster)
from examples.calo.features import cluster_features, enqueue_select, select  # noqa: E402
from examples.calo.generator import (ENERGY_LSB, SHAPES, Event, EventShape,  # noqa: E402
                                     Geometry, generate, upload)
from examples.calo.layouts import FLOAT_FEATURES, INT_FEATURES, Clusters, Hits, head  # noqa: E402
from examples.calo.model import ClusterScorer, score  # noqa: E402
from examples.calo.pipeline import EventOutputs  # noqa: E402
from examples.calo.validate import SCORE_ATOL, check, validate  # noqa: E402

HIT_RESULTS = ("rho", "delta", "nearest_higher", "is_seed", "cluster_id")
#: a shape small enough for the CUDA simulator's one OS thread per GPU thread
MICRO = EventShape(Geometry(n_layers=2, cells=16), showers=1, noise=8, energy=(5.0, 10.0))


def shapes(queue: pt.Queue) -> list[tuple[EventShape, range]]:
    """Two event sizes and the event numbers to run at each on ``queue``'s backend."""
    if is_simulated(queue.backend.name):
        return [(MICRO, range(2)), (SHAPES["tiny"], range(1))]
    return [(SHAPES["small"], range(3)), (SHAPES["large"], range(1))]


@functools.lru_cache(maxsize=None)
def expected(shape: EventShape, number: int) -> tuple[Event, reference.ClueResult]:
    """Event ``number`` of ``shape`` and its reference clustering (computed once)."""
    event = generate(number, shape)
    return event, reference.clue(event, ClueParams.for_geometry(shape.geometry))


def poisoning(queue: pt.Queue):
    """An ``alloc(shape, dtype)`` giving buffers full of 0xFF bytes."""
    return lambda shape, dtype: poisoned(queue, shape, dtype)


def poisoned_hits(queue: pt.Queue, event: Event) -> pt.PortableCollection:
    """``event`` on the device with every result column poisoned."""
    hits = upload(queue, event)
    for name in HIT_RESULTS:
        pt.memset(queue, hits.column(name), 0xFF)
    return hits


def hit_results(queue: pt.Queue, hits: pt.PortableCollection) -> dict[str, np.ndarray]:
    host = hits.to(queue, pt.get_device("cpu_serial"))
    queue.synchronize()
    return {name: host.column(name).copy() for name in HIT_RESULTS}


def test_generator_is_seeded_and_on_the_grids():
    a, b, c = generate(5, "small"), generate(5, "small"), generate(6, "small")
    for name in Event._fields:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert a.n_hits != c.n_hits or not np.array_equal(a.x, c.x)
    assert (a.energy / ENERGY_LSB % 1 == 0).all() and (a.energy > 0).all()
    assert ((a.x - 0.5) % 1 == 0).all() and ((a.y - 0.5) % 1 == 0).all()
    cells = {(int(l), float(x), float(y)) for l, x, y in zip(a.layer, a.x, a.y)}
    assert len(cells) == a.n_hits  # one hit per cell
    assert 700 < a.n_hits < 1400 and 8000 < generate(0, "large").n_hits < 12000


@every_backend
def test_tiles_are_sorted_bins(queue):
    shape = MICRO if is_simulated(queue.backend.name) else SHAPES["small"]
    event = generate(3, shape)
    params = ClueParams.for_geometry(shape.geometry)
    tiles = build_tiles(queue, upload(queue, event), params, poisoning(queue))
    per_side = params.tiles_per_side
    tx = np.minimum((event.x // params.tile_size).astype(int), per_side - 1)
    ty = np.minimum((event.y // params.tile_size).astype(int), per_side - 1)
    tile_of = (event.layer * per_side + ty) * per_side + tx
    np.testing.assert_array_equal(host_copy(queue, tiles.tile_of), tile_of)
    counts = np.bincount(tile_of, minlength=params.n_tiles + 1)
    np.testing.assert_array_equal(host_copy(queue, tiles.offsets),
                                  np.concatenate([[0], np.cumsum(counts)[:-1]]))
    np.testing.assert_array_equal(host_copy(queue, tiles.hits),
                                  np.argsort(tile_of, kind="stable"))


@every_backend
def test_labels_equal_the_reference_exactly(queue):
    for shape, events in shapes(queue):
        params = ClueParams.for_geometry(shape.geometry)
        for number in events:
            event, want = expected(shape, number)
            hits = poisoned_hits(queue, event)
            n_clusters = cluster(queue, hits, params, poisoning(queue))
            got = hit_results(queue, hits)
            assert n_clusters == want.n_clusters > 0
            for name in HIT_RESULTS:
                np.testing.assert_array_equal(got[name], getattr(want, name),
                                              err_msg=f"{name}, event {number}")
            if number == events[0]:  # the same again: nothing depends on scheduling
                cluster(queue, hits, params)
                again = hit_results(queue, hits)
                for name in HIT_RESULTS:
                    np.testing.assert_array_equal(again[name], got[name])


def skip_without_torch_memory(queue: pt.Queue) -> None:
    """Skip in the CUDA simulator, whose memory torch cannot reach."""
    if is_simulated(queue.backend.name):
        pytest.skip("torch cannot reach the CUDA simulator's memory; the model runs on a GPU")


@every_backend
def test_features_scores_and_selection(queue):
    """Features within tolerance, scores as the model on a host copy, selection
    exact; in the simulator, where torch cannot run, scores are copied in."""
    simulated = is_simulated(queue.backend.name)
    module = None if simulated else ClusterScorer()
    threshold = 0.5
    for shape, events in shapes(queue)[:1]:  # the labels of both sizes are checked above
        params = ClueParams.for_geometry(shape.geometry)
        for number in events:
            event = generate(number, shape)
            hits = poisoned_hits(queue, event)
            alloc = poisoning(queue)
            n_clusters = cluster(queue, hits, params, alloc)
            clusters = pt.PortableCollection(Clusters, n_clusters, queue.device)
            pt.memset(queue, clusters.buffer, 0xFF)
            cluster_features(queue, hits, clusters, alloc)
            if module is None:
                scores = np.random.default_rng(number).random(n_clusters, np.float32)
                pt.memcpy(queue, clusters.column("score"), scores)
            else:
                score(queue, ml.Model(module), clusters)
            selected = poisoned(queue, n_clusters, np.int32)
            n_selected = select(queue, clusters, threshold, selected, alloc)
            scores = host_copy(queue, clusters.column("score"))
            assert n_selected == int((scores > threshold).sum())
            outputs = EventOutputs(hits, clusters, n_selected, selected)
            assert validate(queue, event, params, outputs, module, threshold) == []


@every_backend
def test_rows_after_the_counts_change_nothing(queue):
    """Hits and clusters in collections with more rows than the event, every byte
    poisoned, the counts on the device: the event's rows equal the reference, the
    clusters' other rows are zeros, and the selection takes none of them."""
    shape = MICRO if is_simulated(queue.backend.name) else SHAPES["small"]
    params = ClueParams.for_geometry(shape.geometry)
    event, want = expected(shape, 1)
    n, n_clusters = event.n_hits, want.n_clusters
    hits = pt.PortableCollection(Hits, n + 37, queue.device)
    pt.memset(queue, hits.buffer, 0xFF)
    for name in ("layer", "x", "y", "energy"):
        pt.memcpy(queue, hits.column(name)[:n], getattr(event, name))
    alloc = poisoning(queue)
    n_hits = device_count(queue, n, alloc)
    count = enqueue_cluster(queue, hits, params, alloc, n_hits)
    clusters = pt.PortableCollection(Clusters, n_clusters + 5, queue.device)
    pt.memset(queue, clusters.buffer, 0xFF)
    cluster_features(queue, hits, clusters, alloc, n_hits, count)
    scores = np.random.default_rng(3).random(clusters.size, np.float32)
    scores[n_clusters:] = 1.0  # above the threshold: only the count keeps them out
    pt.memcpy(queue, clusters.column("score"), scores)
    selected = poisoned(queue, clusters.size, np.int32)
    n_selected = enqueue_select(queue, clusters, 0.5, selected, alloc, count)
    host_hits = hits.to(queue, pt.get_device("cpu_serial"))
    host_clusters = clusters.to(queue, pt.get_device("cpu_serial"))
    assert host_copy(queue, count).tolist() == [n_clusters]
    k = int(host_copy(queue, n_selected)[0])
    assert k == int((scores[:n_clusters] > 0.5).sum())
    assert check(event, params, head(host_hits, n), head(host_clusters, n_clusters),
                 host_copy(queue, selected)[:k], None, 0.5) == []
    for name in (*FLOAT_FEATURES, *INT_FEATURES):
        assert not host_clusters.column(name)[n_clusters:].any(), name


@every_backend
def test_model_in_place_equals_the_model_on_a_copy(queue):
    skip_without_torch_memory(queue)
    n = 40 if is_simulated(queue.backend.name) else 1000
    rng = np.random.default_rng(11)
    host = pt.PortableCollection(Clusters, n, pt.get_device("cpu_serial"), zero=True)
    for name in FLOAT_FEATURES:
        host.column(name)[:] = rng.uniform(0.0, 100.0, n)
    host.column("n_hits")[:] = rng.integers(1, 60, n)
    host.column("layer")[:] = rng.integers(0, 10, n)
    host.column("score")[:] = np.nan
    clusters = host.to(queue)
    module = ClusterScorer(seed=4)
    score(queue, ml.Model(module), clusters)
    got = host_copy(queue, clusters.column("score"))
    floats = np.stack([host.column(c) for c in FLOAT_FEATURES], axis=1)
    ints = np.stack([host.column(c) for c in INT_FEATURES], axis=1)
    with torch.inference_mode():
        want = module(torch.from_numpy(floats), torch.from_numpy(ints)).numpy()[:, 0]
    np.testing.assert_allclose(got, want, rtol=0, atol=SCORE_ATOL)  # GPU matmuls differ in the last bits
    for name in FLOAT_FEATURES:  # the inputs are left as they were
        np.testing.assert_array_equal(host_copy(queue, clusters.column(name)),
                                      host.column(name))


@every_backend
def test_empty_event(queue):
    empty = Event(np.zeros(0, np.int32), *(np.zeros(0, np.float32) for _ in range(3)))
    hits = upload(queue, empty)
    assert cluster(queue, hits, ClueParams(n_layers=2, extent=8.0)) == 0
    clusters = pt.PortableCollection(Clusters, 0, queue.device)
    cluster_features(queue, hits, clusters)
    if not is_simulated(queue.backend.name):
        score(queue, ml.Model(ClusterScorer()), clusters)
    assert select(queue, clusters, 0.5, pt.alloc_buffer(queue.device, 0, np.int32)) == 0


def test_params_refuse_tiles_smaller_than_the_search():
    with pytest.raises(ValueError, match="tile_size"):
        ClueParams(n_layers=1, extent=10.0, dc=2.0, tile_size=4.0)
