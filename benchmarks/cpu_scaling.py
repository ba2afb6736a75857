"""cpu_threads vs cpu_serial: how well the threaded CPU backend scales.

Three portable kernels, each launched with the default ``make_workdiv`` on a
blocking queue of each CPU backend (cpu_serial: one block; cpu_threads: one block
per numba thread, each a contiguous chunk):

* ``heavy``   per element 8 x (sin + exp + a few flops), float64 -- compute-bound (headline)
* ``norm``    r = sqrt(x^2 + y^2 + z^2), float32, SoA columns -- memory-bound
* ``saxpy``   out = a*x + y, float32 -- memory-bound

Raw ``@numba.njit`` loops (serial and ``parallel=True``/``prange``) give the
reference speed-up a hand-written threaded loop gets on the same machine.

Target: cpu_threads >= 1.7 x cpu_serial on the compute-bound kernel with 2 threads
(0.85 x threads in general; not applicable with 1 thread). The memory-bound kernels
are reported against the same bar for information: their speed-up is bounded by the
memory system, not by the backend.

Run: ``python benchmarks/cpu_scaling.py [--quick] [--out DIR] [--threads T]``
"""
from __future__ import annotations

import math
import os
import sys
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numba  # noqa: E402
import numpy as np  # noqa: E402

import common  # noqa: E402
from workloads import (njit_norm, njit_norm_parallel, njit_saxpy,  # noqa: E402
                       njit_saxpy_parallel, saxpy, soa_norm)
import portable as pt  # noqa: E402

HEAVY_TERMS = 8
EFFICIENCY = 0.85  # target speed-up per thread: 1.7 on 2 threads
SAXPY_A = np.float32(2.5)


# ----------------------------------------------------------------------------- portable kernels
@pt.kernel
def heavy(acc, x, out):
    for i in acc.uniform_elements(x.size):
        v = x[i]
        s = 0.0
        for k in range(HEAVY_TERMS):
            t = v + 0.25 * k
            s += math.sin(t) * math.exp(-0.5 * t) + 0.001 * t * t
        out[i] = s


# ----------------------------------------------------------------------------- raw njit references
def _heavy_body(v: float) -> float:
    s = 0.0
    for k in range(HEAVY_TERMS):
        t = v + 0.25 * k
        s += math.sin(t) * math.exp(-0.5 * t) + 0.001 * t * t
    return s


_heavy_elem = numba.njit(inline="always")(_heavy_body)


@numba.njit(nogil=True)
def njit_heavy(x, out):
    for i in range(x.size):
        out[i] = _heavy_elem(x[i])


@numba.njit(parallel=True, nogil=True)
def njit_heavy_parallel(x, out):
    for i in numba.prange(x.size):
        out[i] = _heavy_elem(x[i])


def make_case(name: str, n: int, rng: np.random.Generator) -> dict[str, Any]:
    if name == "heavy":
        x = rng.random(n)  # float64
        out = np.empty(n)
        ref = np.zeros(n)
        for k in range(HEAVY_TERMS):
            t = x + 0.25 * k
            ref += np.sin(t) * np.exp(-0.5 * t) + 0.001 * t * t
        return {"kernel": heavy, "args": (x, out), "out": out, "ref": ref,
                "serial": njit_heavy, "parallel": njit_heavy_parallel, "dtype": "float64",
                "what": f"per element {HEAVY_TERMS} x (sin + exp + 6 flops)", "bound": "compute"}
    if name == "norm":
        x, y, z = (rng.random(n, dtype=np.float32) for _ in range(3))
        out = np.empty(n, np.float32)
        ref = np.sqrt(x.astype(np.float64) ** 2 + y.astype(np.float64) ** 2
                      + z.astype(np.float64) ** 2)
        return {"kernel": soa_norm, "args": (x, y, z, out), "out": out, "ref": ref,
                "serial": njit_norm, "parallel": njit_norm_parallel, "dtype": "float32",
                "what": "r = sqrt(x^2 + y^2 + z^2), 16 B/elem", "bound": "memory"}
    x, y = (rng.random(n, dtype=np.float32) for _ in range(2))
    out = np.empty(n, np.float32)
    return {"kernel": saxpy, "args": (SAXPY_A, x, y, out), "out": out,
            "ref": SAXPY_A * x.astype(np.float64) + y, "serial": njit_saxpy,
            "parallel": njit_saxpy_parallel, "dtype": "float32",
            "what": "out = a*x + y, 12 B/elem", "bound": "memory"}


