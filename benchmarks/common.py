"""Shared helpers for the benchmarks: environment, timing, statistics, JSON records.

Every benchmark script imports this module (it sits beside them, so running
``python benchmarks/<script>.py`` from the repository root finds it) and
writes one JSON record with :func:`write_record`.

Optional packages (numba-cuda, torch, CuPy) are imported lazily and guarded:
on a machine without a GPU the helpers say so instead of failing.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import importlib
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


# ----------------------------------------------------------------------------- args
def base_parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the options every benchmark takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--out", default=str(DEFAULT_OUT),
                        help="folder for the JSON record (default: benchmarks/results)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and few repetitions: a smoke run, not a measurement")
    return parser


def add_section_options(parser: argparse.ArgumentParser) -> None:
    """``--no-gpu`` and ``--no-cpu``, for the benchmarks with a GPU and a CPU section."""
    parser.add_argument("--no-gpu", action="store_true", help="skip the GPU section")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU section")


# ----------------------------------------------------------------------------- environment
def simulated() -> bool:
    """Whether numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1): GPU timings are meaningless."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _version(dist: str, module: str | None = None) -> str | None:
    try:
        return _md.version(dist)
    except _md.PackageNotFoundError:
        pass
    if module is not None:
        try:
            return str(getattr(importlib.import_module(module), "__version__", None))
        except Exception:  # noqa: BLE001 - optional package, any failure means "absent"
            return None
    return None


def versions() -> dict[str, Any]:
    """Versions of Python and of the packages the benchmarks may use (None: absent)."""
    found: dict[str, Any] = {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": _version("numba", "numba"),
        "numba-cuda": _version("numba-cuda"),
        "torch": _version("torch", "torch"),
        "cupy": None,
        "portable": None,
    }
    for dist in ("cupy-cuda13x", "cupy-cuda12x", "cupy-cuda11x", "cupy"):
        v = _version(dist)
        if v is not None:
            found["cupy"] = v
            break
    try:
        import portable
        found["portable"] = getattr(portable, "__version__", None)
    except Exception:  # noqa: BLE001
        pass
    commit = git_commit()
    if commit:
        found["portable_commit"] = commit
    return found


def git_commit() -> str | None:
    """The checked-out commit, read from .git without running git (None if unknown)."""
    git = REPO_ROOT / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref:"):
            return head
        ref = head.split(None, 1)[1]
        path = git / ref
        if path.exists():
            return path.read_text().strip()
        packed = git / "packed-refs"
        if packed.exists():
            for line in packed.read_text().splitlines():
                if line.endswith(" " + ref):
                    return line.split()[0]
    except OSError:
        return None
    return None


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or platform's guess elsewhere)."""
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
    """A file-name-safe lower-case slug: 'NVIDIA H100 80GB HBM3' -> 'nvidia-h100-80gb-hbm3'."""
    s = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return s or "unknown"


def cpu_slug() -> str:
    return f"{slug(cpu_model())}-{cpu_count()}c"


def utc_now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


# ----------------------------------------------------------------------------- GPU probing
class GpuInfo:
    """What the benchmarks need to know about the CUDA side; ``ok`` False means skip."""

    def __init__(self) -> None:
        self.ok = False
        self.reason = ""
        self.simulated = simulated()
        self.name: str | None = None
        self.sm_count = 0
        self.max_threads_per_sm = 2048
        self.l2_bytes = 0
        self.device: Any = None  # portable Device
        self.cuda: Any = None  # numba.cuda module
        try:
            import portable as pt
            backend = pt.all_backends()
            cuda_backend = next((b for b in backend if b.name == "cuda"), None)
            if cuda_backend is None:
                self.reason = "portable has no cuda backend registered"
                return
            if not cuda_backend.available:
                self.reason = f"cuda backend unavailable: {cuda_backend.reason}"
                return
            from numba import cuda
            self.cuda = cuda
            self.device = pt.get_device("cuda")
            dev = cuda.get_current_device()
            name = getattr(dev, "name", None)
            if isinstance(name, bytes):
                name = name.decode(errors="replace")
            if self.simulated:
                self.name = "numba CUDA simulator"
            else:
                self.name = str(name) if name else self.device.name
            self.sm_count = max(1, int(self.device.limits.multiprocessors))
            self.max_threads_per_sm = int(_dev_attr(dev, "MAX_THREADS_PER_MULTIPROCESSOR", 2048))
            self.l2_bytes = int(_dev_attr(dev, "L2_CACHE_SIZE", 0))
            self.ok = True
        except Exception as err:  # noqa: BLE001 - any failure: no GPU section
            self.ok = False
            self.reason = f"{type(err).__name__}: {err}"

    @property
    def slug(self) -> str:
        return "cudasim" if self.simulated else slug(self.name or "cuda")


