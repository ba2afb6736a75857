"""Memory bandwidth of memory-bound kernels: portable vs raw numba-cuda, against the copy ceiling.

GPU (skipped with a note when no CUDA GPU is usable), float32, N = 2^26:

* ceiling: device-to-device copy (numba ``copy_to_device`` device->device; also torch
  ``copy_`` and CuPy ``copyto`` when available); bytes read + written; the best median
  is the ceiling.
* ``saxpy``  out = a*x + y               (12 bytes per element)
* ``norm``   r = sqrt(x^2 + y^2 + z^2)    (16 bytes per element, SoA columns)

each as: portable with the default ``make_workdiv``; portable on a forced small grid
(``pt.WorkDiv(blocks=2*SMs, threads=256, elements=1)``); portable with 4 elements per
thread; raw numba-cuda grid-stride loops (``cuda.grid``/``cuda.gridsize``) on that small
grid and on an occupancy-sized grid (SMs * max resident threads / 256 blocks); raw
numba-cuda one element per thread on the full grid; as diagnostics, raw numba-cuda
grid-stride loops on the full grid written with ``range()`` (portable's loop shape), with
``while``, and with the first iteration peeled; and, as references, torch eager and a CuPy ``RawKernel`` (CUDA C, one
element per thread) when those are available.

Each variant's output is checked against NumPy (poisoned first, every element
compared) before it is timed. Timing: CUDA events around one launch, with an untimed
launch enqueued just before it so the host's launch overhead stays out; the inputs
rotate between 2 sets; median of >= 20 samples after warm-up.

Target: portable default >= 85% of the copy ceiling on both kernels.

CPU (always): saxpy on 2^24 float32 with portable cpu_serial / cpu_threads vs raw
``@numba.njit`` loops (serial and ``prange``) and NumPy.

Run: ``python benchmarks/bandwidth.py [--quick] [--out DIR]``
"""
from __future__ import annotations

import math
import sys
import warnings
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numba  # noqa: E402
import numpy as np  # noqa: E402

import common  # noqa: E402
from workloads import njit_saxpy, njit_saxpy_parallel, saxpy, soa_norm  # noqa: E402
import portable as pt  # noqa: E402

TARGET_FRACTION = 0.85
THREADS = 256
SMALL_BLOCKS_PER_SM = 2
SAXPY_A = np.float32(2.5)

warnings.filterwarnings("ignore", message=r".*Grid size .* will likely result in GPU under-utilization.*")


# ----------------------------------------------------------------------------- raw numba-cuda
# Raw numba-cuda kernels live at module level and use the global name ``cuda``: the
# CUDA simulator swaps module globals that are numba.cuda, not closure variables.
try:
    from numba import cuda
except Exception:  # noqa: BLE001 - numba-cuda missing or broken: no GPU section
    cuda = None

