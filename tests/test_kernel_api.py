"""The kernel API on every backend: indices, loops, shared memory, barriers,
atomics, math and device functions."""
import math

import numpy as np
import pytest

import portable as pt
from portable.testing import every_backend, host_copy, is_simulated, poisoned
from race_helpers import RACE_DEADLINE_S, loses_a_count


def gpu_or_cpu(queue, gpu: pt.WorkDiv, cpu: pt.WorkDiv) -> pt.WorkDiv:
    return gpu if not queue.backend.host_memory else cpu


# -- indices and uniform_elements ---------------------------------------------------
@pt.kernel
def visit(acc, n, visits, owner):
    for i in acc.uniform_elements(n):
        acc.atomic_add(visits, i, 1)
        owner[i] = acc.block_idx * acc.block_threads + acc.thread_idx


@every_backend
@pytest.mark.parametrize("blocks,threads,elements,n", [
    (1, 1, 1, 5), (3, 4, 1, 50), (2, 8, 3, 100), (4, 2, 5, 7), (5, 1, 7, 36), (2, 4, 2, 0)])
def test_uniform_elements_visits_every_index_once(queue, blocks, threads, elements, n):
    if queue.backend.host_memory:
        threads, blocks = 1, blocks * threads
    visits = pt.alloc_buffer(queue.device, max(n, 1), np.int32)
    pt.memset(queue, visits, 0)
    owner = poisoned(queue, max(n, 1), np.int64)
    wd = pt.WorkDiv(blocks, threads, elements)
    pt.launch(queue, wd, visit, n, visits, owner)
    if n:
        assert host_copy(queue, visits)[:n].tolist() == [1] * n
        i = np.arange(n)
        if queue.backend.block_strided_elements:  # thread t of a block: base + k*threads + t
            expected = (i // (threads * elements)) % blocks * threads + i % threads
        else:  # a thread's elements are consecutive
            expected = (i // elements) % wd.total_threads
        np.testing.assert_array_equal(host_copy(queue, owner)[:n], expected)


@pt.kernel
def indices_2d(acc, out, count):
    for i, j in acc.uniform_elements(out.shape[0], out.shape[1]):
        out[i, j] = i * 1000 + j
        acc.atomic_add(count, 0, 1)


@pt.kernel
def indices_3d(acc, out):
    for i, j, k in acc.uniform_elements(out.shape[0], out.shape[1], out.shape[2]):
        out[i, j, k] = i * 10000 + j * 100 + k


@every_backend
@pytest.mark.parametrize("shape", [(5, 7), (1, 33), (17, 3)])
def test_uniform_elements_2d(queue, shape):
    out = poisoned(queue, shape, np.int64)
    count = pt.alloc_buffer(queue.device, 1, np.int64)
    pt.memset(queue, count, 0)
    pt.launch(queue, pt.make_workdiv(queue.device, shape), indices_2d, out, count)
    expected = np.add.outer(np.arange(shape[0]) * 1000, np.arange(shape[1]))
    np.testing.assert_array_equal(host_copy(queue, out), expected)
    assert host_copy(queue, count)[0] == shape[0] * shape[1]


@every_backend
def test_uniform_elements_3d_with_explicit_workdiv(queue):
    shape = (3, 4, 5)
    out = poisoned(queue, shape, np.int64)
    wd = gpu_or_cpu(queue, pt.WorkDiv((2, 1, 2), (1, 2, 2), 1),
                    pt.WorkDiv((2, 1, 2), 1, (1, 2, 2)))
    pt.launch(queue, wd, indices_3d, out)
    i, j, k = np.indices(shape)
    np.testing.assert_array_equal(host_copy(queue, out), i * 10000 + j * 100 + k)


@pt.kernel
def extents(acc, out):
    if acc.once_per_grid():
        out[0] = acc.grid_blocks
        out[1] = acc.block_threads
        out[2] = acc.thread_elements
        out[3] = acc.grid_threads
        out[4] = acc.ndim


@every_backend
def test_extents(queue):
    out = poisoned(queue, 5, np.int64)
    wd = gpu_or_cpu(queue, pt.WorkDiv(3, 4, 2), pt.WorkDiv(3, 1, 2))
    pt.launch(queue, wd, extents, out)
    threads = wd.threads[0]
    assert host_copy(queue, out).tolist() == [3, threads, 2, 3 * threads, 1]


# -- groups ---------------------------------------------------------------------------
@pt.kernel
def group_owner(acc, n, group_of, block_of):
    for g in acc.uniform_groups(n):
        for i in acc.uniform_group_elements(g, n):
            group_of[i] = g
            block_of[i] = acc.block_idx


@every_backend
def test_uniform_groups_follow_the_documented_example(queue):
    # block size 64, 400 elements: groups 0..6; with 4 blocks, block 0 takes groups 0 and 4
    n = 400
    group_of, block_of = poisoned(queue, n, np.int64), poisoned(queue, n, np.int64)
    wd = gpu_or_cpu(queue, pt.WorkDiv(4, 64, 1), pt.WorkDiv(4, 1, 64))
    pt.launch(queue, wd, group_owner, n, group_of, block_of)
    groups = np.arange(n) // 64
    np.testing.assert_array_equal(host_copy(queue, group_of), groups)
    np.testing.assert_array_equal(host_copy(queue, block_of), groups % 4)


@pt.kernel
def reverse_tiles(acc, x, out):
    tile = acc.shared_array(16, np.float64)
    for g in acc.uniform_groups(x.size):
        for i, local in acc.uniform_group_elements(g, x.size):
            tile[local] = x[i]
        acc.sync_block()
        for i, local in acc.uniform_group_elements(g, x.size):
            out[i] = tile[15 - local]
        acc.sync_block()


@every_backend
def test_shared_memory_and_barrier(queue):
    n = 64  # four whole tiles of 16
    host = np.random.default_rng().random(n)
    x = pt.alloc_buffer(queue.device, n, np.float64)
    pt.memcpy(queue, x, host)
    out = poisoned(queue, n, np.float64)
    wd = gpu_or_cpu(queue, pt.WorkDiv(3, 16, 1), pt.WorkDiv(3, 1, 16))
    pt.launch(queue, wd, reverse_tiles, x, out)
    np.testing.assert_array_equal(host_copy(queue, out), host.reshape(4, 16)[:, ::-1].ravel())


@pt.kernel
def sum_ragged_groups(acc, offsets, values, sums, block_of):
    for g in acc.independent_groups(offsets.size - 1):
        start = offsets[g]
        for k in acc.independent_group_elements(offsets[g + 1] - start):
            acc.atomic_add(sums, g, values[start + k])
        if acc.once_per_block():
            block_of[g] = acc.block_idx


@every_backend
def test_independent_groups_cover_ragged_groups(queue):
    sizes = np.array([3, 0, 17, 1, 9, 40, 2], np.int64)
    offsets_h = np.concatenate([[0], np.cumsum(sizes)])
    values_h = np.random.default_rng().integers(-50, 50, offsets_h[-1]).astype(np.int64)
    offsets = pt.alloc_buffer(queue.device, offsets_h.size, np.int64)
    values = pt.alloc_buffer(queue.device, values_h.size, np.int64)
    pt.memcpy(queue, offsets, offsets_h)
    pt.memcpy(queue, values, values_h)
    sums = pt.alloc_buffer(queue.device, sizes.size, np.int64)
    pt.memset(queue, sums, 0)
    block_of = poisoned(queue, sizes.size, np.int64)
    wd = gpu_or_cpu(queue, pt.WorkDiv(3, 8, 1), pt.WorkDiv(3, 1, 4))
    pt.launch(queue, wd, sum_ragged_groups, offsets, values, sums, block_of)
    expected = np.add.reduceat(values_h, offsets_h[:-1]) * (sizes > 0)
    np.testing.assert_array_equal(host_copy(queue, sums), expected)
    np.testing.assert_array_equal(host_copy(queue, block_of), np.arange(sizes.size) % 3)


@pt.kernel
def count_once(acc, per_grid, per_block):
    if acc.once_per_grid():
        acc.atomic_add(per_grid, 0, 1)
    if acc.once_per_block():
        acc.atomic_add(per_block, 0, 1)


@every_backend
def test_once_per_grid_and_block(queue):
    per_grid = pt.alloc_buffer(queue.device, 1, np.int32)
    per_block = pt.alloc_buffer(queue.device, 1, np.int32)
    pt.memset(queue, per_grid, 0)
    pt.memset(queue, per_block, 0)
    wd = gpu_or_cpu(queue, pt.WorkDiv(5, 8, 1), pt.WorkDiv(5, 1, 8))
    pt.launch(queue, wd, count_once, per_grid, per_block)
    assert host_copy(queue, per_grid)[0] == 1
    assert host_copy(queue, per_block)[0] == 5


# -- atomics --------------------------------------------------------------------------
@pt.kernel
def atomics_all(acc, n, ints, floats, olds):
    for i in acc.uniform_elements(n):
        acc.atomic_add(ints, 0, 1)
        acc.atomic_sub(ints, 1, 2)
        acc.atomic_min(ints, 2, i)
        acc.atomic_max(ints, 3, i)
        acc.atomic_add(floats, 0, 0.5)
        acc.atomic_min(floats, 1, i * 0.25)
        acc.atomic_max(floats, 2, i * 0.25)
        olds[i] = acc.atomic_exch(ints, 4, i)
        acc.atomic_cas(ints, 5, i, i + 1)  # a chain: only the holder of the count advances it


@every_backend
@pytest.mark.parametrize("int_dtype", [np.int32, np.int64, np.uint32, np.uint64])
def test_atomics_under_contention(queue, int_dtype):
    n = 200 if is_simulated(queue.backend.name) else 100_000
    ints = pt.alloc_buffer(queue.device, 6, int_dtype)
    floats = pt.alloc_buffer(queue.device, 3, np.float64)
    info = np.iinfo(int_dtype)
    start = np.array([0, 2 * n + 7, info.max, 0, n + 5, 0], dtype=int_dtype)
    pt.memcpy(queue, ints, start)
    pt.memcpy(queue, floats, np.array([0.0, 1e300, -1e300]))
    olds = poisoned(queue, n, int_dtype)
    pt.launch(queue, pt.make_workdiv(queue.device, n), atomics_all, n, ints, floats, olds)
    got = host_copy(queue, ints)
    assert got[0] == n and got[1] == 7 and got[2] == 0 and got[3] == n - 1
    assert 0 <= got[4] < n
    # every exchanged-out value is seen once: the start value and all indices but the last
    seen = np.sort(np.append(host_copy(queue, olds), got[4]))
    np.testing.assert_array_equal(seen, np.sort(np.append(np.arange(n), n + 5)).astype(int_dtype))
    assert 1 <= got[5] <= n  # cas: at least the first step of the chain happened
    f = host_copy(queue, floats)
    assert f[0] == 0.5 * n and f[1] == 0.0 and f[2] == (n - 1) * 0.25


@pt.kernel
def count_plain(acc, slots, counter):
    for i in acc.uniform_elements(slots.size):
        counter[slots[i]] += 1  # read, add, write: not atomic


@pt.kernel
def count_atomic(acc, slots, counter):
    for i in acc.uniform_elements(slots.size):
        acc.atomic_add(counter, slots[i], 1)


@every_backend
def test_races_show_up_without_atomics(queue):
    """A counter updated without atomics loses counts wherever blocks really run
    concurrently; the atomic one never does."""
    if queue.backend.name == "cpu_serial" or is_simulated(queue.backend.name):
        pytest.skip("blocks do not run concurrently on this backend")
    cores = queue.device.limits.multiprocessors
    if queue.backend.host_memory and cores < 2:
        pytest.skip("cpu_threads runs on a single thread here")
    n = 4_000_000
    slots = pt.alloc_buffer(queue.device, n, np.int64)
    pt.memset(queue, slots, 0)  # every update goes to counter[0], through memory
    counter = pt.alloc_buffer(queue.device, 1, np.int64)
    wd = pt.make_workdiv(queue.device, n) if not queue.backend.host_memory else \
        pt.WorkDiv(cores * 64, 1, -(-n // (cores * 64)))
    pt.memset(queue, counter, 0)
    pt.launch(queue, wd, count_atomic, slots, counter)
    assert host_copy(queue, counter)[0] == n

    def plain_try_loses() -> bool:
        pt.memset(queue, counter, 0)
        pt.launch(queue, wd, count_plain, slots, counter)
        return host_copy(queue, counter)[0] < n

    assert loses_a_count(plain_try_loses), \
        f"the non-atomic counter lost no count in {RACE_DEADLINE_S:.0f} s: the test cannot see races"


# -- math and device functions --------------------------------------------------------
@pt.kernel
def math_funcs(acc, x, out):
    for i in acc.uniform_elements(x.size):
        v = x[i]
        out[i, 0] = math.sin(v) + math.cos(v)
        out[i, 1] = math.exp(-v) * math.log(v + 1.0)
        out[i, 2] = math.sqrt(v) + math.atan2(v, 2.0)
        out[i, 3] = math.floor(v * 3.0) + math.fabs(v - 1.0) + math.pow(v, 1.5)
        out[i, 4] = math.tanh(v) + math.erf(v) + math.hypot(v, 3.0)


@every_backend
def test_math_module(queue):
    host = np.random.default_rng().random(257) * 4.0
    x = pt.alloc_buffer(queue.device, host.size, np.float64)
    pt.memcpy(queue, x, host)
    out = poisoned(queue, (host.size, 5), np.float64)
    pt.launch(queue, pt.make_workdiv(queue.device, host.size), math_funcs, x, out)
    from math import erf
    expected = np.stack([
        np.sin(host) + np.cos(host),
        np.exp(-host) * np.log(host + 1.0),
        np.sqrt(host) + np.arctan2(host, 2.0),
        np.floor(host * 3.0) + np.abs(host - 1.0) + host ** 1.5,
        np.tanh(host) + np.vectorize(erf)(host) + np.hypot(host, 3.0)], axis=1)
    np.testing.assert_allclose(host_copy(queue, out), expected, rtol=1e-12, atol=1e-12)


@pt.device_function
def square(v):
    return v * v


@pt.device_function
def norm3(x, y, z):
    return math.sqrt(square(x) + square(y) + square(z))


@pt.device_function
def fill_mine(acc, out, value):
    for i in acc.uniform_elements(out.size):
        out[i] = value + acc.thread_elements * 0


@pt.kernel
def norms(acc, x, y, z, r):
    for i in acc.uniform_elements(x.size):
        r[i] = norm3(x[i], y[i], z[i])


@pt.kernel
def fill_via_device_function(acc, out, value):
    fill_mine(acc, out, value)


def make_scaler(factor, dtype):
    @pt.kernel
    def scale(acc, x, out):
        tmp = acc.shared_array(4, dtype)
        for i in acc.uniform_elements(x.size):
            out[i] = square(x[i]) * factor
        tmp[0] = 0
    return scale


@every_backend
def test_device_functions_nested_and_with_acc(queue):
    rng = np.random.default_rng()
    hosts = [rng.random(100) for _ in range(3)]
    devs = []
    for h in hosts:
        d = pt.alloc_buffer(queue.device, h.size, np.float64)
        pt.memcpy(queue, d, h)
        devs.append(d)
    r = poisoned(queue, 100, np.float64)
    wd = pt.make_workdiv(queue.device, 100)
    pt.launch(queue, wd, norms, *devs, r)
    np.testing.assert_allclose(host_copy(queue, r), np.sqrt(sum(h * h for h in hosts)), rtol=1e-14)
    pt.launch(queue, wd, fill_via_device_function, r, 2.5)
    assert host_copy(queue, r).tolist() == [2.5] * 100


@every_backend
def test_closure_kernels_freeze_their_constants(queue):
    host = np.arange(10, dtype=np.float32)
    x = pt.alloc_buffer(queue.device, 10, np.float32)
    pt.memcpy(queue, x, host)
    out = poisoned(queue, 10, np.float32)
    scale3 = make_scaler(3.0, np.float32)
    scale3[queue, pt.make_workdiv(queue.device, 10)](x, out)
    np.testing.assert_array_equal(host_copy(queue, out), host * host * 3)


def test_device_function_without_acc_runs_on_host():
    assert norm3(3.0, 4.0, 12.0) == 13.0
    with pytest.raises(pt.KernelError, match="runs only inside kernels"):
        fill_mine(None, np.zeros(2), 1.0)


@every_backend
def test_compiled_once_per_backend_and_types(queue):
    @pt.kernel
    def bump(acc, x):
        for i in acc.uniform_elements(x.size):
            x[i] += 1

    x = pt.alloc_buffer(queue.device, 8, np.int64)
    pt.memset(queue, x, 0)
    wd = pt.make_workdiv(queue.device, 8)
    for _ in range(3):
        pt.launch(queue, wd, bump, x)
    assert len(bump.compiled) == 1
    assert host_copy(queue, x).tolist() == [3] * 8