def gpu_to_measure(skip: bool) -> tuple[GpuInfo | None, str]:
    """The usable GPU and ``""``, or None and why its section is skipped (``--no-gpu``
    when ``skip``, else the probe's reason); notes the skip, or that figures taken in
    the simulator are not measurements."""
    gpu = None if skip else GpuInfo()
    if gpu is None or not gpu.ok:
        why = "--no-gpu" if gpu is None else gpu.reason
        note(f"GPU section skipped: {why}")
        return None, why
    if gpu.simulated:
        note("numba CUDA simulator: GPU figures exercise the code only, they are not "
             "measurements")
    return gpu, ""


def record_device(gpu: GpuInfo | None) -> tuple[str, str]:
    """The record's device name and file-name slug: the GPU's, else the host CPU's."""
    if gpu is None:
        return f"{cpu_model()} (CPU)", cpu_slug()
    return str(gpu.name), gpu.slug


def _dev_attr(dev: Any, name: str, default: int) -> int:
    try:
        return int(getattr(dev, name))
    except Exception:  # noqa: BLE001 - simulator devices lack most attributes
        return default


def torch_cuda() -> tuple[Any, str | None]:
    """(torch, None) when torch sees a CUDA GPU, else (None, why not)."""
    if simulated():
        return None, "the numba CUDA simulator is on (torch would use the real GPU)"
    try:
        import torch
    except Exception as err:  # noqa: BLE001
        return None, f"torch cannot be imported ({type(err).__name__}: {err})"
    try:
        if not torch.cuda.is_available():
            return None, f"torch {torch.__version__} sees no CUDA GPU"
    except Exception as err:  # noqa: BLE001
        return None, f"torch.cuda failed ({type(err).__name__}: {err})"
    return torch, None


def cupy_cuda() -> tuple[Any, str | None]:
    """(cupy, None) when CuPy imports and sees a GPU, else (None, why not)."""
    if simulated():
        return None, "the numba CUDA simulator is on (CuPy would use the real GPU)"
    try:
        import cupy
    except Exception as err:  # noqa: BLE001
        return None, f"CuPy cannot be imported ({type(err).__name__}: {err})"
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None, "CuPy sees no CUDA GPU"
    except Exception as err:  # noqa: BLE001
        return None, f"CuPy cannot reach a GPU ({type(err).__name__}: {err})"
    return cupy, None


# ----------------------------------------------------------------------------- statistics
def summarize(samples: Sequence[float], unit: str) -> dict[str, Any]:
    """Median, min, max, quartiles and relative spread of ``samples``.

    ``spread_pct`` is the inter-quartile range over the median, in percent;
    ``range_pct`` the (max - min) over the median.
    """
    xs = sorted(float(x) for x in samples)
    if not xs:
        return {"unit": unit, "n": 0, "median": None, "min": None, "max": None,
                "p25": None, "p75": None, "spread_pct": None, "range_pct": None,
                "samples": []}
    med = statistics.median(xs)
    if len(xs) >= 4:
        q = statistics.quantiles(xs, n=4, method="inclusive")
        p25, p75 = q[0], q[2]
    else:
        p25, p75 = xs[0], xs[-1]
    rel = (lambda v: 100.0 * v / med) if med else (lambda v: None)
    return {"unit": unit, "n": len(xs), "median": med, "min": xs[0], "max": xs[-1],
            "p25": p25, "p75": p75, "spread_pct": rel(p75 - p25),
            "range_pct": rel(xs[-1] - xs[0]), "samples": xs}


def rate_summary(times: dict[str, Any], amount: float, unit: str, scale: float) -> dict[str, Any]:
    """Turn a time summary (``times['unit']`` ms, us or s) into a rate summary.

    ``amount`` is what one timed run moves (bytes, say) and ``scale`` divides the
    rate to get ``unit`` (1e12 for TB/s). The best rate comes from the shortest time.
    """
    to_s = {"s": 1.0, "ms": 1e-3, "us": 1e-6}[times["unit"]]

    def rate(t: float | None) -> float | None:
        if t is None or t <= 0:
            return None
        return amount / (t * to_s) / scale
    samples = [r for r in (rate(t) for t in times.get("samples", [])) if r is not None]
    out = summarize(samples, unit)
    out["median"] = rate(times["median"])  # rate of the median time, not median of rates
    return out


