"""What passing a PortableCollection view (one kernel argument) costs against separate arrays.

A view of a collection reaches a kernel as its byte buffer, size and capacity (three
plain arguments, whatever the number of columns); the kernel's prologue builds the
typed column arrays from them. This script measures what that costs at launch and in
memory bandwidth.

GPU (skipped with a note when no CUDA GPU is usable; CPU backends always measured):

1. Launch cost: host microseconds per launch of a nearly empty kernel
   (``if acc.once_per_grid(): a[0] = 1.0``), K launches back to back on a non-blocking
   queue then one synchronize, warm-up, R samples sampled round-robin, medians (the
   method of ``launch_overhead.py``):

   * ``portable_1_array``        one float32 device array
   * ``portable_view16``         a view of a 16-column float32 collection (``Wide16``,
                                 columns c0..c15); the kernel writes only ``view.c0[0]``
   * ``portable_16_arrays``      the 16 columns (``coll.column("c0")``, ...) as 16 arguments
   * ``numba_16_arrays``         raw numba-cuda ``kern[grid, block, stream](c0, ..., c15)``
   * ``numba_1_array``           raw numba-cuda with the one array (reference)

   Target: portable_view16 <= 2.0 x portable_1_array.

2. Bandwidth of the SoA norm r = sqrt(x^2 + y^2 + z^2) over 2^26 float32 rows
   (16 bytes per row):

   * ``portable view``           over a view of a collection with columns x, y, z, r
   * ``portable arrays``         the same loop over four separately allocated device arrays
   * ``numba 1 elem/thread``     raw numba-cuda, one element per thread, separate arrays
   * diagnostics: the portable array kernel and the raw kernel over the collection's own
     columns (same memory as the view)

   against the device-to-device copy ceiling (numba ``copy_to_device``; torch ``copy_``
   and CuPy ``copyto`` when available; the best median). CUDA events around one launch
   with an untimed launch enqueued before it, inputs rotated between 2 sets, warm-up,
   median of >= 20 samples; every output poisoned (NaN) and checked against NumPy first.

   Targets: portable view within 5% of portable arrays (ratio >= 0.95), and both
   >= 85% of the copy ceiling.

3. CPU (cpu_serial, cpu_threads): the same norm over a view vs separate arrays on 2^22
   rows (GB/s, with njit references), and the launch cost of 1(a)/1(b), for information.

Run: ``python benchmarks/collection_views.py [--quick] [--out DIR]``
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
from workloads import njit_norm, njit_norm_parallel, soa_norm  # noqa: E402
import portable as pt  # noqa: E402

warnings.filterwarnings("ignore", message=r".*Grid size .* will likely result in GPU under-utilization.*")

LAUNCH_TARGET_RATIO = 2.0  # view16 launch <= 2.0 x one-array launch
VIEW_VS_ARRAYS_MIN = 0.95  # view bandwidth within 5% of separate arrays
TARGET_FRACTION = 0.85  # of the copy ceiling
THREADS = 256
WIDE_SIZE = 1024  # rows of the 16-column collection used for launch cost
NCOLS = 16

Wide16 = pt.Layout.define("Wide16", [(f"c{i}", pt.column(np.float32)) for i in range(NCOLS)])
XYZR = pt.Layout.define("XYZR", [(name, pt.column(np.float32)) for name in "xyzr"])


# ----------------------------------------------------------------------------- portable kernels
@pt.kernel
def one_array(acc, a):
    if acc.once_per_grid():
        a[0] = 1.0


@pt.kernel
def view16(acc, v):
    if acc.once_per_grid():
        v.c0[0] = 1.0


@pt.kernel
def sixteen_arrays(acc, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14,
                   c15):
    if acc.once_per_grid():
        c0[0] = 1.0


@pt.kernel
def norm_view(acc, v):
    for i in acc.uniform_elements(v.size):
        v.r[i] = math.sqrt(v.x[i] * v.x[i] + v.y[i] * v.y[i] + v.z[i] * v.z[i])


# norm over separate arrays: workloads.soa_norm (x, y, z, r), the kernel bandwidth.py uses;
# its raw njit twins: workloads.njit_norm, workloads.njit_norm_parallel


# ----------------------------------------------------------------------------- raw numba-cuda
# Raw numba-cuda kernels live at module level and use the global name ``cuda``: the
# CUDA simulator swaps module globals that are numba.cuda, not closure variables.
try:
    from numba import cuda
except Exception:  # noqa: BLE001 - numba-cuda missing or broken: no GPU section
    cuda = None

if cuda is not None and hasattr(cuda, "jit"):
    @cuda.jit
    def raw_one_array(a):
        if cuda.grid(1) == 0:
            a[0] = 1.0

    @cuda.jit
    def raw_sixteen_arrays(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14,
                           c15):
        if cuda.grid(1) == 0:
            c0[0] = 1.0

    @cuda.jit
    def raw_norm_one_per_thread(x, y, z, r):
        i = cuda.grid(1)
        if i < x.size:
            r[i] = math.sqrt(x[i] * x[i] + y[i] * y[i] + z[i] * z[i])
else:
    raw_one_array = raw_sixteen_arrays = raw_norm_one_per_thread = None


# ----------------------------------------------------------------------------- helpers
def per_launch_us(variants: dict[str, tuple[Callable[[], Any], Callable[[], Any]]], k: int,
                  r: int, warmup: int) -> dict[str, dict[str, Any]]:
    """Median etc. of host microseconds per launch, variants sampled round-robin."""
    samples = common.time_host_interleaved(variants, repeat=r, warmup=warmup, inner=k)
    return {name: common.summarize([s * 1e6 for s in xs], "us") for name, xs in samples.items()}


def reference(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    x64, y64, z64 = (c.astype(np.float64) for c in (x, y, z))
    return np.sqrt(x64 * x64 + y64 * y64 + z64 * z64).astype(np.float32)


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


def ratio_of(num: float | None, den: float | None) -> float | None:
    return num / den if num and den else None


def _host_copy(array: Any) -> np.ndarray:
    return np.asarray(array.copy_to_host() if hasattr(array, "copy_to_host") else array)


def launch_checks(q: Any, a: Any, coll: Any,
                  runs: dict[str, tuple[Callable[[], Any], bool]], what: str) -> None:
    """Run each nearly empty kernel once after clearing its target: it must write 1.0 to
    element 0 of its array (``a``, or the collection's c0 when the flag says the kernel
    works on the collection) and nothing else."""
    for name, (run, on_collection) in runs.items():
        target = coll.column("c0") if on_collection else a
        pt.memset(q, target, 0)
        pt.memset(q, coll.column("c1"), 0)
        q.synchronize()
        run()
        q.synchronize()
        got = _host_copy(target)
        ok = bool(got[0] == 1.0 and got[1] == 0.0 and _host_copy(coll.column("c1"))[0] == 0.0)
        if not ok:
            raise RuntimeError(f"{what} {name}: nearly empty kernel wrote {got[:2]}, "
                               f"expected [1, 0]")


# ----------------------------------------------------------------------------- GPU: launch cost
def gpu_launch_section(gpu: common.GpuInfo, k: int, r: int, warmup: int) -> dict[str, Any]:
    dev = gpu.device
    q = pt.Queue(dev, blocking=False)
    stream = q.native  # the queue's numba stream: raw launches go on the same stream
    wd = pt.make_workdiv(dev, 1)
    grid, block = wd.blocks[0], wd.threads[0]

    a = pt.alloc_buffer(dev, WIDE_SIZE, np.float32)
    coll = pt.PortableCollection(Wide16, WIDE_SIZE, dev, zero=True, queue=q)
    pt.memset(q, a, 0)
    q.synchronize()
    view = coll.view()
    cols = [coll.column(f"c{i}") for i in range(NCOLS)]

    variants: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
        "portable_1_array": (lambda: pt.launch(q, wd, one_array, a), q.synchronize),
        "portable_view16": (lambda: pt.launch(q, wd, view16, view), q.synchronize),
        "portable_16_arrays": (lambda: pt.launch(q, wd, sixteen_arrays, *cols), q.synchronize),
        "numba_16_arrays": (lambda: raw_sixteen_arrays[grid, block, stream](*cols),
                            stream.synchronize),
        "numba_1_array": (lambda: raw_one_array[grid, block, stream](a), stream.synchronize),
    }
    launch_checks(q, a, coll, {name: (run, not name.endswith("1_array"))
                               for name, (run, _) in variants.items()}, "cuda")
    results = per_launch_us(variants, k, r, warmup)

    def ratio(num: str, den: str) -> float | None:
        return ratio_of(results[num]["median"], results[den]["median"])

    r_view = ratio("portable_view16", "portable_1_array")
    target = {"what": "portable kernel taking a view of a 16-column collection / the same "
                      "kernel taking one float32 array, host us per launch",
              "target": f"<= {LAUNCH_TARGET_RATIO}", "ratio": r_view,
              "met": None if r_view is None or gpu.simulated else r_view <= LAUNCH_TARGET_RATIO}
    ratios = {
        "view16_vs_1_array": r_view,
        "view16_vs_16_arrays": ratio("portable_view16", "portable_16_arrays"),
        "view16_vs_numba_16_arrays": ratio("portable_view16", "numba_16_arrays"),
        "16_arrays_vs_1_array": ratio("portable_16_arrays", "portable_1_array"),
        "portable_16_arrays_vs_numba_16_arrays": ratio("portable_16_arrays", "numba_16_arrays"),
        "view16_vs_numba_1_array": ratio("portable_view16", "numba_1_array"),
        "portable_1_array_vs_numba_1_array": ratio("portable_1_array", "numba_1_array"),
    }
    return {"launch_config": {"grid": grid, "block": block, "collection_rows": WIDE_SIZE,
                              "columns": NCOLS},
            "results_us_per_launch": results, "target": target, "ratios": ratios}


# ----------------------------------------------------------------------------- GPU: bandwidth
def gpu_bandwidth_section(gpu: common.GpuInfo, n: int, sets: int, repeat: int,
                          warmup: int) -> dict[str, Any]:
    dev = gpu.device
    q = pt.Queue(dev, blocking=False)
    stream = q.native
    timer = common.NumbaTimer(cuda, stream)
    full_blocks = -(-n // THREADS)
    rng = np.random.default_rng(2024)
    torch, cupy, skipped = common.gpu_references()

    # -- the ceiling: device-to-device copies (common.copy_ceiling, as bandwidth.py) ----
    copy, copy_skipped = common.copy_ceiling(dev, q, timer, n, sets, repeat=repeat,
                                             warmup=warmup, rng=rng, torch=torch, cupy=cupy)
    skipped.update(copy_skipped)
    ceiling = copy["ceiling_TB/s"]

    # -- the data: per set, one collection (x, y, z, r) and four separate arrays --------
    host_dev = pt.get_device("cpu_serial")
    hostc = pt.PortableCollection(XYZR, n, host_dev)
    colls, arrays, want = [], [], None
    for s in range(sets):
        xs, ys, zs = (rng.random(n, dtype=np.float32) for _ in range(3))
        if s == 0:
            want = reference(xs, ys, zs)
        hostc.column("x")[:] = xs
        hostc.column("y")[:] = ys
        hostc.column("z")[:] = zs
        hostc.column("r")[:] = np.nan
        colls.append(hostc.to(q))  # one memcpy of the whole buffer
        arrays.append([common.to_device(dev, q, xs), common.to_device(dev, q, ys),
                       common.to_device(dev, q, zs), pt.alloc_buffer(dev, n, np.float32)])
        q.synchronize()  # before the host arrays are refilled
        del xs, ys, zs
    del hostc
    views = [c.view() for c in colls]
    coll_cols = [[c.column(name) for name in "xyzr"] for c in colls]
    wd = pt.make_workdiv(dev, n)

    def poison_and_read(outs: list[Any]) -> Callable[[str], Any]:
        def act(what: str) -> Any:
            if what == "poison":
                pt.memset(q, outs[0], 0xFF)  # NaN: an unwritten element fails the check
                return None
            return outs[0].copy_to_host()
        return act

    view_out = poison_and_read([c.column("r") for c in colls])
    arr_out = poison_and_read([s[3] for s in arrays])
    variants: list[dict[str, Any]] = [
        {"name": "portable view", "kind": "portable", "config": f"{wd}, one view argument",
         "run": lambda k: pt.launch(q, wd, norm_view, views[k % sets]), "out": view_out},
        {"name": "portable arrays", "kind": "portable",
         "config": f"{wd}, 4 separately allocated arrays",
         "run": lambda k: pt.launch(q, wd, soa_norm, *arrays[k % sets]), "out": arr_out},
        {"name": "numba 1 elem/thread", "kind": "raw numba-cuda",
         "config": f"[{full_blocks}, {THREADS}] if i < n, 4 separately allocated arrays",
         "run": lambda k: raw_norm_one_per_thread[full_blocks, THREADS, stream](
             *arrays[k % sets]), "out": arr_out},
        # diagnostics: the same memory as the view, passed as 4 arrays
        {"name": "portable arrays (collection columns)", "kind": "portable",
         "config": f"{wd}, the collection's 4 columns as arrays",
         "run": lambda k: pt.launch(q, wd, soa_norm, *coll_cols[k % sets]), "out": view_out},
        {"name": "numba 1 elem/thread (collection columns)", "kind": "raw numba-cuda",
         "config": f"[{full_blocks}, {THREADS}] if i < n, the collection's 4 columns",
         "run": lambda k: raw_norm_one_per_thread[full_blocks, THREADS, stream](
             *coll_cols[k % sets]), "out": view_out},
    ]

    bytes_moved = 16 * n
    results: dict[str, Any] = {}
    for v in variants:
        entry: dict[str, Any] = {"kind": v["kind"], "config": v["config"]}
        try:
            common.sync_all()
            v["out"]("poison")
            q.synchronize()
            v["run"](0)
            common.sync_all()
            ok, worst = check(np.asarray(v["out"]("read")), want)
            entry["verified"] = ok
            entry["max_rel_error"] = worst
            if not ok:
                common.note(f"norm / {v['name']}: WRONG RESULT (max rel error {worst})")
            ms = common.time_gpu(v["run"], timer, repeat=repeat, warmup=warmup)
            entry["time"] = common.summarize(ms, "ms")
            entry["TB/s"] = common.rate_summary(entry["time"], bytes_moved, "TB/s", 1e12)
            med = entry["TB/s"]["median"]
            entry["pct_of_copy"] = (100.0 * med / ceiling) if (med and ceiling) else None
        except Exception as err:  # noqa: BLE001 - report, keep going
            entry["error"] = f"{type(err).__name__}: {err}"
            common.note(f"norm / {v['name']} failed: {entry['error']}")
        results[v["name"]] = entry
    common.sync_all()

    def tbs(name: str) -> float | None:
        return results.get(name, {}).get("TB/s", {}).get("median")

    def pct(name: str) -> float | None:
        return results.get(name, {}).get("pct_of_copy")

    def verified(name: str) -> bool:
        return results.get(name, {}).get("verified") is True

    r_va = ratio_of(tbs("portable view"), tbs("portable arrays"))
    p_view, p_arr = pct("portable view"), pct("portable arrays")
    sim = gpu.simulated  # simulator timings are not measurements: never claim a target
    targets = {
        "view_vs_arrays": {
            "what": "portable view TB/s / portable separate arrays TB/s (norm)",
            "target": f">= {VIEW_VS_ARRAYS_MIN}", "ratio": r_va,
            "met": None if sim or r_va is None else (
                r_va >= VIEW_VS_ARRAYS_MIN and verified("portable view")
                and verified("portable arrays"))},
        "view_vs_copy": {
            "what": "portable view >= 85% of the copy ceiling", "pct_of_copy": p_view,
            "target": f">= {int(100 * TARGET_FRACTION)}%",
            "met": None if sim or p_view is None else (
                p_view >= 100 * TARGET_FRACTION and verified("portable view"))},
        "arrays_vs_copy": {
            "what": "portable separate arrays >= 85% of the copy ceiling",
            "pct_of_copy": p_arr, "target": f">= {int(100 * TARGET_FRACTION)}%",
            "met": None if sim or p_arr is None else (
                p_arr >= 100 * TARGET_FRACTION and verified("portable arrays"))},
    }
    ratios = {
        "view_vs_arrays": r_va,
        "view_vs_numba": ratio_of(tbs("portable view"), tbs("numba 1 elem/thread")),
        "arrays_vs_numba": ratio_of(tbs("portable arrays"), tbs("numba 1 elem/thread")),
        "view_vs_arrays_same_memory": ratio_of(tbs("portable view"),
                                               tbs("portable arrays (collection columns)")),
    }
    del variants, views, coll_cols, colls, arrays
    common.sync_all()
    return {"n": n, "sets": sets, "threads_per_block": THREADS, "bytes_per_row": 16,
            "bytes_per_launch": bytes_moved, "workdiv": str(wd),
            "collection_bytes": XYZR.byte_size(n),
            "copy": copy,
            "variants": results, "targets": targets, "ratios": ratios, "skipped": skipped}


# ----------------------------------------------------------------------------- CPU
def cpu_section(n: int, repeat: int, k: int, r: int, warmup: int) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    x, y, z = (rng.random(n, dtype=np.float32) for _ in range(3))
    want = reference(x, y, z)
    out = np.empty(n, np.float32)
    bytes_moved = 16 * n

    # -- bandwidth of the norm ---------------------------------------------------------
    # a view must live on its queue's backend: one collection per CPU backend
    variants: list[tuple[str, Callable[[], Any], Callable[[], Any], np.ndarray]] = []
    for backend in ("cpu_serial", "cpu_threads"):
        dev = pt.get_device(backend)
        q = pt.Queue(dev, blocking=True)
        wd = pt.make_workdiv(dev, n)
        coll = pt.PortableCollection(XYZR, n, dev)
        coll.column("x")[:] = x
        coll.column("y")[:] = y
        coll.column("z")[:] = z
        variants.append((f"portable {backend} view",
                         lambda q=q, wd=wd, view=coll.view(): pt.launch(q, wd, norm_view, view),
                         q.synchronize, coll.column("r")))
        variants.append((f"portable {backend} arrays",
                         lambda q=q, wd=wd: pt.launch(q, wd, soa_norm, x, y, z, out),
                         q.synchronize, out))
    variants += [
        ("njit loop arrays", lambda: njit_norm(x, y, z, out), lambda: None, out),
        ("njit prange arrays", lambda: njit_norm_parallel(x, y, z, out), lambda: None, out),
    ]
    bw: dict[str, Any] = {}
    for name, run, sync, dst in variants:
        dst.fill(np.nan)
        run()
        sync()
        ok, worst = check(dst, want)
        if not ok:
            common.note(f"CPU norm / {name}: WRONG RESULT (max rel error {worst})")
        secs = common.time_host(run, repeat=repeat, warmup=2, sync=sync)
        t = common.summarize([s * 1e3 for s in secs], "ms")
        bw[name] = {"verified": ok, "max_rel_error": worst, "time": t,
                    "GB/s": common.rate_summary(t, bytes_moved, "GB/s", 1e9)}

    def gbs(name: str) -> float | None:
        return bw[name]["GB/s"]["median"]

    bw_ratios = {
        "cpu_serial_view_vs_arrays": ratio_of(gbs("portable cpu_serial view"),
                                              gbs("portable cpu_serial arrays")),
        "cpu_threads_view_vs_arrays": ratio_of(gbs("portable cpu_threads view"),
                                               gbs("portable cpu_threads arrays")),
        "cpu_serial_arrays_vs_njit_loop": ratio_of(gbs("portable cpu_serial arrays"),
                                                   gbs("njit loop arrays")),
        "cpu_threads_arrays_vs_njit_prange": ratio_of(gbs("portable cpu_threads arrays"),
                                                      gbs("njit prange arrays")),
    }

    # -- launch cost of the nearly empty kernels -----------------------------------------
    a = np.zeros(WIDE_SIZE, np.float32)
    launches: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {}
    for backend in ("cpu_serial", "cpu_threads"):
        dev = pt.get_device(backend)
        wd = pt.make_workdiv(dev, 1)
        wide = pt.PortableCollection(Wide16, WIDE_SIZE, dev, zero=True)
        wide_view = wide.view()
        for blocking in (False, True):
            q = pt.Queue(dev, blocking=blocking)
            tag = f"{backend}_{'blocking' if blocking else 'nonblocking'}"
            runs = {
                f"portable_1_array_{tag}": lambda q=q, wd=wd: pt.launch(q, wd, one_array, a),
                f"portable_view16_{tag}": lambda q=q, wd=wd, v=wide_view: pt.launch(
                    q, wd, view16, v),
            }
            launch_checks(q, a, wide, {nm: (run, "view16" in nm) for nm, run in runs.items()},
                          backend)
            for nm, run in runs.items():
                launches[nm] = (run, q.synchronize)
    lat: dict[str, Any] = {}
    # one variant at a time (as launch_overhead.py): alternating the thread that enters
    # numba's parallel regions makes each entry costlier
    for name, pair in launches.items():
        lat.update(per_launch_us({name: pair}, k, r, warmup))
    lat_ratios = {}
    for backend in ("cpu_serial", "cpu_threads"):
        for mode in ("nonblocking", "blocking"):
            tag = f"{backend}_{mode}"
            lat_ratios[f"{tag}_view16_vs_1_array"] = ratio_of(
                lat[f"portable_view16_{tag}"]["median"], lat[f"portable_1_array_{tag}"]["median"])
    return {"n": n, "bytes_per_row": 16, "numba_threads": numba.get_num_threads(),
            "bandwidth": bw, "bandwidth_ratios": bw_ratios,
            "launch": {"launches_per_sample": k, "samples": r, "results_us_per_launch": lat,
                       "ratios": lat_ratios}}


# ----------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--log2n", type=int, default=None,
                        help="GPU rows = 2^LOG2N (default 26; quick 20; simulator 10)")
    parser.add_argument("--cpu-log2n", type=int, default=None,
                        help="CPU rows = 2^LOG2N (default 22; quick 18)")
    parser.add_argument("--launches", type=int, default=None,
                        help="K: launches per timed sample (default 2000; quick 200)")
    parser.add_argument("--launch-repeats", type=int, default=None,
                        help="R: timed launch samples per variant (default 15; quick 3)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="bandwidth samples per variant (default 30 GPU / 15 CPU; quick 5)")
    parser.add_argument("--sets", type=int, default=2, help="input sets to rotate among")
    common.add_section_options(parser)
    args = parser.parse_args(argv)

    sim = common.simulated()
    log2n = args.log2n or (10 if sim else 20 if args.quick else 26)
    cpu_log2n = args.cpu_log2n or (18 if args.quick else 22)
    k = args.launches or (5 if sim else 200 if args.quick else 2000)
    lr = args.launch_repeats or (2 if sim else 3 if args.quick else 15)
    l_warmup = 2 if sim else min(k, 200)
    g_repeat = args.repeats or (2 if sim else 5 if args.quick else 30)
    c_repeat = args.repeats or (3 if args.quick else 15)
    g_warmup = 1 if sim else 3 if args.quick else 10
    sets = max(1, args.sets)

    gpu, why = common.gpu_to_measure(args.no_gpu)
    params = {"gpu_n": 2 ** log2n, "cpu_n": 2 ** cpu_log2n, "dtype": "float32",
              "launches_per_sample": k, "launch_samples": lr, "launch_warmup": l_warmup,
              "gpu_repeats": g_repeat, "gpu_warmup": g_warmup, "cpu_repeats": c_repeat,
              "sets": sets, "threads_per_block": THREADS, "wide_columns": NCOLS,
              "wide_rows": WIDE_SIZE,
              "targets": [f"view16 launch <= {LAUNCH_TARGET_RATIO} x one-array launch",
                          f"norm over a view >= {VIEW_VS_ARRAYS_MIN} x over separate arrays",
                          f"view and separate arrays >= {int(100 * TARGET_FRACTION)}% of "
                          f"the device-to-device copy"]}
    device, dslug = common.record_device(gpu)
    record = common.make_record("collection_views", device, params, args.quick)
    targets: dict[str, Any] = {}

    if gpu is None:
        record["gpu"] = {"skipped": why}
    else:
        record["gpu"] = {}
        try:
            g = gpu_launch_section(gpu, k, lr, l_warmup)
            record["gpu"]["launch"] = g
            common.print_launch_costs(f"launch cost on {gpu.name} (us per launch, K={k}, "
                                      f"R={lr})", g["results_us_per_launch"])
            t = g["target"]
            targets["launch_view16_vs_1_array"] = t
            print(f"target view16 / 1 array: ratio {common.fmt_ratio(t['ratio'])} "
                  f"{t['target']} -> {common.verdict(t['met'])}")
            common.print_ratios(g["ratios"])
        except Exception as err:  # noqa: BLE001 - keep the bandwidth figures
            record["gpu"]["launch"] = {"error": f"{type(err).__name__}: {err}"}
            common.note(f"GPU launch section failed: {type(err).__name__}: {err}")
        try:
            b = gpu_bandwidth_section(gpu, 2 ** log2n, sets, g_repeat, g_warmup)
            record["gpu"]["bandwidth"] = b
            common.print_copy_ceiling(b["copy"], gpu.name, log2n)
            common.print_gpu_variants(f"norm r = sqrt(x^2+y^2+z^2), 2^{log2n} float32 rows, "
                                      f"16 B/row", b["variants"])
            for name, t in b["targets"].items():
                targets[f"bandwidth_{name}"] = t
                shown = t.get("ratio", t.get("pct_of_copy"))
                print(f"target {name} ({t['what']}): {common.fmt(shown)} {t['target']} -> "
                      f"{common.verdict(t['met'])}")
            common.print_ratios(b["ratios"])
            for what, why in b["skipped"].items():
                common.note(f"{what} skipped: {why}")
        except Exception as err:  # noqa: BLE001
            record["gpu"]["bandwidth"] = {"error": f"{type(err).__name__}: {err}"}
            common.note(f"GPU bandwidth section failed: {type(err).__name__}: {err}")

    if args.no_cpu:
        record["cpu"] = {"skipped": "--no-cpu"}
    else:
        c = cpu_section(2 ** cpu_log2n, c_repeat, k, lr, l_warmup)
        record["cpu"] = c
        common.print_cpu_variants(f"CPU norm, 2^{cpu_log2n} float32 rows, 16 B/row "
                                  f"({common.cpu_model()}, {c['numba_threads']} numba threads)",
                                  c["bandwidth"])
        common.print_ratios(c["bandwidth_ratios"])
        common.print_launch_costs(f"CPU launch cost (us per launch, K={k}, R={lr})",
                                  c["launch"]["results_us_per_launch"])
        common.print_ratios(c["launch"]["ratios"])

    record["targets"] = targets
    record["targets_met"] = common.all_met(targets)
    common.write_record(args.out, "collection_views", dslug, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
