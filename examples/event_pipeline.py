"""An end-to-end event pipeline on the selected backend.

Hits of a toy tracker (x, y, z) are made on the host, copied to the device
once, and processed there by portable kernels: the radius of each hit (a
kernel written here), a histogram of radii, the indices of hits beyond a
cut (stream compaction) and the sum of radii (a reduction) — all enqueued on
one non-blocking queue, with one copy back at the end. Every result is
checked against NumPy.

    PORTABLE_BACKEND=cpu_threads python examples/event_pipeline.py
"""
from __future__ import annotations

import argparse
import math

import numpy as np

import kernels
import portable as pt


@pt.kernel
def hit_radius(acc, x, y, z, r):
    for i in acc.uniform_elements(x.size):
        r[i] = math.sqrt(x[i] * x[i] + y[i] * y[i] + z[i] * z[i])


def to_device(queue: pt.Queue, host: np.ndarray):
    buf = pt.alloc_buffer(queue.device, host.shape, host.dtype)
    pt.memcpy(queue, buf, host)
    return buf


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=1_000_000)
    parser.add_argument("--cut", type=float, default=80.0, help="radius cut in cm")
    args = parser.parse_args()

    queue = pt.Queue(pt.get_device(), blocking=False)
    print(f"backend {queue.backend.name}, device {queue.device.name}")
    rng = np.random.default_rng()
    hits = {c: rng.normal(0.0, 50.0, args.hits).astype(np.float32) for c in "xyz"}

    start, stop = pt.Event(queue.device), pt.Event(queue.device)
    start.record(queue)
    x, y, z = (to_device(queue, hits[c]) for c in "xyz")
    r = pt.alloc_buffer(queue.device, args.hits, np.float32)
    pt.launch(queue, pt.make_workdiv(queue.device, args.hits), hit_radius, x, y, z, r)

    counts = pt.alloc_buffer(queue.device, 40, np.int64)
    kernels.histogram(queue, r, 0.0, 200.0, counts)
    total = pt.alloc_buffer(queue.device, 1, np.float32)
    kernels.reduce_sum(queue, r, total)
    far = pt.alloc_buffer(queue.device, args.hits, np.int64)
    n_far = kernels.compact_where(queue, beyond_cut(args.cut), r, far)  # synchronizes once

    counts_h, total_h = np.empty(40, np.int64), np.empty(1, np.float32)
    far_h = np.empty(n_far, np.int64)
    pt.memcpy(queue, counts_h, counts)
    pt.memcpy(queue, total_h, total)
    pt.memcpy(queue, far_h, far[:n_far])
    stop.record(queue)
    stop.synchronize()

    r_ref = np.sqrt(hits["x"] ** 2 + hits["y"] ** 2 + hits["z"] ** 2, dtype=np.float32)
    np.testing.assert_array_equal(counts_h, np.histogram(r_ref, bins=40, range=(0, 200))[0])
    np.testing.assert_array_equal(far_h, np.flatnonzero(r_ref > args.cut))
    assert math.isclose(total_h[0], r_ref.sum(dtype=np.float64), rel_tol=1e-4)

    print(f"{args.hits} hits: {n_far} beyond {args.cut} cm, mean radius "
          f"{total_h[0] / args.hits:.2f} cm; busiest radius bin "
          f"{5 * counts_h.argmax()}-{5 * counts_h.argmax() + 5} cm")
    print(f"pipeline time {start.elapsed_ms(stop):.2f} ms; every result equals NumPy's")


def beyond_cut(cut: float) -> pt.DeviceFunction:
    """A predicate ``r > cut`` as a device function (the cut is frozen in)."""
    @pt.device_function
    def predicate(value):
        return value > cut
    return predicate


if __name__ == "__main__":
    main()
