"""cpu_threads against cpu_serial: how well the threaded CPU backend scales.

Three portable kernels, the default ``make_workdiv``, blocking queues:
``heavy`` (per element 8 x (sin + exp + a few flops), float64, compute-bound),
``norm`` (r = sqrt(x²+y²+z²), float32) and ``saxpy`` (float32), both memory-bound.
``@numba.njit`` loops, serial and ``prange``, give the speed-up a hand-written
threaded loop gets on the same machine. Variants are sampled round-robin, so a
load spike from another process hits serial and threaded runs alike.

Target: cpu_threads >= 0.85 x threads x cpu_serial on the compute-bound kernel
(1.7 on 2 threads; memory-bound kernels are bounded by the memory system).

    python benchmarks/cpu_scaling.py [--quick] [--log2n N] [--threads T]
"""
from __future__ import annotations

import math
from typing import Any

import common  # noqa: I001 - puts the repository on sys.path
import numba
import numpy as np

import portable as pt
import workloads as w

TERMS, EFFICIENCY = 8, 0.85


@pt.kernel
def heavy(acc, x, out):
    for i in acc.uniform_elements(x.size):
        s = 0.0
        for k in range(TERMS):
            t = x[i] + 0.25 * k
            s += math.sin(t) * math.exp(-0.5 * t) + 0.001 * t * t
        out[i] = s


@numba.njit(inline="always")
def _heavy_element(v: float) -> float:
    s = 0.0
    for k in range(TERMS):
        t = v + 0.25 * k
        s += math.sin(t) * math.exp(-0.5 * t) + 0.001 * t * t
    return s


@numba.njit(nogil=True)
def njit_heavy(x, out):
    for i in range(x.size):
        out[i] = _heavy_element(x[i])


@numba.njit(parallel=True, nogil=True)
def njit_heavy_parallel(x, out):
    for i in numba.prange(x.size):
        out[i] = _heavy_element(x[i])


def cases(n: int, rng: np.random.Generator) -> dict[str, dict[str, Any]]:
    """Per kernel: the portable kernel, its njit twins, arguments, output, reference."""
    x = rng.random(n // 4)
    reference = sum(np.sin(x + 0.25 * k) * np.exp(-0.5 * (x + 0.25 * k))
                    + 0.001 * (x + 0.25 * k) ** 2 for k in range(TERMS))
    xs = [rng.random(n, dtype=np.float32) for _ in range(3)]
    outs = [np.empty(n // 4), np.empty(n, np.float32), np.empty(n, np.float32)]
    return {"heavy": {"kernels": (heavy, njit_heavy, njit_heavy_parallel),
                      "args": (x, outs[0]), "want": reference, "bound": "compute"},
            "norm": {"kernels": (w.soa_norm, w.njit_norm, w.njit_norm_parallel),
                     "args": (*xs, outs[1]), "want": w.norm_reference(*xs), "bound": "memory"},
            "saxpy": {"kernels": (w.saxpy, w.njit_saxpy, w.njit_saxpy_parallel),
                      "args": (w.SAXPY_A, xs[0], xs[1], outs[2]),
                      "want": w.saxpy_reference(xs[0], xs[1]), "bound": "memory"}}


def measure(case: dict[str, Any], repeat: int) -> dict[str, Any]:
    kernel, serial, parallel = case["kernels"]
    args, out = case["args"], case["args"][-1]
    variants: common.Variants = {}
    for backend in ("cpu_serial", "cpu_threads"):
        q = pt.Queue(pt.get_device(backend))
        wd = pt.make_workdiv(q.device, out.size)
        variants[f"portable {backend}"] = (lambda q=q, wd=wd: pt.launch(q, wd, kernel, *args),
                                           q.synchronize)
    variants["njit serial"] = (lambda: serial(*args), lambda: None)
    variants["njit prange"] = (lambda: parallel(*args), lambda: None)
    verified = {}
    for name, (run, sync) in variants.items():
        out.fill(np.nan)
        run()
        sync()
        verified[name] = bool(np.allclose(out, case["want"], rtol=2e-6, atol=1e-9))
    samples = common.time_host(variants, repeat=repeat, warmup=2)
    ms = {name: common.summarize([s * 1e3 for s in xs], "ms") for name, xs in samples.items()}

    def speedup(slow: str, fast: str) -> float | None:
        return common.ratio(ms[slow]["median"], ms[fast]["median"])
    return {"bound": case["bound"], "n": out.size,
            "variants": {name: {"verified": verified[name], "time": ms[name]} for name in ms},
            "speedup_portable": speedup("portable cpu_serial", "portable cpu_threads"),
            "speedup_njit": speedup("njit serial", "njit prange"),
            "portable_threads_vs_njit_prange": common.ratio(
                ms["portable cpu_threads"]["median"], ms["njit prange"]["median"])}


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--log2n", type=int, help="elements 2^N (default 24, quick 18); "
                                                 "heavy takes a quarter")
    parser.add_argument("--threads", type=int, help="numba threads (default: numba's)")
    args = parser.parse_args(argv)
    if args.threads:
        numba.set_num_threads(args.threads)
    threads = numba.get_num_threads()
    log2n, repeat = args.log2n or (18 if args.quick else 24), 3 if args.quick else 11
    record = common.make_record("cpu_scaling", f"{common.cpu_model()} (CPU)",
                                {"n": 2 ** log2n, "repeats": repeat, "heavy_terms": TERMS,
                                 "numba_threads": threads}, args.quick)
    record["kernels"] = {name: measure(case, repeat) for name, case in
                         cases(2 ** log2n, np.random.default_rng(2024)).items()}
    common.print_table(f"cpu_threads / cpu_serial on {threads} threads, ms (median of {repeat})",
                       ["kernel", "serial", "threads", "speed-up", "njit speed-up", "ok"],
                       [(name, k["variants"]["portable cpu_serial"]["time"]["median"],
                         k["variants"]["portable cpu_threads"]["time"]["median"],
                         k["speedup_portable"], k["speedup_njit"],
                         all(v["verified"] for v in k["variants"].values()))
                        for name, k in record["kernels"].items()])
    record["targets"] = {"heavy_speedup": common.target(
        "cpu_threads / cpu_serial, compute-bound kernel",
        record["kernels"]["heavy"]["speedup_portable"], EFFICIENCY * threads, at_most=False,
        judged=threads > 1)}
    record["targets_met"] = common.all_met(record["targets"])
    common.print_targets(record["targets"])
    common.write_record(args.out, "cpu_scaling", common.cpu_slug(), record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