RAW_CUDA: dict[str, tuple[Any, Any]] = {}
if cuda is not None and hasattr(cuda, "jit"):
    @cuda.jit
    def saxpy_grid_stride(a, x, y, out):
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for i in range(start, x.size, stride):
            out[i] = a * x[i] + y[i]

    @cuda.jit
    def saxpy_one_per_thread(a, x, y, out):
        i = cuda.grid(1)
        if i < x.size:
            out[i] = a * x[i] + y[i]

    @cuda.jit
    def norm_grid_stride(x, y, z, r):
        start = cuda.grid(1)
        stride = cuda.gridsize(1)
        for i in range(start, x.size, stride):
            r[i] = math.sqrt(x[i] * x[i] + y[i] * y[i] + z[i] * z[i])

    @cuda.jit
    def norm_one_per_thread(x, y, z, r):
        i = cuda.grid(1)
        if i < x.size:
            r[i] = math.sqrt(x[i] * x[i] + y[i] * y[i] + z[i] * z[i])

    @cuda.jit
    def saxpy_while(a, x, y, out):
        i = cuda.grid(1)
        stride = cuda.gridsize(1)
        n = x.size
        while i < n:
            out[i] = a * x[i] + y[i]
            i += stride

    @cuda.jit
    def norm_while(x, y, z, r):
        i = cuda.grid(1)
        stride = cuda.gridsize(1)
        n = x.size
        while i < n:
            r[i] = math.sqrt(x[i] * x[i] + y[i] * y[i] + z[i] * z[i])
            i += stride

    @cuda.jit
    def saxpy_peeled(a, x, y, out):
        i = cuda.grid(1)
        stride = cuda.gridsize(1)
        n = x.size
        if i < n:  # first iteration peeled: a full grid never reaches the loop
            out[i] = a * x[i] + y[i]
            i += stride
            while i < n:
                out[i] = a * x[i] + y[i]
                i += stride

    @cuda.jit
    def norm_peeled(x, y, z, r):
        i = cuda.grid(1)
        stride = cuda.gridsize(1)
        n = x.size
        if i < n:
            r[i] = math.sqrt(x[i] * x[i] + y[i] * y[i] + z[i] * z[i])
            i += stride
            while i < n:
                r[i] = math.sqrt(x[i] * x[i] + y[i] * y[i] + z[i] * z[i])
                i += stride

    # (grid-stride range loop, one element per thread, grid-stride while loop, peeled)
    RAW_CUDA = {"saxpy": (saxpy_grid_stride, saxpy_one_per_thread, saxpy_while, saxpy_peeled),
                "norm": (norm_grid_stride, norm_one_per_thread, norm_while, norm_peeled)}


CUPY_SOURCE = r"""
extern "C" __global__
void saxpy(const float a, const float* __restrict__ x, const float* __restrict__ y,
           float* __restrict__ out, const long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        out[i] = a * x[i] + y[i];
    }
}

extern "C" __global__
void soa_norm(const float* __restrict__ x, const float* __restrict__ y,
              const float* __restrict__ z, float* __restrict__ r, const long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        r[i] = sqrtf(x[i] * x[i] + y[i] * y[i] + z[i] * z[i]);
    }
}
"""

# kernel name -> (portable kernel, number of input columns, bytes per element, reference)
CASES: dict[str, dict[str, Any]] = {
    "saxpy": {"portable": saxpy, "inputs": 2, "bytes_per_element": 12,
              "formula": "out = a*x + y", "cupy_name": "saxpy"},
    "norm": {"portable": soa_norm, "inputs": 3, "bytes_per_element": 16,
             "formula": "r = sqrt(x^2 + y^2 + z^2)", "cupy_name": "soa_norm"},
}


def reference(case: str, cols: list[np.ndarray]) -> np.ndarray:
    if case == "saxpy":
        return SAXPY_A * cols[0] + cols[1]
    x, y, z = (c.astype(np.float64) for c in cols)
    return np.sqrt(x * x + y * y + z * z).astype(np.float32)


def kernel_args(case: str, cols: list[Any], out: Any) -> tuple[Any, ...]:
    """Arguments in the kernels' order (portable and raw numba take the same)."""
    return (SAXPY_A, *cols, out) if case == "saxpy" else (*cols, out)


def check(got: np.ndarray, want: np.ndarray) -> tuple[bool, float]:
    """All elements within float32 rounding of the reference (NaN = unwritten fails)."""
    bad = ~np.isclose(got, want, rtol=2e-6, atol=1e-6)
    denom = np.maximum(np.abs(want), 1e-30)
    with np.errstate(invalid="ignore"):
        rel = np.abs(got.astype(np.float64) - want) / denom
    worst = float(np.nanmax(rel)) if np.isfinite(rel).any() else float("inf")
    if np.isnan(got).any():
        worst = float("inf")
    return (not bad.any()), worst


