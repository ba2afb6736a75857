"""Events/s of the calorimeter clustering pipeline vs host threads and event slots.

The job is ``examples/calo_pipeline.py``'s (``build(options)``: Upload, Clue,
Features, Score, Select), run by ``portable.pipeline.Process`` for every point of
host threads (``--threads-list``, capped at the cores this process may use) x
streams (``--streams-list``), per backend that runs here (cpu_serial, cpu_threads,
cuda), at two event sizes (``small`` ~1k hits, ``large`` ~10k hits), with graph
mode off and on (``--graphs-list``; on only where the backend can capture CUDA
graphs: a real GPU, not the simulator or a CPU backend). Each point runs
``--warmup`` untimed events (default 4 x streams, 8 at least; they include each
slot's warm-up and capture events in graph mode), then ``--seconds`` of events
(or exactly ``--events``), and records events/s, the CPU usage per thread
(process CPU time / (wall time x threads)), the host time per event (process CPU
time / events, and each module's share: where the host time goes), and the
share of events that fell back to eager mode (more hits than the capacity).

The source hands out a pool of ``--pool`` events generated before any timing
(event ``n`` is pool entry ``n % pool``), so the generator's time is not counted.
Before the points of a backend and size, every pool event runs once untimed,
with and without the caching allocator, to compile the kernels.

The framework takes every per-event buffer from the device's caching allocator,
named in one place, ``portable.pipeline.memory.allocator_for``; ``Process`` has no
option to switch it off. With the allocator *off* that function is replaced, for
the run only, by one returning :class:`PlainAllocator` (``pt.alloc_buffer``, or
``pt.alloc_host_buffer(pinned=True)`` for pinned memory, for every request, nothing
cached). Allocator off runs at (1 thread, 1 stream) and at the largest threads
and streams measured.

The mixed job (``--mixed``, default ``cuda:4:2,cpu_serial:2:2``: backend:streams:
threads per part) runs every part's slots together (weights in proportion to the
streams, threads summed) and every part alone; its events/s is compared with the
sum of the parts'.

Targets: cpu_serial speed-up (best over streams, vs 1 thread) >= 0.8 x threads up
to the core count; on a GPU, more events/s with 4 streams than with 1 at ``large``;
the mixed job >= 0.9 x the sum of its parts; on a GPU, graph mode >= 10 x the
events/s of eager mode at ``large`` (each the best over threads x streams).

``--record-name`` names the record (default ``pipeline``), e.g. for a run of a
part of the points that should not replace the full record.

Prints a table per backend and size, writes ``pipeline_<device>.json`` under
``--out`` (default ``benchmarks/results``) and a plot beside it (events/s vs
threads, one line per streams value, a panel per backend x size).

    python benchmarks/pipeline.py --quick            # smoke run, < 1 minute on 2 cores
    python benchmarks/pipeline.py --threads-list 1,2,4,8,16 --seconds 1
    python benchmarks/pipeline.py --backends cuda --record-name pipeline_graphs
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

import common  # noqa: I001 - puts the repository on sys.path
import numpy as np

import portable as pt
import portable.pipeline as pp
from examples import calo_pipeline
from examples.calo.generator import Event
from portable.allocator import ALIGNMENT
from portable.memory import address_of
from portable.pipeline import cli, memory

BACKENDS = ("cpu_serial", "cpu_threads", "cuda")
GRAPHS = ("off", "on")
SHAPES = ("small", "large")
THREADS = (1, 2, 4, 8, 16)
STREAMS = (1, 2, 4, 8)
#: cpu_serial speed-up at T threads >= SCALING_TARGET x T
SCALING_TARGET = 0.8
#: the mixed job's events/s >= MIXED_TARGET x the sum of its parts'
MIXED_TARGET = 0.9
#: graph mode's events/s >= GRAPHS_TARGET x eager mode's at large, on a GPU
GRAPHS_TARGET = 10.0
ALLOCATOR_SWITCH = ("allocator off: portable.pipeline.memory.allocator_for replaced for the "
                    "run by benchmarks/pipeline.py's PlainAllocator (pt.alloc_buffer, "
                    "pt.alloc_host_buffer(pinned=True) for pinned memory; nothing cached); "
                    "Process has no option for it")


# ----------------------------------------------------------------------------- the job
@dataclass
class Job:
    """The pipeline's modules for one event size, and a pool of its events."""

    shape: str
    modules: list[Any]
    pool: list[Event]

    def source(self, number: int) -> Event:
        """Event ``number``: pool entry ``number % len(pool)``."""
        return self.pool[number % len(self.pool)]

    @property
    def mean_hits(self) -> float:
        return float(np.mean([event.n_hits for event in self.pool]))


