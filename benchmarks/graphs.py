"""Graph mode against eager mode on a synthetic event path.

The path (one segment of device steps, then one host step):

* ``Build`` (Producer): stages the event's row count, copies it to the device and
  runs 4 portable kernels over a 6-column collection of ``--rows`` rows (10k);
* ``Infer`` (Producer): an ``ml.Model`` MLP (4 -> 32 -> 32 -> 1), in place on the
  collection (4 input columns, 1 output column);
* ``Count`` (ExternalWork): a memset, an atomic count of the positive scores and a
  4-byte copy to pinned memory in ``acquire``; ``produce`` reads it on the host.

Figures (medians of ``--repeat`` runs, after the slots' warm-up and capture events):

* host µs per event at 1 thread, 1 stream: process CPU time / events, and wall µs
  per event; eager and graph mode, and their ratio. The primary context is set to
  block on synchronisation, but the framework's waits are on events made without
  the blocking-sync flag, which spin: the CPU figure includes the waiting thread's
  spinning and bounds the host work from above. The record's ``module_us`` has the
  host work proper: the replay row (``stage`` calls and the graph launch) and the
  ExternalWork's ``produce``;
* events/s for threads x streams in {1, 2, 4, 8}, eager and graph mode;
* µs of GPU time per replayed kernel: graphs of K = 1..64 tiny kernels replayed
  back to back, the slope of time against K (and the host µs per graph launch).

The counts of 64 events in graph mode are compared with the eager ones (the record
says whether they are equal; cuBLAS is given a fixed workspace so that the model's
scores do not depend on the stream).
Targets: host <= 15 µs per replayed event; <= 1.5 µs per replayed kernel.
On a CPU backend (or with ``--quick`` anywhere without a GPU) graph mode is off,
the record says why, and the eager path alone is measured.

    python benchmarks/graphs.py            # on a GPU, about 2 minutes
    python benchmarks/graphs.py --quick    # smoke run, < 1 minute (works on a CPU)
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import time
from pathlib import Path
from typing import Any

import common  # noqa: I001 - puts the repository on sys.path
import numpy as np

LEVELS = (1, 2, 4, 8)
KERNEL_COUNTS = (1, 2, 4, 8, 16, 32, 64)
TARGET_HOST_US = 15.0
TARGET_KERNEL_US = 1.5


def blocking_waits() -> str:
    """Make the GPU's primary context block (not spin) on waits, before anything
    creates it, so that a waiting thread costs no CPU time; what happened."""
    try:
        from cuda.bindings import driver
        (err,) = driver.cuInit(0)
        err, device = driver.cuDeviceGet(0)
        if err != driver.CUresult.CUDA_SUCCESS:
            return f"no CUDA device ({err})"
        (err,) = driver.cuDevicePrimaryCtxSetFlags(
            device, driver.CUctx_flags.CU_CTX_SCHED_BLOCKING_SYNC)
        return "blocking sync" if err == driver.CUresult.CUDA_SUCCESS else f"default ({err})"
    except Exception as err:  # no CUDA here: nothing to set
        return f"default ({type(err).__name__})"


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--quick", action="store_true", help="a smoke run: few events, small sizes")
    p.add_argument("--rows", type=int, default=10_000)
    p.add_argument("--seconds", type=float, default=1.0, help="timed seconds per point")
    p.add_argument("--repeat", type=int, default=3, help="runs per host-time figure")
    p.add_argument("--backend", default=None, help="default: cuda when it can run, else "
                                                   "cpu_serial")
    return p.parse_args()


def build_path(pt: Any, pp: Any, ml: Any, torch: Any, rows: int) -> tuple[list[Any], Any]:
    """The modules of the synthetic path (made once: kernels compile once) and a
    function that starts a run: it empties and returns the dict where ``Count``
    stores each event's count."""
    counts: dict[int, int] = {}

    class Six(pt.Layout):
        x0 = pt.column(np.float32)
        x1 = pt.column(np.float32)
        x2 = pt.column(np.float32)
        x3 = pt.column(np.float32)
        x4 = pt.column(np.float32)
        x5 = pt.column(np.float32)

    @pt.kernel
    def seed(acc, six, n):
        for i in acc.uniform_elements(six.capacity):
            if i < n[0]:
                u = (i * 7919 + n[0] * 104729) % 10007
                six.x0[i] = u * 0.0001 - 0.5
                six.x1[i] = (u % 97) * 0.01 - 0.48
            else:
                six.x0[i] = 0.0
                six.x1[i] = 0.0

    @pt.kernel
    def mix(acc, six):
        for i in acc.uniform_elements(six.capacity):
            six.x2[i] = six.x0[i] * six.x1[i] + 0.25
            six.x3[i] = six.x0[i] - six.x1[i]

    @pt.kernel
    def scale(acc, six, factor):
        for i in acc.uniform_elements(six.capacity):
            six.x0[i] = six.x0[i] * factor
            six.x1[i] = six.x1[i] * factor

    @pt.kernel
    def clear(acc, six):
        for i in acc.uniform_elements(six.capacity):
            six.x4[i] = 0.0
            six.x5[i] = -1.0

    @pt.kernel
    def count_positive(acc, six, n, out):
        for i in acc.uniform_elements(six.capacity):
            if i < n[0] and six.x5[i] > 0.0:
                acc.atomic_add(out, 0, 1)

    torch.manual_seed(0)
    model = ml.Model(torch.nn.Sequential(torch.nn.Linear(4, 32), torch.nn.ReLU(),
                                         torch.nn.Linear(32, 32), torch.nn.ReLU(),
                                         torch.nn.Linear(32, 1)))

    class Build(pp.Producer):
        capturable = True

        def register(self, reg):
            self.out = reg.produces(Six)
            self.n = reg.produces(np.ndarray, "n")

        def stage(self, event, ctx):
            ctx.staging("n", 1, np.int32)[0] = event.input

        def produce(self, event, ctx):
            six = ctx.collection(Six, rows)
            n = ctx.alloc(1, np.int32)
            ctx.copy(n, ctx.staging("n", 1, np.int32))
            ctx.launch(seed, rows, six.view(), n)
            ctx.launch(scale, rows, six.view(), 2.0)
            ctx.launch(mix, rows, six.view())
            ctx.launch(clear, rows, six.view())
            event.put(self.out, six)
            event.put(self.n, n)

    class Infer(pp.Producer):
        capturable = True

        def register(self, reg):
            self.six = reg.consumes(Six)
            self.out = reg.produces(Six, "scored")

        def produce(self, event, ctx):
            six = event.get(self.six)
            inputs, outputs = ml.SoAMetadata(six), ml.SoAMetadata(six)
            inputs.append_block("x", "x0", "x1", "x2", "x3")
            outputs.append_block("y", "x5")
            model(ml.ModelMetadata(inputs, outputs), queue=ctx.queue)
            event.put(self.out, six)

    class Count(pp.ExternalWork):
        capturable = True

        def register(self, reg):
            self.six = reg.consumes(Six, "scored")
            self.n = reg.consumes(np.ndarray, "n")
            self.out = reg.produces(int, "positive")

        def acquire(self, event, ctx):
            out = ctx.alloc(1, np.int32)
            pt.memset(ctx.queue, out, 0)
            six = event.get(self.six)
            ctx.launch(count_positive, rows, six.const_view(), event.get(self.n), out)
            self.host = ctx.host_alloc(1, np.int32)
            ctx.copy(self.host, out)

        def produce(self, event, ctx):
            value = int(self.host[0])
            counts[event.number] = value
            event.put(self.out, value)

    def fresh() -> dict[int, int]:
        counts.clear()
        return counts
    return [Build, Infer, Count], fresh


