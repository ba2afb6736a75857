"""Host overhead of one kernel launch: portable vs raw numba-cuda, CuPy and njit.

An almost empty kernel (3 float32 arrays and 1 int; one thread adds one
element) is launched K times back to back on a non-blocking queue/stream, then
the queue is synchronized once; the elapsed host time over K is the cost of one
launch (the GPU runs each launch in a few microseconds, faster than the host
issues them, so the host is the bottleneck). Repeated R times, the variants of a
group sampled round-robin so that machine drift hits them alike; medians reported.

GPU variants (skipped with a note when no CUDA GPU is usable):

* ``portable``        ``pt.launch(q, wd, empty_kernel, a, b, c, n)``, numba device arrays
* ``numba``           ``raw_empty[grid, block, stream](a, b, c, n)``
* ``numba_cfg``       ``cfg(a, b, c, n)`` with ``cfg = raw_empty[grid, block, stream]`` built once
* ``cupy``            ``cupy.RawKernel`` with CuPy arrays of the same size (if CuPy works)
* ``portable_torch``, ``numba_torch``, ``numba_cfg_torch``: the same with torch CUDA tensors

CPU variants (always): ``pt.launch`` on cpu_serial / cpu_threads queues (blocking
and non-blocking) vs calling a raw ``@numba.njit`` function (``parallel=True``
with ``prange`` for the threaded one) with the same loop.

Target: portable <= 1.10 x raw numba-cuda (``numba``) per launch.

Run: ``python benchmarks/launch_overhead.py [--quick] [--out DIR]``
"""
from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numba  # noqa: E402
import numpy as np  # noqa: E402

import common  # noqa: E402
import portable as pt  # noqa: E402

warnings.filterwarnings("ignore", message=r".*Grid size .* will likely result in GPU under-utilization.*")

TARGET_RATIO = 1.10
ARRAY_SIZE = 1 << 20  # elements of each of the 3 float32 arrays
WORK = 1  # the int argument: elements the kernel touches


# ----------------------------------------------------------------------------- kernels
@pt.kernel
def empty_kernel(acc, a, b, c, n):
    for i in acc.uniform_elements(n):
        c[i] = a[i] + b[i]


@numba.njit(nogil=True)
def raw_cpu_empty(a, b, c, n):
    for i in range(n):
        c[i] = a[i] + b[i]


@numba.njit(parallel=True, nogil=True)
def raw_cpu_empty_parallel(a, b, c, n):
    for i in numba.prange(n):
        c[i] = a[i] + b[i]


# Raw numba-cuda kernels live at module level and use the global name ``cuda``: the
# CUDA simulator swaps module globals that are numba.cuda, not closure variables.
try:
    from numba import cuda
except Exception:  # noqa: BLE001 - numba-cuda missing or broken: no GPU section
    cuda = None

if cuda is not None and hasattr(cuda, "jit"):
    @cuda.jit
    def raw_empty(a, b, c, n):
        i = cuda.grid(1)
        if i < n:
            c[i] = a[i] + b[i]
else:
    raw_empty = None


CUPY_SOURCE = r"""
extern "C" __global__
void empty_kernel(const float* a, const float* b, float* c, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        c[i] = a[i] + b[i];
    }
}
"""


# ----------------------------------------------------------------------------- measurement
def per_launch_us(variants: dict[str, tuple[Callable[[], Any], Callable[[], Any]]], k: int,
                  r: int, warmup: int) -> dict[str, dict[str, Any]]:
    """Median etc. of host microseconds per launch, variants sampled round-robin."""
    samples = common.time_host_interleaved(variants, repeat=r, warmup=warmup, inner=k)
    return {name: common.summarize([s * 1e6 for s in xs], "us") for name, xs in samples.items()}


