"""Inference as a service (ml.service) against in-process inference, on real Triton
servers started on this machine.

Model: an MLP 16 -> 64 -> 64 -> 2 (ReLU, seed 0, float32), reading a block of 16
float32 columns and writing a block of 2, served as a NumPy program (python
backend, one instance per server, dynamic batching, ``max_batch_size`` 4096 so a
call of up to 4096 rows is one request; ``mlp_1024`` the same with 1024).

1. Latency per call vs rows per call (16, 256, 1024, 4096; quick 16, 1024), one
   client; the variants take turns in 5 rounds of ``repeat / 5`` calls after warm-up,
   and the median of the rounds' medians is reported:
   * ``in_process``   ``ml.Model(net)`` on the collection in place (one torch thread);
   * ``grpc``         ``ServiceModel`` without shared memory (inputs gathered into the
                      request by one copy, outputs copied into the blocks);
   * ``grpc_shm``     the same through system shared memory;
   * ``raw``          tritonclient alone on the same requests: contiguous input arrays
                      made beforehand, ``InferInput.set_data_from_numpy``,
                      ``client.infer``, ``as_numpy`` of the output (no SoA copies);
   * ``raw_soa``      tritonclient alone doing the same job as the client: the input
                      gathered from the SoA block into the request, the output copied
                      into its block;
   * ``chunked``      4096 rows on ``mlp_1024``: four 1024-row requests sent at once.
   Target: ``grpc`` / ``raw_soa`` <= 1.1 at every size (also reported: / ``raw``).
2. Throughput (rows/s) of C concurrent clients (threads, one ``ServiceModel`` each,
   256-row calls for a fixed time) on 1..3 servers, client-side balancing over all
   of them (least outstanding requests), and the server's executions per request
   (dynamic batching: < 1 when requests are merged).
   Each point is run twice (once in the full run's reverse order) and the better
   run kept.
3. Recovery: a server killed, away for 6 s (quick 2 s) while a client keeps calling,
   then started again on the same port; the time from its readiness until the
   client gets an answer, with the client's reconnect backoff (100-250 ms) and with
   gRPC's default channel settings.

    python benchmarks/service.py [--quick] [--out DIR]
"""
from __future__ import annotations

import argparse
import concurrent.futures
import os
import re
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import make_record, print_table, utc_now, versions, write_record  # noqa: E402

import ml  # noqa: E402
import portable as pt  # noqa: E402
from ml.service import ServiceModel, TritonServer, export_model, server_env_problem  # noqa: E402

FEATURES = [f"c{i}" for i in range(16)]
Features = pt.Layout.define("Features", [(c, pt.column(np.float32)) for c in FEATURES] +
                            [("o0", pt.column(np.float32)), ("o1", pt.column(np.float32))])


#: latency rounds: each variant's median over ``repeat / ROUNDS`` calls, the variants
#: taking turns, and the median of the rounds reported
ROUNDS = 5


def mlp() -> Any:
    import torch
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(16, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                               torch.nn.ReLU(), torch.nn.Linear(64, 2)).eval()


def metadata(rows: pt.PortableCollection) -> ml.ModelMetadata:
    inputs, outputs = ml.SoAMetadata(rows), ml.SoAMetadata(rows)
    inputs.append_block("x", *FEATURES)
    outputs.append_block("y", "o0", "o1")
    return ml.ModelMetadata(inputs, outputs)


def collection(size: int, seed: int = 0) -> pt.PortableCollection:
    rows = pt.PortableCollection(Features, size, pt.get_device("cpu_serial"), zero=True)
    rng = np.random.default_rng(seed)
    for c in FEATURES:
        rows.column(c)[:] = rng.normal(size=size)
    return rows


def median_ms(run: Callable[[], Any], repeat: int, warmup: int) -> float:
    for _ in range(warmup):
        run()
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        samples.append(time.perf_counter() - began)
    return float(np.median(samples) * 1e3)


