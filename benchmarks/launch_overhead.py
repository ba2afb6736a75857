"""Host time per kernel launch: portable against raw numba-cuda, CuPy and njit.

An almost empty kernel (3 float32 arrays and 1 int; one thread adds one element)
is launched K times back to back on a non-blocking queue, then the queue is
synchronized once: elapsed / K is the host's cost of one launch (the GPU runs
each launch faster than the host issues them). R samples, variants round-robin.

GPU: ``portable`` (``pt.launch`` with numba device arrays), ``numba``
(``kern[grid, block, stream](...)``), ``numba_cfg`` (the configured kernel built
once), ``cupy`` (``RawKernel``), ``portable_torch`` / ``numba_torch`` with torch
CUDA tensors, and a kernel taking a 16-column collection view
(``portable_view16``) against the same kernel taking the 16 columns as arrays
(``portable_16_arrays``, ``numba_16_arrays``). CPU: ``pt.launch`` on cpu_serial / cpu_threads queues,
blocking and not, against ``@numba.njit`` (and ``parallel=True``) functions.

Targets: portable <= 8 µs per launch on a GPU, and <= 1.10 x raw numba-cuda.

    python benchmarks/launch_overhead.py [--quick] [--launches K] [--repeats R]
"""
from __future__ import annotations

from typing import Any

import common  # noqa: I001 - puts the repository on sys.path
import numba
import numpy as np

import portable as pt
from workloads import (CUDA_C, WIDE, add_first, arrays16_first, njit_add_first,
                       njit_add_first_parallel, raw_add_first, raw_arrays16_first, to_device,
                       view16_first)

ARRAY_SIZE = 1 << 20
TARGET_US, TARGET_RATIO = 8.0, 1.10


def gpu_section(gpu: common.Gpu, k: int, r: int, warmup: int) -> dict[str, Any]:
    dev = gpu.device
    q = pt.Queue(dev, blocking=False)
    stream, wd = q.native, pt.make_workdiv(dev, 1)
    grid, block = wd.blocks[0], wd.threads[0]
    host = np.random.default_rng(1).random(ARRAY_SIZE, dtype=np.float32)
    a, b = (to_device(q, host) for _ in range(2))
    c = pt.alloc_buffer(dev, ARRAY_SIZE, np.float32)
    pt.memset(q, c, 0)
    pt.launch(q, wd, add_first, a, b, c, 1)
    q.synchronize()
    expect_first(c.copy_to_host(), host, "portable")
    cfg = raw_add_first[grid, block, stream]
    variants: common.Variants = {
        "portable": (lambda: pt.launch(q, wd, add_first, a, b, c, 1), q.synchronize),
        "numba": (lambda: raw_add_first[grid, block, stream](a, b, c, 1), stream.synchronize),
        "numba_cfg": (lambda: cfg(a, b, c, 1), stream.synchronize),
    }
    wide = pt.PortableCollection(WIDE, 1024, dev, zero=True, queue=q)
    view, columns = wide.view(), [wide.column(f"c{i}") for i in range(16)]
    for name, run in {"portable_view16": lambda: pt.launch(q, wd, view16_first, view),
                      "portable_16_arrays": lambda: pt.launch(q, wd, arrays16_first, *columns),
                      "numba_16_arrays": lambda: raw_arrays16_first[grid, block, stream](
                          *columns)}.items():
        pt.memset(q, columns[0], 0)
        run()
        q.synchronize()
        got = columns[0].copy_to_host()[:2]
        if not (got[0] == 1 and got[1] == 0):
            raise RuntimeError(f"{name}: the kernel wrote {got}, expected [1, 0]")
        variants[name] = (run, q.synchronize)
    skipped: dict[str, str] = {}
    cupy, why = common.gpu_library("cupy")
    if cupy is None:
        skipped["cupy"] = why or ""
    else:
        kern = cupy.RawKernel(CUDA_C, "add_first")
        cstream = cupy.cuda.Stream(non_blocking=True)
        with cstream:
            ca, cb, cc = cupy.asarray(host), cupy.asarray(host), cupy.zeros_like(cupy.asarray(host))
        args = (ca, cb, cc, np.int64(1))

        def cupy_launch() -> None:
            kern((grid,), (block,), args, stream=cstream)
        cupy_launch()
        cstream.synchronize()
        expect_first(cc.get(), host, "cupy")
        variants["cupy"] = (cupy_launch, cstream.synchronize)
    torch, why = common.gpu_library("torch")
    if torch is None:
        skipped["torch"] = why or ""
    else:
        ta, tb = (torch.from_numpy(host).cuda() for _ in range(2))
        tc = torch.zeros_like(ta)
        torch.cuda.synchronize()
        pt.launch(q, wd, add_first, ta, tb, tc, 1)
        q.synchronize()
        expect_first(tc.cpu().numpy(), host, "portable with torch tensors")
        variants["portable_torch"] = (lambda: pt.launch(q, wd, add_first, ta, tb, tc, 1),
                                      q.synchronize)
        variants["numba_torch"] = (lambda: raw_add_first[grid, block, stream](ta, tb, tc, 1),
                                   stream.synchronize)
    results = common.host_us(variants, repeat=r, warmup=warmup, inner=k)
    med = {name: s["median"] for name, s in results.items()}
    judged = not gpu.simulated
    targets = {
        "portable_us": common.target("portable pt.launch, 3 device arrays + 1 int, host µs",
                                     med["portable"], TARGET_US, judged=judged),
        "portable_vs_numba": common.target("portable / raw numba-cuda per launch",
                                           common.ratio(med["portable"], med["numba"]),
                                           TARGET_RATIO, judged=judged),
    }
    ratios = {"portable_vs_cupy": common.ratio(med["portable"], med.get("cupy")),
              "view16_vs_portable": common.ratio(med["portable_view16"], med["portable"]),
              "view16_vs_numba_16_arrays": common.ratio(med["portable_view16"],
                                                        med["numba_16_arrays"]),
              "portable_torch_vs_numba_torch": common.ratio(med.get("portable_torch"),
                                                            med.get("numba_torch"))}
    return {"launch_config": {"grid": grid, "block": block, "n": 1,
                              "array_elements": ARRAY_SIZE},
            "results_us_per_launch": results, "skipped": skipped, "targets": targets,
            "ratios": ratios}


