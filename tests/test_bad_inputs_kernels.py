"""Bad input to the kernels library, on every backend.

Each case asserts the exception's type, that the message names the offending
argument or value, and that the outputs given (poisoned buffers, or the whole
buffer an overlapping output is a view of) are untouched. Then the rules that
bad-looking but valid input must keep: NaNs propagate through min and max as
in NumPy, and an output may be exactly its element-wise input.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import numpy as np
import pytest

import kernels
import portable as pt
from bad_inputs import refused
from portable.testing import every_backend, host_copy, poisoned, test_sizes


def dev(queue: pt.Queue, host: Any) -> Any:
    """A new buffer on ``queue.device`` holding the host array ``host``."""
    host = np.asarray(host)
    buf = pt.alloc_buffer(queue.device, host.shape, host.dtype)
    pt.memcpy(queue, buf, host)
    return buf


@pt.device_function
def double(v):
    return v * 2


@pt.device_function
def positive(v):
    return v > 0


@pt.device_function
def add_two(a, b):
    return a + b


@pt.kernel
def fill_one(acc, out):
    for i in acc.uniform_elements(out.size):
        out[i] = 1


class Case(NamedTuple):
    """A call that must be refused, the texts its message must hold and the
    buffers it must leave untouched."""
    call: Callable[[], Any]
    named: tuple[str, ...]
    untouched: tuple[Any, ...] = ()


#: name -> (makes the case for a queue, whether it needs host arrays)
CASES: dict[str, tuple[Callable[[pt.Queue], Case], bool]] = {}


def case(host_only: bool = False) -> Callable[[Callable[[pt.Queue], Case]], Any]:
    def register(make: Callable[[pt.Queue], Case]) -> Callable[[pt.Queue], Case]:
        CASES[make.__name__] = (make, host_only)
        return make
    return register


def floats(queue: pt.Queue, n: int = 8, dtype: Any = np.float64) -> Any:
    return dev(queue, np.linspace(-1.0, 1.0, n).astype(dtype))


# -- the queue -----------------------------------------------------------------------
@case()
def queue_is_a_string(q):
    x, out = floats(q), poisoned(q, 1, np.float64)
    return Case(lambda: kernels.reduce_sum("cpu_serial", x, out), ("'queue'", "'cpu_serial'"),
                (out,))


@case()
def queue_is_a_device(q):
    x, out = floats(q), poisoned(q, 8, np.float64)
    return Case(lambda: kernels.axpy(q.device, 1.0, x, x, out), ("'queue'", "pt.Queue(device)"),
                (out,))


@case()
def queue_is_none(q):
    counts = poisoned(q, 4, np.int64)
    return Case(lambda: kernels.histogram(None, floats(q), 0.0, 1.0, counts),
                ("'queue'", "None"), (counts,))


# -- arrays of the wrong kind ------------------------------------------------------
@case()
def x_is_a_list(q):
    out = poisoned(q, 1, np.float64)
    return Case(lambda: kernels.reduce_sum(q, [1.0, 2.0], out), ("'x'", "list"), (out,))


@case()
def x_is_a_tuple(q):
    out = poisoned(q, 2, np.int64)
    return Case(lambda: kernels.exclusive_scan(q, (1, 2), out), ("'x'", "tuple"), (out,))


@case()
def x_is_none(q):
    counts = poisoned(q, 4, np.int32)
    return Case(lambda: kernels.histogram(q, None, 0.0, 1.0, counts), ("'x'", "None"), (counts,))


@case()
def x_is_a_number(q):
    out = poisoned(q, 1, np.float64)
    return Case(lambda: kernels.reduce_max(q, 3.5, out), ("'x'", "3.5"), (out,))


@case()
def out_is_none(q):
    x = floats(q)
    return Case(lambda: kernels.axpy(q, 1.0, x, x, None), ("'out'", "None"), (x,))


@case()
def mask_is_a_string(q):
    out = poisoned(q, 3, np.int64)
    return Case(lambda: kernels.select_indices(q, "101", out), ("'mask'", "'101'"), (out,))


@case()
def x_lives_elsewhere(q):
    if q.backend.host_memory:
        pytest.skip("a CPU queue has no other device in this process")
    out = poisoned(q, 8, np.float64)
    return Case(lambda: kernels.elementwise_map(q, double, np.ones(8), out),
                ("'x'", "host memory", str(q.device)), (out,))


@case(host_only=True)
def x_is_a_masked_array(q):
    out = poisoned(q, 1, np.float64)
    x = np.ma.masked_array([1.0, 2.0, 3.0], mask=[False, True, False])
    return Case(lambda: kernels.reduce_sum(q, x, out), ("'x'", "masked"), (out,))


# -- dimensions --------------------------------------------------------------------
@case()
def x_is_0d(q):
    out = poisoned(q, 1, np.float64)
    x = dev(q, np.array(2.0))
    return Case(lambda: kernels.reduce_sum(q, x, out), ("'x'", "shape ()"), (out,))


@case()
def x_is_2d(q):
    out = poisoned(q, 6, np.float64)
    x = dev(q, np.ones((2, 3)))
    return Case(lambda: kernels.elementwise_map(q, double, x, out), ("'x'", "shape (2, 3)"), (out,))


@case()
def counts_is_2d(q):
    counts = poisoned(q, (2, 4), np.int64)
    return Case(lambda: kernels.histogram(q, floats(q), 0.0, 1.0, counts),
                ("'counts'", "shape (2, 4)"), (counts,))


# -- dtypes ------------------------------------------------------------------------
@case()
def x_is_complex(q):
    out = poisoned(q, 1, np.float64)
    x = dev(q, np.ones(4, np.complex128))
    return Case(lambda: kernels.reduce_sum(q, x, out), ("'x'", "complex128", ".real"), (out,))


@case()
def x_is_bool(q):
    out = poisoned(q, 4, np.int32)
    x = dev(q, np.ones(4, bool))
    return Case(lambda: kernels.exclusive_scan(q, x, out), ("'x'", "bool"), (out,))


@case()
def x_is_float16(q):
    out = poisoned(q, 4, np.float16)
    x = dev(q, np.ones(4, np.float16))
    return Case(lambda: kernels.axpy(q, 1.0, x, x, out), ("'x'", "float16"), (out,))


@case()
def x_is_uint64(q):
    counts = poisoned(q, 4, np.int64)
    x = dev(q, np.arange(4, dtype=np.uint64))
    return Case(lambda: kernels.histogram(q, x, 0.0, 4.0, counts), ("'x'", "uint64"), (counts,))


@case(host_only=True)
def x_is_big_endian(q):
    out = poisoned(q, 1, np.float64)
    x = np.arange(4.0).astype(">f8")
    return Case(lambda: kernels.reduce_sum(q, x, out), ("'x'", "byte order"), (out,))


@case()
def counts_are_floats(q):
    counts = poisoned(q, 4, np.float64)
    return Case(lambda: kernels.histogram(q, floats(q), 0.0, 1.0, counts),
                ("'counts'", "float64", "int32, int64"), (counts,))


@case()
def out_dtype_differs_from_x(q):
    out = poisoned(q, 1, np.float64)
    x = floats(q, dtype=np.float32)
    return Case(lambda: kernels.reduce_min(q, x, out), ("'out'", "float64", "'x'", "float32"),
                (out,))


@case()
def y_dtype_differs_from_x(q):
    out = poisoned(q, 8, np.int64)
    x, y = dev(q, np.arange(8)), dev(q, np.arange(8, dtype=np.int32))
    return Case(lambda: kernels.axpy(q, 2, x, y, out), ("'y'", "int32", "'x'"), (out,))


@case()
def out_indices_are_unsigned(q):
    out = poisoned(q, 4, np.uint32)
    mask = dev(q, np.ones(4, bool))
    return Case(lambda: kernels.select_indices(q, mask, out), ("'out_indices'", "uint32"), (out,))


@case()
def mask_is_float(q):
    out = poisoned(q, 8, np.int64)
    return Case(lambda: kernels.select_indices(q, floats(q), out), ("'mask'", "float64"), (out,))


# -- sizes -------------------------------------------------------------------------
@case()
def y_is_shorter(q):
    out = poisoned(q, 8, np.float64)
    x, y = floats(q, 8), floats(q, 7)
    return Case(lambda: kernels.axpy(q, 1.0, x, y, out), ("'y'", "(7,)", "(8,)"), (out,))


@case()
def reduce_out_has_two_elements(q):
    out = poisoned(q, 2, np.float64)
    return Case(lambda: kernels.reduce_sum(q, floats(q), out), ("'out'", "exactly 1"), (out,))


@case()
def reduce_out_is_empty(q):
    out = poisoned(q, 0, np.float64)
    return Case(lambda: kernels.reduce_max(q, floats(q), out), ("'out'", "exactly 1"), (out,))


@case()
def scan_out_is_shorter(q):
    out = poisoned(q, 7, np.float64)
    return Case(lambda: kernels.exclusive_scan(q, floats(q), out), ("'out'", "(7,)"), (out,))


@case()
def out_indices_are_shorter(q):
    out = poisoned(q, 3, np.int64)
    mask = dev(q, np.ones(4, bool))
    return Case(lambda: kernels.select_indices(q, mask, out), ("'out_indices'", "(3,)"), (out,))


@case()
def counts_are_empty(q):
    counts = poisoned(q, 0, np.int64)
    return Case(lambda: kernels.histogram(q, floats(q), 0.0, 1.0, counts),
                ("'counts'", "empty"), (counts,))


@case()
def min_of_nothing(q):
    out = poisoned(q, 1, np.float64)
    empty = pt.alloc_buffer(q.device, 0, np.float64)
    return Case(lambda: kernels.reduce_min(q, empty, out), ("'x'", "empty"), (out,))


@case(host_only=True)
def int32_counts_could_wrap(q):
    counts = poisoned(q, 4, np.int32)
    many = np.broadcast_to(np.float32(0.5), (2**31,))  # no memory behind it
    return Case(lambda: kernels.histogram(q, many, 0.0, 1.0, counts),
                ("'counts'", "int32", str(2**31), "int64"), (counts,))


# -- scalars -----------------------------------------------------------------------
@pytest.mark.parametrize("a,named", [
    ("2", "'2'"), (None, "None"), (1 + 2j, "(1+2j)"), (np.complex64(1), "complex"),
    (True, "True"), (np.array(2.0), "array(2.)"), (1e300, "1e+300")])
@every_backend
def test_bad_scale_for_float32_axpy(queue, a, named):
    x, out = floats(queue, dtype=np.float32), poisoned(queue, 8, np.float32)
    with refused(pt.ArgumentError, "'a'", named, queue=queue, untouched=[out]):
        kernels.axpy(queue, a, x, x, out)


@pytest.mark.parametrize("a,named", [(0.5, "0.5"), (2**40, str(2**40)), (np.nan, "nan"),
                                     (10**400, "1000000")])
@every_backend
def test_bad_scale_for_int32_axpy(queue, a, named):
    x, out = dev(queue, np.arange(8, dtype=np.int32)), poisoned(queue, 8, np.int32)
    with refused(pt.ArgumentError, "'a'", named, "int32", queue=queue, untouched=[out]):
        kernels.axpy(queue, a, x, x, out)


@case()
def float64_scale_beyond_every_float(q):
    x, out = floats(q), poisoned(q, 8, np.float64)
    return Case(lambda: kernels.axpy(q, 10**400, x, x, out), ("'a'", "overflows float64"), (out,))


# -- histogram ranges --------------------------------------------------------------
@pytest.mark.parametrize("lo,hi,named", [
    ("0", 1.0, ("'lo'", "'0'")), (0.0, None, ("'hi'", "None")), (0.0, 1j, ("'hi'", "1j")),
    (np.nan, 1.0, ("'lo'", "nan")), (0.0, np.inf, ("'hi'", "inf")),
    (-np.inf, 0.0, ("'lo'", "-inf")), (1.0, 1.0, ("lo < hi", "1.0")),
    (2.0, 1.0, ("lo < hi", "2.0", "1.0")), (True, 2.0, ("'lo'", "True")),
    (-1.5e308, 1.5e308, ("-1.5e+308", "1.5e+308", "10 bins", "overflows")),
    (0, 10**400, ("'hi'", "1000000"))])
@every_backend
def test_bad_histogram_range(queue, lo, hi, named):
    counts = poisoned(queue, 10, np.int64)
    with refused(pt.ArgumentError, *named, queue=queue, untouched=[counts]):
        kernels.histogram(queue, floats(queue), lo, hi, counts)


@pytest.mark.parametrize("dtype,lo,hi,nbins,named", [
    (np.float32, 1.0, 1.0 + 1e-7, 100, ("lo=1.0", "hi=1.0000001", "100 bins", "float32")),
    (np.float64, 1.0, 1.0 + 1e-15, 100, ("100 bins", "float64")),
    (np.int32, 1e16, 1e16 + 4, 100, ("100 bins", "float64")),
    (np.float32, -1e39, 1e39, 4, ("lo=-1e+39", "hi=1e+39", "float32", "4 bins"))])
@every_backend
def test_histogram_bins_too_narrow_for_the_range(queue, dtype, lo, hi, nbins, named):
    counts = poisoned(queue, nbins, np.int64)
    with pytest.raises(ValueError), np.errstate(over="ignore"):  # as np.histogram does
        np.histogram(np.zeros(3, dtype), bins=nbins, range=(lo, hi))
    with refused(pt.ArgumentError, *named, queue=queue, untouched=[counts]):
        kernels.histogram(queue, floats(queue, dtype=dtype), lo, hi, counts)


# -- functions ---------------------------------------------------------------------
@case()
def fn_is_a_plain_function(q):
    out = poisoned(q, 8, np.int64)
    return Case(lambda: kernels.compact_where(q, lambda v: v > 0, floats(q), out),
                ("'fn'", "function", "@pt.device_function"), (out,))


@case()
def fn_takes_two_values(q):
    out = poisoned(q, 8, np.float64)
    return Case(lambda: kernels.elementwise_map(q, add_two, floats(q), out),
                ("'fn'", "taking one value"), (out,))


@case()
def fn_is_a_kernel(q):
    out = poisoned(q, 8, np.float64)
    return Case(lambda: kernels.elementwise_map(q, fill_one, floats(q), out),
                ("'fn'", "Kernel"), (out,))


@case()
def fn_is_none(q):
    out = poisoned(q, 8, np.int64)
    return Case(lambda: kernels.compact_where(q, None, floats(q), out), ("'fn'", "None"), (out,))


# -- outputs that cannot be written as asked ---------------------------------------
@case(host_only=True)
def out_is_read_only(q):
    out = np.full(8, -1.0)
    out.flags.writeable = False
    return Case(lambda: kernels.axpy(q, 1.0, np.ones(8), np.ones(8), out),
                ("'out'", "read-only"), (out,))


@case(host_only=True)
def out_is_broadcast(q):
    out = np.broadcast_to(np.float64(-1.0), (8,))
    return Case(lambda: kernels.exclusive_scan(q, np.ones(8), out), ("'out'", "read-only"), (out,))


@case(host_only=True)
def out_elements_share_one_place(q):
    base = np.full(1, -1, np.int64)
    out = np.lib.stride_tricks.as_strided(base, shape=(8,), strides=(0,))
    mask = np.ones(8, bool)
    return Case(lambda: kernels.select_indices(q, mask, out),
                ("'out_indices'", "overlap each other"), (base,))


@case(host_only=True)
def x_is_misaligned(q):
    raw = np.zeros(8 * 8 + 1, np.uint8)
    x = raw[1:].view(np.float64)
    out = poisoned(q, 1, np.float64)
    return Case(lambda: kernels.reduce_sum(q, x, out), ("'x'", "aligned"), (out,))


@case()
def counts_are_strided(q):
    backing = poisoned(q, 8, np.int64)
    return Case(lambda: kernels.histogram(q, floats(q), 0.0, 1.0, backing[::2]),
                ("'counts'", "contiguous"), (backing,))


# -- outputs overlapping inputs ----------------------------------------------------
@case()
def scan_out_is_x_shifted(q):
    buf = dev(q, np.arange(10, dtype=np.int64))
    return Case(lambda: kernels.exclusive_scan(q, buf[:9], buf[1:]), ("'out'", "'x'", "overlap"),
                (buf,))


@case()
def scan_out_is_x_reversed(q):
    buf = dev(q, np.arange(10, dtype=np.int64))
    return Case(lambda: kernels.exclusive_scan(q, buf, buf[::-1]), ("'out'", "'x'"), (buf,))


@case()
def axpy_out_overlaps_x(q):
    buf, y = floats(q, 10), floats(q, 9)
    return Case(lambda: kernels.axpy(q, 2.0, buf[:9], y, buf[1:]), ("'out'", "'x'"), (buf,))


@case()
def axpy_out_overlaps_y(q):
    buf, x = floats(q, 10), floats(q, 9)
    return Case(lambda: kernels.axpy(q, 2.0, x, buf[1:], buf[:9]), ("'out'", "'y'"), (buf,))


@case()
def map_out_overlaps_x(q):
    buf = floats(q, 10)
    return Case(lambda: kernels.elementwise_map(q, double, buf[1:], buf[:9]), ("'out'", "'x'"),
                (buf,))


@case()
def reduce_out_inside_x(q):
    buf = floats(q, 10)
    return Case(lambda: kernels.reduce_sum(q, buf, buf[3:4]), ("'out'", "'x'"), (buf,))


@case()
def histogram_counts_inside_x(q):
    buf = dev(q, np.arange(10, dtype=np.int64))
    return Case(lambda: kernels.histogram(q, buf, 0.0, 10.0, buf[2:6]), ("'counts'", "'x'"),
                (buf,))


@case()
def select_out_overlaps_mask(q):
    buf = dev(q, np.ones(10, np.int32))
    return Case(lambda: kernels.select_indices(q, buf[:8], buf[2:]), ("'out_indices'", "'mask'"),
                (buf,))


@case()
def compact_out_overlaps_x(q):
    buf = dev(q, np.arange(10, dtype=np.int64))
    return Case(lambda: kernels.compact_where(q, positive, buf[:9], buf[1:]),
                ("'out_indices'", "'x'"), (buf,))


@every_backend
@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_is_refused(queue, name):
    make, host_only = CASES[name]
    if host_only and not queue.backend.host_memory:
        pytest.skip("the case is about host (NumPy) arrays")
    bad = make(queue)
    with refused(pt.ArgumentError, *bad.named, queue=queue, untouched=bad.untouched):
        bad.call()


def test_refusals_are_type_and_value_errors():
    assert issubclass(kernels.KernelArgumentError, pt.ArgumentError)
    q = pt.Queue(pt.get_device("cpu_serial"))
    for error in (TypeError, ValueError, kernels.KernelArgumentError):
        with pytest.raises(error):
            kernels.reduce_sum(q, [1.0], np.zeros(1))


# -- valid input that looks odd: NaN, infinities, exact aliasing -------------------
@every_backend
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("operation", ["min", "max", "sum"])
def test_nan_propagates_like_numpy(queue, operation, dtype):
    reduce = getattr(kernels, f"reduce_{operation}")
    want = {"min": np.min, "max": np.max, "sum": np.sum}[operation]
    rng = np.random.default_rng(7)
    for n in test_sizes(queue):
        if n == 0:
            continue
        for where in sorted({0, n // 2, n - 1}):
            x = rng.uniform(-1.0, 1.0, n).astype(dtype)
            x[where] = np.nan
            out = poisoned(queue, 1, dtype)
            reduce(queue, dev(queue, x), out)
            got = host_copy(queue, out)[0]
            assert np.isnan(want(x)) and np.isnan(got), f"n={n} NaN at {where}: got {got}"


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # inf + -inf
@every_backend
@pytest.mark.parametrize("values", [
    [np.nan, np.nan], [np.inf, np.nan, -np.inf], [np.inf, 1.0], [-np.inf, 1.0],
    [np.inf, -np.inf], [np.inf, np.inf], [1.0, -0.0, 2.0]])
@pytest.mark.parametrize("operation", ["min", "max", "sum"])
def test_special_values_reduce_like_numpy(queue, operation, values):
    reduce = getattr(kernels, f"reduce_{operation}")
    want = {"min": np.min, "max": np.max, "sum": np.sum}[operation]
    x = np.array(values)
    out = poisoned(queue, 1, np.float64)
    reduce(queue, dev(queue, x), out)
    np.testing.assert_equal(host_copy(queue, out)[0], want(x))


@every_backend
def test_axpy_out_may_be_x_or_y(queue):
    x, y = np.arange(8.0), np.linspace(1.0, 2.0, 8)
    x_dev, y_dev = dev(queue, x), dev(queue, y)
    kernels.axpy(queue, 2.0, x_dev, y_dev, x_dev)
    np.testing.assert_array_equal(host_copy(queue, x_dev), 2.0 * x + y)
    kernels.axpy(queue, -1.0, x_dev, y_dev, y_dev)
    np.testing.assert_array_equal(host_copy(queue, y_dev), y - (2.0 * x + y))


@every_backend
def test_map_and_scan_in_place_on_a_view(queue):
    buf = dev(queue, np.arange(10, dtype=np.int64))
    kernels.elementwise_map(queue, double, buf[2:], buf[2:])
    kernels.exclusive_scan(queue, buf[1:5], buf[1:5])
    np.testing.assert_array_equal(host_copy(queue, buf), [0, 0, 1, 5, 11, 10, 12, 14, 16, 18])


@every_backend
def test_outputs_next_to_their_inputs_are_fine(queue):
    buf = dev(queue, np.arange(10, dtype=np.int64))
    kernels.exclusive_scan(queue, buf[:5], buf[5:])
    kernels.reduce_max(queue, buf[:4], buf[4:5])
    np.testing.assert_array_equal(host_copy(queue, buf), [0, 1, 2, 3, 3, 0, 0, 1, 3, 6])