def gpu_section(gpu: common.GpuInfo, k: int, r: int, warmup: int) -> dict[str, Any]:
    dev = gpu.device
    q = pt.Queue(dev, blocking=False)
    stream = q.native  # the queue's numba stream: raw launches go on the same stream
    wd = pt.make_workdiv(dev, WORK)
    grid, block = wd.blocks[0], wd.threads[0]
    n = WORK

    host = np.random.default_rng(1).random(ARRAY_SIZE, dtype=np.float32)
    a = pt.alloc_buffer(dev, ARRAY_SIZE, np.float32)
    b = pt.alloc_buffer(dev, ARRAY_SIZE, np.float32)
    c = pt.alloc_buffer(dev, ARRAY_SIZE, np.float32)
    pt.memcpy(q, a, host)
    pt.memcpy(q, b, host)
    pt.memset(q, c, 0)
    q.synchronize()

    results: dict[str, Any] = {}
    skipped: dict[str, str] = {}

    # correctness of the launches we time (one element: c[0] = a[0] + b[0])
    pt.launch(q, wd, empty_kernel, a, b, c, n)
    q.synchronize()
    got = c.copy_to_host()[:2]
    if not (np.isclose(got[0], 2 * host[0]) and got[1] == 0):
        raise RuntimeError(f"portable empty kernel wrote {got}, expected [{2 * host[0]}, 0]")

    cfg = raw_empty[grid, block, stream]
    variants: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
        "portable": (lambda: pt.launch(q, wd, empty_kernel, a, b, c, n), q.synchronize),
        "numba": (lambda: raw_empty[grid, block, stream](a, b, c, n), stream.synchronize),
        "numba_cfg": (lambda: cfg(a, b, c, n), stream.synchronize),
    }
    results.update(per_launch_us(variants, k, r, warmup))

    # CuPy RawKernel, on a non-blocking CuPy stream
    cupy, why = common.cupy_cuda()
    if cupy is None:
        skipped["cupy"] = why or "CuPy unavailable"
    else:
        try:
            kern = cupy.RawKernel(CUPY_SOURCE, "empty_kernel")
            cstream = cupy.cuda.Stream(non_blocking=True)
            with cstream:
                ca = cupy.asarray(host)
                cb = cupy.asarray(host)
                cc = cupy.zeros(ARRAY_SIZE, dtype=cupy.float32)
                cn = np.int64(n)
                kern((grid,), (block,), (ca, cb, cc, cn))
                cstream.synchronize()
                if not np.isclose(float(cc[0].get()), 2 * float(host[0])):
                    raise RuntimeError("CuPy empty kernel produced a wrong c[0]")
                results.update(per_launch_us(
                    {"cupy": (lambda: kern((grid,), (block,), (ca, cb, cc, cn)),
                              cstream.synchronize)}, k, r, warmup))
        except Exception as err:  # noqa: BLE001 - keep the other figures
            skipped["cupy"] = f"failed: {type(err).__name__}: {err}"

    # torch tensors as arguments
    torch, why = common.torch_cuda()
    if torch is None:
        skipped["torch"] = why or "torch CUDA unavailable"
    else:
        try:
            ta = torch.from_numpy(host).to("cuda")
            tb = torch.from_numpy(host).to("cuda")
            tc = torch.zeros(ARRAY_SIZE, dtype=torch.float32, device="cuda")
            torch.cuda.synchronize()
            pt.launch(q, wd, empty_kernel, ta, tb, tc, n)
            q.synchronize()
            if not np.isclose(float(tc[0].item()), 2 * float(host[0])):
                raise RuntimeError("portable empty kernel on torch tensors wrote a wrong c[0]")
            tvariants: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
                "portable_torch": (lambda: pt.launch(q, wd, empty_kernel, ta, tb, tc, n),
                                   q.synchronize),
                "numba_torch": (lambda: raw_empty[grid, block, stream](ta, tb, tc, n),
                                stream.synchronize),
                "numba_cfg_torch": (lambda: cfg(ta, tb, tc, n), stream.synchronize),
            }
            results.update(per_launch_us(tvariants, k, r, warmup))
        except Exception as err:  # noqa: BLE001
            skipped["torch"] = f"failed: {type(err).__name__}: {err}"

    def ratio(num: str, den: str) -> float | None:
        if num in results and den in results and results[den]["median"]:
            return results[num]["median"] / results[den]["median"]
        return None

    def met(r: float | None) -> bool | None:
        # the simulator's timings say nothing about a GPU: never claim a target there
        return None if r is None or gpu.simulated else r <= TARGET_RATIO

    targets = {}
    r_np = ratio("portable", "numba")
    targets["portable_vs_numba"] = {
        "what": "portable pt.launch per-launch host time / raw numba-cuda kern[grid, block, "
                "stream](...) with numba device arrays",
        "target": f"<= {TARGET_RATIO}", "ratio": r_np,
        "met": met(r_np)}
    r_t = ratio("portable_torch", "numba_torch")
    targets["portable_vs_numba_torch"] = {
        "what": "the same with torch CUDA tensors as arguments",
        "target": f"<= {TARGET_RATIO}", "ratio": r_t,
        "met": met(r_t)}
    extra_ratios = {
        "portable_vs_numba_cfg": ratio("portable", "numba_cfg"),
        "portable_vs_cupy": ratio("portable", "cupy"),
        "numba_vs_cupy": ratio("numba", "cupy"),
        "numba_torch_vs_numba": ratio("numba_torch", "numba"),
    }
    return {"launch_config": {"grid": grid, "block": block, "n": n,
                              "array_elements": ARRAY_SIZE},
            "results_us_per_launch": results, "skipped": skipped, "targets": targets,
            "ratios": extra_ratios,
            "anchors_h100_us": {"numba_3_arrays_1_int": 44.0, "numba_3_torch_tensors": 118.0,
                                "cupy_rawkernel": 6.7}}


