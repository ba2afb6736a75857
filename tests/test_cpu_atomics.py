"""Tests for portable.backends.cpu_atomics: results, layouts and races."""
from __future__ import annotations

import functools

import numba
import numpy as np
import pytest
from numba import njit, prange
from numba.core.errors import TypingError

from portable.backends.cpu_atomics import (
    atomic_add,
    atomic_cas,
    atomic_exch,
    atomic_max,
    atomic_min,
    atomic_sub,
)
from race_helpers import RACE_DEADLINE_S, loses_a_count

INT_DTYPES = [np.int32, np.int64, np.uint32, np.uint64]
FLOAT_DTYPES = [np.float32, np.float64]
ALL_DTYPES = INT_DTYPES + FLOAT_DTYPES
OPS = [atomic_add, atomic_sub, atomic_min, atomic_max, atomic_exch, atomic_cas]
INT_ONLY = (atomic_exch, atomic_cas)  # as cuda.atomic.exch and cas


# --- sequential NumPy reference ---------------------------------------------

def _same_bits(a, b) -> bool:
    if isinstance(a, np.floating):
        itype = np.dtype(f"u{a.itemsize}").type
        return a.view(itype) == b.view(itype)
    return a == b


_REFERENCE = {
    atomic_add: lambda cur, old, val: cur + val,
    atomic_sub: lambda cur, old, val: cur - val,
    atomic_min: lambda cur, old, val: val if val < cur else cur,
    atomic_max: lambda cur, old, val: val if val > cur else cur,
    atomic_exch: lambda cur, old, val: val,
    atomic_cas: lambda cur, old, val: val if _same_bits(cur, old) else cur,
}


def reference(op, ary, idx, old, val):
    """Apply ``op`` one update at a time; return (final array, old values)."""
    ary = ary.copy()
    found = np.empty_like(val)
    with np.errstate(over="ignore"):  # integer add/sub wrap around
        for j, row in enumerate(idx):
            i = tuple(row)
            found[j] = ary[i]
            ary[i] = _REFERENCE[op](ary[i], old[j], val[j])
    return ary, found


@functools.cache
def serial_kernel(op, ndim: int):
    """njit loop doing ``out[j] = op(ary, idx[j], [old[j],] val[j])``."""
    if ndim == 1:
        index = njit(lambda row: row[0])            # plain integer index
    else:
        index = njit(lambda row: (row[0], row[1]))  # tuple index
    if op is atomic_cas:
        apply = njit(lambda a, i, o, v: atomic_cas(a, i, o, v))
    else:
        apply = njit(lambda a, i, o, v: op(a, i, v))

    @njit
    def kernel(ary, idx, old, val, out):
        for j in range(val.size):
            out[j] = apply(ary, index(idx[j]), old[j], val[j])

    return kernel


def random_values(rng, op, dtype, n):
    dtype = np.dtype(dtype)
    if op is atomic_cas:  # small pool so that some swaps succeed, some fail
        return rng.integers(0, 3, n).astype(dtype)
    if dtype.kind == "f":
        return (rng.standard_normal(n) * 100).astype(dtype)
    info = np.iinfo(dtype)  # full range: exercises wraparound and umin/umax
    return rng.integers(info.min, info.max, n, endpoint=True, dtype=dtype)


def poisoned(n, dtype):
    dtype = np.dtype(dtype)
    fill = np.nan if dtype.kind == "f" else np.iinfo(dtype).max - 5
    return np.full(n, fill, dtype)


def check_against_reference(op, ary, n_updates=300, seed=None):
    """Run ``op`` serially on ``ary`` (modified in place) and compare."""
    rng = np.random.default_rng(seed)
    idx = np.stack([rng.integers(0, s, n_updates) for s in ary.shape], axis=1)
    old = random_values(rng, op, ary.dtype, n_updates)
    val = random_values(rng, op, ary.dtype, n_updates)
    expected_ary, expected_found = reference(op, ary, idx, old, val)

    found = poisoned(n_updates, ary.dtype)
    serial_kernel(op, ary.ndim)(ary, idx, old, val, found)
    np.testing.assert_array_equal(found, expected_found)
    np.testing.assert_array_equal(ary, expected_ary)


@pytest.mark.parametrize(
    "op, dtype",
    [(op, dtype) for op in OPS for dtype in ALL_DTYPES
     if not (op in INT_ONLY and dtype in FLOAT_DTYPES)],
    ids=lambda x: x.__name__)
def test_every_op_and_dtype_matches_reference(op, dtype):
    rng = np.random.default_rng()
    ary = random_values(rng, op, dtype, 6)
    check_against_reference(op, ary)


@pytest.mark.parametrize("layout", ["C", "F", "A"])
@pytest.mark.parametrize(
    "op, dtype",
    [(atomic_add, np.int64), (atomic_max, np.float32),
     (atomic_cas, np.uint32), (atomic_exch, np.int64)],
    ids=lambda x: getattr(x, "__name__", None))
def test_2d_layouts_with_tuple_indices(op, dtype, layout):
    rng = np.random.default_rng()
    base = random_values(rng, op, dtype, 8 * 9).reshape(8, 9)
    if layout == "F":
        base = np.asfortranarray(base)
    view = base[::2, 1::3] if layout == "A" else base  # strided, non-contig.
    untouched = base.copy()
    check_against_reference(op, view)
    if layout == "A":  # elements outside the view were not written
        mask = np.ones(base.shape, bool)
        mask[::2, 1::3] = False
        np.testing.assert_array_equal(base[mask], untouched[mask])


