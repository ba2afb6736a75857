"""The kernels package on every backend, checked against kernels.reference.

Every run gets fresh random inputs; the seed is in each failure message.
Outputs are poisoned (every byte 0xff: NaN for floats, -1 for integers)
before each run, so an element a kernel forgets to write is caught. Integer
results must be exactly equal; float sums and scans within a tolerance that
grows with n.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pytest

import kernels
import portable as pt
from kernels import reference as ref
from kernels.histogram import bin_edges
from portable.testing import every_backend, host_copy, poisoned, test_sizes

NUMERIC = [np.float32, np.float64, np.int32, np.int64]
#: integer sums and scans over the whole range wrap, as they should; the CUDA
#: simulator computes with NumPy scalars, which warn when they do
wraps = pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
INDEX = [np.int32, np.int64]


# --- helpers ------------------------------------------------------------------

def make_rng() -> tuple[int, np.random.Generator]:
    """A fresh generator and its seed, to quote when a check fails."""
    seed = int(np.random.SeedSequence().entropy % 2**63)
    return seed, np.random.default_rng(seed)


def random_values(rng: np.random.Generator, n: int, dtype: Any,
                  full_range: bool = False) -> np.ndarray:
    """Floats in [-1, 1); integers in [-1000, 1000), or over the whole dtype."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        return rng.uniform(-1.0, 1.0, n).astype(dtype)
    if full_range:
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)
    return rng.integers(-1000, 1000, n, dtype=dtype)


def to_device(queue: pt.Queue, host: np.ndarray) -> Any:
    buf = pt.alloc_buffer(queue.device, host.shape, host.dtype)
    pt.memcpy(queue, buf, np.ascontiguousarray(host))
    return buf


def tolerance(dtype: Any, n: int, scale: float = 1.0) -> float:
    """Rounding allowance for n float operations on values up to ``scale``."""
    return 2.0 * max(n, 1) * float(np.finfo(dtype).eps) * scale


def assert_matches(got: np.ndarray, want: np.ndarray, message: str, tol: float = 0.0) -> None:
    assert got.shape == want.shape, message
    assert got.dtype == want.dtype, message
    if got.dtype.kind == "f":
        np.testing.assert_allclose(got, want, rtol=0, atol=tol, err_msg=message)
    else:
        np.testing.assert_array_equal(got, want, err_msg=message)


def assert_rejected(queue: pt.Queue, call: Callable[[], Any], untouched: Any,
                    *fragments: str, error: type[Exception] = kernels.KernelArgumentError
                    ) -> None:
    """``call`` raises ``error`` mentioning ``fragments``, and leaves the buffer
    ``untouched`` exactly as it was."""
    before = host_copy(queue, untouched)
    with pytest.raises(error) as info:
        call()
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    after = host_copy(queue, untouched)
    np.testing.assert_array_equal(after.view(np.uint8), before.view(np.uint8))


@pt.device_function
def affine(v):
    return v * 3 + 1


@pt.device_function
def halve(v):
    return v * 0.5


@pt.device_function
def is_positive(v):
    return v > 0


@pt.device_function
def larger(a, b):
    return a if a > b else b


# --- element-wise -------------------------------------------------------------

@every_backend
@pytest.mark.parametrize("dtype", NUMERIC)
def test_axpy(queue, dtype):
    seed, rng = make_rng()
    a = 2.5 if np.dtype(dtype).kind == "f" else -3
    for n in test_sizes(queue):
        x, y = random_values(rng, n, dtype), random_values(rng, n, dtype)
        out = poisoned(queue, n, dtype)
        kernels.axpy(queue, a, to_device(queue, x), to_device(queue, y), out)
        assert_matches(host_copy(queue, out), ref.axpy_ref(a, x, y), f"n={n} seed={seed}",
                       tolerance(dtype, 2, 4.0) if np.dtype(dtype).kind == "f" else 0)


@every_backend
def test_axpy_in_place(queue):
    seed, rng = make_rng()
    x, y = random_values(rng, 1000, np.int64), random_values(rng, 1000, np.int64)
    y_dev = to_device(queue, y)
    kernels.axpy(queue, 7, to_device(queue, x), y_dev, y_dev)
    assert_matches(host_copy(queue, y_dev), ref.axpy_ref(7, x, y), f"seed={seed}")