def measure(case: dict[str, Any], repeat: int, warmup: int) -> dict[str, Any]:
    out, ref, args = case["out"], case["ref"], case["args"]
    runs: list[tuple[str, Callable[[], Any]]] = []
    for backend in ("cpu_serial", "cpu_threads"):
        dev = pt.get_device(backend)
        q = pt.Queue(dev, blocking=True)
        wd = pt.make_workdiv(dev, out.size)
        runs.append((f"portable {backend}",
                     lambda q=q, wd=wd: pt.launch(q, wd, case["kernel"], *args)))
    runs.append(("njit serial", lambda: case["serial"](*args)))
    runs.append(("njit prange", lambda: case["parallel"](*args)))
    results: dict[str, Any] = {}
    tol = 1e-9 if case["dtype"] == "float64" else 2e-6
    verified = {}
    for name, run in runs:
        out.fill(np.nan)
        run()
        verified[name] = bool(np.allclose(out, ref, rtol=tol, atol=tol))
        if not verified[name]:
            common.note(f"{name}: WRONG RESULT")
    # round-robin: serial and threaded samples alternate, so a load spike from
    # another process hits both rather than one of them
    samples = common.time_host({name: (run, lambda: None) for name, run in runs},
                               repeat=repeat, warmup=warmup)
    for name, _ in runs:
        results[name] = {"verified": verified[name],
                         "time": common.summarize([x * 1e3 for x in samples[name]], "ms")}

    def speedup(slow: str, fast: str, stat: str) -> float | None:
        a, b = results[slow]["time"][stat], results[fast]["time"][stat]
        return a / b if a and b else None
    return {"variants": results,
            "speedup_portable": speedup("portable cpu_serial", "portable cpu_threads", "median"),
            "speedup_portable_best": speedup("portable cpu_serial", "portable cpu_threads",
                                             "min"),
            "speedup_njit": speedup("njit serial", "njit prange", "median"),
            "speedup_njit_best": speedup("njit serial", "njit prange", "min"),
            "portable_serial_vs_njit_serial": speedup("portable cpu_serial", "njit serial",
                                                      "median"),
            "portable_threads_vs_njit_prange": speedup("portable cpu_threads", "njit prange",
                                                       "median")}


