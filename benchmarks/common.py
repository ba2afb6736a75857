"""The benchmarks' shared core: options, the machine, timing, statistics, records.

Every script sits beside this module, imports it (which also puts the repository
on ``sys.path``), times its variants with :func:`time_host` or :func:`time_events`,
summarizes the samples with :func:`summarize` and writes one JSON record made by
:func:`make_record` with :func:`write_record`. ``benchmarks/report.py`` turns the
records into the README's performance table.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib.metadata as _md
import json
import math
import os
import platform
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import numpy as np

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:  # run from anywhere, even without the editable install
    sys.path.insert(0, str(REPO_ROOT))

DEFAULT_OUT = REPO_ROOT / "benchmarks" / "results"
Variants = dict[str, tuple[Callable[[], Any], Callable[[], Any]]]


# ----------------------------------------------------------------------------- options
def base_parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark takes: ``--out`` and ``--quick``."""
    found = argparse.ArgumentParser(description=description)
    found.add_argument("--out", default=str(DEFAULT_OUT),
                       help="folder for the JSON record (default: benchmarks/results)")
    found.add_argument("--quick", action="store_true",
                       help="small sizes and few repetitions: a smoke run, not a measurement")
    return found


def add_section_options(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--no-gpu`` and ``--no-cpu``, for benchmarks with a GPU and a CPU section."""
    parser.add_argument("--no-gpu", action="store_true", help="skip the GPU section")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU section")
    return parser


# ----------------------------------------------------------------------------- the machine
def simulated() -> bool:
    """Whether numba's CUDA simulator is on: GPU figures then exercise code only."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def versions() -> dict[str, Any]:
    """Versions of Python and of the packages the benchmarks use (None: absent)."""
    def version(*dists: str) -> str | None:
        for dist in dists:
            try:
                return _md.version(dist)
            except _md.PackageNotFoundError:
                continue
        return None
    found: dict[str, Any] = {
        "python": platform.python_version(), "numpy": np.__version__,
        "numba": version("numba"), "numba-cuda": version("numba-cuda"),
        "torch": version("torch"),
        "cupy": version("cupy-cuda13x", "cupy-cuda12x", "cupy"),
        "portable": version("portable"),
    }
    commit = _git_commit()
    if commit:
        found["portable_commit"] = commit
    return found


def _git_commit() -> str | None:
    """The checked-out commit, read from .git without running git."""
    git = REPO_ROOT / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(None, 1)[1]
        if (git / ref).exists():
            return (git / ref).read_text().strip()
        packed = (git / "packed-refs").read_text().splitlines()
        return next((line.split()[0] for line in packed if line.endswith(" " + ref)), None)
    except OSError:
        return None


def cpu_model() -> str:
    """The CPU's model name."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def cpu_count() -> int:
    """Cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def slug(text: str) -> str:
    """A file-name-safe slug: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def cpu_slug() -> str:
    """The host CPU's record slug: model and core count."""
    return f"{slug(cpu_model())}-{cpu_count()}c"


def utc_now() -> str:
    """Now, in UTC, to the second (ISO 8601)."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


class Gpu:
    """The CUDA GPU the benchmarks measure: its portable device, numba's ``cuda``
    module, name and multiprocessor count."""

    def __init__(self, device: Any, cuda: Any) -> None:
        self.device, self.cuda = device, cuda
        self.simulated = simulated()
        self.name = "numba CUDA simulator" if self.simulated else device.name
        self.slug = "cudasim" if self.simulated else slug(self.name)
        self.sm_count = max(1, int(device.limits.multiprocessors))


def gpu_to_measure(skip: bool = False) -> tuple[Gpu | None, str]:
    """The GPU to measure and ``""``, or ``None`` and why its section is skipped."""
    if skip:
        why = "--no-gpu"
    else:
        try:
            import portable as pt
            from numba import cuda
            gpu = Gpu(pt.get_device("cuda"), cuda)
            if gpu.simulated:
                note("numba CUDA simulator: GPU figures exercise the code only")
            return gpu, ""
        except Exception as err:  # noqa: BLE001 - any failure: no GPU section
            why = " ".join(str(err).split()) or type(err).__name__
    note(f"GPU section skipped: {why}")
    return None, why


def record_device(gpu: Gpu | None) -> tuple[str, str]:
    """The record's device name and file-name slug: the GPU's, else the host CPU's."""
    return (gpu.name, gpu.slug) if gpu is not None else (f"{cpu_model()} (CPU)", cpu_slug())


def gpu_library(name: str) -> tuple[Any, str | None]:
    """``(torch or cupy, None)`` when it imports and sees a CUDA GPU, else ``(None, why)``."""
    if simulated():
        return None, f"the numba CUDA simulator is on ({name} would use the real GPU)"
    try:
        module = __import__(name)
        sees = (module.cuda.is_available() if name == "torch"
                else module.cuda.runtime.getDeviceCount() > 0)
    except Exception as err:  # noqa: BLE001 - optional package: any failure means absent
        return None, f"{name} unusable ({type(err).__name__}: {err})"
    return (module, None) if sees else (None, f"{name} sees no CUDA GPU")


# ----------------------------------------------------------------------------- timing
def time_host(variants: Variants, *, repeat: int, warmup: int, inner: int = 1
              ) -> dict[str, list[float]]:
    """Host seconds per call of each ``{name: (run, sync)}``: ``warmup`` calls, then
    ``repeat`` samples of ``inner`` calls and one ``sync()``, the variants sampled
    round-robin so that drifts of the machine hit them alike."""
    for run, sync in variants.values():
        for _ in range(warmup):
            run()
        sync()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(repeat):
        for name, (run, sync) in variants.items():
            start = time.perf_counter()
            for _ in range(inner):
                run()
            sync()
            samples[name].append((time.perf_counter() - start) / inner)
    return samples


def host_us(variants: Variants, *, repeat: int, warmup: int, inner: int = 1
            ) -> dict[str, dict[str, Any]]:
    """:func:`time_host`, summarized in microseconds per call."""
    samples = time_host(variants, repeat=repeat, warmup=warmup, inner=inner)
    return {name: summarize([s * 1e6 for s in xs], "us") for name, xs in samples.items()}


class Events:
    """CUDA events of one library (numba, torch or CuPy) on one stream."""

    def __init__(self, library: str, module: Any, stream: Any = None) -> None:
        self.library, self.module, self.stream = library, module, stream

    def record(self) -> Any:
        if self.library == "numba":
            event = self.module.event()
            event.record(self.stream)
        elif self.library == "torch":
            event = self.module.cuda.Event(enable_timing=True)
            event.record()
        else:
            event = self.module.cuda.Event()
            event.record(self.stream)
        return event

    def elapsed_ms(self, start: Any, end: Any) -> float:
        end.synchronize()
        if self.library == "cupy":
            return float(self.module.cuda.get_elapsed_time(start, end))
        return float(start.elapsed_time(end))

    def synchronize(self) -> None:
        if self.library == "torch":
            self.module.cuda.synchronize()
        else:
            self.stream.synchronize()


def time_events(runs: dict[str, Callable[[int], Any]], events: Events, *, repeat: int,
                warmup: int) -> dict[str, dict[str, Any]]:
    """Device milliseconds of one ``run(k)`` each between two CUDA events, variants
    round-robin. ``run(k)`` enqueues one unit of work on input set ``k``; an untimed
    ``run`` goes first each time, so the GPU is busy while the host records the start
    event and the timed work: the host's launch overhead stays out."""
    for run in runs.values():
        for k in range(warmup):
            run(k)
    events.synchronize()
    samples: dict[str, list[float]] = {name: [] for name in runs}
    for r in range(repeat):
        for name, run in runs.items():
            run(r + 1)
            start = events.record()
            run(r)
            end = events.record()
            samples[name].append(events.elapsed_ms(start, end))
    events.synchronize()
    return {name: summarize(xs, "ms") for name, xs in samples.items()}


# ----------------------------------------------------------------------------- statistics
def summarize(samples: Sequence[float], unit: str) -> dict[str, Any]:
    """Median, min, max, quartiles and spread (IQR over median, %) of ``samples``."""
    xs = sorted(float(x) for x in samples)
    if not xs:
        return {"unit": unit, "n": 0, "median": None, "samples": []}
    med = statistics.median(xs)
    p25, p75 = (statistics.quantiles(xs, n=4, method="inclusive")[::2] if len(xs) >= 4
                else (xs[0], xs[-1]))
    return {"unit": unit, "n": len(xs), "median": med, "min": xs[0], "max": xs[-1],
            "p25": p25, "p75": p75, "spread_pct": 100 * (p75 - p25) / med if med else None,
            "samples": xs}


def rate(times: dict[str, Any], amount: float, scale: float, unit: str) -> dict[str, Any]:
    """The rate of moving ``amount`` (bytes, say) per timed run, in ``unit`` (``scale``
    per second), from a time summary in ms: the median's rate and the best."""
    def of(ms: float | None) -> float | None:
        return amount / (ms * 1e-3) / scale if ms else None
    return {"unit": unit, "median": of(times["median"]), "max": of(times.get("min"))}


def ratio(num: float | None, den: float | None) -> float | None:
    """``num / den``, or None when either is missing."""
    return num / den if num is not None and den else None


def target(what: str, value: float | None, limit: float, at_most: bool = True,
           judged: bool = True) -> dict[str, Any]:
    """A target: ``value <= limit`` (or ``>=``), ``met`` None when not judged."""
    met = None if value is None or not judged else (value <= limit if at_most
                                                      else value >= limit)
    return {"what": what, "target": f"{'<=' if at_most else '>='} {limit}", "value": value,
            "met": met}


def all_met(targets: dict[str, dict[str, Any]]) -> bool | None:
    """Whether every target is met; None when there is none or one was not judged."""
    mets = [t.get("met") for t in targets.values()]
    return None if not mets or None in mets else all(mets)


# ----------------------------------------------------------------------------- output
def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: numbers to ``digits`` significant figures, None as ``-``."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value == 0 or 1e-3 <= abs(value) < 1e6:
            return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:,.{max(digits - 2, 1)}f}"
        return f"{value:.{digits}e}"
    return str(value)