def expect_first(got: np.ndarray, host: np.ndarray, who: str) -> None:
    """The launch wrote c[0] = a[0] + b[0] and nothing else."""
    if not (np.isclose(got[0], 2 * host[0]) and got[1] == 0):
        raise RuntimeError(f"{who}: the kernel wrote {got[:2]}, expected [{2 * host[0]}, 0]")


def cpu_section(k: int, r: int, warmup: int) -> dict[str, Any]:
    rng = np.random.default_rng(2)
    a, b = rng.random(ARRAY_SIZE, dtype=np.float32), rng.random(ARRAY_SIZE, dtype=np.float32)
    c = np.zeros(ARRAY_SIZE, dtype=np.float32)
    variants: common.Variants = {
        "njit": (lambda: njit_add_first(a, b, c, 1), lambda: None),
        "njit_parallel": (lambda: njit_add_first_parallel(a, b, c, 1), lambda: None),
    }
    for backend in ("cpu_serial", "cpu_threads"):
        dev = pt.get_device(backend)
        wd = pt.make_workdiv(dev, 1)
        for blocking in (True, False):
            q = pt.Queue(dev, blocking=blocking)
            name = f"portable_{backend}_{'blocking' if blocking else 'nonblocking'}"
            variants[name] = (lambda q=q, wd=wd: pt.launch(q, wd, add_first, a, b, c, 1),
                              q.synchronize)
    for name, (run, sync) in variants.items():
        c[:] = 0
        run()
        sync()
        if not (np.isclose(c[0], a[0] + b[0]) and c[1] == 0):
            raise RuntimeError(f"{name}: the kernel wrote {c[:2]}, expected [{a[0] + b[0]}, 0]")
    results: dict[str, Any] = {}
    for name, pair in variants.items():  # one at a time: alternating the thread that
        # enters numba's parallel regions makes each entry costlier
        results.update(common.host_us({name: pair}, repeat=r, warmup=warmup, inner=k))
    med = {name: s["median"] for name, s in results.items()}
    return {"numba_threads": numba.get_num_threads(), "results_us_per_launch": results,
            "ratios": {"cpu_serial_blocking_vs_njit":
                       common.ratio(med["portable_cpu_serial_blocking"], med["njit"]),
                       "cpu_threads_blocking_vs_njit_parallel":
                       common.ratio(med["portable_cpu_threads_blocking"],
                                    med["njit_parallel"])}}


def main(argv: list[str] | None = None) -> int:
    parser = common.add_section_options(common.base_parser(__doc__.splitlines()[0]))
    parser.add_argument("--launches", type=int, help="K per sample (default 2000; quick 50)")
    parser.add_argument("--repeats", type=int, help="R samples (default 15; quick 3)")
    args = parser.parse_args(argv)
    small = args.quick or common.simulated()
    k = args.launches or (50 if small else 2000)
    r = args.repeats or (3 if small else 15)
    warmup = min(k, 200)
    gpu, why = common.gpu_to_measure(args.no_gpu)
    device, device_slug = common.record_device(gpu)
    record = common.make_record("launch_overhead", device, {
        "launches_per_sample": k, "samples": r, "warmup_launches": warmup,
        "array_elements": ARRAY_SIZE, "dtype": "float32", "int_arg": 1}, args.quick)
    record["gpu"] = {"skipped": why} if gpu is None else gpu_section(gpu, k, r, warmup)
    if gpu is not None:
        common.print_summaries(f"launch on {gpu.name}, host µs per launch (K={k}, R={r})",
                               record["gpu"]["results_us_per_launch"])
        common.print_targets(record["gpu"]["targets"])
    record["cpu"] = {"skipped": "--no-cpu"} if args.no_cpu else cpu_section(k, r, warmup)
    if not args.no_cpu:
        common.print_summaries(f"launch on {common.cpu_model()}, host µs per launch",
                               record["cpu"]["results_us_per_launch"])
    record["targets"] = record["gpu"].get("targets", {})
    record["targets_met"] = common.all_met(record["targets"])
    common.write_record(args.out, "launch_overhead", device_slug, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
