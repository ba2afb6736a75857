"""Queues, events and memory on every backend."""
import numpy as np
import pytest

import portable as pt
from portable.testing import every_backend, host_copy, is_simulated

DTYPES = [np.bool_, np.int8, np.uint16, np.int32, np.int64, np.float32, np.float64]


@pt.kernel
def add_one(acc, x):
    for i in acc.uniform_elements(x.size):
        x[i] += 1


@pt.kernel
def copy_plus(acc, src, dst, value):
    for i in acc.uniform_elements(src.size):
        dst[i] = src[i] + value


@every_backend
@pytest.mark.parametrize("dtype", DTYPES)
def test_memcpy_round_trip_preserves_every_byte(queue, dtype):
    rng = np.random.default_rng()
    nbytes = 37 * 3 * np.dtype(dtype).itemsize
    raw = rng.integers(0, 256, nbytes, dtype=np.uint8)
    if dtype is np.bool_:
        raw &= 1  # only 0 and 1 are valid booleans
    host = raw.view(dtype).reshape(37, 3)
    dev = pt.alloc_buffer(queue.device, host.shape, dtype)
    pt.memset(queue, dev, 0xA5)
    pt.memcpy(queue, dev, host)
    back = np.full(nbytes, 0x5A, np.uint8).view(dtype).reshape(host.shape)
    pt.memcpy(queue, back, dev)
    queue.synchronize()
    assert back.tobytes() == host.tobytes()


@every_backend
def test_device_to_device_copy(queue):
    a = pt.alloc_buffer(queue.device, 100, np.float32)
    b = pt.alloc_buffer(queue.device, 100, np.float32)
    host = np.random.default_rng().random(100, dtype=np.float32)
    pt.memcpy(queue, a, host)
    pt.memset(queue, b, 0xFF)
    pt.memcpy(queue, b, a)
    np.testing.assert_array_equal(host_copy(queue, b), host)


@every_backend
def test_memset_sets_bytes(queue):
    buf = pt.alloc_buffer(queue.device, 5, np.uint32)
    pt.memset(queue, buf, 0x01)
    assert host_copy(queue, buf).tolist() == [0x01010101] * 5


@every_backend
def test_memcpy_shape_mismatch_is_an_error_and_writes_nothing(queue):
    dst = pt.alloc_buffer(queue.device, 4, np.float32)
    pt.memset(queue, dst, 0)
    with pytest.raises(pt.PortableError, match=r"dst is \(4,\) float32 but src is \(5,\)"):
        pt.memcpy(queue, dst, np.ones(5, np.float32))
    with pytest.raises(pt.PortableError, match="same shape and dtype"):
        pt.memcpy(queue, dst, np.ones(4, np.float64))
    assert host_copy(queue, dst).tolist() == [0, 0, 0, 0]


@every_backend
def test_memset_of_a_strided_host_array_is_refused(queue):
    """Flattening a strided array copies it: a fill would miss the array itself."""
    host = np.arange(12, dtype=np.int32).reshape(3, 4)
    with pytest.raises(pt.PortableError, match="contiguous buffer; this one is strided"):
        pt.memset(queue, host[:, ::2], 0)
    queue.synchronize()
    np.testing.assert_array_equal(host, np.arange(12).reshape(3, 4))
    pt.memset(queue, host.T, 0)  # F-contiguous: filled in place
    queue.synchronize()
    assert not host.any()


@every_backend
def test_memset_rejects_non_byte(queue):
    buf = pt.alloc_buffer(queue.device, 2, np.uint8)
    with pytest.raises(pt.PortableError, match="must be an integer from 0 to 255"):
        pt.memset(queue, buf, 256)


@every_backend
@pytest.mark.parametrize("blocking", [True, False])
def test_queue_runs_work_in_order(backend, blocking):
    q = pt.Queue(pt.get_device(backend), blocking=blocking)
    n = 64
    host = np.arange(n, dtype=np.int64)
    dev = pt.alloc_buffer(q.device, n, np.int64)
    pt.memcpy(q, dev, host)
    wd = pt.make_workdiv(q.device, n)
    for _ in range(5):
        pt.launch(q, wd, add_one, dev)
    out = np.empty(n, np.int64)
    pt.memcpy(q, out, dev)
    q.synchronize()
    np.testing.assert_array_equal(out, host + 5)


@every_backend
def test_events_record_query_and_time(backend):
    q = pt.Queue(pt.get_device(backend), blocking=False)
    start, stop = pt.Event(q.device), pt.Event(q.device)
    dev = pt.alloc_buffer(q.device, 32, np.int64)
    pt.memset(q, dev, 0)
    start.record(q)
    pt.launch(q, pt.make_workdiv(q.device, 32), add_one, dev)
    stop.record(q)
    stop.synchronize()
    assert stop.query() and start.query()
    assert start.elapsed_ms(stop) >= 0.0


