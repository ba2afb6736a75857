"""Cold versus warm first launch: what the disk cache of compiled kernels saves.

Each case runs as a new process twice with one fresh cache directory
(``PORTABLE_CACHE_DIR``): the first compiles and fills the cache (cold), the
second loads from it (warm). Cases: a script launching a few kernels on one
backend (its first launches timed inside the process), and
``examples/calo_single.py --events 1`` (its first event, as it reports it).

Target: a kernel-heavy example's first event in a second process <= 0.5 s.

    python benchmarks/kernel_cache.py                     # PORTABLE_BACKEND picks the backend
    PORTABLE_BACKEND=cpu_threads python benchmarks/kernel_cache.py --quick
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import common

TARGET_S = 0.5
KERNELS = textwrap.dedent('''
    import json, math, sys, time
    import numpy as np
    import portable as pt

    @pt.device_function
    def gauss(x, width):
        return math.exp(-0.5 * (x / width) ** 2)

    @pt.kernel
    def axpy(acc, a, x, y, out):
        for i in acc.uniform_elements(x.size):
            out[i] = a * x[i] + y[i]

    @pt.kernel
    def smear(acc, x, width, out):
        for i in acc.uniform_elements(x.size):
            out[i] = gauss(x[i], width) * x[i]

    @pt.kernel
    def histogram(acc, x, low, step, counts):
        for i in acc.uniform_elements(x.size):
            b = int((x[i] - low) / step)
            if 0 <= b < counts.size:
                acc.atomic_add(counts, b, 1)

    @pt.kernel
    def transpose(acc, a, out):
        for i, j in acc.uniform_elements(a.shape[0], a.shape[1]):
            out[j, i] = a[i, j]

    queue = pt.Queue(pt.get_device())

    def on_device(host):
        buffer = pt.alloc_buffer(queue.device, host.shape, host.dtype)
        pt.memcpy(queue, buffer, host)
        return buffer

    x, y, out = on_device(np.linspace(0, 1, 1000)), on_device(np.ones(1000)), on_device(np.empty(1000))
    counts, a = on_device(np.zeros(10, np.int64)), on_device(np.arange(12.0).reshape(3, 4))
    transposed = on_device(np.empty((4, 3)))
    work = pt.make_workdiv(queue.device, x.size)
    launches = {
        "axpy": lambda: pt.launch(queue, work, axpy, 2.0, x, y, out),
        "smear": lambda: pt.launch(queue, work, smear, x, 0.3, out),
        "histogram": lambda: pt.launch(queue, work, histogram, x, 0.0, 0.1, counts),
        "transpose": lambda: pt.launch(queue, pt.make_workdiv(queue.device, a.shape),
                                       transpose, a, transposed),
    }
    times = {}
    for name, run in launches.items():
        start = time.perf_counter()
        run()
        queue.synchronize()
        times[name] = time.perf_counter() - start
    print(json.dumps({"backend": queue.backend.name, "times": times}))
''')
_FIRST_EVENT = re.compile(r"first event \(compiling\) ([0-9.]+) s")


def run(command: list[str], cache: str, env: dict[str, str] | None = None
        ) -> tuple[float, str]:
    """Run ``command`` with the cache directory ``cache``: its wall time and stdout."""
    environment = {**os.environ, "PORTABLE_CACHE_DIR": cache, **(env or {})}
    start = time.perf_counter()
    done = subprocess.run(command, env=environment, capture_output=True, text=True,
                          cwd=common.REPO_ROOT, timeout=900)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{done.stderr[-2000:]}")
    return wall, done.stdout


def kernels_case(cache: str) -> dict[str, Any]:
    """First launches of the script's kernels, cold then warm."""
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(KERNELS)
    try:
        result: dict[str, Any] = {}
        for phase in ("cold", "warm"):
            wall, out = run([sys.executable, script.name], cache)
            report = json.loads(out.strip().splitlines()[-1])
            result[phase] = {"process_s": wall, "first_launch_s": report["times"],
                             "backend": report["backend"]}
        return result
    finally:
        os.unlink(script.name)


def example_case(cache: str) -> dict[str, Any]:
    """``examples/calo_single.py --events 1``, cold then warm."""
    result: dict[str, Any] = {}
    for phase in ("cold", "warm"):
        wall, out = run([sys.executable, "examples/calo_single.py", "--events", "1"], cache)
        found = _FIRST_EVENT.search(out)
        result[phase] = {"process_s": wall,
                         "first_event_s": float(found.group(1)) if found else None}
    return result


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    parser.add_argument("--no-example", action="store_true",
                        help="skip examples/calo_single.py (so does --quick)")
    args = parser.parse_args(argv)
    cases: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="portable-kernels-") as cache:
        cases["kernels"] = kernels_case(os.path.join(cache, "kernels"))
        if not (args.no_example or args.quick):
            try:
                cases["calo_single"] = example_case(os.path.join(cache, "calo"))
            except RuntimeError as err:
                common.note(f"examples/calo_single.py did not run: {err}")
    kernels = cases["kernels"]
    rows = [[name, kernels["cold"]["first_launch_s"][name],
             kernels["warm"]["first_launch_s"][name],
             common.fmt_ratio(kernels["warm"]["first_launch_s"][name]
                              / kernels["cold"]["first_launch_s"][name])]
            for name in kernels["cold"]["first_launch_s"]]
    rows.append(["(process)", kernels["cold"]["process_s"], kernels["warm"]["process_s"],
                 common.fmt_ratio(kernels["warm"]["process_s"] / kernels["cold"]["process_s"])])
    targets: dict[str, dict[str, Any]] = {}
    example = cases.get("calo_single")
    if example is not None:
        cold, warm = example["cold"]["first_event_s"], example["warm"]["first_event_s"]
        rows.append(["calo_single first event", cold, warm,
                     common.fmt_ratio(warm / cold if cold and warm is not None else None)])
        rows.append(["calo_single (process)", example["cold"]["process_s"],
                     example["warm"]["process_s"], common.fmt_ratio(
                         example["warm"]["process_s"] / example["cold"]["process_s"])])
        met = None if warm is None else warm <= TARGET_S
        targets["calo_single_warm_first_event"] = {
            "target_s": TARGET_S, "measured_s": warm, "met": met,
            "gap_s": None if warm is None else max(0.0, warm - TARGET_S)}
    backend = kernels["cold"]["backend"]
    common.print_table(f"first launch, cold vs warm cache ({backend}), seconds",
                       ["case", "cold", "warm", "warm/cold"], rows)
    for name, target in targets.items():
        print(f"target {name} <= {TARGET_S} s: {common.verdict(target['met'])} "
              f"(measured {common.fmt(target['measured_s'])} s)")
    record = common.make_record("kernel_cache", backend, {"backend": backend}, args.quick)
    record.update(cases=cases, targets=targets)
    common.write_record(args.out, "kernel_cache", f"{backend}_{common.cpu_slug()}", record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