def make_job(shape: str, threshold: float, pool: int) -> Job:
    """The modules ``calo_pipeline.build`` gives for ``--shape shape``, and ``pool``
    of the events its source gives."""
    parser = cli.parser()
    calo_pipeline.add_arguments(parser)
    options = parser.parse_args(["--shape", shape, "--threshold", str(threshold)])
    modules, source = calo_pipeline.build(options)
    return Job(shape, list(modules), [source(n) for n in range(pool)])


class PlainAllocator:
    """The framework's allocator interface without a cache: every ``alloc`` gets new
    memory (``pt.alloc_buffer``, or pinned ``pt.alloc_host_buffer``), 256-byte aligned
    as the caching allocator's blocks are; ``free`` drops it.

    Example::

        >>> import portable as pt
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> a = PlainAllocator(q.device, pinned=False).alloc(q, (2, 3), np.float32)
        >>> a.shape, a.ctypes.data % ALIGNMENT
        ((2, 3), 0)
    """

    def __init__(self, device: pt.Device, pinned: bool) -> None:
        self.device, self.pinned = device, pinned

    def alloc(self, queue: pt.Queue, shape: int | Sequence[int], dtype: Any) -> Any:
        dtype = np.dtype(dtype)
        dims = (int(shape),) if np.ndim(shape) == 0 else tuple(int(d) for d in shape)
        nbytes = math.prod(dims) * dtype.itemsize
        strides = tuple(math.prod(dims[i + 1:]) * dtype.itemsize for i in range(len(dims)))
        if self.pinned:
            raw = pt.alloc_host_buffer(nbytes + ALIGNMENT, np.uint8, pinned=True)
            start = -raw.ctypes.data % ALIGNMENT
            return np.ndarray(dims, dtype, buffer=raw, offset=start, strides=strides)
        raw = pt.alloc_buffer(self.device, nbytes + ALIGNMENT, np.uint8)
        start = -address_of(raw) % ALIGNMENT
        return self.device.backend.strided_view(raw, start, dims, strides, dtype)

    def free(self, array: Any, queue: pt.Queue) -> None:
        """Nothing to give back: the memory goes with the array's last reference."""


@contextlib.contextmanager
def allocator(caching: bool) -> Iterator[None]:
    """The framework's caching allocator, or (``caching=False``) :class:`PlainAllocator`
    in its place while the block runs."""
    if caching:
        yield
        return
    original = memory.allocator_for
    memory.allocator_for = PlainAllocator
    try:
        yield
    finally:
        memory.allocator_for = original


@dataclass
class Point:
    """One measured configuration."""

    backend: str
    shape: str
    threads: int
    streams: int
    caching_allocator: bool
    graphs: str
    events: int
    wall_s: float
    events_per_s: float
    cpu_usage_pct: float
    host_us_per_event: float
    module_us_per_event: dict[str, float]
    replayed_share: float
    fallback_share: float
    events_per_backend: dict[str, int]