def cpu_section(k: int, r: int, warmup: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    n = WORK
    rng = np.random.default_rng(2)
    a = rng.random(ARRAY_SIZE, dtype=np.float32)
    b = rng.random(ARRAY_SIZE, dtype=np.float32)
    c = np.zeros(ARRAY_SIZE, dtype=np.float32)

    raw_cpu_empty(a, b, c, n)
    raw_cpu_empty_parallel(a, b, c, n)
    variants: dict[str, tuple[Callable[[], Any], Callable[[], Any]]] = {
        "njit": (lambda: raw_cpu_empty(a, b, c, n), lambda: None),
        "njit_parallel": (lambda: raw_cpu_empty_parallel(a, b, c, n), lambda: None),
    }
    for backend in ("cpu_serial", "cpu_threads"):
        dev = pt.get_device(backend)
        wd = pt.make_workdiv(dev, n)
        for blocking in (True, False):
            q = pt.Queue(dev, blocking=blocking)
            c[:] = 0
            pt.launch(q, wd, empty_kernel, a, b, c, n)
            q.synchronize()
            if not (np.isclose(c[0], a[0] + b[0]) and c[1] == 0):
                raise RuntimeError(f"{backend}: empty kernel wrote {c[:2]}")
            name = f"portable_{backend}_{'blocking' if blocking else 'nonblocking'}"
            variants[name] = (lambda q=q, wd=wd: pt.launch(q, wd, empty_kernel, a, b, c, n),
                              q.synchronize)
    # one variant at a time here: alternating the thread that enters numba's parallel
    # regions (the main thread, a non-blocking queue's worker) makes each entry costlier
    for name, pair in variants.items():
        results.update(per_launch_us({name: pair}, k, r, warmup))

    def ratio(num: str, den: str) -> float | None:
        return results[num]["median"] / results[den]["median"] if results[den]["median"] else None
    ratios = {
        "cpu_serial_blocking_vs_njit": ratio("portable_cpu_serial_blocking", "njit"),
        "cpu_serial_nonblocking_vs_njit": ratio("portable_cpu_serial_nonblocking", "njit"),
        "cpu_threads_blocking_vs_njit_parallel": ratio("portable_cpu_threads_blocking",
                                                       "njit_parallel"),
        "cpu_threads_nonblocking_vs_njit_parallel": ratio("portable_cpu_threads_nonblocking",
                                                          "njit_parallel"),
    }
    return {"numba_threads": numba.get_num_threads(), "n": n, "array_elements": ARRAY_SIZE,
            "results_us_per_launch": results, "ratios": ratios}


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=None,
                        help="K: launches per timed sample (default 2000; quick 200)")
    parser.add_argument("--repeats", type=int, default=None,
                        help="R: timed samples per variant (default 15; quick 3)")
    common.add_section_options(parser)
    args = parser.parse_args(argv)

    sim = common.simulated()
    k = args.launches or (5 if sim else 200 if args.quick else 2000)
    r = args.repeats or (2 if sim else 3 if args.quick else 15)
    warmup = min(k, 200) if not sim else 2

    gpu, why = common.gpu_to_measure(args.no_gpu)
    params = {"launches_per_sample": k, "samples": r, "warmup_launches": warmup,
              "array_elements": ARRAY_SIZE, "dtype": "float32", "int_arg": WORK,
              "target": f"portable <= {TARGET_RATIO} x raw numba-cuda per launch"}
    device, dslug = common.record_device(gpu)
    record = common.make_record("launch_overhead", device, params, args.quick)

    if gpu is None:
        record["gpu"] = {"skipped": why}
    else:
        g = gpu_section(gpu, k, r, warmup)
        record["gpu"] = g
        common.print_launch_costs(f"launch overhead on {gpu.name} (us per launch, K={k}, "
                                  f"R={r})", g["results_us_per_launch"])
        for what, reason in g["skipped"].items():
            common.note(f"{what} skipped: {reason}")
        for name, t in g["targets"].items():
            print(f"target {name}: ratio {common.fmt_ratio(t['ratio'])} {t['target']} -> "
                  f"{common.verdict(t['met'])}")
        common.print_ratios(g["ratios"])

    if args.no_cpu:
        record["cpu"] = {"skipped": "--no-cpu"}
    else:
        c = cpu_section(k, r, warmup)
        record["cpu"] = c
        common.print_launch_costs(f"launch overhead on CPU ({common.cpu_model()}, "
                                  f"{c['numba_threads']} numba threads; us per launch)",
                                  c["results_us_per_launch"])
        common.print_ratios(c["ratios"])

    gpu_targets = record["gpu"].get("targets", {}) if isinstance(record["gpu"], dict) else {}
    record["targets"] = gpu_targets
    record["targets_met"] = (None if not gpu_targets or gpu_targets["portable_vs_numba"]["met"]
                             is None else gpu_targets["portable_vs_numba"]["met"])
    common.write_record(args.out, "launch_overhead", dslug, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