def source(rows: int):
    return lambda number: rows - (number * 37) % 500


def run_point(pp, path, backend, rows, threads, streams, graphs, seconds, events=None):
    modules, fresh = path
    counts = fresh()
    process = pp.Process(modules, source(rows), threads=threads, streams=streams,
                         backends={backend: 1}, max_events=events,
                         run_for=None if events else seconds,
                         warmup_events=max(8, 3 * streams), graphs=graphs)
    report = process.run()
    assert report.failed == 0, report.failures[:1]
    return report, dict(counts)


def host_per_event(pp, path, backend, rows, graphs, repeat, events):
    """CPU µs and wall µs per event at 1 thread, 1 stream (medians), the report."""
    cpu_us, wall_us, last = [], [], None
    modules, fresh = path
    for _ in range(repeat):
        fresh()
        process = pp.Process(modules, source(rows), threads=1, streams=1,
                             backends={backend: 1}, max_events=events, warmup_events=8,
                             graphs=graphs)
        last = process.run()  # its CPU time covers the timed events only
        cpu_us.append(last.cpu_s / last.events * 1e6)
        wall_us.append(last.wall_s / last.events * 1e6)
    return statistics.median(cpu_us), statistics.median(wall_us), last


def kernel_slope(pt) -> dict[str, Any]:
    """GPU µs per replayed kernel: graphs of K tiny kernels, replayed back to back."""
    backend = pt.get_backend("cuda")
    device = pt.get_device("cuda")

    @pt.kernel
    def bump(acc, out):
        for i in acc.uniform_elements(out.size):
            out[i] += 1

    capture = backend.graph_capture(device)
    queue = capture.queue
    buffer = pt.alloc_buffer(device, 256, np.int32)
    pt.memset(queue, buffer, 0)
    workdiv = pt.make_workdiv(device, 256)
    pt.launch(queue, workdiv, bump, buffer)  # compile outside the capture
    queue.synchronize()
    rows, replays = [], 200
    for k in KERNEL_COUNTS:
        graph = capture.capture(lambda: [pt.launch(queue, workdiv, bump, buffer)
                                         for _ in range(k)])
        for _ in range(20):
            graph.launch()
        queue.synchronize()
        gpu_us, host_us = [], []
        for _ in range(5):
            start, end = pt.Event(device), pt.Event(device)
            start.record(queue)
            t0 = time.perf_counter()
            for _ in range(replays):
                graph.launch()
            host_us.append((time.perf_counter() - t0) / replays * 1e6)
            end.record(queue)
            end.synchronize()
            gpu_us.append(start.elapsed_ms(end) * 1e3 / replays)
        rows.append({"kernels": k, "gpu_us_per_graph": statistics.median(gpu_us),
                     "host_us_per_launch": statistics.median(host_us)})
    total = 20 * 5 * replays + 20 * len(KERNEL_COUNTS)
    check = pt.alloc_host_buffer(256, np.int32)
    pt.memcpy(queue, check, buffer)
    queue.synchronize()
    expected = 1 + sum(KERNEL_COUNTS) * (20 + 5 * replays)
    assert (check == expected).all(), (check[:4], expected, total)
    ks = np.array([r["kernels"] for r in rows], float)
    ts = np.array([r["gpu_us_per_graph"] for r in rows], float)
    slope, intercept = np.polyfit(ks, ts, 1)
    launcher = "cuGraphLaunch" if graph._driver_launch is not None else "torch replay"
    return {"rows": rows, "us_per_kernel": float(slope), "us_per_graph": float(intercept),
            "launcher": launcher}


