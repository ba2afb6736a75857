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
import time

import numpy as np

import kernels
import portable as pt
from kernels.reference import histogram_ref

R_MAX = 200.0  # cm: the radius histogram's range is [0, R_MAX)
R_BINS = 40


@pt.kernel
def hit_radius(acc, x, y, z, r):
    for i in acc.uniform_elements(x.size):
        r[i] = math.sqrt(x[i] * x[i] + y[i] * y[i] + z[i] * z[i])


def to_device(queue: pt.Queue, host: np.ndarray):
    buf = pt.alloc_buffer(queue.device, host.shape, host.dtype)
    pt.memcpy(queue, buf, host)
    return buf


def process(queue: pt.Queue, hits: dict[str, np.ndarray], far_hit: pt.DeviceFunction
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """One event on ``queue``: radii, radius histogram, sum of radii, indices
    of the hits where ``far_hit(radius)`` holds; returns them copied back to
    the host."""
    n = hits["x"].size
    x, y, z = (to_device(queue, hits[c]) for c in "xyz")
    r = pt.alloc_buffer(queue.device, n, np.float32)
    pt.launch(queue, pt.make_workdiv(queue.device, n), hit_radius, x, y, z, r)

    counts = pt.alloc_buffer(queue.device, R_BINS, np.int64)
    kernels.histogram(queue, r, 0.0, R_MAX, counts)
    total = pt.alloc_buffer(queue.device, 1, np.float32)
    kernels.reduce_sum(queue, r, total)
    far = pt.alloc_buffer(queue.device, n, np.int64)
    n_far = kernels.compact_where(queue, far_hit, r, far)  # synchronizes once

    r_h, counts_h = np.empty(n, np.float32), np.empty(R_BINS, np.int64)
    total_h, far_h = np.empty(1, np.float32), np.empty(n_far, np.int64)
    for host, device in ((r_h, r), (counts_h, counts), (total_h, total), (far_h, far[:n_far])):
        pt.memcpy(queue, host, device)
    queue.synchronize()
    return r_h, counts_h, total_h, far_h


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hits", type=int, default=1_000_000)
    parser.add_argument("--cut", type=float, default=80.0, help="radius cut in cm")
    args = parser.parse_args()

    queue = pt.Queue(pt.get_device(), blocking=False)
    print(f"backend {queue.backend.name}, device {queue.device.name}")
    rng = np.random.default_rng()
    hits = {c: rng.normal(0.0, 50.0, args.hits).astype(np.float32) for c in "xyz"}

    far_hit = beyond_cut(args.cut)
    first = time.perf_counter()
    process(queue, hits, far_hit)  # compiles every kernel for this backend
    second = time.perf_counter()
    r_h, counts_h, total_h, far_h = process(queue, hits, far_hit)
    done = time.perf_counter()

    # each stage against NumPy, given the stage's own input
    r_ref = np.sqrt(hits["x"] ** 2 + hits["y"] ** 2 + hits["z"] ** 2, dtype=np.float32)
    np.testing.assert_allclose(r_h, r_ref, rtol=1e-6)
    np.testing.assert_array_equal(counts_h, histogram_ref(r_h, 0.0, R_MAX, R_BINS, np.int64))
    np.testing.assert_array_equal(far_h, np.flatnonzero(r_h > args.cut))
    assert math.isclose(total_h[0], r_h.sum(dtype=np.float64), rel_tol=1e-4)

    width, busiest = R_MAX / R_BINS, counts_h.argmax()
    print(f"{args.hits} hits: {far_h.size} beyond {args.cut} cm, mean radius "
          f"{total_h[0] / args.hits:.2f} cm; busiest radius bin "
          f"{width * busiest:g}-{width * (busiest + 1):g} cm")
    print(f"first event {1e3 * (second - first):.1f} ms (compiling the kernels), "
          f"next event {1e3 * (done - second):.1f} ms; every result equals NumPy's")


def beyond_cut(cut: float) -> pt.DeviceFunction:
    """A predicate ``r > cut`` as a device function (the cut is frozen in)."""
    @pt.device_function
    def predicate(value):
        return value > cut
    return predicate


if __name__ == "__main__":
    main()
