"""Where a portable CUDA launch spends its host time (a diagnostic, not a benchmark).

Times the pieces of ``pt.launch`` separately against the raw numba-cuda launch
of the same kernel, then prints a cProfile of portable launches. Writes no
record; run it when ``launch_overhead.py`` misses its target:

    python benchmarks/profile_launch.py [--launches 3000]
"""
from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
warnings.filterwarnings("ignore", message=r".*Grid size .* will likely result in GPU under-utilization.*")

import numpy as np  # noqa: E402

import common  # noqa: E402
import portable as pt  # noqa: E402
from launch_overhead import empty_kernel, raw_empty  # noqa: E402


def per_call_us(fn, k: int) -> float:
    for _ in range(min(k, 100)):
        fn()
    t0 = time.perf_counter()
    for _ in range(k):
        fn()
    return (time.perf_counter() - t0) / k * 1e6


def loop_ptx_report() -> None:
    """Integer divisions / remainders in the PTX of each loop shape of bandwidth.py's saxpy."""
    import bandwidth as bw
    dev = pt.get_device("cuda")
    q = pt.Queue(dev)
    x, y, out = (pt.alloc_buffer(dev, 4096, np.float32) for _ in range(3))
    a = bw.SAXPY_A
    pt.launch(q, pt.make_workdiv(dev, 4096), bw.saxpy, a, x, y, out)
    gs, one, wh = bw.RAW_CUDA["saxpy"]
    for kern in (gs, one, wh):
        kern[16, 256, q.native](a, x, y, out)
    q.synchronize()
    shapes = {"portable default (1 elem/thread)": bw.saxpy.compiled[("cuda", (1, (1,)))],
              "raw range() grid-stride": gs, "raw if i < n": one, "raw while grid-stride": wh}
    rows = []
    for name, disp in shapes.items():
        try:
            ptx = "\n".join(str(v) for v in disp.inspect_asm().values())
            lines = ptx.splitlines()
            count = lambda op: sum(1 for ln in lines if ln.strip().startswith(op))  # noqa: E731
            rows.append((name, count("div."), count("rem."), count("setp."),
                         count("ld.global"), len(lines)))
        except Exception as err:  # noqa: BLE001
            rows.append((name, f"error {type(err).__name__}: {err}", "", "", "", ""))
    common.print_table("PTX of saxpy loop shapes (instruction lines)",
                       ["kernel", "div.", "rem.", "setp.", "ld.global", "PTX lines"], rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=3000)
    args = parser.parse_args()
    k = args.launches
    gpu = common.GpuInfo()
    if not gpu.ok or gpu.simulated:
        common.note(f"needs a real CUDA GPU: {gpu.reason or 'simulator'}")
        return 0
    from numba.cuda.typing.typeof import Purpose, typeof

    dev = gpu.device
    q = pt.Queue(dev, blocking=False)
    stream = q.native
    wd = pt.make_workdiv(dev, 1)
    a, b, c = (pt.alloc_buffer(dev, 1024, np.float32) for _ in range(3))
    n = 1
    pt.launch(q, wd, empty_kernel, a, b, c, n)
    raw_empty[1, 256, stream](a, b, c, n)
    q.synchronize()
    backend = dev.backend
    key = (wd.ndim, wd.elements)
    disp = backend._dispatcher(empty_kernel, key)
    full = (wd.elements, a, b, c, n)
    types = tuple(typeof(x, Purpose.argument) for x in full)
    compiled = backend._launchers[(disp, types)]
    raw_types = tuple(typeof(x, Purpose.argument) for x in (a, b, c, n))
    raw_compiled = raw_empty.overloads[raw_types]
    grid, block = wd.blocks[::-1], wd.threads[::-1]

    rows = []

    def row(name: str, fn) -> None:
        us = per_call_us(fn, k)
        stream.synchronize()
        rows.append((name, us))

    row("pt.launch (whole)", lambda: pt.launch(q, wd, empty_kernel, a, b, c, n))
    row("raw kern[grid, block, stream](...)", lambda: raw_empty[1, 256, stream](a, b, c, n))
    row("portable compiled.launch(full, grid, block, stream, 0) only",
        lambda: compiled.launch(full, grid, block, stream, 0))
    row("raw overload .launch(args, (1,), (256,), stream, 0) only",
        lambda: raw_compiled.launch((a, b, c, n), (1,), (256,), stream, 0))
    row("typeof(x, Purpose.argument) x5 (portable's per-launch typing)",
        lambda: tuple(typeof(x, Purpose.argument) for x in full))
    row("backend.prepare_arg x4", lambda: [backend.prepare_arg(empty_kernel, "a", x)
                                           for x in (a, b, c, n)])
    from numba.cuda.cudadrv import driver as _driver
    core_stream = _driver._to_core_stream(stream)  # what kern[grid, block, stream] caches
    row("portable compiled.launch, stream converted once (cuda.core Stream)",
        lambda: compiled.launch(full, grid, block, core_stream, 0))
    row("raw overload .launch, stream converted once (cuda.core Stream)",
        lambda: raw_compiled.launch((a, b, c, n), (1,), (256,), core_stream, 0))
    torch, _ = common.torch_cuda()
    if torch is not None:
        ta, tb, tc = (torch.zeros(1024, device="cuda") for _ in range(3))
        row("backend.prepare_arg x3 torch tensors (as_cuda_array each)",
            lambda: [backend.prepare_arg(empty_kernel, "a", t) for t in (ta, tb, tc)])
        row("pt.launch with 3 torch tensors", lambda: pt.launch(q, wd, empty_kernel, ta, tb, tc, n))
        row("raw kern[grid, block, stream] with 3 torch tensors",
            lambda: raw_empty[1, 256, stream](ta, tb, tc, n))
        cai = ta.__cuda_array_interface__
        print(f"torch __cuda_array_interface__: version {cai.get('version')}, "
              f"stream {cai.get('stream', 'absent')}")
    common.print_table(f"host us per call on {gpu.name} (K={k})", ["piece", "us"], rows)
    loop_ptx_report()

    prof = cProfile.Profile()
    prof.enable()
    for _ in range(k):
        pt.launch(q, wd, empty_kernel, a, b, c, n)
    q.synchronize()
    prof.disable()
    print("\n== cProfile of pt.launch, sorted by own time")
    pstats.Stats(prof).sort_stats("tottime").print_stats(20)
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(k):
        raw_empty[1, 256, stream](a, b, c, n)
    stream.synchronize()
    prof.disable()
    print("\n== cProfile of raw numba launches, sorted by own time")
    pstats.Stats(prof).sort_stats("tottime").print_stats(12)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