def _loadavg() -> float | None:
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--log2n", type=int, default=None,
                        help="elements = 2^LOG2N for norm and saxpy (default 24; quick 20); "
                             "heavy uses 4x fewer")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed samples per variant (default 11; quick 3)")
    parser.add_argument("--threads", type=int, default=None,
                        help="numba threads for cpu_threads (default: numba's default)")
    args = parser.parse_args(argv)

    if args.threads:
        numba.set_num_threads(args.threads)
    nthreads = numba.get_num_threads()
    log2n = args.log2n or (20 if args.quick else 24)
    repeat = args.repeats or (3 if args.quick else 11)
    warmup = 2
    sizes = {"heavy": 2 ** (log2n - 2), "norm": 2 ** log2n, "saxpy": 2 ** log2n}
    target = EFFICIENCY * nthreads if nthreads > 1 else None

    print(f"numba.get_num_threads() = {nthreads}; cores available = {common.cpu_count()}; "
          f"threading layer = {numba.config.THREADING_LAYER}; CPU = {common.cpu_model()}",
          flush=True)
    cpu_threads_dev = pt.get_device("cpu_threads")
    print(f"cpu_threads device: {cpu_threads_dev.name}; default work division for "
          f"2^{log2n}: {pt.make_workdiv(cpu_threads_dev, 2 ** log2n)}", flush=True)

    params = {"sizes": sizes, "repeats": repeat, "warmup": warmup, "heavy_terms": HEAVY_TERMS,
              "numba_threads": nthreads, "threads_requested": args.threads,
              "target": (f"cpu_threads >= {EFFICIENCY} x threads x cpu_serial on the compute-"
                         f"bound kernel (1.7 at 2 threads)")}
    record = common.make_record("cpu_scaling", f"{common.cpu_model()} (CPU)", params, args.quick)
    record["numba_threads"] = nthreads
    record["threading_layer"] = str(numba.config.THREADING_LAYER)
    try:
        record["threading_layer_used"] = numba.threading_layer()
    except Exception:  # noqa: BLE001 - only known after a parallel region ran
        record["threading_layer_used"] = None

    load_before = _loadavg()
    if load_before is not None and load_before >= 0.5:
        common.note(f"the machine is busy (1-minute load average {load_before:.2f} before the "
                    f"run): other processes take cores from cpu_threads; rerun when it is quiet")
    record["loadavg_1min_before"] = load_before

    rng = np.random.default_rng(2024)
    kernels: dict[str, Any] = {}
    rows = []
    for name in ("heavy", "norm", "saxpy"):
        case = make_case(name, sizes[name], rng)
        res = measure(case, repeat, warmup)
        sp = res["speedup_portable"]
        res["n"] = sizes[name]
        res["what"] = case["what"]
        res["bound"] = case["bound"]
        res["target"] = {"speedup": target,
                         "met": None if target is None or sp is None else sp >= target,
                         "applies": case["bound"] == "compute"}
        kernels[name] = res
        v = res["variants"]
        rows.append((name, case["bound"], sizes[name], v["portable cpu_serial"]["time"]["median"],
                     v["portable cpu_threads"]["time"]["median"], sp,
                     res["speedup_portable_best"], res["speedup_njit"],
                     v["njit serial"]["time"]["median"], v["njit prange"]["time"]["median"],
                     all(x["verified"] for x in v.values())))
    try:
        record["threading_layer_used"] = numba.threading_layer()
    except Exception:  # noqa: BLE001
        pass
    record["kernels"] = kernels
    record["loadavg_1min_after"] = _loadavg()
    headline = kernels["heavy"]["target"]
    record["targets"] = {"heavy_speedup": {
        "what": "portable cpu_threads / cpu_serial speed-up, compute-bound kernel",
        "target": f">= {common.fmt(target)}" if target else "n/a (1 thread)",
        "speedup": kernels["heavy"]["speedup_portable"], "met": headline["met"]}}
    record["targets_met"] = headline["met"]

    common.print_table(
        f"cpu_threads vs cpu_serial ({nthreads} numba threads; times in ms, median of {repeat})",
        ["kernel", "bound", "n", "serial ms", "threads ms", "speed-up", "best-of",
         "njit speed-up", "njit ms", "prange ms", "ok"], rows)
    print("speed-up: ratio of medians (the target's figure); best-of: ratio of the fastest "
          "samples (less sensitive to other processes)")
    for name, k in kernels.items():
        print(f"{name}: portable serial / njit serial = "
              f"{common.fmt(k['portable_serial_vs_njit_serial'])}, portable threads / njit "
              f"prange = {common.fmt(k['portable_threads_vs_njit_prange'])}")
    if target is None:
        print("target: n/a (1 numba thread)")
    else:
        sp = kernels["heavy"]["speedup_portable"]
        print(f"target: heavy speed-up {common.fmt(sp)} >= {common.fmt(target)} -> "
              f"{common.verdict(headline['met'])}"
              f" (saxpy {common.fmt(kernels['saxpy']['speedup_portable'])}, norm "
              f"{common.fmt(kernels['norm']['speedup_portable'])}, memory-bound, for information)")
    common.write_record(args.out, "cpu_scaling", common.cpu_slug(), record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
