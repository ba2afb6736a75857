"""ml.service against a real Triton server on 127.0.0.1 (from ``make .venv-triton``):
outputs equal to ml.Model's, chunking, shared memory, the metadata checks, a
pipeline module. Fault drills are in test_service_faults.py."""
from __future__ import annotations

import argparse
import threading

import numpy as np
import pytest
import torch

import ml
import portable as pt
import portable.pipeline as pp
from ml.service import (ServedModel, ServiceError, ServiceInference, ServiceModel,
                        TritonServer, add_arguments, export_model, inference_module,
                        server_env_problem)
from ml.service.link import classify
from ml.service.server import free_port
from portable.testing import every_backend, is_simulated

pytestmark = pytest.mark.skipif(server_env_problem() is not None,
                                reason=f"ml.service tests need the Triton server environment: "
                                       f"{server_env_problem()}")

BATCH = 64  # the served models' max_batch_size: 1000 rows go out as 16 requests


class Rows(pt.Layout):
    a = pt.column(np.float32)
    b = pt.column(np.float32)
    c = pt.column(np.float32)
    d = pt.column(np.float32)
    e = pt.column(np.float32)
    n = pt.column(np.int32)
    k = pt.column(np.int32)
    score = pt.column(np.float32)
    p0 = pt.column(np.float32)
    p1 = pt.column(np.float32)


FLOATS, INTS = ("a", "b", "c", "d", "e"), ("n", "k")


class TwoHeads(torch.nn.Module):
    """floats (N, 5), ints (N, 2) -> score (N, 1) in (0, 1), probs (N, 2) summing to 1."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(3)
        self.body = torch.nn.Sequential(torch.nn.Linear(7, 16), torch.nn.ReLU(),
                                        torch.nn.Linear(16, 16), torch.nn.Tanh())
        self.score = torch.nn.Linear(16, 1)
        self.probs = torch.nn.Linear(16, 2)
        self.register_buffer("shift", torch.linspace(-1, 1, 7))

    def forward(self, floats: torch.Tensor, ints: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.body(torch.cat([floats, ints.to(floats.dtype)], dim=1) - self.shift)
        return torch.sigmoid(self.score(x)), torch.softmax(self.probs(x), dim=1)


def metadata(rows: pt.PortableCollection) -> ml.ModelMetadata:
    inputs, outputs = ml.SoAMetadata(rows), ml.SoAMetadata(rows)
    inputs.append_block("floats", *FLOATS)
    inputs.append_block("ints", *INTS)
    outputs.append_block("score", "score")
    outputs.append_block("probs", "p0", "p1")
    return ml.ModelMetadata(inputs, outputs)


def filled(size: int, seed: int) -> pt.PortableCollection:
    """Random inputs, outputs poisoned with NaN (a missed write shows)."""
    rows = pt.PortableCollection(Rows, size, pt.get_device("cpu_serial"), zero=True)
    rng = np.random.default_rng(seed)
    for name in FLOATS:
        rows.column(name)[:] = rng.normal(size=size)
    for name in INTS:
        rows.column(name)[:] = rng.integers(-3, 4, size)
    for name in ("score", "p0", "p1"):
        rows.column(name)[:] = np.nan
    return rows


def outputs_of(rows: pt.PortableCollection) -> np.ndarray:
    return np.stack([rows.column(n)[:rows.size] for n in ("score", "p0", "p1")], axis=1)


def reference(net: torch.nn.Module, rows: pt.PortableCollection) -> np.ndarray:
    """ml.Model's outputs on a copy of ``rows``."""
    copy = pt.PortableCollection(Rows, rows.size, rows.device, zero=True)
    copy.buffer[:] = rows.buffer
    ml.Model(net)(metadata(copy), queue=pt.Queue(copy.device))
    return outputs_of(copy)