# ----------------------------------------------------------------------------- timing
def time_host(run: Callable[[], Any], *, repeat: int, warmup: int,
              sync: Callable[[], Any] | None = None, inner: int = 1) -> list[float]:
    """Host wall-clock seconds per call of ``run``.

    ``warmup`` untimed calls first; then ``repeat`` samples, each ``inner`` calls
    back to back followed by ``sync()`` (so asynchronous work is included), the
    elapsed time divided by ``inner``.
    """
    for _ in range(warmup):
        run()
    if sync is not None:
        sync()
    samples = []
    perf = time.perf_counter
    for _ in range(repeat):
        t0 = perf()
        for _ in range(inner):
            run()
        if sync is not None:
            sync()
        samples.append((perf() - t0) / inner)
    return samples


def time_host_interleaved(variants: dict[str, tuple[Callable[[], Any], Callable[[], Any]]], *,
                          repeat: int, warmup: int, inner: int = 1) -> dict[str, list[float]]:
    """Like :func:`time_host` for several variants ``{name: (run, sync)}``, sampled
    round-robin (sample r of every variant, then sample r + 1, ...), so slow drifts of
    the machine (clocks, other tenants) hit every variant alike and ratios stay fair."""
    for run, sync in variants.values():
        for _ in range(warmup):
            run()
        sync()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    perf = time.perf_counter
    for _ in range(repeat):
        for name, (run, sync) in variants.items():
            t0 = perf()
            for _ in range(inner):
                run()
            sync()
            samples[name].append((perf() - t0) / inner)
    return samples


class NumbaTimer:
    """CUDA events through numba-cuda, recorded on one numba stream."""

    def __init__(self, cuda: Any, stream: Any) -> None:
        self.cuda, self.stream = cuda, stream

    def record(self) -> Any:
        ev = self.cuda.event()  # timing=True is the default (the simulator takes no argument)
        ev.record(self.stream)
        return ev

    def elapsed_ms(self, start: Any, end: Any) -> float:
        end.synchronize()
        return float(start.elapsed_time(end))

    def synchronize(self) -> None:
        self.stream.synchronize()


class TorchTimer:
    """CUDA events through torch, on torch's current stream."""

    def __init__(self, torch: Any) -> None:
        self.torch = torch

    def record(self) -> Any:
        ev = self.torch.cuda.Event(enable_timing=True)
        ev.record()
        return ev

    def elapsed_ms(self, start: Any, end: Any) -> float:
        end.synchronize()
        return float(start.elapsed_time(end))

    def synchronize(self) -> None:
        self.torch.cuda.synchronize()


class CupyTimer:
    """CUDA events through CuPy, on one CuPy stream (launches must use that stream)."""

    def __init__(self, cupy: Any, stream: Any) -> None:
        self.cupy, self.stream = cupy, stream

    def record(self) -> Any:
        ev = self.cupy.cuda.Event()
        ev.record(self.stream)
        return ev

    def elapsed_ms(self, start: Any, end: Any) -> float:
        end.synchronize()
        return float(self.cupy.cuda.get_elapsed_time(start, end))

    def synchronize(self) -> None:
        self.stream.synchronize()


def time_gpu(run: Callable[[int], Any], timer: Any, *, repeat: int, warmup: int,
             busy: bool = True) -> list[float]:
    """Device milliseconds of one ``run(k)`` each, measured with CUDA events.

    ``run(k)`` enqueues one unit of work (asynchronously) using input set ``k``
    (the callee rotates ``k`` over its input sets). With ``busy``, an untimed
    ``run`` is enqueued right before each timed one, so the GPU is still busy
    while the host records the start event and enqueues the timed work: the
    host's launch overhead then stays out of the measured interval.
    """
    for k in range(warmup):
        run(k)
    timer.synchronize()
    samples = []
    for r in range(repeat):
        if busy:
            run(r + 1)
        start = timer.record()
        run(r)
        end = timer.record()
        samples.append(timer.elapsed_ms(start, end))
    timer.synchronize()
    return samples


