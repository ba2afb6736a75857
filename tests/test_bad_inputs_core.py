"""Bad input to the core: backends, devices, queues, events, memory and work divisions.

Each case asserts the exception's type, that the message names the offending
argument or value, and that the outputs given are untouched.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import portable as pt
from portable.testing import every_backend, poisoned, wanted_backends

from bad_inputs import refused

HOST = pt.get_device("cpu_serial")


def _run(script, code: str, **env: str) -> subprocess.CompletedProcess:
    """``code``, written to the file ``script`` (kernels need their source in a file), in
    a fresh interpreter with ``env`` added to the environment."""
    script.write_text(code)
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=300)


# -- backends and devices ------------------------------------------------------------
@pytest.mark.parametrize("name,suggestion", [
    ("CUDA", "'cuda'"), ("cpu-serial", "'cpu_serial'"), ("Cpu_Threads", "'cpu_threads'"),
    (" cpu_serial", "'cpu_serial'")])
def test_misspelt_backend_names_get_a_suggestion(name, suggestion):
    with refused(pt.BackendError, repr(name), f"Did you mean {suggestion}?"):
        pt.get_backend(name)


@pytest.mark.parametrize("name", [3, None, 1.5, ["cuda"]])
def test_backend_names_must_be_strings(name):
    with refused(pt.BackendError, type(name).__name__, "'cpu_serial'"):
        pt.get_backend(name)


def test_use_backend_refuses_an_unknown_name():
    with refused(pt.BackendError, "'gpu'"):
        with pt.use_backend("gpu"):
            pass


@pytest.mark.parametrize("index", [1.0, True, "0", None])
def test_device_index_must_be_an_integer(index):
    with refused(pt.ArgumentError, "'index'", repr(index)):
        pt.get_device("cpu_serial", index)


@pytest.mark.parametrize("index", [-1, 7])
def test_device_index_out_of_range(index):
    with refused(pt.BackendError, f"index {index}", "0..0"):
        pt.get_device("cpu_serial", index)


def test_unavailable_backend_asked_for_by_name():
    with refused(pt.BackendError, "'rocm'", "cannot run here"):
        pt.get_device("rocm")


# -- queues and events -----------------------------------------------------------------
@pytest.mark.parametrize("device,fix", [
    ("cpu_serial", "pt.get_device('cpu_serial')"), (0, "pt.get_device(backend_name, index)"),
    (pt.Queue(HOST), "queue.device")])
def test_queue_needs_a_device(device, fix):
    with refused(pt.ArgumentError, "'device'", fix):
        pt.Queue(device)


@pytest.mark.parametrize("blocking", ["yes", 1, None])
def test_queue_blocking_must_be_a_flag(blocking):
    with refused(pt.ArgumentError, "'blocking'", repr(blocking)):
        pt.Queue(HOST, blocking=blocking)


@every_backend
def test_wait_for_needs_an_event(queue):
    with refused(pt.ArgumentError, "'event'", "the str 'now'"):
        queue.wait_for("now")


@every_backend
def test_event_needs_a_device_and_a_queue(queue):
    with refused(pt.ArgumentError, "'device'", "use queue.device"):
        pt.Event(queue)
    event = pt.Event(queue.device)
    with refused(pt.ArgumentError, "'queue'", "pt.Queue(device)"):
        event.record(queue.device)
    with refused(pt.PortableError, "never recorded"):
        event.synchronize()
    event.record(queue)
    with refused(pt.ArgumentError, "'end'", "the float 1.0"):
        event.elapsed_ms(1.0)


@every_backend
def test_event_of_another_device_cannot_be_recorded(queue, backend):
    other = "cpu_threads" if backend == "cpu_serial" else "cpu_serial"
    event = pt.Event(pt.get_device(other))
    with refused(pt.PortableError, f"{other}:0", "pt.Event(queue.device)"):
        event.record(queue)


# -- allocation ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype,named", [
    (None, "None"), (object, "object"), ("U4", "<U4"), ("S3", "|S3"), ("V8", "|V8"),
    ("M8[s]", "datetime64[s]"), ([("a", "f4")], "'dtype'"), ("flaot32", "'flaot32'"),
    (">f8", "'>f8'"), ((np.float32, 3), "'dtype'")])
@every_backend
def test_alloc_buffer_refuses_what_no_kernel_can_take(queue, dtype, named):
    with refused(pt.ArgumentError, "'dtype'", named):
        pt.alloc_buffer(queue.device, 3, dtype)


@pytest.mark.parametrize("shape", [2.0, -1, True, "3", (2, 1.5), (2, -3), None, {3}])
@every_backend
def test_alloc_buffer_refuses_bad_shapes(queue, shape):
    with refused(pt.ArgumentError, "'shape'", repr(shape)):
        pt.alloc_buffer(queue.device, shape, np.float32)


@pytest.mark.parametrize("device,fix", [("cpu_serial", "pt.get_device('cpu_serial')"),
                                        (None, "pt.get_device(backend_name, index)")])
def test_alloc_buffer_needs_a_device(device, fix):
    with refused(pt.ArgumentError, "'device'", fix):
        pt.alloc_buffer(device, 3, np.float32)


def test_alloc_buffer_given_a_queue_says_use_its_device():
    with refused(pt.ArgumentError, "'device'", "use queue.device"):
        pt.alloc_buffer(pt.Queue(HOST), 3)


@pytest.mark.parametrize("kwargs,named", [
    (dict(dtype=None), "'dtype'"), (dict(pinned="yes"), "'pinned'"),
    (dict(shape=1.5), "'shape'")])
def test_alloc_host_buffer_checks_its_arguments(kwargs, named):
    args = {"shape": 3, **kwargs}
    with refused(pt.ArgumentError, named):
        pt.alloc_host_buffer(**args)


# -- copies and fills --------------------------------------------------------------------
@pytest.mark.parametrize("bad", [[1.0, 2.0, 3.0], (1.0, 2.0, 3.0), None, "abc", 3.0])
@every_backend
def test_memcpy_operands_must_be_arrays(queue, bad):
    out = poisoned(queue, 3, np.float64)
    with refused(pt.ArgumentError, "'src'", type(bad).__name__, queue=queue, untouched=[out]):
        pt.memcpy(queue, out, bad)
    with refused(pt.ArgumentError, "'dst'", type(bad).__name__):
        pt.memcpy(queue, bad, np.zeros(3))


@every_backend
def test_memcpy_refuses_a_read_only_destination(queue):
    dst = np.full(3, 7.0)
    dst.flags.writeable = False
    with refused(pt.ArgumentError, "'dst'", "read-only", untouched=[dst]):
        pt.memcpy(queue, dst, pt.alloc_buffer(queue.device, 3))


@pytest.mark.parametrize("shape,dtype,named", [
    (4, np.float64, "(4,)"), (3, np.float32, "float32"), ((3, 1), np.float64, "(3, 1)")])
@every_backend
def test_memcpy_refuses_mismatched_operands(queue, shape, dtype, named):
    out = poisoned(queue, 3, np.float64)
    with refused(pt.PortableError, named, "same shape and dtype", queue=queue,
                 untouched=[out]):
        pt.memcpy(queue, out, np.zeros(shape, dtype))


@every_backend
def test_memcpy_takes_a_cpu_tensor(queue):
    torch = pytest.importorskip("torch")
    out = poisoned(queue, 3, np.float32)
    pt.memcpy(queue, out, torch.arange(3, dtype=torch.float32))
    host = np.empty(3, np.float32)
    pt.memcpy(queue, host, out)
    queue.synchronize()
    assert host.tolist() == [0.0, 1.0, 2.0]


@pytest.mark.parametrize("queue_arg,fix", [("cpu_serial", "pt.Queue(pt.get_device"),
                                           (HOST, "pt.Queue(device)")])
def test_memcpy_and_memset_need_a_queue(queue_arg, fix):
    with refused(pt.ArgumentError, "'queue'", fix):
        pt.memcpy(queue_arg, np.zeros(2), np.ones(2))
    with refused(pt.ArgumentError, "'queue'", fix):
        pt.memset(queue_arg, np.zeros(2), 0)


@pytest.mark.parametrize("byte", [256, -1, True, 1.5, "a", None])
@every_backend
def test_memset_value_must_be_a_byte(queue, byte):
    out = poisoned(queue, 4, np.uint8)
    with refused(pt.ArgumentError, "'byte'", repr(byte), queue=queue, untouched=[out]):
        pt.memset(queue, out, byte)


@every_backend
def test_memset_refuses_read_only_and_non_arrays(queue):
    dst = np.full(3, 7.0)
    dst.flags.writeable = False
    with refused(pt.ArgumentError, "'dst'", "read-only", untouched=[dst]):
        pt.memset(queue, dst, 0)
    with refused(pt.ArgumentError, "'dst'", "the list [0, 0]"):
        pt.memset(queue, [0, 0], 0)


def test_as_view_checks_its_device_and_object():
    with refused(pt.ArgumentError, "'device'", "pt.get_device('cpu_serial')"):
        pt.as_view(np.zeros(2), "cpu_serial")
    with refused(pt.PortableError, "list"):
        pt.as_view([1, 2])


# -- work divisions --------------------------------------------------------------------------
@every_backend
def test_make_workdiv_given_a_queue_says_use_its_device(queue):
    with refused(pt.ArgumentError, "'device'", "use queue.device"):
        pt.make_workdiv(queue, 100)


@pytest.mark.parametrize("extent", [1.5, -1, (1, 2, 3, 4), "10", True])
@every_backend
def test_make_workdiv_refuses_bad_extents(queue, extent):
    with refused(pt.LaunchError, f"extent={extent!r}"):
        pt.make_workdiv(queue.device, extent)


@pytest.mark.parametrize("threads", [0, -32, 64.0, "256", True])
@every_backend
def test_make_workdiv_refuses_bad_thread_counts(queue, threads):
    with refused(pt.ArgumentError, "'threads'", str(threads) if threads != "256" else "'256'"):
        pt.make_workdiv(queue.device, 100, threads=threads)


# -- the environment -------------------------------------------------------------------------
@pytest.mark.parametrize("value,named", [
    ("cpu-serial", "Did you mean 'cpu_serial'?"), ("CUDA", "Did you mean 'cuda'?"),
    ("cpu_serial,nope", "'nope'"), ("rocm", "cannot run here")])
def test_unknown_or_unusable_test_backends_are_an_error(monkeypatch, value, named):
    monkeypatch.setenv("PORTABLE_TEST_BACKENDS", value)
    with refused(pt.BackendError, f"PORTABLE_TEST_BACKENDS={value!r}", named):
        wanted_backends()


def test_known_test_backends_are_taken(monkeypatch):
    monkeypatch.setenv("PORTABLE_TEST_BACKENDS", " cpu_threads , cpu_serial")
    assert wanted_backends() == ["cpu_threads", "cpu_serial"]


@pytest.mark.parametrize("value,code", [("CUDA", 1), ("rocm", 1), ("cpu_serial", 0)])
def test_python_m_portable_exits_non_zero_when_the_backend_cannot_run(value, code):
    done = subprocess.run([sys.executable, "-m", "portable"], capture_output=True, text=True,
                          env={**os.environ, "PORTABLE_BACKEND": value}, timeout=300)
    assert done.returncode == code, done.stderr
    assert "backends:" in done.stdout  # the report is printed either way
    if code:
        assert f"PORTABLE_BACKEND={value!r}" in done.stdout


@pytest.mark.parametrize("value", ["0", "junk", "-2", "1.5"])
def test_bad_numba_thread_count_keeps_cpu_serial_usable(tmp_path, value):
    code = """
