"""The GNN that merges fragmented particles: ms per event in place vs the copy paths.

The job of examples/gnn_pipeline.py (upload, graph, edge features, GNN score, merge;
no validation) on one slot and one host thread, over events generated beforehand
(the source only hands them out), at the typical size (~270 tracksters, ~870 edges)
and a larger one (~540 tracksters, about twice). Variants, all on the same events:

* ``inplace_eager``: the GNN reads the SoA collections in place (graphs off);
* ``inplace_graph``: the same, each slot's device work captured into CUDA graphs
  and replayed (``graphs="on"``; GPU only);
* ``elementwise``: CMS's copy path -- device->host, input tensors filled element by
  element, host->device, one ``.item()`` per edge score, scores copied back;
* ``bulk``: device->host, columns stacked, one host->device copy per tensor, the
  scores back in one copy.

Each variant runs ``warmup`` events, then ``events`` timed ones; the time of an event
is the interval between consecutive event completions (one slot: events run one
after another). Reported: the median ms per event (and quartiles), the host ms per
call of the Score module, and the ratios elementwise / in place. Target: in place
(the faster of eager and graph) at least 10x faster per event than elementwise.

    python benchmarks/gnn.py [--quick] [--backend cuda|cpu_serial] [--events N]

``--quick``: typical events only, few of them, with the untrained initial weights
(no training), on the CPU unless a GPU is present.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import common  # noqa: I001 - puts the repository on sys.path
import torch

import portable as pt
import portable.pipeline as pp
from examples import gnn_pipeline
from examples.gnn.generator import SHAPES, generate
from examples.gnn.model import TracksterLinker, trained
from portable.pipeline import cli

SIZES = ("typical", "large")
VARIANTS = ("inplace_eager", "inplace_graph", "elementwise", "bulk")
TARGET_RATIO = 10.0
#: distinct events generated per size (handed out round robin)
DISTINCT = 64


def parse() -> argparse.Namespace:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--backend", default=None,
                        help="backend to run on (default: cuda if present, else cpu_serial)")
    parser.add_argument("--events", type=int, default=None,
                        help="timed events per variant and size (default 300, quick 10)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="untimed events first (default 30, quick 3)")
    return parser.parse_args()


def job_options(shape: str, variant: str, weights: str | None) -> argparse.Namespace:
    """The job's options for one size and variant, with ``weights`` (a file) or the
    trained ones."""
    parser = cli.parser()
    gnn_pipeline.add_arguments(parser)
    path = variant if variant in ("elementwise", "bulk") else "inplace"
    flags = ["--shape", shape, "--copyPath", path]
    return parser.parse_args(flags + (["--weights", weights] if weights else []))


def measure(backend: str, shape: str, variant: str, events: list[Any], timed: int,
            warmup: int, weights: str | None = None) -> dict[str, Any]:
    """Median ms per event of one variant, and the Score module's host ms per call."""
    modules, _ = gnn_pipeline.build(job_options(shape, variant, weights))
    stamps: list[float] = []
    graphs = "on" if variant == "inplace_graph" else "off"
    report = pp.Process(modules, lambda n: events[n % len(events)], threads=1, streams=1,
                        backends={backend: 1.0}, max_events=warmup + timed, graphs=graphs,
                        on_event=lambda: stamps.append(time.perf_counter())).run()
    if report.failed:
        raise RuntimeError(f"{variant} on {shape}: {report.failures[0]}")
    per_event = [1e3 * (b - a) for a, b in zip(stamps[warmup:], stamps[warmup + 1:])]
    score = report.module_times.get(("Score", backend))
    out = common.summarize(per_event, "ms")
    out["score_ms_per_call"] = (1e3 * score.seconds / score.calls
                                if score is not None and score.calls else None)
    out["graphs"] = report.to_dict()["graphs"].get(backend)
    return out


