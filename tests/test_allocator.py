"""The caching allocator on every backend: reuse in queue order, bins, cap, retry, threads."""
import threading
import time

import numpy as np
import pytest

import portable as pt
from portable.allocator import ALIGNMENT, CachingAllocator, caching_allocator
from portable.testing import every_backend, host_copy, is_simulated


@pt.kernel
def spin(acc, out, iterations):
    for i in acc.uniform_elements(out.size):
        x = out[i]
        for _ in range(iterations):
            x = x * 0.5 + 1.0
        out[i] = x


def address(array):
    interface = getattr(array, "__cuda_array_interface__", None)
    return interface["data"][0] if interface is not None else array.ctypes.data


def keep_busy(queue, array):
    """Enqueue on ``queue`` a kernel that works on ``array`` for a good part of a second."""
    iterations = 10 if is_simulated(queue.backend.name) else 200_000_000
    pt.launch(queue, pt.make_workdiv(queue.device, 1), spin, array, iterations)


@every_backend
@pytest.mark.parametrize("shape, dtype", [((), np.float64), (0, np.int8), (1, np.bool_),
                                          ((3, 5), np.float32), (1000, np.complex128),
                                          ((2, 3, 4), np.uint16)])
def test_arrays_have_the_exact_shape_and_dtype_and_are_aligned(queue, shape, dtype):
    allocator = CachingAllocator(queue.device)
    array = allocator.alloc(queue, shape, dtype)
    expected = np.empty(shape, dtype)
    assert (array.shape, array.dtype) == (expected.shape, expected.dtype)
    assert array.flags["C_CONTIGUOUS"] and (array.size == 0 or array.strides == expected.strides)
    assert address(array) % ALIGNMENT == 0
    assert queue.backend.device_of(array) is queue.device
    allocator.free(array, queue)


@every_backend
def test_requests_round_up_to_power_of_two_bins(queue):
    allocator = CachingAllocator(queue.device)
    for nbytes, bin_bytes in [(1, 256), (256, 256), (257, 512), (4096, 4096), (4097, 8192)]:
        array = allocator.alloc(queue, nbytes, np.uint8)
        assert allocator.stats.live_bytes == bin_bytes
        allocator.free(array, queue)
        assert allocator.stats.cached_bytes == allocator.release_cache() == bin_bytes


@every_backend
def test_one_bin_serves_every_shape_and_dtype_that_fits(queue):
    allocator = CachingAllocator(queue.device)
    first = allocator.alloc(queue, 1000, np.float32)  # 4000 bytes: the 4 KiB bin
    where = address(first)
    allocator.free(first, queue)
    second = allocator.alloc(queue, (16, 32), np.float64)
    assert address(second) == where and second.shape == (16, 32)
    assert (allocator.stats.hits, allocator.stats.misses) == (1, 1)
    allocator.free(second, queue)


@every_backend
def test_requests_above_the_largest_bin_are_not_cached(queue):
    allocator = CachingAllocator(queue.device, max_bin_bytes=1024)
    array = allocator.alloc(queue, 3000, np.uint8)
    assert array.shape == (3000,) and address(array) % ALIGNMENT == 0
    assert allocator.stats.live_bytes == 3000
    allocator.free(array, queue)
    assert (allocator.stats.live_bytes, allocator.stats.cached_bytes) == (0, 0)
    allocator.free(allocator.alloc(queue, 3000, np.uint8), queue)
    assert (allocator.stats.hits, allocator.stats.misses) == (0, 2)


@every_backend
def test_data_survives_until_freed_and_a_reused_block_is_not_zeroed(queue):
    allocator = CachingAllocator(queue.device)
    kept = allocator.alloc(queue, 100, np.int32)
    pt.memset(queue, kept, 0xAB)
    others = [allocator.alloc(queue, 100, np.int32) for _ in range(3)]
    for other in others:
        assert address(other) != address(kept)
        pt.memset(queue, other, 0)
    assert (host_copy(queue, kept).view(np.uint8) == 0xAB).all()
    for other in others:
        allocator.free(other, queue)
    where = address(kept)
    allocator.free(kept, queue)
    again = allocator.alloc(queue, 400, np.uint8)
    assert address(again) == where
    assert (host_copy(queue, again) == 0xAB).all()  # what the last user wrote
    allocator.free(again, queue)


@every_backend
def test_block_freed_on_a_busy_queue_waits_before_another_queue_gets_it(backend):
    device = pt.get_device(backend)
    allocator = CachingAllocator(device)
    busy, other = pt.Queue(device, blocking=False), pt.Queue(device, blocking=False)
    x = allocator.alloc(busy, 1, np.float64)
    where = address(x)
    pt.memset(busy, x, 0)
    keep_busy(busy, x)
    allocator.free(x, busy)
    marker = pt.Event(device)
    marker.record(busy)
    y = allocator.alloc(other, 1, np.float64)
    if marker.query():  # done already: only the simulator, which runs kernels at launch
        assert is_simulated(backend) and address(y) == where
        allocator.free(y, other)
        return
    assert address(y) != where
    z = allocator.alloc(busy, 1, np.float64)  # the same queue: at once, busy or not
    assert address(z) == where
    allocator.free(z, busy)
    busy.synchronize()
    w = allocator.alloc(other, 1, np.float64)
    assert address(w) == where
    for array in (y, w):
        allocator.free(array, other)
    other.synchronize()


