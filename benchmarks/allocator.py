"""Cost of one allocation and free of a reused size: caching allocator vs direct allocation.

Per size (4 MiB of bytes, and the bytes of a 1M-row collection), the median host
time of one alloc + free, after a warm-up and a synchronize, K pairs per sample,
R samples, the variants sampled round-robin:

* ``caching (blocking q)``      ``pt.caching_allocator(dev)``: alloc then free on a blocking queue
* ``caching (non-blocking q)``  the same on a non-blocking queue (an event is recorded per free)
* ``pt.alloc_buffer``           ``pt.alloc_buffer(dev, n, np.uint8)``, then dropped
* ``torch caching``             ``torch.empty(n, dtype=torch.uint8, device="cuda")``, then deleted
  (GPU only)

The CPU section measures ``cpu_serial``; the GPU section is skipped with a note
without a usable CUDA GPU. Target on a GPU: the caching allocator <= 5 us per
alloc + free of a reused size.

Run: ``python benchmarks/allocator.py [--quick] [--no-gpu] [--no-cpu] [--out DIR]``
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

import common  # noqa: E402
import portable as pt  # noqa: E402
from portable.allocator import CachingAllocator  # noqa: E402

TARGET_US = 5.0


class Hits(pt.Layout):
    """A 1M-row collection of detector hits, for the second size."""

    x = pt.column(np.float32)
    y = pt.column(np.float32)
    z = pt.column(np.float32)
    energy = pt.column(np.float32)
    detector = pt.column(np.int32)


SIZES = {"4 MiB": 4 << 20, "1M-row collection": Hits.byte_size(1_000_000)}


def variants(device: Any, nbytes: int, torch: Any) -> dict[str, tuple[Callable[[], Any],
                                                                        Callable[[], Any]]]:
    """``{name: (one alloc + free, synchronize)}`` for ``nbytes`` on ``device``."""
    blocking, streamed = pt.Queue(device), pt.Queue(device, blocking=False)
    allocator = CachingAllocator(device)

    def cached(queue: pt.Queue) -> Callable[[], None]:
        return lambda: allocator.free(allocator.alloc(queue, nbytes, np.uint8), queue)
    found = {"caching (blocking q)": (cached(blocking), blocking.synchronize),
             "caching (non-blocking q)": (cached(streamed), streamed.synchronize),
             "pt.alloc_buffer": (lambda: pt.alloc_buffer(device, nbytes, np.uint8),
                                 blocking.synchronize)}
    if torch is not None:
        found["torch caching"] = (lambda: torch.empty(nbytes, dtype=torch.uint8, device="cuda"),
                                  torch.cuda.synchronize)
    return found


def measure(device: Any, torch: Any, pairs: int, repeat: int) -> dict[str, Any]:
    """Per size, per variant: the summary of microseconds per alloc + free."""
    results: dict[str, Any] = {}
    for label, nbytes in SIZES.items():
        results[label] = {"bytes": nbytes, "us": common.host_us(
            variants(device, nbytes, torch), repeat=repeat, warmup=min(pairs, 100),
            inner=pairs)}
        common.print_summaries(f"alloc + free of {label} ({nbytes} bytes) on {device}, "
                               f"µs per pair", results[label]["us"])
    return results


def main(argv: list[str] | None = None) -> int:
    parser = common.base_parser(__doc__.splitlines()[0])
    common.add_section_options(parser)
    args = parser.parse_args(argv)
    pairs, repeat = (20, 3) if args.quick or common.simulated() else (2000, 15)
    gpu, why = common.gpu_to_measure(args.no_gpu)
    device_name, device_slug = common.record_device(gpu)
    record = common.make_record("allocator", device_name, {
        "sizes_bytes": SIZES, "pairs_per_sample": pairs, "samples": repeat,
        "target": f"caching allocator <= {TARGET_US} us per alloc + free on a GPU"}, args.quick)
    if gpu is None:
        record["gpu"] = {"skipped": why}
    else:
        torch, no_torch = common.gpu_library("torch")
        if no_torch:
            common.note(f"torch skipped: {no_torch}")
        results = measure(gpu.device, torch, pairs, repeat)
        worst = max(r["us"]["caching (non-blocking q)"]["median"] for r in results.values())
        met = None if gpu.simulated else worst <= TARGET_US
        record["gpu"] = {"results": results, "torch_skipped": no_torch,
                         "target": {"worst_median_us": worst, "met": met}}
        print(f"target: caching allocator <= {TARGET_US} us: worst median "
              f"{common.fmt(worst)} us -> {common.verdict(met)}")
    if args.no_cpu:
        record["cpu"] = {"skipped": "--no-cpu"}
    else:
        record["cpu"] = {"results": measure(pt.get_device("cpu_serial"), None, pairs, repeat)}
    common.write_record(args.out, "allocator", device_slug, record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