# ----------------------------------------------------------------------------- GPU
def gpu_section(gpu: common.GpuInfo, n: int, sets: int, repeat: int,
                warmup: int) -> dict[str, Any]:
    dev = gpu.device
    q = pt.Queue(dev, blocking=False)
    stream = q.native
    timer = common.NumbaTimer(cuda, stream)
    sm = gpu.sm_count
    small_blocks = SMALL_BLOCKS_PER_SM * sm
    occ_blocks = sm * max(1, gpu.max_threads_per_sm // THREADS)
    full_blocks = -(-n // THREADS)
    e4_blocks = -(-n // (THREADS * 4))
    rng = np.random.default_rng(12345)
    torch, cupy, skipped = common.gpu_references()

    # -- the ceiling: device-to-device copies ------------------------------------------
    copy, copy_skipped = common.copy_ceiling(dev, q, timer, n, sets, repeat=repeat,
                                             warmup=warmup, rng=rng, torch=torch, cupy=cupy)
    skipped.update(copy_skipped)
    ceiling = copy["ceiling_TB/s"]

    cupy_mod = None
    if cupy is not None:
        try:
            cupy_mod = cupy.RawModule(code=CUPY_SOURCE)
        except Exception as err:  # noqa: BLE001
            skipped["cupy kernels"] = f"RawModule failed: {type(err).__name__}: {err}"

    kernels: dict[str, Any] = {}
    for case, spec in CASES.items():
        cols_host = [[rng.random(n, dtype=np.float32) for _ in range(spec["inputs"])]
                     for _ in range(sets)]
        want = reference(case, cols_host[0])
        cols = [[common.to_device(dev, q, c) for c in s] for s in cols_host]
        outs = [pt.alloc_buffer(dev, n, np.float32) for _ in range(sets)]
        q.synchronize()
        del cols_host
        args = [kernel_args(case, cols[s], outs[s]) for s in range(sets)]
        gs_kernel, one_kernel, while_kernel, peeled_kernel = RAW_CUDA[case]
        kern = spec["portable"]

        def portable_run(wd: Any) -> Callable[[int], Any]:
            return lambda k: pt.launch(q, wd, kern, *args[k % sets])

        def raw_run(kernel: Any, blocks: int) -> Callable[[int], Any]:
            return lambda k: kernel[blocks, THREADS, stream](*args[k % sets])

        variants: list[dict[str, Any]] = [
            {"name": "portable default", "kind": "portable",
             "config": str(pt.make_workdiv(dev, n)), "run": portable_run(pt.make_workdiv(dev, n)),
             "timer": timer},
            {"name": "portable small grid", "kind": "portable",
             "config": str(pt.WorkDiv(small_blocks, THREADS, 1)),
             "run": portable_run(pt.WorkDiv(small_blocks, THREADS, 1)), "timer": timer},
            {"name": "portable elements=4", "kind": "portable",
             "config": str(pt.WorkDiv(e4_blocks, THREADS, 4)),
             "run": portable_run(pt.WorkDiv(e4_blocks, THREADS, 4)), "timer": timer},
            {"name": "numba grid-stride small grid", "kind": "raw numba-cuda",
             "config": f"[{small_blocks}, {THREADS}] grid-stride",
             "run": raw_run(gs_kernel, small_blocks), "timer": timer},
            {"name": "numba grid-stride occupancy grid", "kind": "raw numba-cuda",
             "config": f"[{occ_blocks}, {THREADS}] grid-stride",
             "run": raw_run(gs_kernel, occ_blocks), "timer": timer},
            {"name": "numba 1 elem/thread full grid", "kind": "raw numba-cuda",
             "config": f"[{full_blocks}, {THREADS}] if i < n",
             "run": raw_run(one_kernel, full_blocks), "timer": timer},
            # diagnostics: the loop shape portable generates, written by hand, on the full grid
            {"name": "numba grid-stride range full grid", "kind": "raw numba-cuda",
             "config": f"[{full_blocks}, {THREADS}] for i in range(start, n, stride)",
             "run": raw_run(gs_kernel, full_blocks), "timer": timer},
            {"name": "numba grid-stride while full grid", "kind": "raw numba-cuda",
             "config": f"[{full_blocks}, {THREADS}] while i < n: ...; i += stride",
             "run": raw_run(while_kernel, full_blocks), "timer": timer},
            {"name": "numba grid-stride peeled full grid", "kind": "raw numba-cuda",
             "config": f"[{full_blocks}, {THREADS}] if i < n: body; while i+stride < n: ...",
             "run": raw_run(peeled_kernel, full_blocks), "timer": timer},
        ]
        if torch is not None:
            try:
                tcols = [[torch.as_tensor(c, device="cuda") for c in s] for s in cols]
                touts = [torch.as_tensor(o, device="cuda") for o in outs]
                if case == "saxpy":
                    def torch_run(k: int) -> Any:
                        s = k % sets
                        return torch.add(tcols[s][1], tcols[s][0], alpha=float(SAXPY_A),
                                         out=touts[s])
                    tconfig = "torch.add(y, x, alpha=a, out=out): one kernel"
                else:
                    def torch_run(k: int) -> Any:
                        s = k % sets
                        x, y, z = tcols[s]
                        return touts[s].copy_(torch.sqrt(x * x + y * y + z * z))
                    tconfig = "out.copy_(torch.sqrt(x*x + y*y + z*z)): eager, several kernels"
                variants.append({"name": "torch eager (reference)", "kind": "torch",
                                 "config": tconfig, "run": torch_run,
                                 "timer": common.TorchTimer(torch)})
            except Exception as err:  # noqa: BLE001
                skipped[f"torch {case}"] = f"failed: {type(err).__name__}: {err}"
        if cupy_mod is not None:
            try:
                ckern = cupy_mod.get_function(spec["cupy_name"])
                cstream = cupy.cuda.Stream(non_blocking=True)
                ccols = [[cupy.asarray(c) for c in s] for s in cols]
                couts = [cupy.asarray(o) for o in outs]
                cn = np.int64(n)

                def cupy_run(k: int, ckern: Any = ckern, cstream: Any = cstream,
                             ccols: Any = ccols, couts: Any = couts, cn: Any = cn) -> Any:
                    s = k % sets
                    cargs = ((SAXPY_A, *ccols[s], couts[s], cn) if case == "saxpy"
                             else (*ccols[s], couts[s], cn))
                    with cstream:
                        ckern((full_blocks,), (THREADS,), cargs)
                variants.append({"name": "cupy RawKernel (reference)", "kind": "CUDA C (NVRTC)",
                                 "config": f"[{full_blocks}, {THREADS}] if i < n",
                                 "run": cupy_run, "timer": common.CupyTimer(cupy, cstream)})
            except Exception as err:  # noqa: BLE001
                skipped[f"cupy {case}"] = f"failed: {type(err).__name__}: {err}"

        bytes_moved = spec["bytes_per_element"] * n
        results: dict[str, Any] = {}
        for v in variants:
            entry: dict[str, Any] = {"kind": v["kind"], "config": v["config"]}
            try:
                common.sync_all()
                pt.memset(q, outs[0], 0xFF)  # NaN: an unwritten element fails the check
                q.synchronize()
                v["run"](0)
                common.sync_all()
                ok, worst = check(outs[0].copy_to_host(), want)
                entry["verified"] = ok
                entry["max_rel_error"] = worst
                if not ok:
                    common.note(f"{case} / {v['name']}: WRONG RESULT (max rel error {worst})")
                ms = common.time_gpu(v["run"], v["timer"], repeat=repeat, warmup=warmup)
                entry["time"] = common.summarize(ms, "ms")
                entry["TB/s"] = common.rate_summary(entry["time"], bytes_moved, "TB/s", 1e12)
                med = entry["TB/s"]["median"]
                entry["pct_of_copy"] = (100.0 * med / ceiling) if (med and ceiling) else None
            except Exception as err:  # noqa: BLE001 - report, keep going
                entry["error"] = f"{type(err).__name__}: {err}"
                common.note(f"{case} / {v['name']} failed: {entry['error']}")
            results[v["name"]] = entry
        common.sync_all()
        pd = results["portable default"]
        met = None if gpu.simulated else (  # simulator timings are not measurements
            pd.get("verified") is True and pd.get("pct_of_copy") is not None
            and pd["pct_of_copy"] >= 100 * TARGET_FRACTION)
        kernels[case] = {
            "formula": spec["formula"], "bytes_per_element": spec["bytes_per_element"],
            "bytes_per_launch": bytes_moved, "variants": results,
            "target": {"what": "portable default >= 85% of the copy ceiling",
                       "pct_of_copy": pd.get("pct_of_copy"), "met": met},
            "analysis": analysis(case, results, small_blocks, occ_blocks, n),
        }
        del cols, outs, args, variants
        common.sync_all()

    return {"n": n, "sets": sets, "threads_per_block": THREADS, "sm_count": sm,
            "max_threads_per_sm": gpu.max_threads_per_sm, "l2_bytes": gpu.l2_bytes,
            "inputs_fit_in_l2": bool(gpu.l2_bytes and sets * 16 * n <= gpu.l2_bytes),
            "small_grid_blocks": small_blocks, "occupancy_grid_blocks": occ_blocks,
            "full_grid_blocks": full_blocks,
            "copy": copy, "kernels": kernels, "skipped": skipped,
            "anchors_h100": {"copy_TB/s": 2.93, "numba_norm_grid_stride_TB/s": 1.54,
                             "torch_norm_eager_TB/s": 0.84, "numba_saxpy_TB/s": 2.64,
                             "torch_saxpy_TB/s": 2.93}}


def analysis(case: str, results: dict[str, Any], small_blocks: int, occ_blocks: int,
             n: int) -> str:
    """A few sentences on which variant is fast and why, filled from the numbers."""
    try:
        return _analysis(case, results, small_blocks, occ_blocks, n)
    except Exception as err:  # noqa: BLE001 - never lose the measurements over prose
        return f"analysis failed: {type(err).__name__}: {err}"


def _analysis(case: str, results: dict[str, Any], small_blocks: int, occ_blocks: int,
              n: int) -> str:
    def pct(name: str) -> float | None:
        v = results.get(name, {}).get("pct_of_copy")
        return float(v) if isinstance(v, (int, float)) and v > 0 else None

    def ratio(a: float | None, b: float | None) -> float | None:
        return a / b if a and b else None

    def f2(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.2f}"

    pd, ps, p4 = pct("portable default"), pct("portable small grid"), pct("portable elements=4")
    small, occ = pct("numba grid-stride small grid"), pct("numba grid-stride occupancy grid")
    full = pct("numba 1 elem/thread full grid")
    ref_c, ref_t = pct("cupy RawKernel (reference)"), pct("torch eager (reference)")
    parts = []
    ranked = sorted(((v, k) for k, v in ((k, pct(k)) for k in results) if v is not None),
                    reverse=True)
    if ranked:
        parts.append(f"{case}: fastest is '{ranked[0][1]}' at {ranked[0][0]:.0f}% of the copy "
                     f"ceiling, slowest '{ranked[-1][1]}' at {ranked[-1][0]:.0f}%.")
    if pd is not None and full is not None:
        r = ratio(pd, full)
        verdict = (", i.e. no measurable cost for the portability layer." if r and r >= 0.95
                   else "; the generated loop costs something here.")
        parts.append(f"Portable default ({pd:.0f}%) runs one element per thread on a full grid, "
                     f"like the raw numba one-element-per-thread kernel ({full:.0f}%): ratio "
                     f"{f2(r)}{verdict}")
    if small is not None and full is not None:
        r = ratio(full, small)
        threads = small_blocks * THREADS
        iters = -(-n // threads)
        if r is not None and r > 1.15:
            parts.append(
                f"The grid-stride loop on a small grid ({small_blocks} blocks x {THREADS} = "
                f"{threads} threads, ~{iters} iterations each) reaches only {small:.0f}%: "
                f"{f2(r)}x slower than the full grid. Few resident warps per SM, each with one "
                f"iteration's loads outstanding at a time, keep too few bytes in flight to "
                f"cover DRAM latency (Little's law), so bandwidth is latency-bound.")
        else:
            parts.append(f"The grid-stride loop on a small grid ({small_blocks} blocks) reaches "
                         f"{small:.0f}%, close to the full grid (full/small {f2(r)}).")
    if occ is not None:
        better = small is not None and occ > small * 1.1
        parts.append(f"Grid-stride on an occupancy-sized grid ({occ_blocks} blocks, every SM "
                     f"full) reaches {occ:.0f}%" + (
                         f" (vs {small:.0f}% on the small grid): filling the SMs restores the "
                         f"loads in flight." if better else "."))
    if ps is not None and small is not None:
        parts.append(f"Portable forced onto the same small grid reaches {ps:.0f}% (raw: "
                     f"{small:.0f}%): the loss follows the grid, not the library.")
    if p4 is not None and pd is not None:
        parts.append(f"Portable with 4 consecutive elements per thread reaches {p4:.0f}% vs "
                     f"{pd:.0f}% with 1" + (
                         ": a warp's accesses are strided by 4 elements, so each load "
                         "instruction touches 4x the cache lines and relies on L1 reuse."
                         if p4 < pd * 0.95 else "."))
    rng_full, while_full = (pct("numba grid-stride range full grid"),
                            pct("numba grid-stride while full grid"))
    peeled_full = pct("numba grid-stride peeled full grid")
    if rng_full is not None and pd is not None:
        same = abs(rng_full - pd) <= 0.05 * max(rng_full, pd)
        parts.append(
            f"A hand-written numba range() grid-stride loop on the same full grid (the loop "
            f"shape portable generates) reaches {rng_full:.0f}%"
            + (f", the same as portable default ({pd:.0f}%): the cost is the range() loop "
               f"shape, not the portability layer" if same else
               f" vs portable default {pd:.0f}%")
            + (f"; the same loop as a while loop reaches {while_full:.0f}%" if while_full
               is not None else "")
            + (f", and with its first iteration peeled (if i < n: body; then the while loop) "
               f"{peeled_full:.0f}%" if peeled_full is not None else "")
            + ". A loop's set-up (LLVM's 64-bit trip-count division, run by every thread) is "
              "paid once per element when each thread does one iteration.")
    if ref_c is not None:
        parts.append(f"CUDA C via CuPy (one element per thread) reaches {ref_c:.0f}%.")
    if ref_t is not None:
        parts.append(f"Torch eager reaches {ref_t:.0f}%" +
                     (" (several kernels and temporaries, counted at the nominal bytes)."
                      if case == "norm" else "."))
    return " ".join(parts)


# ----------------------------------------------------------------------------- CPU
def cpu_section(n: int, repeat: int, warmup: int) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    x = rng.random(n, dtype=np.float32)
    y = rng.random(n, dtype=np.float32)
    want = SAXPY_A * x + y
    bytes_moved = 12 * n
    results: dict[str, Any] = {}
    out = np.empty(n, np.float32)

    def numpy_saxpy() -> None:
        np.multiply(x, SAXPY_A, out=out)
        np.add(out, y, out=out)

    variants: list[tuple[str, Callable[[], Any], Callable[[], Any]]] = []
    for backend in ("cpu_serial", "cpu_threads"):
        dev = pt.get_device(backend)
        q = pt.Queue(dev, blocking=True)
        wd = pt.make_workdiv(dev, n)
        variants.append((f"portable {backend}",
                         lambda q=q, wd=wd: pt.launch(q, wd, saxpy, SAXPY_A, x, y, out),
                         q.synchronize))
    variants += [
        ("njit loop", lambda: njit_saxpy(SAXPY_A, x, y, out), lambda: None),
        ("njit prange", lambda: njit_saxpy_parallel(SAXPY_A, x, y, out), lambda: None),
        ("numpy (2 passes)", numpy_saxpy, lambda: None),
    ]
    for name, run, sync in variants:
        out.fill(np.nan)
        run()
        sync()
        ok, worst = check(out, want)
        if not ok:
            common.note(f"CPU saxpy / {name}: WRONG RESULT (max rel error {worst})")
        secs = common.time_host(run, repeat=repeat, warmup=warmup, sync=sync)
        t = common.summarize([s * 1e3 for s in secs], "ms")
        results[name] = {"verified": ok, "max_rel_error": worst, "time": t,
                         "GB/s": common.rate_summary(t, bytes_moved, "GB/s", 1e9)}

    def ratio(a: str, b: str) -> float | None:
        ra, rb = results[a]["GB/s"]["median"], results[b]["GB/s"]["median"]
        return ra / rb if ra and rb else None
    return {"n": n, "bytes_per_element": 12, "numba_threads": numba.get_num_threads(),
            "variants": results,
            "ratios": {"cpu_serial_vs_njit_loop": ratio("portable cpu_serial", "njit loop"),
                       "cpu_threads_vs_njit_prange": ratio("portable cpu_threads", "njit prange"),
                       "cpu_threads_vs_cpu_serial": ratio("portable cpu_threads",
                                                          "portable cpu_serial")}}


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--log2n", type=int, default=None,
                        help="GPU elements = 2^LOG2N (default 26; quick 20; simulator 10)")
    parser.add_argument("--cpu-log2n", type=int, default=None,
                        help="CPU elements = 2^LOG2N (default 24; quick 20)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="timed samples per variant (default 30 GPU / 15 CPU; quick 5)")
    parser.add_argument("--sets", type=int, default=2, help="input sets to rotate among")
    common.add_section_options(parser)
    args = parser.parse_args(argv)

    sim = common.simulated()
    log2n = args.log2n or (10 if sim else 20 if args.quick else 26)
    cpu_log2n = args.cpu_log2n or (20 if args.quick else 24)
    g_repeat = args.repeats or (2 if sim else 5 if args.quick else 30)
    c_repeat = args.repeats or (3 if args.quick else 15)
    g_warmup = 1 if sim else 3 if args.quick else 10
    sets = max(1, args.sets)

    gpu, why = common.gpu_to_measure(args.no_gpu)
    params = {"gpu_n": 2 ** log2n, "cpu_n": 2 ** cpu_log2n, "dtype": "float32",
              "gpu_repeats": g_repeat, "gpu_warmup": g_warmup, "cpu_repeats": c_repeat,
              "sets": sets, "threads_per_block": THREADS,
              "small_grid_blocks_per_sm": SMALL_BLOCKS_PER_SM, "saxpy_a": float(SAXPY_A),
              "target": f"portable default >= {int(TARGET_FRACTION * 100)}% of the "
                        f"device-to-device copy bandwidth, saxpy and norm"}
    device, dslug = common.record_device(gpu)
    record = common.make_record("bandwidth", device, params, args.quick)

    if gpu is None:
        record["gpu"] = {"skipped": why}
    else:
        g = gpu_section(gpu, 2 ** log2n, sets, g_repeat, g_warmup)
        record["gpu"] = g
        common.print_copy_ceiling(g["copy"], gpu.name, log2n)
        for case, kres in g["kernels"].items():
            common.print_gpu_variants(f"{case}: {kres['formula']}, 2^{log2n} float32, "
                                      f"{kres['bytes_per_element']} B/elem", kres["variants"])
            t = kres["target"]
            print(f"target ({case}) {t['what']}: {common.fmt(t['pct_of_copy'])}% -> "
                  f"{common.verdict(t['met'])}")
            print(f"analysis: {kres['analysis']}")
        for what, why in g["skipped"].items():
            common.note(f"{what} skipped: {why}")

    if args.no_cpu:
        record["cpu"] = {"skipped": "--no-cpu"}
    else:
        c = cpu_section(2 ** cpu_log2n, c_repeat, 2)
        record["cpu"] = c
        common.print_cpu_variants(f"CPU saxpy, 2^{cpu_log2n} float32, 12 B/elem "
                                  f"({common.cpu_model()}, {c['numba_threads']} numba threads)",
                                  c["variants"])
        common.print_ratios(c["ratios"])

    record["targets"] = ({case: k["target"] for case, k in record["gpu"]["kernels"].items()}
                         if "kernels" in record["gpu"] else {})
    record["targets_met"] = common.all_met(record["targets"])
    common.write_record(args.out, "bandwidth", dslug, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