@every_backend
@pytest.mark.parametrize("dtype", NUMERIC)
def test_elementwise_map(queue, dtype):
    seed, rng = make_rng()
    for n in test_sizes(queue):
        x = random_values(rng, n, dtype)
        out = poisoned(queue, n, dtype)
        kernels.elementwise_map(queue, affine, to_device(queue, x), out)
        assert_matches(host_copy(queue, out), ref.elementwise_map_ref(affine, x, dtype),
                       f"n={n} seed={seed}",
                       tolerance(dtype, 1, 4.0) if np.dtype(dtype).kind == "f" else 0)


@every_backend
def test_elementwise_map_converts_to_out_dtype(queue):
    seed, rng = make_rng()
    x = random_values(rng, 1000, np.int32)
    out = poisoned(queue, 1000, np.float64)
    kernels.elementwise_map(queue, halve, to_device(queue, x), out)
    assert_matches(host_copy(queue, out), ref.elementwise_map_ref(halve, x, np.float64),
                   f"seed={seed}")


# --- reductions ---------------------------------------------------------------

REDUCTIONS = {
    "sum": (kernels.reduce_sum, ref.reduce_sum_ref),
    "min": (kernels.reduce_min, ref.reduce_min_ref),
    "max": (kernels.reduce_max, ref.reduce_max_ref),
}


@wraps
@every_backend
@pytest.mark.parametrize("dtype", NUMERIC)
@pytest.mark.parametrize("operation", list(REDUCTIONS))
def test_reduce(queue, operation, dtype):
    reduce, reduce_ref = REDUCTIONS[operation]
    seed, rng = make_rng()
    for n in test_sizes(queue):
        if n == 0 and operation != "sum":
            continue  # an error, checked in test_reduce_rejects_empty
        x = random_values(rng, n, dtype, full_range=True)  # integer sums wrap
        out = poisoned(queue, 1, dtype)
        reduce(queue, to_device(queue, x), out)
        tol = tolerance(dtype, n) if operation == "sum" and np.dtype(dtype).kind == "f" else 0
        assert_matches(host_copy(queue, out), np.array([reduce_ref(x)], dtype),
                       f"{operation} n={n} seed={seed}", tol)


@every_backend
def test_reduce_sum_of_nothing_is_zero(queue):
    out = poisoned(queue, 1, np.float64)
    kernels.reduce_sum(queue, pt.alloc_buffer(queue.device, 0, np.float64), out)
    assert host_copy(queue, out).tolist() == [0.0]


@every_backend
@pytest.mark.parametrize("operation", ["min", "max"])
def test_reduce_rejects_empty(queue, operation):
    reduce = REDUCTIONS[operation][0]
    out = poisoned(queue, 1, np.int32)
    empty = pt.alloc_buffer(queue.device, 0, np.int32)
    assert_rejected(queue, lambda: reduce(queue, empty, out), out,
                    f"reduce_{operation}: argument 'x' is empty")


@every_backend
def test_reduce_rejects_bad_out(queue):
    x = to_device(queue, np.arange(10, dtype=np.float32))
    long_out = poisoned(queue, 2, np.float32)
    assert_rejected(queue, lambda: kernels.reduce_sum(queue, x, long_out), long_out,
                    "argument 'out' must have exactly 1 element", "shape (2,)")
    wide_out = poisoned(queue, 1, np.float64)
    assert_rejected(queue, lambda: kernels.reduce_max(queue, x, wide_out), wide_out,
                    "argument 'out' has dtype float64 but 'x' has dtype float32")


# --- histogram ----------------------------------------------------------------

def histogram_input(rng: np.random.Generator, n: int, dtype: Any, lo: float, hi: float,
                    nbins: int) -> np.ndarray:
    """Values spread a little beyond [lo, hi), starting with the awkward ones:
    the range's ends, every bin edge and the values just below them, NaN, infinities."""
    width = hi - lo
    values = rng.uniform(lo - 0.1 * width, hi + 0.1 * width, n)
    if np.dtype(dtype).kind == "f":
        edges = bin_edges(lo, hi, nbins, dtype).astype(dtype)
        awkward = np.concatenate([edges, np.nextafter(edges, dtype(-np.inf)),
                                  np.array([np.nan, np.inf, -np.inf], dtype)])
    else:
        awkward = np.array([np.ceil(lo), np.floor(hi), np.floor(hi) - 1, np.ceil(lo) - 1])
    values = values.astype(dtype)
    count = min(n, awkward.size)
    values[:count] = rng.permutation(awkward)[:count]
    return values