def export_all(repository, net: torch.nn.Module, formats=("numpy",)) -> list[str]:
    names = []
    example = metadata(pt.PortableCollection(Rows, 0, pt.get_device("cpu_serial")))
    for format in formats:
        name = f"twoheads_{format}"
        export_model(net, repository, name, example, max_batch_size=BATCH, format=format)
        names.append(name)
    return names


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    return TwoHeads().eval()


@pytest.fixture(scope="module")
def server(tmp_path_factory, net):
    repository = tmp_path_factory.mktemp("repository")
    names = export_all(repository, net, ("numpy", "torchscript", "export"))
    example = metadata(pt.PortableCollection(Rows, 0, pt.get_device("cpu_serial")))
    # waits up to 50 ms to gather requests into one execution
    export_model(net, repository, "twoheads_gathering", example, max_batch_size=1024,
                 max_queue_delay_us=50_000)
    with TritonServer(repository, [*names, "twoheads_gathering"]) as running:
        yield running
    assert running.pids() == [] and running.shm_regions() == []


@pytest.fixture
def queue() -> pt.Queue:
    return pt.Queue(pt.get_device("cpu_serial"))


@pytest.mark.parametrize("format", ["numpy", "torchscript", "export"])
@pytest.mark.parametrize("shm", [False, True], ids=["grpc", "grpc+shm"])
def test_outputs_equal_direct_model(server, net, queue, format, shm):
    rows = filled(1000, seed=1)
    expected = reference(net, rows)
    with ServiceModel(f"twoheads_{format}", [server.address], shared_memory=shm) as model:
        model.to(queue)(metadata(rows))
        stats = model.statistics.snapshot()
    # the NumPy program sums in another order than torch: equal to float32 rounding
    np.testing.assert_allclose(outputs_of(rows), expected, rtol=2e-6, atol=1e-6)
    assert stats["requests"] == 16 and stats["rows"] == 1000  # 15 x 64 + 40
    assert stats["retries"] == stats["failovers"] == stats["fallbacks"] == 0


@pytest.mark.parametrize("shm", [False, True], ids=["grpc", "grpc+shm"])
def test_row_range_in_chunks_leaves_other_rows(server, net, queue, shm):
    rows = filled(300, seed=2)
    expected = reference(net, rows)
    with ServiceModel("twoheads_numpy", [server.address], shared_memory=shm) as model:
        model.to(queue)(metadata(rows), 32, 232)   # 200 rows: 64 + 64 + 64 + 8
        assert model.statistics.snapshot()["requests"] == 4
    got = outputs_of(rows)
    np.testing.assert_allclose(got[32:232], expected[32:232], rtol=2e-6, atol=1e-6)
    assert np.isnan(got[:32]).all() and np.isnan(got[232:]).all()


def test_pipeline_empty_events_send_nothing(server, net):
    with ServiceModel("twoheads_numpy", [server.address]) as model:
        report, seen = run_pipeline(model, events=6, slots=2,
                                    source=lambda n: 0 if n % 2 else 20)
        assert model.statistics.requests == 3
    assert not report.failures and sorted(seen) == list(range(6))
    for number in range(0, 6, 2):
        np.testing.assert_allclose(seen[number][0], reference(net, filled(20, seed=number)),
                                   rtol=2e-6, atol=1e-6)


def test_one_row_and_no_rows(server, net, queue):
    rows = filled(1, seed=3)
    with ServiceModel("twoheads_numpy", [server.address]) as model:
        model.to(queue)(metadata(rows), 0, 0)
        assert np.isnan(outputs_of(rows)).all() and model.statistics.requests == 0
        model(metadata(rows))
    np.testing.assert_allclose(outputs_of(rows), reference(net, rows), rtol=2e-6, atol=1e-6)


