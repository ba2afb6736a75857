"""Bandwidth of memory-bound kernels against the device-to-device copy ceiling.

GPU, float32, N = 2^26 (quick 2^16): ``saxpy`` out = a*x + y (12 B/element),
``norm`` r = sqrt(x²+y²+z²) over separate arrays (16 B/element) and
``view_norm``, the same over the columns of one collection view. Variants:
portable with the default ``make_workdiv``; portable on a small grid (2 blocks
per multiprocessor); raw numba-cuda one element per thread and grid-stride on
the small grid; torch eager and a CuPy ``RawKernel`` (CUDA C) as references. The
ceiling is the best of the numba and torch copies (bytes read + written).

Every variant's output is poisoned (NaN), computed once and compared with NumPy
before it is timed; timing is CUDA events around one launch with an untimed
launch enqueued before it (the host's launch overhead stays out), inputs
rotating between 2 sets.

CPU: saxpy on 2^24 float32 (quick 2^16) with cpu_serial / cpu_threads against
``@numba.njit`` loops (serial, ``prange``) and NumPy.

Target: portable default >= 85% of the copy ceiling, every kernel.

    python benchmarks/bandwidth.py [--quick] [--log2n N] [--cpu-log2n N]
"""
from __future__ import annotations

from typing import Any, Callable

import common  # noqa: I001 - puts the repository on sys.path
import numba
import numpy as np

import portable as pt
import workloads as w

TARGET_PCT = 85.0
THREADS = 256
SETS = 2
PORTABLE = {"saxpy": w.saxpy, "norm": w.soa_norm, "view_norm": w.view_norm}


def gpu_cases(q: pt.Queue, n: int, rng: np.random.Generator) -> dict[str, dict[str, Any]]:
    """Per kernel: input sets, outputs, the reference, bytes per element, and how each
    variant launches on set ``k`` (portable / raw numba share one argument order)."""
    dev, cases = q.device, {}
    for name, inputs, reference in (("saxpy", 2, w.saxpy_reference),
                                    ("norm", 3, w.norm_reference)):
        host = [[rng.random(n, dtype=np.float32) for _ in range(inputs)] for _ in range(SETS)]
        cols = [[w.to_device(q, c) for c in s] for s in host]
        outs = [pt.alloc_buffer(dev, n, np.float32) for _ in range(SETS)]
        head = (w.SAXPY_A,) if name == "saxpy" else ()
        cases[name] = {"args": [(*head, *cols[s], outs[s]) for s in range(SETS)],
                       "want": reference(*host[0]), "out": outs[0],
                       "bytes": 4 * (inputs + 1)}
    collections = []
    for s in range(SETS):
        c = pt.PortableCollection(w.XYZR, n, dev, queue=q)
        for member in "xyz":
            pt.memcpy(q, c.column(member), rng.random(n, dtype=np.float32))
        collections.append(c)
    host0 = [collections[0].column(m).copy_to_host() for m in "xyz"]
    cases["view_norm"] = {"args": [(c.view(),) for c in collections],
                          "want": w.norm_reference(*host0), "out": collections[0].column("r"),
                          "bytes": 16}
    return cases