# ----------------------------------------------------------------------------- GPU bandwidth
def gpu_references() -> tuple[Any, Any, dict[str, str]]:
    """(torch or None, cupy or None, skipped): the optional GPU libraries, with the reason
    for each one that is unavailable (keys "torch", "cupy")."""
    torch, torch_why = torch_cuda()
    cupy, cupy_why = cupy_cuda()
    skipped: dict[str, str] = {}
    if torch is None:
        skipped["torch"] = torch_why or "unavailable"
    if cupy is None:
        skipped["cupy"] = cupy_why or "unavailable"
    return torch, cupy, skipped


def sync_all() -> None:
    """Synchronize the whole CUDA context: numba, torch and CuPy streams alike."""
    from numba import cuda
    cuda.synchronize()


def to_device(dev: Any, queue: Any, host: np.ndarray) -> Any:
    """A new portable buffer on ``dev`` holding a copy of ``host`` (enqueued on ``queue``)."""
    import portable as pt
    buf = pt.alloc_buffer(dev, host.shape, host.dtype)
    pt.memcpy(queue, buf, host)
    return buf


def copy_ceiling(dev: Any, queue: Any, timer: NumbaTimer, n: int, sets: int, *, repeat: int,
                 warmup: int, rng: np.random.Generator, torch: Any = None,
                 cupy: Any = None) -> tuple[dict[str, Any], dict[str, str]]:
    """The bandwidth ceiling: device-to-device copies of ``n`` float32, read + written.

    numba ``copy_to_device`` on ``queue``'s stream (timed with ``timer``, a
    :class:`NumbaTimer` on that stream; checked once), and, when given, torch ``copy_``
    and CuPy ``copyto`` on the same buffers; ``sets`` source/destination pairs rotated,
    the sources drawn from ``rng``. Returns ``({"bytes_per_copy", "variants",
    "ceiling", "ceiling_TB/s"}, skipped)``: the ceiling is the copy with the best median
    TB/s; ``skipped`` holds a reason for each torch / CuPy copy that failed.
    """
    import portable as pt
    stream = queue.native
    copy_bytes = 2 * n * 4
    copies: dict[str, Any] = {}
    skipped: dict[str, str] = {}
    srcs = [to_device(dev, queue, rng.random(n, dtype=np.float32)) for _ in range(sets)]
    dsts = [pt.alloc_buffer(dev, n, np.float32) for _ in range(sets)]
    queue.synchronize()
    ms = time_gpu(lambda k: dsts[k % sets].copy_to_device(srcs[k % sets], stream=stream),
                  timer, repeat=repeat, warmup=warmup)
    copies["numba copy_to_device"] = {"time": summarize(ms, "ms")}
    if not np.array_equal(dsts[0].copy_to_host(), srcs[0].copy_to_host()):
        raise RuntimeError("device-to-device copy check failed")
    if torch is not None:
        try:
            ts = [torch.as_tensor(s, device="cuda") for s in srcs]
            td = [torch.as_tensor(d, device="cuda") for d in dsts]
            sync_all()
            ms = time_gpu(lambda k: td[k % sets].copy_(ts[k % sets]),
                          TorchTimer(torch), repeat=repeat, warmup=warmup)
            copies["torch copy_"] = {"time": summarize(ms, "ms")}
            del ts, td
        except Exception as err:  # noqa: BLE001
            skipped["torch copy"] = f"failed: {type(err).__name__}: {err}"
    if cupy is not None:
        try:
            cstream = cupy.cuda.Stream(non_blocking=True)
            with cstream:
                cs = [cupy.asarray(s) for s in srcs]
                cd = [cupy.asarray(d) for d in dsts]
                sync_all()
                ms = time_gpu(lambda k: cupy.copyto(cd[k % sets], cs[k % sets]),
                              CupyTimer(cupy, cstream), repeat=repeat, warmup=warmup)
            copies["cupy copyto"] = {"time": summarize(ms, "ms")}
            del cs, cd
        except Exception as err:  # noqa: BLE001
            skipped["cupy copy"] = f"failed: {type(err).__name__}: {err}"
    sync_all()
    del srcs, dsts
    for s in copies.values():
        s["TB/s"] = rate_summary(s["time"], copy_bytes, "TB/s", 1e12)
    ceiling_name = max(copies, key=lambda name: copies[name]["TB/s"]["median"] or 0.0)
    ceiling = copies[ceiling_name]["TB/s"]["median"]
    return ({"bytes_per_copy": copy_bytes, "variants": copies, "ceiling": ceiling_name,
             "ceiling_TB/s": ceiling}, skipped)


