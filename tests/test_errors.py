"""Bad input: each a clear error raised before anything is written."""
import numpy as np
import pytest

import portable as pt
from portable.testing import every_backend


@pt.kernel
def fill(acc, out, value):
    for i in acc.uniform_elements(out.size):
        out[i] = value


def poisoned(queue, n):
    buf = pt.alloc_buffer(queue.device, n, np.float64)
    pt.memset(queue, buf, 0xFF)
    return buf


def untouched(queue, buf):
    host = np.empty(buf.shape, buf.dtype)
    pt.memcpy(queue, host, buf)
    queue.synchronize()
    return (host.view(np.uint8) == 0xFF).all()


@every_backend
def test_workdiv_exceeding_the_device(queue):
    out = poisoned(queue, 16)
    too_many = queue.device.limits.max_threads_per_block + 1
    with pytest.raises(pt.LaunchError, match=f"asks for {too_many} threads per block"):
        pt.launch(queue, pt.WorkDiv(1, too_many, 1), fill, out, 1.0)
    assert untouched(queue, out)


def test_cpu_workdiv_error_explains_the_cpu_convention():
    q = pt.Queue(pt.get_device("cpu_threads"))
    with pytest.raises(pt.LaunchError, match="one thread per block.*make_workdiv"):
        pt.launch(q, pt.WorkDiv(4, 64, 1), fill, np.zeros(8), 1.0)


@pytest.mark.parametrize("kwargs,match", [
    (dict(blocks=0), "every extent must be an integer >= 1"),
    (dict(blocks=(1, 2, 3, 4)), "1 to 3 dimensions"),
    (dict(blocks=(2, 2), threads=(1, 1, 1)), "dimensions disagree"),
    (dict(blocks=2, elements=1.5), "every extent must be an integer"),
])
def test_bad_workdiv(kwargs, match):
    with pytest.raises(pt.LaunchError, match=match):
        pt.WorkDiv(**kwargs)


def test_workdiv_needs_workdiv_type():
    q = pt.Queue(pt.get_device("cpu_serial"))
    with pytest.raises(pt.LaunchError, match="expects a pt.WorkDiv"):
        pt.launch(q, (1, 1, 1), fill, np.zeros(2), 1.0)


@every_backend
def test_wrong_argument_count(queue):
    out = poisoned(queue, 4)
    with pytest.raises(pt.LaunchError, match=r"takes 2 argument\(s\) after acc \(out, value\) but 1"):
        pt.launch(queue, pt.make_workdiv(queue.device, 4), fill, out)
    assert untouched(queue, out)


@every_backend
def test_array_on_the_wrong_device_names_the_argument(queue):
    cuda = pt.all_backends()[[b.name for b in pt.all_backends()].index("cuda")]
    if not queue.backend.host_memory:
        host = np.full(4, np.nan)
        with pytest.raises(pt.LaunchError, match=r"argument 'out' \(number 1 after acc\) of "
                                                 r"kernel fill is a host NumPy"):
            pt.launch(queue, pt.make_workdiv(queue.device, 4), fill, host, 1.0)
        assert np.isnan(host).all()
    elif cuda.available:
        gpu_buf = pt.alloc_buffer(pt.get_device("cuda"), 4, np.float64)
        with pytest.raises(pt.LaunchError, match=r"argument 'out' \(number 1 after acc\) of "
                                                 r"kernel fill .*not live in host memory"):
            pt.launch(queue, pt.make_workdiv(queue.device, 4), fill, gpu_buf, 1.0)
    else:
        with pytest.raises(pt.LaunchError, match=r"argument 'out' \(number 1 after acc\) of "
                                                 r"kernel fill is the str"):
            pt.launch(queue, pt.make_workdiv(queue.device, 4), fill, "text", 1.0)


def test_first_parameter_must_be_the_accelerator():
    with pytest.raises(pt.KernelError, match="first parameter must be the accelerator but is 'x'"):
        @pt.kernel
        def bad(x, out):
            out[0] = x


def test_kernel_without_parameters():
    with pytest.raises(pt.KernelError, match="is missing"):
        @pt.kernel
        def bad():
            pass


def test_annotated_accelerator_may_have_any_name():
    @pt.kernel
    def good(a: pt.Acc, out):
        for i in a.uniform_elements(out.size):
            out[i] = 1.0

    out = np.zeros(3)
    q = pt.Queue(pt.get_device("cpu_serial"))
    pt.launch(q, pt.make_workdiv(q.device, 3), good, out)
    assert out.tolist() == [1.0, 1.0, 1.0]


def test_unknown_accelerator_member_is_caught_at_decoration():
    with pytest.raises(pt.KernelError, match="no member 'uniform_element'.*uniform_elements"):
        @pt.kernel
        def bad(acc, out):
            for i in acc.uniform_element(out.size):
                out[i] = 0


def test_kernel_with_defaults_or_varargs():
    with pytest.raises(pt.KernelError, match="plain positional parameters"):
        @pt.kernel
        def bad(acc, *arrays):
            pass


def test_loop_helper_outside_a_for_loop_is_caught_at_decoration():
    with pytest.raises(pt.KernelError, match="can only be the iterable of a for loop"):
        @pt.kernel
        def bad(acc, out):
            it = acc.uniform_elements(out.size)  # noqa: F841


def test_break_in_a_portable_loop_is_caught_at_decoration():
    with pytest.raises(pt.KernelError, match="break is not supported"):
        @pt.kernel
        def bad(acc, out):
            for i in acc.uniform_elements(out.size):
                if out[i] > 0:
                    break


def test_uniform_elements_dimensions_must_match_the_workdiv():
    @pt.kernel
    def flat(acc, out):
        for i in acc.uniform_elements(out.size):
            out[i] = 0

    q = pt.Queue(pt.get_device("cpu_serial"))
    with pytest.raises(pt.KernelError, match="2 expected, 1 given"):
        pt.launch(q, pt.make_workdiv(q.device, (2, 2)), flat, np.zeros(4))


def test_calling_a_kernel_directly():
    with pytest.raises(pt.KernelError, match="launched on a queue"):
        fill(np.zeros(2), 1.0)


def test_kernel_calling_a_kernel():
    @pt.kernel
    def outer(acc, out):
        fill(acc, out, 1.0)

    q = pt.Queue(pt.get_device("cpu_serial"))
    with pytest.raises(pt.KernelError, match="kernels are launched from the host"):
        pt.launch(q, pt.make_workdiv(q.device, 2), outer, np.zeros(2))