def plot(record: dict[str, Any], path: Path) -> None:
    """Median ms per event per variant, a group of bars per size (log scale)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        common.note(f"no plot: {err}")
        return
    results = record["results"]
    sizes = [s for s in SIZES if s in results]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(VARIANTS)
    lowest = []
    for i, variant in enumerate(VARIANTS):
        xs, ys = [], []
        for k, size in enumerate(sizes):
            found = results[size].get(variant)
            if found and found.get("median"):
                xs.append(k + (i - (len(VARIANTS) - 1) / 2) * width)
                ys.append(found["median"])
        if xs:
            bars = ax.bar(xs, ys, width, label=variant.replace("_", " "), color=f"C{i}")
            ax.bar_label(bars, labels=[f"{y:.3g}" for y in ys], fontsize=7)
            lowest.append(min(ys))
    if lowest:
        ax.set_ylim(bottom=min(lowest) / 4)
    ax.set_xticks(range(len(sizes)))
    ax.set_xticklabels([f"{s} (~{record['parameters']['nodes'][s]:.0f} tracksters)"
                        for s in sizes])
    ax.set_yscale("log")
    ax.set_ylabel("ms per event (median)")
    ax.set_title(f"GNN merging fragmented particles, {record['device']}", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    print(f"wrote {path}")


def main() -> None:
    options = parse()
    gpu, why = common.gpu_to_measure(skip=options.backend not in (None, "cuda"))
    backend = options.backend or ("cuda" if gpu is not None and not gpu.simulated
                                  else "cpu_serial")
    on_gpu = backend == "cuda" and gpu is not None and not gpu.simulated
    pt.get_device(backend)  # an error now, naming the backend, if it cannot run
    timed = options.events or (10 if options.quick else 300)
    warmup = options.warmup if options.warmup is not None else (3 if options.quick else 30)
    sizes = ("typical",) if options.quick else SIZES
    variants = [v for v in VARIANTS if on_gpu or v != "inplace_graph"]
    device, device_slug = common.record_device(gpu if on_gpu else None)
    if options.quick:
        device_slug += "_quick"
    weights = None
    if options.quick:  # a smoke run needs no trained weights: the initial ones, in a file
        folder = tempfile.mkdtemp(prefix="gnn-bench-")
        weights = str(Path(folder) / "initial.pt")
        torch.manual_seed(0)
        torch.save(TracksterLinker().state_dict(), weights)
    else:
        trained(verbose=True)  # trained and cached before anything is timed
    results: dict[str, dict[str, Any]] = {}
    nodes: dict[str, float] = {}
    for size in sizes:
        events = [generate(n, size) for n in range(DISTINCT)]
        nodes[size] = sum(e.n_nodes for e in events) / len(events)
        results[size] = {}
        for variant in variants:
            try:
                found = measure(backend, size, variant, events, timed, warmup, weights)
            except Exception as err:  # noqa: BLE001 - recorded, the other variants go on
                results[size][variant] = {"median": None, "error": f"{type(err).__name__}: "
                                                                   f"{err}"}
                common.note(f"{size} {variant} failed: {err}")
                continue
            results[size][variant] = found
            print(f"{size:8s} {variant:14s} {found['median']:9.3f} ms/event "
                  f"(Score {common.fmt(found['score_ms_per_call'])} ms/call)", flush=True)
    targets = {}
    for size in sizes:
        r = results[size]
        best = min((r[v]["median"] for v in ("inplace_eager", "inplace_graph")
                    if v in r and r[v]["median"] is not None), default=None)
        r["elementwise_over_inplace"] = common.ratio(r["elementwise"]["median"], best)
        r["bulk_over_inplace"] = common.ratio(r["bulk"]["median"], best)
        if "inplace_graph" in r:
            r["eager_over_graph"] = common.ratio(r["inplace_eager"]["median"],
                                                 r["inplace_graph"]["median"])
        targets[f"{size}_elementwise_over_inplace"] = common.target(
            f"elementwise / in place, ms per event, {size}", r["elementwise_over_inplace"],
            TARGET_RATIO, at_most=False, judged=on_gpu and not options.quick)
    common.print_table("ms per event (median)", ["size", *variants],
                       [[s, *(common.fmt(results[s][v]["median"]) for v in variants)]
                        for s in sizes])
    common.print_targets(targets)
    record = common.make_record("gnn", device, {
        "backend": backend, "events": timed, "warmup": warmup, "sizes": list(sizes),
        "nodes": nodes, "threads": 1, "streams": 1, "gpu_skipped_because": why or None,
        "capacities": {s: [SHAPES[s].capacity, SHAPES[s].edge_capacity] for s in sizes},
        "trained_weights": not options.quick,
    }, options.quick)
    record.update(results=results, targets=targets, targets_met=common.all_met(targets))
    path = common.write_record(options.out, "gnn", device_slug, record)
    plot(record, path.with_suffix(".png"))


if __name__ == "__main__":
    main()