@every_backend
def test_block_freed_on_a_blocking_queue_goes_to_any_queue_at_once(queue):
    allocator = CachingAllocator(queue.device)
    x = allocator.alloc(queue, 10, np.int64)
    where = address(x)
    allocator.free(x, queue)
    other = pt.Queue(queue.device)
    y = allocator.alloc(other, 10, np.int64)
    assert address(y) == where
    allocator.free(y, other)


@every_backend
def test_cached_bytes_never_exceed_the_cap(queue):
    allocator = CachingAllocator(queue.device, max_cached_bytes=1024)
    arrays = [allocator.alloc(queue, 512, np.uint8) for _ in range(5)]
    for array in arrays:
        allocator.free(array, queue)
        assert allocator.stats.cached_bytes <= 1024
    stats = allocator.stats
    assert (stats.cached_bytes, stats.cached_blocks, stats.live_bytes) == (1024, 2, 0)
    none_kept = CachingAllocator(queue.device, max_cached_bytes=0)
    none_kept.free(none_kept.alloc(queue, 8, np.uint8), queue)
    assert none_kept.stats.cached_bytes == 0


@every_backend
def test_out_of_memory_gives_the_cache_back_and_retries_once(queue, monkeypatch):
    allocator = CachingAllocator(queue.device)
    allocator.free(allocator.alloc(queue, 256, np.uint8), queue)
    backend, real_alloc, calls = queue.backend, queue.backend.alloc, []

    def fails_once(*args):
        calls.append(args)
        if len(calls) == 1:
            raise MemoryError("out of memory (injected)")
        return real_alloc(*args)
    monkeypatch.setattr(backend, "alloc", fails_once)
    array = allocator.alloc(queue, 1000, np.uint8)
    assert array.shape == (1000,) and allocator.stats.cached_bytes == 0
    allocator.free(array, queue)


@every_backend
def test_out_of_memory_after_the_retry_is_a_clear_error(queue, monkeypatch):
    allocator = CachingAllocator(queue.device)
    allocator.free(allocator.alloc(queue, 256, np.uint8), queue)
    kept = allocator.alloc(queue, 4, np.uint8)

    def always_fails(*args):
        raise MemoryError("out of memory (injected)")
    monkeypatch.setattr(queue.backend, "alloc", always_fails)
    with pytest.raises(pt.PortableError) as err:
        allocator.alloc(queue, (1000, 3), np.float32)
    message = str(err.value)
    for part in ("(1000, 3) of float32", "16384 bytes", str(queue.device), "injected",
                 "256 bytes in use in 1 blocks", "0 bytes cached"):
        assert part in message
    monkeypatch.undo()
    allocator.free(kept, queue)