def test_index_and_value_types_are_cast():
    @njit
    def kernel(f, i2):
        a = atomic_add(f, np.uint8(1), 2)                    # int into float
        b = atomic_max(i2, (np.int32(1), np.int64(0)), 7.9)  # mixed tuple
        c = atomic_cas(i2, (1, 0), 7.0, True)                # bool value
        return a, b, c

    f = np.zeros(3, np.float32)
    i2 = np.zeros((2, 2), np.int32)
    assert kernel(f, i2) == (0.0, 0, 7)
    assert f[1] == 2.0 and i2[1, 0] == 1


@pytest.mark.parametrize("dtype", FLOAT_DTYPES, ids=lambda d: d.__name__)
def test_float_nan_and_signed_zero_semantics(dtype):
    @njit
    def kernel(a):
        return (atomic_max(a, 0, np.nan), atomic_min(a, 0, np.nan),  # no-op
                atomic_max(a, 1, 5.0), atomic_min(a, 1, -5.0),       # no-op
                atomic_max(a, 2, 0.0))         # -0.0 and 0.0 are equal: no-op

    a = np.array([1.0, np.nan, -0.0], dtype)
    found = kernel(a)
    assert found[:2] == (1.0, 1.0) and np.isnan(found[2:4]).all()
    assert found[4] == 0.0 and np.signbit(found[4])
    np.testing.assert_array_equal(a, np.array([1.0, np.nan, -0.0], dtype))
    assert np.signbit(a[2])


@pytest.mark.parametrize(
    "op, dtype",
    [(atomic_add, np.int8), (atomic_max, np.bool_), (atomic_exch, np.int16),
     (atomic_cas, np.complex128), (atomic_exch, np.float32), (atomic_cas, np.float64),
     (atomic_sub, np.float16)],
    ids=lambda x: getattr(x, "__name__", None))
def test_unsupported_dtype_is_a_typing_error(op, dtype):
    if op is atomic_cas:
        kernel = njit(lambda a: atomic_cas(a, 0, 1, 2))
    else:
        kernel = njit(lambda a: op(a, 0, 1))
    with pytest.raises(TypingError) as info:
        kernel(np.zeros(2, dtype))
    message = str(info.value)
    assert f"unsupported array dtype {np.dtype(dtype)}" in message
    supported = "int32, int64, uint32, uint64" + ("" if op in INT_ONLY else ", float32, float64")
    assert f"supported dtypes are {supported}" in message


# --- races: many threads updating the same few elements -------------------

N = 2_000_000
SLOTS = 4


@njit(parallel=True)
def atomic_count(counts, n):
    for i in prange(n):
        atomic_add(counts, i % SLOTS, 1)


@njit(parallel=True)
def plain_count(counts, slots):
    # slots read from memory: the compiler cannot keep the counts in registers,
    # so every increment is a separate load and store that can race
    for i in prange(slots.size):
        counts[slots[i]] += 1


@njit(parallel=True)
def atomic_min_max(values, lo, hi):
    for i in prange(values.size):
        atomic_min(lo, i % SLOTS, values[i])
        atomic_max(hi, i % SLOTS, values[i])


@njit(parallel=True)
def take_tickets(counter, tickets):
    for i in prange(tickets.size):
        tickets[i] = atomic_add(counter, 0, 1)


@njit(parallel=True)
def cas_count(counts, n):
    for i in prange(n):
        k = i % SLOTS
        expected = counts[k]
        while True:
            found = atomic_cas(counts, k, expected, expected + 1)
            if found == expected:
                break
            expected = found


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.float64],
                         ids=lambda d: d.__name__)
def test_race_atomic_add_counts_exactly(dtype):
    counts = np.zeros(SLOTS, dtype)
    atomic_count(counts, N)
    np.testing.assert_array_equal(counts, np.full(SLOTS, N // SLOTS, dtype))


def test_race_plain_increment_loses_counts():
    """The same loop without atomics loses updates: the race test bites."""
    if numba.get_num_threads() < 2:
        pytest.skip("needs at least 2 threads to race")
    slots = np.random.default_rng().integers(0, SLOTS, N)

    def plain_try_loses() -> bool:
        counts = np.zeros(SLOTS, np.int64)
        plain_count(counts, slots)
        return counts.sum() < N

    assert loses_a_count(plain_try_loses), \
        f"non-atomic increments lost no count in {RACE_DEADLINE_S:.0f} s"


@pytest.mark.parametrize("dtype", [np.int64, np.uint32, np.float64],
                         ids=lambda d: d.__name__)
def test_race_min_max_are_exact(dtype):
    values = random_values(np.random.default_rng(), atomic_max, dtype, N)
    lo, hi = values[:SLOTS].copy(), values[:SLOTS].copy()
    atomic_min_max(values, lo, hi)
    np.testing.assert_array_equal(lo, values.reshape(-1, SLOTS).min(axis=0))
    np.testing.assert_array_equal(hi, values.reshape(-1, SLOTS).max(axis=0))


def test_race_returned_old_values_are_unique():
    counter = np.zeros(1, np.int64)
    tickets = np.full(N, -1, np.int64)
    take_tickets(counter, tickets)
    assert counter[0] == N
    np.testing.assert_array_equal(np.sort(tickets), np.arange(N))


def test_race_cas_loop_counts_exactly():
    counts = np.zeros(SLOTS, np.int32)
    cas_count(counts, N)
    np.testing.assert_array_equal(counts, np.full(SLOTS, N // SLOTS, np.int32))