import numpy as np, portable as pt
@pt.kernel
def iota(acc, out):
    for i in acc.uniform_elements(out.size):
        out[i] = i
q = pt.Queue(pt.get_device("cpu_serial"))
out = np.zeros(4)
pt.launch(q, pt.make_workdiv(q.device, 4), iota, out)
print(out.tolist())
try:
    pt.get_device("cpu_threads")
except pt.BackendError as err:
    print("refused:", err)
"""
    done = _run(tmp_path / "threads.py", code, NUMBA_NUM_THREADS=value)
    assert done.returncode == 0, done.stderr
    assert "[0.0, 1.0, 2.0, 3.0]" in done.stdout
    assert f"refused: backend 'cpu_threads'" in done.stdout
    assert f"NUMBA_NUM_THREADS={value!r}" in done.stdout
    assert f"NUMBA_NUM_THREADS={value!r}" in done.stderr  # the import's warning


@pytest.mark.parametrize("shape", [10**20, (10**12, 10**12)])
@every_backend
def test_alloc_buffer_refuses_sizes_beyond_any_address_space(queue, shape):
    with refused(pt.ArgumentError, "more than any machine can address"):
        pt.alloc_buffer(queue.device, shape, np.float64)


def test_a_failed_host_allocation_names_the_request():
    with refused(pt.PortableError, "pt.alloc_buffer", "(35184372088832,)", "GiB"):
        pt.alloc_buffer(HOST, 2**45, np.float64)


@every_backend
def test_events_without_timing_order_work_but_cannot_time_it(queue):
    start, stop = pt.Event(queue.device, timing=False), pt.Event(queue.device, timing=False)
    start.record(queue)
    stop.record(queue)
    stop.synchronize()
    assert stop.query()
    with refused(pt.PortableError, "timing=True"):
        start.elapsed_ms(stop)
    with refused(pt.ArgumentError, "'timing'"):
        pt.Event(queue.device, timing="no")