@every_backend
def test_many_threads_allocate_and_free_without_sharing_a_block(backend):
    device = pt.get_device(backend)
    allocator = CachingAllocator(device)
    threads, rounds = 8, 50
    live, lock, errors = {}, threading.Lock(), []

    def work(name):
        queue = pt.Queue(device)
        try:
            for n in range(rounds):
                array = allocator.alloc(queue, 64 + n % 3 * 200, np.uint8)
                start = address(array)
                with lock:
                    for other, (first, end) in live.items():
                        if start < end and first < start + array.size:
                            errors.append(f"threads {name} and {other} share a block")
                    live[name] = (start, start + array.size)
                time.sleep(0)  # let the other threads run while this block is live
                with lock:
                    del live[name]
                allocator.free(array, queue)
        except Exception as err:  # noqa: BLE001 - reported by the test below
            errors.append(repr(err))
    workers = [threading.Thread(target=work, args=(name,)) for name in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert errors == []
    stats = allocator.stats
    assert stats.requests == threads * rounds == stats.hits + stats.misses
    assert (stats.live_bytes, stats.live_blocks) == (0, 0)
    assert stats.misses <= 3 * threads  # at most one block per bin per thread at once


@every_backend
def test_statistics(queue):
    allocator = CachingAllocator(queue.device)
    a = allocator.alloc(queue, 300, np.uint8)  # 512
    b = allocator.alloc(queue, 100, np.uint8)  # 256
    allocator.free(a, queue)
    c = allocator.alloc(queue, 400, np.uint8)  # 512 again: a hit
    stats = allocator.stats
    assert (stats.requests, stats.hits, stats.misses) == (3, 1, 2)
    assert (stats.live_bytes, stats.live_blocks, stats.cached_bytes) == (768, 2, 0)
    assert stats.peak_bytes == 768
    for array in (b, c):
        allocator.free(array, queue)
    assert (allocator.stats.cached_bytes, allocator.stats.cached_blocks) == (768, 2)
    assert "768 bytes cached in 2 blocks" in repr(allocator)


@every_backend
def test_pinned_memory_is_host_memory_that_copies_with_the_device(queue):
    allocator = CachingAllocator(queue.device, pinned=True)
    host = allocator.alloc(queue, 64, np.int32)
    assert isinstance(host, np.ndarray) and host.ctypes.data % ALIGNMENT == 0
    device_buffer = pt.alloc_buffer(queue.device, 64, np.int32)
    pt.memcpy(queue, device_buffer, np.arange(64, dtype=np.int32))
    pt.memcpy(queue, host, device_buffer)
    queue.synchronize()
    assert host.tolist() == list(range(64))
    where = host.ctypes.data
    allocator.free(host, queue)
    again = allocator.alloc(queue, 16, np.float64)
    assert again.ctypes.data == where
    allocator.free(again, queue)


@every_backend
def test_one_shared_allocator_per_device_and_memory(backend):
    device = pt.get_device(backend)
    found = []
    workers = [threading.Thread(target=lambda: found.append(caching_allocator(device)))
               for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert all(allocator is found[0] for allocator in found)
    assert found[0].device is device and not found[0].pinned
    assert caching_allocator(device, pinned=True) is caching_allocator(device, pinned=True)
    assert caching_allocator(device, pinned=True) is not found[0]


# -- bad input -----------------------------------------------------------------------------
def test_bad_arguments_name_the_argument():
    device = pt.get_device("cpu_serial")
    queue = pt.Queue(device)
    allocator = CachingAllocator(device)
    cases = [
        (lambda: CachingAllocator("cpu_serial"), "argument 'device'"),
        (lambda: CachingAllocator(device, pinned=1), "argument 'pinned'"),
        (lambda: CachingAllocator(device, max_cached_bytes=-1), "argument 'max_cached_bytes'"),
        (lambda: CachingAllocator(device, max_cached_bytes=1.5), "argument 'max_cached_bytes'"),
        (lambda: CachingAllocator(device, max_bin_bytes=1000), "power of two"),
        (lambda: CachingAllocator(device, max_bin_bytes=128), "argument 'max_bin_bytes'"),
        (lambda: allocator.alloc(device, 4, np.int8), "argument 'queue'"),
        (lambda: allocator.alloc(queue, -1, np.int8), "argument 'shape'"),
        (lambda: allocator.alloc(queue, (2, 1.5), np.int8), "argument 'shape'"),
        (lambda: allocator.alloc(queue, 4, object), "argument 'dtype'"),
        (lambda: allocator.alloc(queue, 4, None), "argument 'dtype'"),
        (lambda: allocator.alloc(queue, (2**40, 2**40), np.int8), "more than any machine"),
        (lambda: caching_allocator("cpu_serial"), "argument 'device'"),
        (lambda: caching_allocator(device, pinned="yes"), "argument 'pinned'"),
    ]
    for call, expected in cases:
        with pytest.raises(pt.ArgumentError, match=expected):
            call()
    assert allocator.stats.requests == 0


def test_queue_of_another_device_is_refused_and_nothing_changes():
    device, elsewhere = pt.get_device("cpu_serial"), pt.Queue(pt.get_device("cpu_threads"))
    queue, allocator = pt.Queue(device), CachingAllocator(device)
    with pytest.raises(pt.ArgumentError, match="argument 'queue' runs on cpu_threads:0"):
        allocator.alloc(elsewhere, 4, np.int8)
    array = allocator.alloc(queue, 4, np.int8)
    with pytest.raises(pt.ArgumentError, match="argument 'queue' runs on cpu_threads:0"):
        allocator.free(array, elsewhere)
    assert allocator.stats.live_blocks == 1
    allocator.free(array, queue)


def test_double_free_and_foreign_arrays_are_refused():
    device = pt.get_device("cpu_serial")
    queue, allocator = pt.Queue(device), CachingAllocator(device)
    array = allocator.alloc(queue, 4, np.int8)
    allocator.free(array, queue)
    with pytest.raises(pt.ArgumentError, match="argument 'array' .* was freed already"):
        allocator.free(array, queue)
    for foreign in (np.zeros(4, np.int8), pt.alloc_buffer(device, 4, np.int8),
                    CachingAllocator(device).alloc(queue, 4, np.int8), "buffer", None):
        with pytest.raises(pt.ArgumentError, match="argument 'array' .* was not allocated"):
            allocator.free(foreign, queue)
    view = allocator.alloc(queue, 8, np.int8)
    with pytest.raises(pt.ArgumentError, match="was not allocated"):
        allocator.free(view[2:], queue)  # only the array alloc returned frees its block
    allocator.free(view, queue)
    assert allocator.stats.live_blocks == 0


def test_pinned_needs_host_memory_the_backend_can_give():
    assert CachingAllocator(pt.get_device("cpu_serial"), pinned=True).pinned