def measure(job: Job, backends: dict[str, float], threads: int, streams: int,
            run: dict[str, Any], caching: bool = True, graphs: str = "off") -> Point:
    """Run ``job`` once with the given threads, streams, backend weights and graph
    mode: ``run['warmup']`` untimed events, then ``run['events']`` or ``run['seconds']``."""
    events = run["events"]
    with allocator(caching):
        report = pp.Process(job.modules, job.source, threads=threads, streams=streams,
                            backends=backends, max_events=events,
                            run_for=None if events else run["seconds"],
                            warmup_events=run["warmup"] or max(8, 4 * streams),
                            stop_on_error=True, graphs=graphs).run()
    name = next(iter(backends)) if len(backends) == 1 else "mixed"
    done = max(report.events, 1)
    modules: dict[str, float] = {}
    for (module, _), row in report.module_times.items():
        modules[module] = modules.get(module, 0.0) + row.seconds * 1e6 / done
    stats = report.graphs.values()
    return Point(name, job.shape, threads, streams, caching, graphs, report.events,
                 report.wall_s, report.throughput, report.cpu_usage,
                 report.cpu_s * 1e6 / done, modules,
                 sum(g.replayed for g in stats) / done, sum(g.fallbacks for g in stats) / done,
                 dict(report.events_per_backend))


def compile_kernels(job: Job, backend: str) -> None:
    """Run every pool event once on ``backend``, with and without the caching
    allocator, untimed (compiles what the job launches)."""
    for caching in (True, False):
        with allocator(caching):
            pp.Process(job.modules, job.source, threads=1, streams=1,
                       backends={backend: 1.0}, max_events=len(job.pool),
                       stop_on_error=True).run()


# ----------------------------------------------------------------------------- targets
def best(points: list[Point], **where: Any) -> float | None:
    """The highest events/s among the caching-allocator points matching ``where``
    (graph mode off unless ``where`` names it)."""
    where.setdefault("graphs", "off")
    rates = [p.events_per_s for p in points if p.caching_allocator and
             all(getattr(p, k) == v for k, v in where.items())]
    return max(rates) if rates else None


def scaling_target(points: list[Point], shape: str, cores: int) -> dict[str, Any]:
    """cpu_serial: best events/s over streams at T threads / at 1 thread, T <= cores."""
    base = best(points, backend="cpu_serial", shape=shape, threads=1)
    threads = sorted({p.threads for p in points
                      if p.backend == "cpu_serial" and p.shape == shape and p.threads > 1})
    speedups = {t: best(points, backend="cpu_serial", shape=shape, threads=t) / base
                for t in threads if t <= cores} if base else {}
    return {"what": f"cpu_serial at {shape}: events/s at T threads (best over streams) / "
                    f"at 1 thread, for 1 < T <= {cores} cores",
            "target": f">= {SCALING_TARGET} x T", "speedups": speedups,
            "met": all(s >= SCALING_TARGET * t for t, s in speedups.items())
            if speedups else None}


def streams_target(points: list[Point], simulated: bool) -> dict[str, Any]:
    """cuda at large: best events/s with 4 streams over that with 1 (best over threads)."""
    four = best(points, backend="cuda", shape="large", streams=4)
    one = best(points, backend="cuda", shape="large", streams=1)
    ratio = four / one if four and one else None
    return {"what": "cuda at large: events/s with 4 streams / with 1 (each the best over "
                    "threads)", "target": "> 1", "ratio": ratio,
            "met": None if ratio is None or simulated else ratio > 1}


def graphs_target(points: list[Point], simulated: bool) -> dict[str, Any]:
    """cuda at large: best events/s with graphs on over the best with graphs off."""
    on = best(points, backend="cuda", shape="large", graphs="on")
    off = best(points, backend="cuda", shape="large", graphs="off")
    ratio = on / off if on and off else None
    return {"what": "cuda at large: events/s with graphs on / off (each the best over "
                    "threads x streams)", "target": f">= {GRAPHS_TARGET}", "ratio": ratio,
            "met": None if ratio is None or simulated else ratio >= GRAPHS_TARGET}


def graph_modes(backend: str, wanted: list[str], can_capture: bool) -> list[str]:
    """The graph modes of ``wanted`` to measure on ``backend``: ``on`` only where
    graphs can be captured (a real GPU).

    Example::

        >>> graph_modes("cpu_serial", ["off", "on"], True), graph_modes("cuda", ["on"], True)
        (['off'], ['on'])
    """
    return [g for g in wanted if g == "off" or (backend == "cuda" and can_capture)]