@every_backend
@pytest.mark.parametrize("count_dtype", INDEX)
@pytest.mark.parametrize("dtype", NUMERIC)
def test_histogram(queue, dtype, count_dtype):
    seed, rng = make_rng()
    lo, hi = (-1.3, 2.7) if np.dtype(dtype).kind == "f" else (-10.0, 100.0)
    for n in test_sizes(queue):
        for nbins in (1, 7, 100, 3000):  # 3000 > PRIVATE_BINS: global atomics only
            x = histogram_input(rng, n, dtype, lo, hi, nbins)
            counts = poisoned(queue, nbins, count_dtype)
            kernels.histogram(queue, to_device(queue, x), lo, hi, counts)
            assert_matches(host_copy(queue, counts), ref.histogram_ref(x, lo, hi, nbins, count_dtype),
                           f"n={n} nbins={nbins} seed={seed}")


@every_backend
def test_histogram_ignores_hi_and_matches_numpy_inside(queue):
    x = np.array([0.0, 0.5, 1.0, 2.5, 3.99, 4.0, -1.0, np.nan])
    counts = poisoned(queue, 4, np.int64)
    kernels.histogram(queue, to_device(queue, x), 0, 4, counts)
    assert host_copy(queue, counts).tolist() == [2, 1, 1, 1]
    inside = np.histogram(x[:5], bins=4, range=(0.0, 4.0))[0]
    assert host_copy(queue, counts).tolist() == inside.tolist()


@every_backend
def test_histogram_rejects_bad_arguments(queue):
    x = to_device(queue, np.linspace(0, 1, 50))
    counts = poisoned(queue, 10, np.int32)
    assert_rejected(queue, lambda: kernels.histogram(queue, x, 1.0, 1.0, counts), counts,
                    "lo < hi")
    assert_rejected(queue, lambda: kernels.histogram(queue, x, 0.0, np.inf, counts), counts,
                    "must be finite")
    float_counts = poisoned(queue, 10, np.float32)
    assert_rejected(queue, lambda: kernels.histogram(queue, x, 0, 1, float_counts),
                    float_counts, "argument 'counts' has dtype float32", "int32, int64")
    assert_rejected(queue, lambda: kernels.histogram(
        queue, x, 0, 1, pt.alloc_buffer(queue.device, 0, np.int32)), counts,
        "argument 'counts' is empty")


# --- scan ---------------------------------------------------------------------

@wraps
@every_backend
@pytest.mark.parametrize("dtype", NUMERIC)
def test_exclusive_scan(queue, dtype):
    seed, rng = make_rng()
    for n in test_sizes(queue):
        x = random_values(rng, n, dtype, full_range=True)  # integer prefixes wrap
        out = poisoned(queue, n, dtype)
        kernels.exclusive_scan(queue, to_device(queue, x), out)
        tol = tolerance(dtype, n) if np.dtype(dtype).kind == "f" else 0
        assert_matches(host_copy(queue, out), ref.exclusive_scan_ref(x), f"n={n} seed={seed}", tol)


@every_backend
def test_exclusive_scan_in_place(queue):
    seed, rng = make_rng()
    n = max(test_sizes(queue))
    x = random_values(rng, n, np.int64)
    buf = to_device(queue, x)
    kernels.exclusive_scan(queue, buf, buf)
    assert_matches(host_copy(queue, buf), ref.exclusive_scan_ref(x), f"n={n} seed={seed}")


@every_backend
def test_exclusive_scan_rejects_bad_arguments(queue):
    x = to_device(queue, np.arange(8, dtype=np.int64))
    short = poisoned(queue, 7, np.int64)
    assert_rejected(queue, lambda: kernels.exclusive_scan(queue, x, short), short,
                    "argument 'out' has shape (7,) but 'x' has shape (8,)")
    other = poisoned(queue, 8, np.int32)
    assert_rejected(queue, lambda: kernels.exclusive_scan(queue, x, other), other,
                    "argument 'out' has dtype int32 but 'x' has dtype int64")
    half = to_device(queue, np.arange(8, dtype=np.float16))
    out = poisoned(queue, 8, np.float16)
    assert_rejected(queue, lambda: kernels.exclusive_scan(queue, half, out), out,
                    "argument 'x' has dtype float16, which is not supported")
    square = poisoned(queue, (2, 4), np.int64)
    assert_rejected(queue, lambda: kernels.exclusive_scan(queue, x, square), square,
                    "argument 'out' must be 1-D but has shape (2, 4)")


# --- compaction ---------------------------------------------------------------

def check_compaction(queue: pt.Queue, out: Any, count: int, want: np.ndarray,
                     message: str) -> None:
    got = host_copy(queue, out)
    assert count == want.size, message
    assert_matches(got[:count], want.astype(got.dtype), message)
    assert (got[count:] == -1).all(), f"entries past the count were written; {message}"