# ----------------------------------------------------------------------------- output
def fmt(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        if value == 0 or 1e-3 <= abs(value) < 1e6:
            return f"{value:.{digits}g}" if abs(value) < 1 else f"{value:,.{max(digits - 2, 1)}f}"
        return f"{value:.{digits}e}"
    return str(value)


def print_table(title: str, headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A plain fixed-width table on stdout."""
    cells = [[fmt(c) for c in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row)]
    print(f"\n== {title}")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                        for i, (c, w) in enumerate(zip(row, widths))))
    sys.stdout.flush()


def fmt_ratio(value: float | None) -> str:
    """A ratio with 3 decimals, ``-`` when there is none."""
    return "-" if value is None else f"{value:.3f}"


def verdict(met: bool | None) -> str:
    """How a target came out: ``met``, ``NOT met`` or ``n/a`` (not judged)."""
    return "n/a" if met is None else "met" if met else "NOT met"


def all_met(targets: dict[str, dict[str, Any]]) -> bool | None:
    """Whether every target is met; None when there is none or one was not judged."""
    mets = [t.get("met") for t in targets.values()]
    return None if not mets or any(m is None for m in mets) else all(mets)


def print_ratios(ratios: dict[str, float | None]) -> None:
    for name, value in ratios.items():
        print(f"ratio {name}: {fmt_ratio(value)}")


def print_copy_ceiling(copy: dict[str, Any], gpu_name: str, log2n: int) -> None:
    """The table of :func:`copy_ceiling`'s copies and the ceiling they set."""
    rows = [(name, s["TB/s"]["median"], s["TB/s"]["min"], s["time"]["spread_pct"])
            for name, s in copy["variants"].items()]
    print_table(f"device-to-device copy on {gpu_name}, 2^{log2n} float32 (read + written)",
                ["copy", "TB/s", "min TB/s", "IQR %"], rows)
    print(f"ceiling: {copy['ceiling']} = {fmt(copy['ceiling_TB/s'])} TB/s")


def print_gpu_variants(title: str, variants: dict[str, dict[str, Any]]) -> None:
    """A table of GPU kernel variants measured against the copy ceiling."""
    rows = [(name, e["config"], None, None, None, None, "ERROR") if "error" in e else
            (name, e["config"], e["TB/s"]["median"], e["pct_of_copy"], e["time"]["median"],
             e["time"]["spread_pct"], e["verified"]) for name, e in variants.items()]
    print_table(title, ["variant", "config", "TB/s", "% copy", "ms", "IQR %", "ok"], rows)


def print_cpu_variants(title: str, variants: dict[str, dict[str, Any]]) -> None:
    """A table of CPU variants with their bandwidth."""
    rows = [(name, e["GB/s"]["median"], e["GB/s"]["min"], e["time"]["median"],
             e["time"]["spread_pct"], e["verified"]) for name, e in variants.items()]
    print_table(title, ["variant", "GB/s", "min GB/s", "ms", "IQR %", "ok"], rows)


def print_launch_costs(title: str, results: dict[str, dict[str, Any]]) -> None:
    """A table of per-launch costs in microseconds."""
    rows = [(name, s["median"], s["min"], s["spread_pct"]) for name, s in results.items()]
    print_table(title, ["variant", "median us", "min us", "IQR %"], rows)


def note(message: str) -> None:
    print(f"[note] {message}", flush=True)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def make_record(benchmark: str, device: str, parameters: dict[str, Any],
                quick: bool) -> dict[str, Any]:
    """The common head of a benchmark record; the script adds its figures."""
    return {
        "benchmark": benchmark,
        "device": device,
        "host_cpu": cpu_model(),
        "host_cores": cpu_count(),
        "date": utc_now(),
        "versions": versions(),
        "platform": platform.platform(),
        "quick": quick,
        "cuda_simulator": simulated(),
        "command": " ".join([Path(sys.executable).name] + sys.argv),
        "parameters": parameters,
    }


def write_record(out_dir: str | os.PathLike[str], benchmark: str, device_slug: str,
                 record: dict[str, Any]) -> Path:
    """Write ``record`` as ``<out_dir>/<benchmark>_<device_slug>.json``; return the path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{benchmark}_{device_slug}.json"
    with open(path, "w", encoding="utf-8") as f:
        json.dump(_jsonable(record), f, indent=2, sort_keys=False)
        f.write("\n")
    print(f"\nwrote {path}", flush=True)
    return path