# ----------------------------------------------------------------------------- mixed job
def parse_mixed(text: str) -> list[tuple[str, int, int]]:
    """``backend:streams:threads`` parts, comma-separated.

    Example::

        >>> parse_mixed("cuda:4:2,cpu_serial:2:2")
        [('cuda', 4, 2), ('cpu_serial', 2, 2)]
    """
    parts = []
    for item in text.split(","):
        backend, streams, threads = item.split(":")
        parts.append((backend.strip(), int(streams), int(threads)))
    return parts


def run_mixed(job: Job, parts: list[tuple[str, int, int]], cores: int,
              run: dict[str, Any], simulated: bool) -> dict[str, Any]:
    """The job with every part's slots together, and each part alone."""
    alone = [measure(job, {b: 1.0}, min(t, cores), s, run) for b, s, t in parts]
    streams = sum(s for _, s, _ in parts)
    threads = min(cores, sum(t for _, _, t in parts))
    mixed = measure(job, {b: s / streams for b, s, _ in parts}, threads, streams, run)
    total = sum(p.events_per_s for p in alone)
    ratio = mixed.events_per_s / total if total else None
    return {"shape": job.shape, "parts": [asdict(p) for p in alone], "mixed": asdict(mixed),
            "sum_of_parts_events_per_s": total, "ratio": ratio,
            "target": {"what": f"mixed job at {job.shape} / sum of its parts alone",
                       "target": f">= {MIXED_TARGET}", "ratio": ratio,
                       "met": None if ratio is None or simulated else ratio >= MIXED_TARGET}}


# ----------------------------------------------------------------------------- output
def print_points(points: list[Point], backend: str, shape: str, hits: float) -> None:
    """Events/s (host us per event) per threads x streams; allocator off and graphs
    on beside; the share of events that fell back, where any did."""
    mine = {(p.threads, p.streams, p.caching_allocator, p.graphs): p for p in points
            if p.backend == backend and p.shape == shape}
    columns = sorted({k[1:] for k in mine}, key=lambda c: (c[0], not c[1], c[2]))
    headers = ["threads"] + [f"{s} streams" + ("" if caching else ", allocator off") +
                             (", graphs" if graphs == "on" else "")
                             for s, caching, graphs in columns]
    rows = []
    for t in sorted({k[0] for k in mine}):
        found = [mine.get((t, *column)) for column in columns]
        rows.append([t] + [f"{p.events_per_s:,.1f} ({p.host_us_per_event:,.0f} us)" if p
                           else "-" for p in found])
    common.print_table(f"{backend}, {shape} (~{hits:.0f} hits): events/s (host us per "
                       f"event)", headers, rows)
    fell = max((p.fallback_share for p in mine.values()), default=0.0)
    if fell:
        print(f"  at most {fell:.1%} of a point's events fell back to eager mode "
              f"(over capacity)")