@every_backend
@pytest.mark.parametrize("mask_dtype,index_dtype", [
    (np.bool_, np.int32), (np.bool_, np.int64), (np.uint8, np.int32), (np.int32, np.int64)])
def test_select_indices(queue, mask_dtype, index_dtype):
    seed, rng = make_rng()
    for n in test_sizes(queue):
        # none selected in the first third, all in the last, 30% in between
        density = np.repeat([0.0, 0.3, 1.0], [n // 3, n - 2 * (n // 3), n // 3])
        mask = (rng.random(n) < density).astype(mask_dtype)
        out = poisoned(queue, n, index_dtype)
        count = kernels.select_indices(queue, to_device(queue, mask), out)
        check_compaction(queue, out, count, ref.select_indices_ref(mask), f"n={n} seed={seed}")


@every_backend
@pytest.mark.parametrize("dtype,index_dtype", [
    (np.float32, np.int32), (np.float64, np.int64), (np.int32, np.int64), (np.int64, np.int32)])
def test_compact_where(queue, dtype, index_dtype):
    seed, rng = make_rng()
    for n in test_sizes(queue):
        x = random_values(rng, n, dtype)
        out = poisoned(queue, n, index_dtype)
        count = kernels.compact_where(queue, is_positive, to_device(queue, x), out)
        check_compaction(queue, out, count, ref.compact_where_ref(is_positive, x),
                         f"n={n} seed={seed}")


@every_backend
def test_compaction_rejects_bad_arguments(queue):
    mask = to_device(queue, np.ones(6, bool))
    out = poisoned(queue, 6, np.int32)
    assert_rejected(queue, lambda: kernels.select_indices(queue, mask, poisoned(queue, 5, np.int32)),
                    out, "argument 'out_indices' has shape (5,) but 'mask' has shape (6,)")
    assert_rejected(queue, lambda: kernels.select_indices(
        queue, to_device(queue, np.ones(6)), out), out, "argument 'mask' has dtype float64")
    floats = poisoned(queue, 6, np.float32)
    assert_rejected(queue, lambda: kernels.select_indices(queue, mask, floats), floats,
                    "argument 'out_indices' has dtype float32")
    x = to_device(queue, np.ones(6))
    assert_rejected(queue, lambda: kernels.compact_where(queue, lambda v: v > 0, x, out), out,
                    "argument 'fn' must be a @pt.device_function")
    assert_rejected(queue, lambda: kernels.compact_where(queue, larger, x, out),
                    out, "argument 'fn' must be a @pt.device_function taking one value")


# --- arguments common to every operation -------------------------------------

@every_backend
def test_rejects_bad_common_arguments(queue):
    x = to_device(queue, np.arange(5, dtype=np.float32))
    out = poisoned(queue, 5, np.float32)
    assert_rejected(queue, lambda: kernels.axpy(queue, 1.0, x, to_device(queue, np.ones(5)), out),
                    out, "axpy: argument 'y' has dtype float64 but 'x' has dtype float32")
    assert_rejected(queue, lambda: kernels.axpy(
        queue, 1.0, x, to_device(queue, np.ones(4, np.float32)), out), out,
        "argument 'y' has shape (4,) but 'x' has shape (5,)")
    ints = to_device(queue, np.arange(5, dtype=np.int32))
    int_out = poisoned(queue, 5, np.int32)
    assert_rejected(queue, lambda: kernels.axpy(queue, 0.5, ints, ints, int_out), int_out,
                    "argument 'a' = 0.5 is not an integer")
    host_list = [0.0, 1.0, 2.0, 3.0, 4.0]
    assert_rejected(queue, lambda: kernels.elementwise_map(queue, affine, host_list, out), out,
                    "argument 'x' must be a 1-D array on", "the list")
    assert_rejected(queue, lambda: kernels.axpy("cpu", 1.0, x, x, out), out,
                    "argument 'queue' must be a pt.Queue", error=pt.ArgumentError)
    if not queue.backend.host_memory:
        assert_rejected(queue, lambda: kernels.axpy(queue, 1.0, np.ones(5, np.float32), x, out),
                        out, "argument 'x' lives in host memory, but the queue runs on cuda")


@every_backend
def test_operations_stay_ordered_on_a_non_blocking_queue(queue):
    seed, rng = make_rng()
    stream = pt.Queue(queue.device, blocking=False)
    n = max(test_sizes(queue))
    x = random_values(rng, n, np.int64)
    prefix = poisoned(stream, n, np.int64)
    kernels.exclusive_scan(stream, to_device(stream, x), prefix)
    largest = poisoned(stream, 1, np.int64)
    kernels.reduce_max(stream, prefix, largest)
    counts = poisoned(stream, 16, np.int64)
    kernels.histogram(stream, prefix, -1000.0 * n, 1000.0 * n, counts)
    stream.synchronize()
    want = ref.exclusive_scan_ref(x)
    message = f"n={n} seed={seed}"
    assert_matches(host_copy(stream, prefix), want, message)
    assert_matches(host_copy(stream, largest), np.array([want.max()]), message)
    assert_matches(host_copy(stream, counts),
                   ref.histogram_ref(want, -1000.0 * n, 1000.0 * n, 16, np.int64), message)


# --- temporaries from alloc= --------------------------------------------------

class PoisoningAlloc:
    """``alloc(shape, dtype)`` handing out poisoned buffers and keeping them, so a
    kernel that reads a temporary before writing it shows, and the uses can be counted."""

    def __init__(self, queue: pt.Queue) -> None:
        self.queue = queue
        self.taken: list[Any] = []

    def __call__(self, shape: Any, dtype: Any) -> Any:
        buf = poisoned(self.queue, shape, dtype)
        self.taken.append(buf)
        return buf


@wraps
@every_backend
def test_temporaries_come_from_alloc(queue):
    seed, rng = make_rng()
    for n in test_sizes(queue):
        message = f"n={n} seed={seed}"
        x = random_values(rng, n, np.int64, full_range=True)
        xd = to_device(queue, x)
        for operation, (reduce, reduce_ref) in REDUCTIONS.items():
            if n == 0 and operation != "sum":
                continue
            alloc = PoisoningAlloc(queue)
            out = poisoned(queue, 1, np.int64)
            reduce(queue, xd, out, alloc=alloc)
            assert_matches(host_copy(queue, out), np.array([reduce_ref(x)]), message)
            assert alloc.taken, f"reduce_{operation} did not use alloc; {message}"
        alloc = PoisoningAlloc(queue)
        prefix = poisoned(queue, n, np.int64)
        kernels.exclusive_scan(queue, xd, prefix, alloc=alloc)
        assert_matches(host_copy(queue, prefix), ref.exclusive_scan_ref(x), message)
        assert len(alloc.taken) == (1 if n else 0), message
        counts = poisoned(queue, 7, np.int32)
        kernels.histogram(queue, xd, -2.0**62, 2.0**62, counts, alloc=alloc)
        assert_matches(host_copy(queue, counts),
                       ref.histogram_ref(x, -2.0**62, 2.0**62, 7, np.int32), message)
        assert len(alloc.taken) == (2 if n else 0), message
        mask = (x > 0).astype(np.uint8)
        for call in (lambda out: kernels.select_indices(queue, to_device(queue, mask), out,
                                                        alloc=alloc),
                     lambda out: kernels.compact_where(queue, is_positive, xd, out,
                                                       alloc=alloc)):
            before = len(alloc.taken)
            out = poisoned(queue, n, np.int32)
            check_compaction(queue, out, call(out), ref.select_indices_ref(mask), message)
            assert len(alloc.taken) == before + (2 if n else 0), message


@every_backend
def test_alloc_is_checked(queue):
    x = to_device(queue, np.arange(6, dtype=np.float64))
    out = poisoned(queue, 1, np.float64)
    assert_rejected(queue, lambda: kernels.reduce_sum(queue, x, out, alloc="cached"), out,
                    "reduce_sum: argument 'alloc' must be a callable alloc(shape, dtype)",
                    error=pt.ArgumentError)
    counts = poisoned(queue, 3, np.int64)
    assert_rejected(queue, lambda: kernels.histogram(queue, x, 0, 6, counts, alloc=3), counts,
                    "histogram: argument 'alloc' must be a callable")

    def wrong_dtype(shape: Any, dtype: Any) -> Any:
        return pt.alloc_buffer(queue.device, shape, np.float32)

    def too_short(shape: Any, dtype: Any) -> Any:
        return pt.alloc_buffer(queue.device, 1, dtype)

    prefix = poisoned(queue, 6, np.float64)
    assert_rejected(queue, lambda: kernels.exclusive_scan(queue, x, prefix, alloc=wrong_dtype),
                    prefix, "exclusive_scan: argument 'alloc' returned")
    indices = poisoned(queue, 6, np.int64)
    assert_rejected(queue, lambda: kernels.compact_where(queue, is_positive, x, indices,
                                                         alloc=too_short), indices,
                    "compact_where: argument 'alloc' returned", "alloc(7, int64)")