def raw_call(client: Any, x: np.ndarray) -> Callable[[], Any]:
    import tritonclient.grpc as grpcclient

    def run() -> Any:
        item = grpcclient.InferInput("x", x.shape, "FP32")
        item.set_data_from_numpy(x)
        return client.infer("mlp", [item]).as_numpy("y")
    return run


def raw_soa_call(client: Any, meta: ml.ModelMetadata) -> Callable[[], Any]:
    """tritonclient alone doing the client's whole job: the input gathered from the
    SoA block into the request, the output copied into its block."""
    import tritonclient.grpc as grpcclient
    x, y = meta.inputs.tensor("x").numpy(), meta.outputs.tensor("y").numpy()

    def run() -> None:
        item = grpcclient.InferInput("x", x.shape, "FP32")
        item.set_data_from_numpy(x)
        np.copyto(y, client.infer("mlp", [item]).as_numpy("y"))
    return run


def latency(server: TritonServer, net: Any, sizes: list[int], repeat: int) -> list[dict]:
    import tritonclient.grpc as grpcclient
    from ml.service.link import channel_args
    ml.set_threads(1, 1)
    queue = pt.Queue(pt.get_device("cpu_serial"))
    direct = ml.Model(net).to(queue)
    plain = ServiceModel("mlp", [server.address], shared_memory=False).to(queue)
    shm = ServiceModel("mlp", [server.address], shared_memory=True).to(queue)
    chunked = ServiceModel("mlp_1024", [server.address], shared_memory=False).to(queue)
    client = grpcclient.InferenceServerClient(server.address, channel_args=channel_args())
    rows_out = []
    for size in sizes:
        rows = collection(size)
        meta = metadata(rows)
        x = np.ascontiguousarray(meta.inputs.tensor("x").numpy())
        figures = {"rows": size}
        variants = {"in_process": lambda: direct(meta), "grpc": lambda: plain(meta),
                    "grpc_shm": lambda: shm(meta), "raw": raw_call(client, x),
                    "raw_soa": raw_soa_call(client, meta)}
        if size == max(sizes):
            variants["chunked_1024"] = lambda: chunked(meta)
        # interleaved rounds, so that a busy moment of the machine hits every variant
        rounds = {name: [] for name in variants}
        for _ in range(ROUNDS):
            for name, run in variants.items():
                rounds[name].append(median_ms(run, repeat // ROUNDS, warmup=5))
        for name, values in rounds.items():
            figures[f"{name}_ms"] = float(np.median(values))
        expected = direct_outputs(net, x)
        plain(meta)
        assert np.allclose(meta.outputs.tensor("y").numpy(), expected, rtol=1e-5, atol=1e-5)
        figures["grpc_over_raw"] = figures["grpc_ms"] / figures["raw_ms"]
        figures["grpc_over_raw_soa"] = figures["grpc_ms"] / figures["raw_soa_ms"]
        figures["grpc_shm_over_raw"] = figures["grpc_shm_ms"] / figures["raw_ms"]
        rows_out.append(figures)
    for model in (plain, shm, chunked):
        model.close()
    client.close()
    return rows_out


def direct_outputs(net: Any, x: np.ndarray) -> np.ndarray:
    import torch
    with torch.inference_mode():
        return net(torch.from_numpy(x)).numpy()


def server_counts(servers: list[TritonServer]) -> tuple[int, int]:
    """(requests, executions) of model ``mlp`` summed over ``servers``."""
    import tritonclient.grpc as grpcclient
    requests = executions = 0
    for server in servers:
        client = grpcclient.InferenceServerClient(server.address)
        entry = client.get_inference_statistics("mlp", as_json=True)["model_stats"][0]
        requests += int(entry.get("inference_stats", {}).get("success", {}).get("count", 0))
        executions += int(entry.get("execution_count", 0))
        client.close()
    return requests, executions


def throughput(servers: list[TritonServer], clients: int, seconds: float,
               shared_memory: bool) -> dict[str, Any]:
    models = [ServiceModel("mlp", [s.address for s in servers], shared_memory=shared_memory)
              for _ in range(clients)]
    queue = pt.Queue(pt.get_device("cpu_serial"))
    metas = [metadata(collection(256, seed=i)) for i in range(clients)]
    for model, meta in zip(models, metas):
        model(meta, queue=queue)  # first use: the checks, the channels
    before = server_counts(servers)
    done = [0] * clients
    stop = threading.Event()

    def work(i: int) -> None:
        while not stop.is_set():
            models[i](metas[i], queue=queue)
            done[i] += 1

    began = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(work, i) for i in range(clients)]
        time.sleep(seconds)
        stop.set()
        for f in futures:
            f.result()
    elapsed = time.perf_counter() - began
    after = server_counts(servers)
    requests, executions = after[0] - before[0], after[1] - before[1]
    latencies = [m.statistics.snapshot()["latency_ms"].get("p50", 0.0) for m in models]
    for model in models:
        model.close()
    return {"servers": len(servers), "clients": clients, "shared_memory": shared_memory,
            "rows_per_s": sum(done) * 256 / elapsed, "calls": sum(done),
            "executions_per_request": executions / max(requests, 1),
            "median_request_ms": float(np.median(latencies))}


def recovery(repository: Path, default_channel: bool, away: float) -> float:
    """Seconds from a restarted server's readiness to a client's first answer, the
    client having called in vain for ``away`` seconds (gRPC backs off meanwhile)."""
    import tritonclient.grpc as grpcclient
    first = TritonServer(repository, ["mlp"]).start()
    ports = (first.http_port, first.grpc_port)
    address = first.address
    x = np.zeros((4, 16), np.float32)
    client = (grpcclient.InferenceServerClient(address) if default_channel else
              ServiceModel("mlp", [address]).links[0].client)
    run = raw_call(client, x)
    run()
    first.signal(signal.SIGKILL)
    first.stop()
    gone = time.perf_counter()
    while time.perf_counter() - gone < away:  # calls fail while the server is away
        try:
            run()
        except Exception:
            pass
        time.sleep(0.1)
    again = TritonServer(repository, ["mlp"], ports=ports).start()
    began = time.perf_counter()
    while True:
        try:
            run()
            break
        except Exception:
            time.sleep(0.005)
        if time.perf_counter() - began > 30:
            break
    waited = time.perf_counter() - began
    again.stop()
    client.close()
    return waited


def device_slug() -> str:
    name = "cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1]
                break
    except OSError:
        pass
    words = re.sub(r"\(.*?\)|processor|\d+-core", " ", name.lower()).split()[:2]
    return "-".join(re.sub(r"[^a-z0-9]+", "", w) for w in words) + f"-{os.cpu_count()}c"


def plot(record: dict[str, Any], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    rows = [r["rows"] for r in record["latency"]]
    for name in ("in_process", "raw", "raw_soa", "grpc", "grpc_shm"):
        left.plot(rows, [r[f"{name}_ms"] for r in record["latency"]], marker="o", label=name)
    left.set(xscale="log", yscale="log", xlabel="rows per call", ylabel="median ms per call",
             title="latency, one client")
    left.legend()
    for servers in sorted({t["servers"] for t in record["throughput"]}):
        points = [t for t in record["throughput"] if t["servers"] == servers
                  and not t["shared_memory"]]
        right.plot([t["clients"] for t in points], [t["rows_per_s"] / 1e3 for t in points],
                   marker="o", label=f"{servers} server(s)")
    right.set(xscale="log", xlabel="concurrent clients", ylabel="k rows / s",
              title="throughput, 256-row calls")
    right.legend()
    fig.suptitle(f"ml.service on {record['host_cores']} cores, {record['date']}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a smoke run, under a minute")
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    options = p.parse_args(argv)
    problem = server_env_problem()
    if problem:
        print(f"benchmarks/service.py needs the server environment: {problem}")
        return 1
    quick = options.quick
    sizes = [16, 1024] if quick else [16, 256, 1024, 4096]
    repeat = 30 if quick else 150
    clients = [1, 4, 16] if quick else [1, 2, 4, 8, 16]
    server_counts_list = [1, 3] if quick else [1, 2, 3]
    seconds = 1.0 if quick else 3.0
    net = mlp()
    record = make_record("service", device_slug(),
                         {"sizes": sizes, "repeat": repeat, "clients": clients,
                          "servers": server_counts_list, "seconds_per_point": seconds,
                          "model": "MLP 16-64-64-2 float32, NumPy program, 1 instance/server"},
                         quick)
    record["versions"] = versions()
    with tempfile.TemporaryDirectory() as folder:
        repository = Path(folder)
        example = metadata(collection(0))
        export_model(net, repository, "mlp", example, max_batch_size=4096)
        export_model(net, repository, "mlp_1024", example, max_batch_size=1024)
        servers = [TritonServer(repository, ["mlp", "mlp_1024"]) for _ in range(max(server_counts_list))]
        for server in servers:
            server.start()
        try:
            record["latency"] = latency(servers[0], net, sizes, repeat)
            print_table("latency per call (median ms)",
                        ["rows", "in_process", "raw", "raw_soa", "grpc", "grpc_shm",
                         "chunked_1024", "grpc/raw", "grpc/raw_soa", "shm/raw"],
                        [(r["rows"], r["in_process_ms"], r["raw_ms"], r["raw_soa_ms"],
                          r["grpc_ms"], r["grpc_shm_ms"], r.get("chunked_1024_ms", "-"),
                          r["grpc_over_raw"], r["grpc_over_raw_soa"], r["grpc_shm_over_raw"])
                         for r in record["latency"]])
            # each point twice, in alternating order, and the better run kept: a busy
            # moment of the shared machine hits one run, not a whole server count
            runs: dict[tuple[int, int], list[dict[str, Any]]] = {}
            points = [(n, c) for n in server_counts_list for c in clients]
            for turn in range(1 if quick else 2):
                for n, c in (points if turn % 2 == 0 else points[::-1]):
                    runs.setdefault((n, c), []).append(throughput(servers[:n], c, seconds,
                                                                  False))
            record["throughput"] = [max(runs[p], key=lambda t: t["rows_per_s"]) for p in points]
            best = {n: max(t["rows_per_s"] for t in record["throughput"] if t["servers"] == n)
                    for n in server_counts_list}
            record["throughput_best"] = {str(n): v for n, v in best.items()}
            print_table("throughput, 256-row calls",
                        ["servers", "clients", "k rows/s", "executions/request",
                         "median request ms"],
                        [(t["servers"], t["clients"], t["rows_per_s"] / 1e3,
                          t["executions_per_request"], t["median_request_ms"])
                         for t in record["throughput"]])
        finally:
            for server in servers:
                server.stop()
        away = 2.0 if quick else 6.0
        record["recovery_s"] = {"away_s": away,
                                "client_backoff": recovery(repository, False, away)}
        if not quick:
            record["recovery_s"]["grpc_default"] = recovery(repository, True, away)
        print_table("recovery after a restart on the same port (s)",
                    list(record["recovery_s"]), [list(record["recovery_s"].values())])
    ratios = [r["grpc_over_raw_soa"] for r in record["latency"]]
    prepared = [r["grpc_over_raw"] for r in record["latency"]]
    record["targets"] = {
        "grpc_over_raw_soa_le_1.1": {"value": max(ratios), "met": max(ratios) <= 1.1},
        "grpc_over_raw_prepared_le_1.1": {"value": max(prepared), "met": max(prepared) <= 1.1},
        "three_servers_over_one_gt_1": {
            "value": best[max(server_counts_list)] / best[1],
            "met": best[max(server_counts_list)] / best[1] > 1.0},
        "recovery_lt_1s": {"value": record["recovery_s"]["client_backoff"],
                           "met": record["recovery_s"]["client_backoff"] < 1.0},
    }
    for name, target in record["targets"].items():
        print(f"target {name}: {target['value']:.3f} -> {'met' if target['met'] else 'NOT met'}")
    record["finished"] = utc_now()
    path = write_record(options.out, "service" + ("_quick" if quick else ""), device_slug(),
                        record)
    plot(record, path.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