def main() -> None:
    options = parse()
    waits = blocking_waits()
    # cuBLAS picks its reductions per stream unless given a fixed workspace: with one,
    # the model's scores (and the counts) are bit-identical on every stream
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    import ml
    import portable as pt
    import portable.pipeline as pp
    ml.set_threads(1)
    cuda = pt.get_backend("cuda") if any(
        b.name == "cuda" and b.available for b in pt.all_backends()) else None
    backend = options.backend or ("cuda" if cuda is not None else "cpu_serial")
    device = pt.get_device(backend)
    graphs_on = device.backend.capture_problem(device) is None
    why_off = device.backend.capture_problem(device) or ""
    rows = 1000 if options.quick and device.backend.host_memory else options.rows
    seconds = 0.3 if options.quick else options.seconds
    repeat = 1 if options.quick else options.repeat
    events = 200 if options.quick else 2000
    levels = (1, 2) if options.quick else LEVELS
    path = build_path(pt, pp, ml, torch, rows)
    modes = ("off", "on") if graphs_on else ("off",)
    print(f"device {device}, backend {backend}, {rows} rows, waits: {waits}; graph mode "
          f"{'on' if graphs_on else 'off: ' + why_off}")

    host: dict[str, Any] = {}
    for mode in modes:
        cpu_us, wall_us, report = host_per_event(pp, path, backend, rows, mode, repeat,
                                                 events)
        host[mode] = {"cpu_us_per_event": cpu_us, "wall_us_per_event": wall_us,
                      "graphs": report.to_dict()["graphs"],
                      "module_us": {f"{m} ({b})": t.seconds / max(t.calls, 1) * 1e6
                                    for (m, b), t in report.module_times.items()}}
    # the counts of graph mode equal the eager ones, event by event
    checked = {}
    for mode in modes:
        _, checked[mode] = run_point(pp, path, backend, rows, 2, 2, mode, seconds, events=64)
    differ = [n for n in checked["off"] if checked[modes[-1]].get(n) != checked["off"][n]]
    if differ:
        print(f"[warning] graph mode counts differ from eager ones in {len(differ)} of 64 "
              f"events: {[(n, checked['off'][n], checked['on'].get(n)) for n in differ[:5]]}")
    grid = []
    for mode in modes:
        for threads in levels:
            for streams in levels:
                point = {"graphs": mode, "threads": threads, "streams": streams}
                try:
                    report, _ = run_point(pp, path, backend, rows, threads, streams, mode,
                                          seconds)
                except Exception as err:  # keep the other points; the record says what
                    print(f"[error] {point}: {type(err).__name__}: {err}")
                    grid.append({**point, "events_per_s": 0.0, "error": str(err)[:300]})
                    continue
                grid.append({**point, "events_per_s": report.throughput,
                             "cpu_usage": report.cpu_usage,
                             "replayed": report.graphs[backend].replayed,
                             "events": report.events})
    slope = kernel_slope(pt) if graphs_on else None

    common.print_table("host time per event, 1 thread 1 stream",
                       ["graphs", "CPU us/event", "wall us/event"],
                       [[m, host[m]["cpu_us_per_event"], host[m]["wall_us_per_event"]]
                        for m in modes])
    for mode in modes:
        rows_ = [[t] + [next(g["events_per_s"] for g in grid if g["graphs"] == mode and
                             g["threads"] == t and g["streams"] == s) for s in levels]
                 for t in levels]
        common.print_table(f"events/s, graphs {mode} (rows: threads, columns: streams)",
                           ["threads"] + [f"{s} streams" for s in levels], rows_)
    if slope is not None:
        common.print_table("graphs of K kernels", ["K", "GPU us/graph", "host us/launch"],
                           [[r["kernels"], r["gpu_us_per_graph"], r["host_us_per_launch"]]
                            for r in slope["rows"]])
        print(f"GPU us per replayed kernel (slope): {slope['us_per_kernel']:.3f}; graphs "
              f"launched by {slope['launcher']}")

    best = {m: max(g["events_per_s"] for g in grid if g["graphs"] == m) for m in modes}
    targets = {}
    if graphs_on:
        targets = {
            "host_us_per_replayed_event": {
                "value": host["on"]["cpu_us_per_event"], "target": TARGET_HOST_US,
                "met": host["on"]["cpu_us_per_event"] <= TARGET_HOST_US},
            "us_per_replayed_kernel": {
                "value": slope["us_per_kernel"], "target": TARGET_KERNEL_US,
                "met": slope["us_per_kernel"] <= TARGET_KERNEL_US},
        }
    ratios = {"eager_over_graph_cpu_us_per_event":
              host["off"]["cpu_us_per_event"] / host["on"]["cpu_us_per_event"]
              if graphs_on else None,
              "graph_over_eager_best_events_per_s":
              best["on"] / best["off"] if graphs_on else None}
    print(f"targets: {targets}\nratios (baseline: eager mode in the same run): {ratios}")

    name = str(device.name)
    slug = "cpu-" + backend if device.backend.host_memory else \
        re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    record = common.make_record("graphs", name, {
        "backend": backend, "rows": rows, "seconds": seconds, "repeat": repeat,
        "events_for_host_time": events, "levels": list(levels), "waits": waits,
        "model": "MLP 4-32-32-1 in place (ml.Model)"}, options.quick)
    record.update(graph_mode="on" if graphs_on else f"off: {why_off}", host=host,
                  grid=grid, kernel_slope=slope, best_events_per_s=best, targets=targets,
                  ratios=ratios,
                  counts_equal_eager=None if len(modes) == 1 else not differ)
    path = common.write_record(options.out, "graphs", slug, record)
    plot(path.with_suffix(".png"), grid, slope, modes, levels)


def plot(path: Path, grid, slope, modes, levels) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    panels = len(modes) + (slope is not None)
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), squeeze=False)
    for ax, mode in zip(axes[0], modes):
        for streams in levels:
            points = [(g["threads"], g["events_per_s"]) for g in grid
                      if g["graphs"] == mode and g["streams"] == streams]
            ax.plot(*zip(*points), marker="o", label=f"{streams} streams")
        ax.set(title=f"graphs {mode}", xlabel="host threads", ylabel="events/s", xscale="log")
        ax.legend()
    if slope is not None:
        ax = axes[0][-1]
        ks = [r["kernels"] for r in slope["rows"]]
        ax.plot(ks, [r["gpu_us_per_graph"] for r in slope["rows"]], marker="o")
        ax.set(title=f"graph of K kernels: {slope['us_per_kernel']:.2f} us/kernel",
               xlabel="K", ylabel="GPU us per replay")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