def test_submit_on_a_non_blocking_queue_many_calls_at_once(server, net):
    queues = [pt.Queue(pt.get_device("cpu_serial"), blocking=False) for _ in range(4)]
    batches = [filled(500, seed=10 + i) for i in range(8)]
    expected = [reference(net, rows) for rows in batches]
    with ServiceModel("twoheads_numpy", [server.address]) as model:
        futures = [model.submit(metadata(rows), queue=queues[i % 4])
                   for i, rows in enumerate(batches)]
        for future in futures:
            future.result(timeout=60)
        for q in queues:
            q.synchronize()
    for rows, want in zip(batches, expected):
        np.testing.assert_allclose(outputs_of(rows), want, rtol=2e-6, atol=1e-6)


def test_server_batches_concurrent_requests(server):
    """200 concurrent 8-row requests run as fewer model executions (dynamic batching
    with a 50 ms queue delay)."""
    import tritonclient.grpc as grpcclient
    client = grpcclient.InferenceServerClient(server.address)

    def counts() -> tuple[int, int]:
        stats = client.get_inference_statistics("twoheads_gathering", as_json=True)
        entry = stats["model_stats"][0]
        return int(entry.get("inference_count", 0)), int(entry.get("execution_count", 0))

    before = counts()
    rows = [filled(8, seed=100 + i) for i in range(200)]
    with ServiceModel("twoheads_gathering", [server.address], shared_memory=False) as model:
        futures = [model.submit(metadata(r), queue=pt.Queue(r.device)) for r in rows]
        for future in futures:
            future.result(timeout=60)
    for _ in range(100):  # the server counts an execution just after it answers
        after = counts()
        if after[0] - before[0] >= 1600:
            break
        threading.Event().wait(0.02)
    inferences, executions = after[0] - before[0], after[1] - before[1]
    assert (inferences, model.statistics.requests) == (1600, 200)
    assert executions < 200, f"{executions} executions for 200 requests: no batching"
    client.close()


# -- what is refused -------------------------------------------------------------------

def _layout(**members) -> type[pt.Layout]:
    return pt.Layout.define("Odd", list(members.items()))


F32, I32, F64 = pt.column(np.float32), pt.column(np.int32), pt.column(np.float64)
BASE = dict(a=F32, b=F32, c=F32, d=F32, e=F32, n=I32, k=I32, score=F32, p0=F32, p1=F32)


def _meta(layout, floats=FLOATS, ints=INTS, names=("floats", "ints", "score", "probs"),
          score=("score",), probs=("p0", "p1")) -> ml.ModelMetadata:
    rows = pt.PortableCollection(layout, 10, pt.get_device("cpu_serial"), zero=True)
    inputs, outputs = ml.SoAMetadata(rows), ml.SoAMetadata(rows)
    if floats:
        inputs.append_block(names[0], *floats)
    inputs.append_block(names[1], *ints)
    outputs.append_block(names[2], *score)
    if probs:
        outputs.append_block(names[3], *probs)
    return ml.ModelMetadata(inputs, outputs)


MISMATCHES = {
    "input name": (lambda: _meta(_layout(**BASE), names=("floatz", "ints", "score", "probs")),
                   ["input block 'floatz'", "no input of that name", "'floats' float32 [rows, 5]",
                    "did you mean 'floats'"]),
    "input dtype": (lambda: _meta(_layout(**{**BASE, "n": F32, "k": F32})),
                    ["input block 'ints' holds float32", "expects input 'ints' int32 [rows, 2]"]),
    "input shape": (lambda: _meta(_layout(**BASE), floats=FLOATS[:4]),
                    ["input block 'floats' has rows of shape [4]",
                     "expects input 'floats' float32 [rows, 5]"]),
    "input missing": (lambda: _meta(_layout(**BASE), floats=()),
                      ["input(s) 'floats' float32 [rows, 5] that no input block provides"]),
    "output name": (lambda: _meta(_layout(**BASE), names=("floats", "ints", "scores", "probs")),
                    ["output block 'scores'", "no output of that name", "did you mean 'score'"]),
    "output dtype": (lambda: _meta(_layout(**{**BASE, "score": F64})),
                     ["output block 'score' holds float64",
                      "expects output 'score' float32 [rows, 1]"]),
    "output shape": (lambda: _meta(_layout(**BASE), score=("score", "p0"), probs=("p1",)),
                     ["output block 'score' has rows of shape [2]",
                      "expects output 'score' float32 [rows, 1]"]),
    "output missing": (lambda: _meta(_layout(**BASE), probs=()),
                       ["output(s) 'probs' float32 [rows, 2] that no output block provides"]),
}