def gpu_section(gpu: common.Gpu, n: int, repeat: int, warmup: int) -> dict[str, Any]:
    q = pt.Queue(gpu.device, blocking=False)
    stream, events = q.native, common.Events("numba", gpu.cuda, q.native)
    small, full = 2 * gpu.sm_count, -(-n // THREADS)
    copy = w.copy_ceiling(q, n, repeat=repeat, warmup=warmup)
    cases = gpu_cases(q, n, np.random.default_rng(12345))
    torch, _ = common.gpu_library("torch")
    cupy, _ = common.gpu_library("cupy")
    module = cupy.RawModule(code=w.CUDA_C) if cupy is not None else None
    kernels = {}
    for name, case in cases.items():
        args = case["args"]
        portable = PORTABLE[name]

        def on(wd: pt.WorkDiv, kernel: Any = portable) -> Callable[[int], Any]:
            return lambda k: pt.launch(q, wd, kernel, *args[k % SETS])
        runs: dict[str, tuple[str, Callable[[int], Any], common.Events]] = {
            "portable default": (str(pt.make_workdiv(gpu.device, n)),
                                 on(pt.make_workdiv(gpu.device, n)), events),
            "portable small grid": (f"{small} x {THREADS}", on(pt.WorkDiv(small, THREADS)),
                                    events)}
        if name != "view_norm":
            one, strided = ((w.raw_saxpy, w.raw_saxpy_grid_stride) if name == "saxpy"
                            else (w.raw_norm, w.raw_norm_grid_stride))
            runs["numba 1 elem/thread"] = (f"{full} x {THREADS}", lambda k, f=one: f[
                full, THREADS, stream](*args[k % SETS]), events)
            runs["numba grid-stride small grid"] = (f"{small} x {THREADS}", lambda k, f=strided:
                                                    f[small, THREADS, stream](*args[k % SETS]),
                                                    events)
            if torch is not None:
                runs["torch eager (reference)"] = (
                    "eager", torch_run(torch, name, args), common.Events("torch", torch))
            if module is not None:
                cstream = cupy.cuda.Stream(non_blocking=True)
                kern = module.get_function("saxpy" if name == "saxpy" else "soa_norm")
                cargs = [tuple(cupy.asarray(a) if hasattr(a, "copy_to_host") else a
                               for a in s) + (np.int64(n),) for s in args]
                runs["cupy RawKernel (reference)"] = (
                    f"{full} x {THREADS}", lambda k, kern=kern, cargs=cargs, cs=cstream: kern(
                        (full,), (THREADS,), cargs[k % SETS], stream=cs),
                    common.Events("cupy", cupy, cstream))
        variants = {}
        for variant, (config, run, timer) in runs.items():
            gpu.cuda.synchronize()
            pt.memset(q, case["out"], 0xFF)  # NaN: an element left unwritten fails the check
            q.synchronize()
            run(0)
            gpu.cuda.synchronize()
            ok = w.matches(case["out"].copy_to_host(), case["want"])
            if not ok:
                common.note(f"{name} / {variant}: WRONG RESULT")
            t = common.time_events({variant: run}, timer, repeat=repeat, warmup=warmup)[variant]
            tbs = common.rate(t, case["bytes"] * n, 1e12, "TB/s")
            share = common.ratio(tbs["median"], copy["ceiling_TB/s"])
            variants[variant] = {"config": config, "verified": ok, "time": t, "TB/s": tbs,
                                 "pct_of_copy": None if share is None else 100 * share}
        pct = variants["portable default"]["pct_of_copy"]
        kernels[name] = {"bytes_per_element": case["bytes"], "variants": variants,
                         "target": common.target("portable default, % of the copy ceiling",
                                                 pct, TARGET_PCT, at_most=False,
                                                 judged=not gpu.simulated)}
        kernels[name]["target"]["pct_of_copy"] = pct
    return {"n": n, "sets": SETS, "sm_count": gpu.sm_count, "copy": copy, "kernels": kernels}


def torch_run(torch: Any, name: str, args: list[tuple[Any, ...]]) -> Callable[[int], Any]:
    """The kernel in eager torch on the same buffers (saxpy one kernel, norm several)."""
    sets = [tuple(torch.as_tensor(a, device="cuda") if hasattr(a, "copy_to_host") else a
                  for a in s) for s in args]
    if name == "saxpy":
        return lambda k: torch.add(sets[k % SETS][2], sets[k % SETS][1],
                                   alpha=float(w.SAXPY_A), out=sets[k % SETS][3])

    def norm(k: int) -> Any:
        x, y, z, r = sets[k % SETS]
        return r.copy_(torch.sqrt(x * x + y * y + z * z))
    return norm


def cpu_section(n: int, repeat: int) -> dict[str, Any]:
    rng = np.random.default_rng(7)
    x, y = rng.random(n, dtype=np.float32), rng.random(n, dtype=np.float32)
    out, want = np.empty(n, np.float32), w.saxpy_reference(x, y)

    def numpy_saxpy() -> None:
        np.multiply(x, w.SAXPY_A, out=out)
        np.add(out, y, out=out)
    variants: common.Variants = {}
    for backend in ("cpu_serial", "cpu_threads"):
        q = pt.Queue(pt.get_device(backend))
        wd = pt.make_workdiv(q.device, n)
        variants[f"portable {backend}"] = (
            lambda q=q, wd=wd: pt.launch(q, wd, w.saxpy, w.SAXPY_A, x, y, out), q.synchronize)
    variants["njit loop"] = (lambda: w.njit_saxpy(w.SAXPY_A, x, y, out), lambda: None)
    variants["njit prange"] = (lambda: w.njit_saxpy_parallel(w.SAXPY_A, x, y, out),
                               lambda: None)
    variants["numpy (2 passes)"] = (numpy_saxpy, lambda: None)
    results = {}
    for name, (run, sync) in variants.items():
        out.fill(np.nan)
        run()
        sync()
        t = common.summarize([s * 1e3 for s in common.time_host(
            {name: (run, sync)}, repeat=repeat, warmup=2)[name]], "ms")
        results[name] = {"verified": w.matches(out, want), "time": t,
                         "GB/s": common.rate(t, 12 * n, 1e9, "GB/s")}

    def gbs(name: str) -> float | None:
        return results[name]["GB/s"]["median"]
    return {"n": n, "numba_threads": numba.get_num_threads(), "variants": results,
            "ratios": {"cpu_serial_vs_njit_loop": common.ratio(gbs("portable cpu_serial"),
                                                               gbs("njit loop")),
                       "cpu_threads_vs_njit_prange": common.ratio(gbs("portable cpu_threads"),
                                                                  gbs("njit prange"))}}


def main(argv: list[str] | None = None) -> int:
    parser = common.add_section_options(common.base_parser(__doc__.splitlines()[0]))
    parser.add_argument("--log2n", type=int, help="GPU elements 2^N (default 26, quick 16)")
    parser.add_argument("--cpu-log2n", type=int, help="CPU elements 2^N (default 24, quick 16)")
    args = parser.parse_args(argv)
    sim = common.simulated()
    log2n = args.log2n or (10 if sim else 16 if args.quick else 26)
    cpu_log2n = args.cpu_log2n or (16 if args.quick else 24)
    repeat, warmup = (2, 1) if sim or args.quick else (30, 10)
    gpu, why = common.gpu_to_measure(args.no_gpu)
    device, device_slug = common.record_device(gpu)
    record = common.make_record("bandwidth", device, {
        "gpu_n": 2 ** log2n, "cpu_n": 2 ** cpu_log2n, "dtype": "float32", "repeats": repeat,
        "threads_per_block": THREADS, "saxpy_a": float(w.SAXPY_A)}, args.quick)
    record["gpu"] = {"skipped": why} if gpu is None else gpu_section(gpu, 2 ** log2n, repeat,
                                                                     warmup)
    for name, kernel in record["gpu"].get("kernels", {}).items():
        common.print_table(f"{name} on {device}, 2^{log2n} float32 (copy ceiling "
                           f"{common.fmt(record['gpu']['copy']['ceiling_TB/s'])} TB/s)",
                           ["variant", "config", "TB/s", "% copy", "ok"],
                           [(v, e["config"], e["TB/s"]["median"], e["pct_of_copy"],
                             e["verified"]) for v, e in kernel["variants"].items()])
    record["cpu"] = ({"skipped": "--no-cpu"} if args.no_cpu
                     else cpu_section(2 ** cpu_log2n, 3 if args.quick else 15))
    if not args.no_cpu:
        common.print_table(f"saxpy on {common.cpu_model()}, 2^{cpu_log2n} float32",
                           ["variant", "GB/s", "ok"],
                           [(v, e["GB/s"]["median"], e["verified"])
                            for v, e in record["cpu"]["variants"].items()])
    record["targets"] = {name: k["target"]
                         for name, k in record["gpu"].get("kernels", {}).items()}
    record["targets_met"] = common.all_met(record["targets"])
    common.print_targets(record["targets"])
    common.write_record(args.out, "bandwidth", device_slug, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