def plot(record: dict[str, Any], path: Path) -> None:
    """Events/s vs threads, one line per streams value, a panel per backend x size;
    allocator off as crosses; cpu_serial's target as a dotted line."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as err:
        common.note(f"no plot: {err}")
        return

    points = record["points"]
    backends = [b for b in BACKENDS if any(p["backend"] == b for p in points)]
    shapes = [s for s in SHAPES if any(p["shape"] == s for p in points)]
    if not backends:
        return
    fig, axes = plt.subplots(len(backends), len(shapes), squeeze=False,
                             figsize=(5 * len(shapes), 3.6 * len(backends)))
    for row, backend in enumerate(backends):
        for col, shape in enumerate(shapes):
            ax = axes[row][col]
            mine = [p for p in points if p["backend"] == backend and p["shape"] == shape]
            for i, s in enumerate(sorted({p["streams"] for p in mine})):
                for graphs, style in (("off", "-"), ("on", "--")):
                    line = sorted((p["threads"], p["events_per_s"]) for p in mine
                                  if p["streams"] == s and p["caching_allocator"] and
                                  p["graphs"] == graphs)
                    if line:
                        ax.plot(*zip(*line), style, marker="o", color=f"C{i}",
                                label=f"{s} streams" + (", graphs" if graphs == "on" else ""))
                off = [(p["threads"], p["events_per_s"]) for p in mine
                       if p["streams"] == s and not p["caching_allocator"]]
                if off:
                    ax.plot(*zip(*off), "x", color=f"C{i}", markersize=9,
                            label=f"{s} streams, allocator off")
            base = [p["events_per_s"] for p in mine if p["threads"] == 1 and
                    p["caching_allocator"] and p["graphs"] == "off"]
            if backend == "cpu_serial" and base:
                threads = sorted({p["threads"] for p in mine})
                ax.plot(threads, [SCALING_TARGET * t * max(base) for t in threads], ":",
                        color="grey", label=f"target {SCALING_TARGET} x T")
            ax.set_xscale("log", base=2)
            ax.set_xticks(sorted({p["threads"] for p in mine}))
            ax.set_xticklabels([str(t) for t in sorted({p["threads"] for p in mine})])
            if any(p["graphs"] == "on" for p in mine):
                ax.set_yscale("log")
            else:
                ax.set_ylim(bottom=0)
            ax.set_title(f"{backend}, {shape} (~{record['event_hits'][shape]:.0f} hits)")
            ax.set_xlabel("host threads")
            ax.set_ylabel("events/s")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    fig.suptitle(f"calorimeter pipeline on {record['device']} ({record['host_cores']} cores)",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"wrote {path}", flush=True)


# ----------------------------------------------------------------------------- main
def capped(values: str, most: int) -> list[int]:
    """The comma-separated integers ``values`` that are <= ``most`` (1 at least)."""
    found = sorted({int(v) for v in values.split(",") if v.strip()})
    return [v for v in found if v <= most] or [1]


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--threads-list", default=None,
                        help="host threads to measure, capped at the cores (default "
                             "1,2,4,8,16; quick 1,2)")
    parser.add_argument("--streams-list", default=None,
                        help="event slots to measure (default 1,2,4,8; quick 1,2)")
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="backends to measure, those that run here (default all)")
    parser.add_argument("--graphs-list", default=",".join(GRAPHS),
                        help="graph modes to measure, off and/or on (on only where graphs "
                             "can be captured; default off,on)")
    parser.add_argument("--record-name", default="pipeline",
                        help="the record's name: <name>_<device>.json (default pipeline)")
    parser.add_argument("--shapes", default=",".join(SHAPES),
                        help="event sizes: small ~1k hits, large ~10k (default both)")
    parser.add_argument("--seconds", type=float, default=None,
                        help="timed seconds per point (default 1.0; quick 0.2)")
    parser.add_argument("--events", type=int, default=None,
                        help="timed events per point instead of --seconds")
    parser.add_argument("--warmup", type=int, default=0,
                        help="untimed events before each point (default 4 x streams, 8 at "
                             "least)")
    parser.add_argument("--pool", type=int, default=None,
                        help="distinct events generated per size (default 16; quick 4)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="score threshold of the selection (default 0.5)")
    parser.add_argument("--mixed", default="cuda:4:2,cpu_serial:2:2",
                        help="the mixed job's parts, backend:streams:threads,... (default "
                             "cuda:4:2,cpu_serial:2:2; skipped when a backend cannot run, "
                             "or given as '')")
    common.add_section_options(parser)
    args = parser.parse_args(argv)

    cores = common.cpu_count()
    threads_list = capped(args.threads_list or ("1,2" if args.quick else
                                                ",".join(map(str, THREADS))), cores)
    streams_list = capped(args.streams_list or ("1,2" if args.quick else
                                                ",".join(map(str, STREAMS))), 1 << 30)
    run = {"seconds": args.seconds or (0.2 if args.quick else 1.0),
           "events": args.events, "warmup": args.warmup}
    gpu, why = common.gpu_to_measure(args.no_gpu)
    simulated = gpu is not None and gpu.simulated
    wanted = [b.strip() for b in args.backends.split(",")]
    backends = [b for b in BACKENDS if b in wanted and
                (gpu is not None if b == "cuda" else not args.no_cpu)]
    shapes = [s.strip() for s in args.shapes.split(",")]
    graphs_wanted = [g.strip() for g in args.graphs_list.split(",") if g.strip()]
    unknown = sorted(set(graphs_wanted) - set(GRAPHS))
    if unknown:
        parser.error(f"--graphs-list: unknown modes {unknown}; give off and/or on")
    can_capture = gpu is not None and not simulated
    mixed_parts = parse_mixed(args.mixed) if args.mixed else []

    device, dslug = common.record_device(gpu)
    params = {"threads": threads_list, "streams": streams_list, "backends": backends,
              "shapes": shapes, "seconds_per_point": None if args.events else run["seconds"],
              "events_per_point": args.events,
              "warmup_events": args.warmup or "4 x streams, 8 at least", "pool_events": None,
              "threshold": args.threshold,
              "mixed": f"{args.mixed} (graphs off)" if args.mixed else "none",
              "graphs": graphs_wanted,
              "allocator_switch": ALLOCATOR_SWITCH,
              "source": "a pool of events generated before timing, event n = pool[n % pool]"}
    record = common.make_record("pipeline", device, params, args.quick)
    if gpu is None:
        record["gpu_skipped"] = why
    jobs = {s: make_job(s, args.threshold, args.pool or (4 if args.quick else 16))
            for s in shapes}
    params["pool_events"] = len(next(iter(jobs.values())).pool)
    record["event_hits"] = {s: job.mean_hits for s, job in jobs.items()}

    points: list[Point] = []
    for backend in backends:
        for shape, job in jobs.items():
            compile_kernels(job, backend)
            sim_threads = [1] if backend == "cuda" and simulated else threads_list
            for graphs in graph_modes(backend, graphs_wanted, can_capture):
                for t in sim_threads:
                    for s in streams_list:
                        points.append(measure(job, {backend: 1.0}, t, s, run, graphs=graphs))
            for t, s in sorted({(1, 1), (max(sim_threads), max(streams_list))}):
                points.append(measure(job, {backend: 1.0}, t, s, run, caching=False))
            print_points(points, backend, shape, job.mean_hits)
    record["points"] = [asdict(p) for p in points]

    targets: dict[str, Any] = {}
    for shape in shapes:
        if "cpu_serial" in backends:
            targets[f"cpu_serial_scaling_{shape}"] = scaling_target(points, shape, cores)
    if "cuda" in backends and "large" in shapes:
        targets["cuda_4_streams_over_1_large"] = streams_target(points, simulated)
        if "on" in graph_modes("cuda", graphs_wanted, can_capture):
            targets["cuda_graphs_over_eager_large"] = graphs_target(points, simulated)
    runnable = {b.name for b in pt.available_backends()
                if b.name != "cuda" or (gpu is not None and not simulated)}
    missing = sorted({b for b, _, _ in mixed_parts} - runnable)
    if not mixed_parts:
        record["mixed"] = {"skipped": "--mixed ''"}
    elif missing:
        why_not = f"backends {missing} cannot run here (or only in the CUDA simulator)"
        record["mixed"] = {"skipped": why_not}
        common.note(f"mixed job skipped: {why_not}")
    else:
        record["mixed"] = [run_mixed(job, mixed_parts, cores, run, simulated)
                           for job in jobs.values()]
        for m in record["mixed"]:
            targets[f"mixed_{m['shape']}"] = m["target"]
            alone = ", ".join(f"{p['backend']} {p['events_per_s']:,.1f}" for p in m["parts"])
            print(f"mixed {args.mixed} at {m['shape']}: {m['mixed']['events_per_s']:,.1f} "
                  f"events/s; parts alone: {alone}; ratio to their sum "
                  f"{common.fmt_ratio(m['ratio'])}")
    record["targets"] = targets
    record["targets_met"] = common.all_met(targets)
    print()
    for name, t in targets.items():
        figure = t.get("ratio", t.get("speedups"))
        print(f"target {name}: {t['target']}: {figure} -> {common.verdict(t['met'])}")
    path = common.write_record(args.out, args.record_name, dslug, record)
    plot(record, path.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