@pytest.mark.parametrize("case", sorted(MISMATCHES))
def test_metadata_mismatch_names_block_and_expectation(server, queue, case):
    make, phrases = MISMATCHES[case]
    meta = make()
    poisoned = meta.outputs.collection.buffer.copy()
    with ServiceModel("twoheads_numpy", [server.address]) as model:
        with pytest.raises(ServiceError) as caught:
            model.to(queue)(meta)
        assert model.statistics.requests == 0
    message = str(caught.value)
    assert f"at {server.address}" in message
    for phrase in phrases:
        assert phrase in message, message
    np.testing.assert_array_equal(meta.outputs.collection.buffer, poisoned)


def test_unknown_model_fails_at_once(server, queue):
    with ServiceModel("nope", [server.address]) as model:
        with pytest.raises(ServiceError, match=rf"no server runs model 'nope': "
                                               rf"{server.address} does not serve it"):
            model.to(queue)(metadata(filled(4, seed=0)))


def test_unreachable_address_fails_at_once_with_its_reason(queue):
    address = f"127.0.0.1:{free_port()}"
    with ServiceModel("twoheads_numpy", [address], timeout=30.0) as model:
        with pytest.raises(ServiceError, match=rf"{address} is unreachable \("):
            model.to(queue)(metadata(filled(4, seed=0)))
        assert model.statistics.retries == 0


def test_bad_request_is_not_worth_a_retry(server):
    """A request the server refuses (wrong shape) is fatal, not retried."""
    import tritonclient.grpc as grpcclient
    from tritonclient.utils import InferenceServerException
    client = grpcclient.InferenceServerClient(server.address)
    data = np.zeros((2, 3), np.float32)
    item = grpcclient.InferInput("floats", data.shape, "FP32")
    item.set_data_from_numpy(data)
    with pytest.raises(InferenceServerException) as caught:
        client.infer("twoheads_numpy", [item])
    assert classify(caught.value) == "fatal"
    with pytest.raises(InferenceServerException) as caught:
        client.infer("no_such_model", [item])
    assert classify(caught.value) == "fatal"
    client.close()


def test_served_model_without_batching_refused():
    metadata = {"inputs": [{"name": "x", "datatype": "FP32", "shape": ["3"]}], "outputs": []}
    with pytest.raises(ServiceError, match="has max_batch_size 0: the client sends rows as "
                                           "the batch dimension"):
        ServedModel.from_server("m", metadata, {"config": {"max_batch_size": 0}})


@pytest.mark.parametrize("value, fix", [
    ("127.0.0.1", "must be host:port"),
    ("127.0.0.1:http", "must be host:port"),
])
def test_bad_addresses_refused(value, fix):
    with pytest.raises(pt.ArgumentError, match=fix):
        ServiceModel("m", [value])


def test_bad_arguments_refused(server, queue):
    with pytest.raises(pt.ArgumentError, match="argument 'balance' must be one of"):
        ServiceModel("m", [server.address], balance="random")
    with pytest.raises(pt.ArgumentError, match="argument 'fallback' must be None, an ml.Model"):
        ServiceModel("m", [server.address], fallback="local")
    with ServiceModel("twoheads_numpy", [server.address]) as model:
        with pytest.raises(pt.ArgumentError, match="argument 'meta' must be an ml.ModelMetadata"):
            model.to(queue)(metadata(filled(4, 0)).inputs)
        with pytest.raises(pt.ArgumentError, match="argument 'stop' must lie in"):
            model(metadata(filled(4, 0)), 0, 5)


