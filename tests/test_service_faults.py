"""ml.service when servers fail, against real Triton servers on 127.0.0.1: killed
(SIGKILL) while a pipeline runs, hung (SIGSTOP), a dead python-backend stub, a
fallback server started and stopped, an in-process fallback."""
from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

import ml
import portable as pt
from ml.service import LocalServer, ServiceModel, TritonServer, server_env_problem
from ml.service.server import free_port
from test_service import (Rows, TwoHeads, export_all, filled, metadata, outputs_of, reference,
                          run_pipeline)

pytestmark = pytest.mark.skipif(server_env_problem() is not None,
                                reason=f"ml.service tests need the Triton server environment: "
                                       f"{server_env_problem()}")

MODEL = "twoheads_numpy"


def client_regions() -> list[str]:
    """Shared-memory regions that service clients made and did not remove."""
    return sorted(p.name for p in Path("/dev/shm").glob("mlsvcc*"))


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    return TwoHeads().eval()


@pytest.fixture(scope="module")
def repository(tmp_path_factory, net) -> Path:
    folder = tmp_path_factory.mktemp("fault-repository")
    export_all(folder, net, ("numpy",))
    return folder


@pytest.fixture
def two_servers(repository):
    """Two fresh servers of the model; after the test, every process of each group
    is gone and so are its shared-memory regions."""
    servers = [TritonServer(repository, [MODEL]) for _ in range(2)]
    threads = [threading.Thread(target=s.start) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    yield servers
    stops = [threading.Thread(target=s.stop) for s in servers]
    for t in stops:
        t.start()
    for t in stops:
        t.join()
    for server in servers:
        assert server.pids() == [], f"processes left behind: {server.pids()}"
        assert server.shm_regions() == []
    assert client_regions() == []


def check_equal(net: torch.nn.Module, rows: pt.PortableCollection, expected=None) -> None:
    want = reference(net, rows) if expected is None else expected
    np.testing.assert_allclose(outputs_of(rows), want, rtol=2e-6, atol=1e-6)


def test_servers_killed_mid_pipeline_every_event_once(two_servers, repository, net):
    """SIGKILL one server, later the other, while a pipeline runs: each event completes
    exactly once with the right outputs, through retries, failover and the fallback
    server the client starts."""
    first, second = two_servers
    fallback = LocalServer(repository)
    events = 60
    kills = {12: first, 30: second}
    lock = threading.Lock()

    def source(number: int) -> int:
        with lock:
            victim = kills.pop(number, None)
        if victim is not None:
            victim.signal(signal.SIGKILL)
        return 37 + 61 * (number % 5)

    with ServiceModel(MODEL, [first.address, second.address], timeout=5.0,
                      fallback=fallback) as model:
        report, seen = run_pipeline(model, events=events, slots=4, source=source)
        stats = model.statistics.snapshot()
        started = fallback.server
        assert started is not None and started.running()
    assert not report.failures, report.failures
    assert sorted(seen) == list(range(events))
    assert all(len(outputs) == 1 for outputs in seen.values())
    for number, outputs in seen.items():
        rows = filled(37 + 61 * (number % 5), seed=number)
        np.testing.assert_allclose(outputs[0], reference(net, rows), rtol=2e-6, atol=1e-6)
    assert stats["failovers"] >= 1 and stats["fallbacks"] >= 1, stats
    assert stats["failures"] == 0
    # the client stopped the fallback server it started: nothing of it is left
    assert not started.running() and started.pids() == [] and started.shm_regions() == []


def test_hung_server_times_out_then_fails_over(two_servers, net):
    hung, healthy = two_servers
    queue = pt.Queue(pt.get_device("cpu_serial"))
    with ServiceModel(MODEL, [hung.address, healthy.address], timeout=1.0, retries=1,
                      shared_memory=False) as model:
        model.to(queue)(metadata(filled(10, seed=0)))  # both servers checked at first use
        hung.signal(signal.SIGSTOP)
        try:
            rows = filled(1000, seed=1)
            model(metadata(rows))
            stats = model.statistics.snapshot()
        finally:
            hung.signal(signal.SIGCONT)
    check_equal(net, rows)
    assert stats["retries"] >= 1 and stats["failovers"] >= 1, stats
    assert stats["fallbacks"] == 0 and stats["failures"] == 0


def test_dead_stub_counts_as_a_failed_server(two_servers, net):
    import tritonclient.grpc as grpcclient
    broken, healthy = two_servers
    queue = pt.Queue(pt.get_device("cpu_serial"))
    with ServiceModel(MODEL, [broken.address, healthy.address]) as model:
        model.to(queue)(metadata(filled(10, seed=0)))
        answered = model.statistics.snapshot()["per_server"].get(broken.address, 0)
        [stub] = broken.stub_pids()
        os.kill(stub, signal.SIGKILL)
        client = grpcclient.InferenceServerClient(broken.address)
        assert client.is_model_ready(MODEL)  # the server still calls the model ready
        client.close()
        rows = filled(1000, seed=2)
        model(metadata(rows))
        stats = model.statistics.snapshot()
    check_equal(net, rows)
    assert stats["failovers"] >= 1 and stats["retries"] == 0, stats
    assert stats["per_server"].get(broken.address, 0) == answered  # none since the stub died


def test_fallback_server_for_a_model_no_server_has(two_servers, net):
    """The servers lack the model: the client exports it, starts its own server, and
    stops it cleanly at close."""
    other, _ = two_servers
    queue = pt.Queue(pt.get_device("cpu_serial"))
    example = metadata(pt.PortableCollection(Rows, 0, queue.device))
    fallback = LocalServer.exporting(net, "private", example, max_batch_size=64)
    rows = filled(300, seed=3)
    with ServiceModel("private", [other.address], fallback=fallback) as model:
        model.to(queue)(metadata(rows))
        started = fallback.server
        assert started is not None and started.running()
        address = started.address
        stats = model.statistics.snapshot()
    check_equal(net, rows)
    assert stats["per_server"] == {address: 5}
    assert started.pids() == [] and started.shm_regions() == []
    assert fallback._made is None  # the exported repository is gone too


def test_in_process_fallback_when_no_server_answers(net):
    queue = pt.Queue(pt.get_device("cpu_serial"))
    rows = filled(200, seed=4)
    with ServiceModel(MODEL, [f"127.0.0.1:{free_port()}"], fallback=ml.Model(net)) as model:
        model.to(queue)(metadata(rows))
        stats = model.statistics.snapshot()
    check_equal(net, rows)
    assert stats["fallbacks"] == 1 and stats["requests"] == 0


@pytest.mark.parametrize("balance", ["least", "round_robin"])
def test_balancing_spreads_chunks_over_servers(two_servers, net, balance):
    queue = pt.Queue(pt.get_device("cpu_serial"))
    rows = filled(1000, seed=5)
    with ServiceModel(MODEL, [s.address for s in two_servers], balance=balance) as model:
        model.to(queue)(metadata(rows))
        per_server = model.statistics.snapshot()["per_server"]
    check_equal(net, rows)
    assert sorted(per_server) == sorted(s.address for s in two_servers)
    assert sum(per_server.values()) == 16 and min(per_server.values()) >= 1, per_server


def test_restarted_server_gets_work_again(two_servers, repository, net):
    """A killed server, started again on its port, passes the client's test request
    and answers again (the client's reconnect backoff is short)."""
    first, second = two_servers
    queue = pt.Queue(pt.get_device("cpu_serial"))
    with ServiceModel(MODEL, [first.address, second.address], down_seconds=0.2,
                      balance="round_robin") as model:
        model.to(queue)(metadata(filled(10, seed=0)))
        ports = (first.http_port, first.grpc_port)
        address = first.address
        first.signal(signal.SIGKILL)
        first.stop()
        rows = filled(1000, seed=6)
        model(metadata(rows))          # all on the second server, after failovers
        check_equal(net, rows)
        answered = model.statistics.snapshot()["per_server"].get(address, 0)
        again = TritonServer(repository, [MODEL], ports=ports).start()
        try:
            for _ in range(200):       # bounded: until the probe lets it back in
                model(metadata(rows))
                if model.statistics.snapshot()["per_server"].get(address, 0) > answered:
                    break
                threading.Event().wait(0.05)
            assert model.statistics.snapshot()["per_server"].get(address, 0) > answered
            check_equal(net, rows)
        finally:
            again.stop()
    assert again.pids() == [] and again.shm_regions() == []