def print_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A plain fixed-width table on stdout."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [max([len(h)] + [len(row[i]) for row in cells]) for i, h in enumerate(headers)]
    print(f"\n== {title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))))
    sys.stdout.flush()


def print_summaries(title: str, results: dict[str, dict[str, Any]]) -> None:
    """A table of summaries: median, min and spread per variant."""
    unit = next(iter(results.values()), {}).get("unit", "")
    print_table(title, ["variant", f"median {unit}", f"min {unit}", "IQR %"],
                [(name, s["median"], s.get("min"), s.get("spread_pct"))
                 for name, s in results.items()])


def fmt_ratio(value: float | None) -> str:
    """A ratio with 3 decimals, ``-`` when there is none."""
    return "-" if value is None else f"{value:.3f}"


def verdict(met: bool | None) -> str:
    """How a target came out: ``met``, ``NOT met`` or ``n/a`` (not judged)."""
    return "n/a" if met is None else "met" if met else "NOT met"


def print_targets(targets: dict[str, dict[str, Any]]) -> None:
    for name, t in targets.items():
        print(f"target {name}: {fmt(t['value'])} {t['target']} -> {verdict(t['met'])}")


def note(message: str) -> None:
    print(f"[note] {message}", flush=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    return value if isinstance(value, (str, int)) or value is None else str(value)


def make_record(benchmark: str, device: str, parameters: dict[str, Any],
                quick: bool) -> dict[str, Any]:
    """The common head of a benchmark record; the script adds its figures."""
    return {"benchmark": benchmark, "device": device, "host_cpu": cpu_model(),
            "host_cores": cpu_count(), "date": utc_now(), "versions": versions(),
            "platform": platform.platform(), "quick": quick, "cuda_simulator": simulated(),
            "command": " ".join([Path(sys.executable).name] + sys.argv),
            "parameters": parameters}


def write_record(out_dir: str | os.PathLike[str], benchmark: str, device_slug: str,
                 record: dict[str, Any]) -> Path:
    """Write ``record`` as ``<out_dir>/<benchmark>_<device_slug>.json``; return the path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{benchmark}_{device_slug}.json"
    path.write_text(json.dumps(_jsonable(record), indent=2) + "\n", encoding="utf-8")
    print(f"\nwrote {path}", flush=True)
    return path