# -- a pipeline ------------------------------------------------------------------------

class Make(pp.Producer):
    """An event's rows, from its number."""

    def register(self, reg: pp.Registration) -> None:
        self.rows = reg.produces(Rows, "raw")

    def produce(self, event: pp.Event, ctx: pp.Context) -> None:
        source = filled(event.input, seed=event.number)
        rows = ctx.collection(Rows, source.size)
        ctx.copy(rows.buffer, source.buffer)
        event.put(self.rows, rows)


class Keep(pp.Analyzer):
    """Records each event's outputs by event number."""

    def __init__(self, seen: dict[int, list[np.ndarray]]) -> None:
        self.seen = seen

    def register(self, reg: pp.Registration) -> None:
        self.rows = reg.consumes(Rows, "scored", host=True)

    def analyze(self, event: pp.Event, ctx: pp.Context) -> None:
        self.seen.setdefault(event.number, []).append(outputs_of(event.get(self.rows)).copy())


def run_pipeline(model, events: int, slots: int, source=None,
                 backend: str = "cpu_serial") -> tuple[pp.Report, dict]:
    """``model`` (or a ready module spec) over the rows of each event, on ``backend``."""
    seen: dict[int, list[np.ndarray]] = {}
    infer = model if isinstance(model, pp.ModuleSpec) else \
        pp.module(ServiceInference, name="Infer", model=model, layout=Rows,
                  metadata=metadata, consumes="raw", produces="scored")
    modules = [pp.module(Make), infer, pp.module(Keep, seen=seen)]
    report = pp.Process(modules, source=source or (lambda n: 37 + 61 * (n % 5)),
                        threads=1 if is_simulated(backend) else 2, streams=slots,
                        max_events=events, backends={backend: 1.0}).run()
    return report, seen


def test_pipeline_service_equals_direct(server, net):
    """The flags a program adds with add_arguments, the module inference_module
    builds: the service on 4 slots gives what ml.Model gives on one."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    modules = {}
    for flags in (["--inference", "direct"],
                  ["--inference", "service", "--servers", server.address,
                   "--service-fallback", "none"]):
        options = parser.parse_args(flags)
        modules[options.inference] = inference_module(
            options, net, "twoheads_numpy", Rows, metadata, consumes="raw", produces="scored",
            name="Infer")
    assert isinstance(modules["direct"].config["model"], ml.Model)
    model = modules["service"].config["model"]
    assert isinstance(model, ServiceModel) and model.fallback is None
    direct, seen_direct = run_pipeline(modules["direct"], events=24, slots=1)
    with model:
        report, seen = run_pipeline(modules["service"], events=24, slots=4)
        chunks = sum(-(-(37 + 61 * (n % 5)) // BATCH) for n in range(24))
        assert model.statistics.requests == chunks
    assert not direct.failures and not report.failures, report.failures
    assert sorted(seen) == sorted(seen_direct) == list(range(24))
    for number in range(24):
        assert len(seen[number]) == 1
        np.testing.assert_allclose(seen[number][0], seen_direct[number][0], rtol=2e-6, atol=1e-6)


@every_backend
def test_pipeline_service_on_device_memory_equals_direct(server, net, backend):
    """On a backend whose collections live in device memory, each event's rows go
    to the servers through one host copy and the outputs come back in place."""
    model = ServiceModel("twoheads_numpy", [server.address])
    direct, seen_direct = run_pipeline(ml.Model(net), events=6, slots=1)
    with model:
        report, seen = run_pipeline(model, events=6, slots=2, backend=backend)
    assert not direct.failures and not report.failures, report.failures
    assert sorted(seen) == sorted(seen_direct) == list(range(6))
    for number in range(6):
        np.testing.assert_allclose(seen[number][0], seen_direct[number][0], rtol=2e-6, atol=1e-6)