@every_backend
def test_queue_waits_for_event_of_another_queue(backend):
    device = pt.get_device(backend)
    producer, consumer = pt.Queue(device, blocking=False), pt.Queue(device, blocking=False)
    n = 128
    src, dst = pt.alloc_buffer(device, n, np.int64), pt.alloc_buffer(device, n, np.int64)
    pt.memcpy(producer, src, np.arange(n, dtype=np.int64))
    ready = pt.Event(device)
    ready.record(producer)
    consumer.wait_for(ready)
    pt.launch(consumer, pt.make_workdiv(device, n), copy_plus, src, dst, 10)
    np.testing.assert_array_equal(host_copy(consumer, dst), np.arange(n) + 10)


def test_event_not_recorded_is_an_error():
    ev = pt.Event(pt.get_device("cpu_serial"))
    with pytest.raises(pt.PortableError, match="never recorded"):
        ev.synchronize()


def test_event_of_other_backend_is_an_error():
    ev = pt.Event(pt.get_device("cpu_serial"))
    with pytest.raises(pt.PortableError, match="cannot be recorded"):
        ev.record(pt.Queue(pt.get_device("cpu_threads")))


def test_error_in_non_blocking_cpu_work_reaches_the_host():
    q = pt.Queue(pt.get_device("cpu_serial"), blocking=False)
    q.native.submit(lambda: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        q.synchronize()


@every_backend
def test_as_view_of_native_arrays_shares_memory(queue):
    buf = pt.alloc_buffer(queue.device, 8, np.float64)
    assert pt.as_view(buf, queue.device) is buf or pt.as_view(buf).shape == (8,)
    if queue.backend.host_memory:
        host = np.zeros(4)
        view = pt.as_view(host, queue.device)
        view[1] = 5.0
        assert host[1] == 5.0


def test_as_view_of_torch_cpu_tensor_shares_memory():
    torch = pytest.importorskip("torch")
    t = torch.zeros(6, dtype=torch.float32)
    view = pt.as_view(t, pt.get_device("cpu_serial"))
    view[2] = 3.5
    assert t[2].item() == 3.5
    q = pt.Queue(pt.get_device("cpu_threads"))
    pt.launch(q, pt.make_workdiv(q.device, 6), add_one, t)  # tensors are kernel arguments too
    assert t.tolist() == [1, 1, 4.5, 1, 1, 1]


def test_as_view_of_dlpack_object():
    class OnlyDlpack:
        def __init__(self, a):
            self.a = a

        def __dlpack__(self, **kw):
            return self.a.__dlpack__(**kw)

        def __dlpack_device__(self):
            return self.a.__dlpack_device__()

    a = np.arange(3.0)
    view = pt.as_view(OnlyDlpack(a))
    assert np.shares_memory(view, a)


def test_as_view_of_unknown_object_is_an_error():
    with pytest.raises(pt.PortableError, match="cannot view a str"):
        pt.as_view("not an array")


def test_pinned_host_buffer_needs_cuda():
    if not _cuda_available():
        with pytest.raises(pt.BackendError, match="page-locked host memory.*none can run here"):
            pt.alloc_host_buffer(4, np.float32, pinned=True)
    else:
        buf = pt.alloc_host_buffer(4, np.float32, pinned=True)
        assert buf.shape == (4,) and buf.dtype == np.float32


def _cuda_available():
    return any(b.name == "cuda" and b.available for b in pt.all_backends())


def test_wrapping_a_stream_on_cpu_is_an_error():
    with pytest.raises(pt.BackendError, match="no streams to wrap"):
        pt.Queue.wrap(pt.get_device("cpu_serial"), 0)


@pytest.mark.gpu
def test_wrapping_torch_stream_orders_kernel_with_torch():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available() or is_simulated("cuda"):
        pytest.skip("needs a real CUDA GPU and torch with CUDA")
    stream = torch.cuda.Stream()
    q = pt.Queue.wrap(pt.get_device("cuda"), stream)
    with torch.cuda.stream(stream):
        t = torch.arange(1000, device="cuda", dtype=torch.int64)
        pt.launch(q, pt.make_workdiv(q.device, 1000), add_one, t)
        t2 = t * 2  # torch work after ours on the same stream
    stream.synchronize()
    assert torch.equal(t2.cpu(), (torch.arange(1000) + 1) * 2)
    view = pt.as_view(t, q.device)
    assert view.__cuda_array_interface__["data"][0] == t.data_ptr()
