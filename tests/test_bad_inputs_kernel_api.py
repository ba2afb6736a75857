"""Bad input to kernel launches: queues, work divisions, kernels and arguments. Each is
refused before any output is written, with a message that names the kernel, the
argument (by parameter name and position) or the value, and the fix."""
import numpy as np
import pytest

import portable as pt
from portable.errors import ArgumentError
from portable.testing import every_backend, is_simulated, poisoned

from bad_inputs import refused


@pt.kernel
def fill(acc, out, value):
    for i in acc.uniform_elements(out.size):
        out[i] = value


@pt.device_function
def twice(v):
    return 2.0 * v


def plain(v):
    return v


class Hits(pt.Layout):
    x = pt.column(np.float64)


def wd(queue):
    return pt.make_workdiv(queue.device, 4)


# -- values no kernel can take --------------------------------------------------------------
def structured():
    return np.zeros(4, [("a", np.float64), ("b", np.int32)])


VALUE_CASES = {
    # id: (make(queue) -> value, the texts the message must hold)
    "none": (lambda q: None, ["is None", "an array or a number"]),
    "str": (lambda q: "1.5", ["the str '1.5'", "no strings"]),
    "bytes": (lambda q: b"1", ["the bytes b'1'"]),
    "numpy-str": (lambda q: np.str_("x"), ["the str_ np.str_('x')"]),
    "list": (lambda q: [1.0, 2.0], ["is a list", "np.asarray"]),
    "dict": (lambda q: {"v": 1.0}, ["is a dict", "np.asarray"]),
    "set": (lambda q: {1.0}, ["is a set"]),
    "tuple-holding-none": (lambda q: (1.0, None), ["holds at [1]", "is None"]),
    "tuple-holding-str": (lambda q: (1.0, ("a",)), ["holds at [1]", "holds at [0]", "'a'"]),
    "int-past-int64": (lambda q: 2**63, ["the int 9223372036854775808", "np.uint64"]),
    "int-below-int64": (lambda q: -2**63 - 1, ["the int -9223372036854775809", "int64"]),
    "int-past-uint64": (lambda q: 2**70, [str(2**70), "int64"]),
    "device-function": (lambda q: twice, ["the device function twice", "not passed",
                                          "global name", "call twice(...)"]),
    "kernel": (lambda q: fill, ["the kernel fill", "launch it from the host"]),
    "plain-function": (lambda q: plain, ["plain", "@pt.device_function"]),
    "lambda": (lambda q: (lambda v: v), ["<lambda>", "@pt.device_function"]),
    "builtin": (lambda q: len, ["len", "kernels take arrays and numbers"]),
    "ufunc": (lambda q: np.sqrt, ["sqrt"]),
    "module": (lambda q: np, ["module", "numpy"]),
    "class": (lambda q: Hits, ["Hits"]),
    "collection": (lambda q: pt.PortableCollection(Hits, 4, q.device),
                   ["is a PortableCollection", "collection.view()", "const_view()"]),
    "multi-collection": (lambda q: pt.MultiCollection([(Hits, 4)], q.device),
                         ["is a MultiCollection", "multi[i].view()"]),
    "object-array": (lambda q: np.array([1.0, None], dtype=object),
                     ["dtype object", "astype"]),
    "big-endian-array": (lambda q: np.zeros(4, ">f8"), ["byte order (>f8)", "newbyteorder"]),
    "structured-array": (lambda q: structured(), ["structured dtype", "x['field']"]),
    "void-array": (lambda q: np.zeros(4, "V8"), ["structured dtype |V8"]),
    "record-scalar": (lambda q: structured()[0], ["structured dtype"]),
    "string-array": (lambda q: np.array(["a", "b"]), ["holds strings (<U1)"]),
    "datetime-array": (lambda q: np.zeros(4, "M8[s]"), ["datetime64[s]", "view(np.int64)"]),
    "datetime-scalar": (lambda q: np.datetime64("2024-01-01"), ["datetime64", "np.int64"]),
    "timedelta-array": (lambda q: np.zeros(4, "m8[s]"), ["timedelta64[s]"]),
}


@every_backend
@pytest.mark.parametrize("case", sorted(VALUE_CASES))
def test_values_no_kernel_can_take(queue, case):
    make, texts = VALUE_CASES[case]
    out = poisoned(queue, 4, np.float64)
    with refused(pt.LaunchError, "argument 'value' (number 2 after acc) of kernel fill",
                 *texts, queue=queue, untouched=[out]) as caught:
        pt.launch(queue, wd(queue), fill, out, make(queue))
    assert isinstance(caught.value, ArgumentError)


@every_backend
@pytest.mark.parametrize("case", ["object-array", "big-endian-array", "structured-array",
                                  "string-array", "list", "none", "collection"])
def test_bad_arrays_are_named_by_position_too(queue, case):
    make, texts = VALUE_CASES[case]
    with refused(pt.LaunchError, "argument 'out' (number 1 after acc) of kernel fill", *texts):
        pt.launch(queue, wd(queue), fill, make(queue), 1.0)


@every_backend
def test_read_only_array_that_the_kernel_writes(queue):
    out = np.full(4, np.nan)
    out.flags.writeable = False
    where = "a host NumPy array" if not queue.backend.host_memory else "a read-only array"
    with refused(pt.LaunchError, "argument 'out' (number 1 after acc) of kernel fill", where,
                 untouched=[out]):
        pt.launch(queue, wd(queue), fill, out, 1.0)


@pt.kernel
def copy_in(acc, src, dst):
    for i in acc.uniform_elements(src.size):
        dst[i] = src[i]


@pytest.mark.parametrize("backend", ["cpu_serial", "cpu_threads"])
def test_read_only_inputs_are_fine(queue):
    src = np.arange(4.0)
    src.flags.writeable = False
    dst = np.zeros(4)
    pt.launch(queue, wd(queue), copy_in, src, dst)
    assert dst.tolist() == [0.0, 1.0, 2.0, 3.0]


@every_backend
def test_complex_written_into_a_float_array(queue):
    out = poisoned(queue, 4, np.float64)
    with refused(pt.KernelError, "kernel fill", "complex", queue=queue, untouched=[out]):
        pt.launch(queue, wd(queue), fill, out, 1 + 2j)


@every_backend
def test_cpu_tensor_on_a_gpu_queue(queue):
    torch = pytest.importorskip("torch")
    tensor = torch.full((4,), float("nan"), dtype=torch.float64)
    if queue.backend.host_memory:  # the CPU backends take host tensors as they are
        pt.launch(queue, wd(queue), fill, tensor, 2.0)
        assert tensor.tolist() == [2.0] * 4
        return
    with refused(pt.LaunchError, "argument 'out' (number 1 after acc) of kernel fill",
                 "a torch tensor on cpu", "tensor.cuda()"):
        pt.launch(queue, wd(queue), fill, tensor, 2.0)
    assert torch.isnan(tensor).all()


# -- queues, work divisions and kernels -----------------------------------------------------
@every_backend
@pytest.mark.parametrize("bad,fix", [
    ("cpu_serial", "pt.Queue(pt.get_device('cpu_serial'))"), (None, "pt.Queue("),
    (0, "pt.Queue("), ("device", "pt.Queue(device)")])
def test_launch_needs_a_queue(queue, bad, fix):
    bad = queue.device if bad == "device" else bad
    out = poisoned(queue, 4, np.float64)
    with refused(ArgumentError, "pt.launch", "argument 'queue'", fix, queue=queue,
                 untouched=[out]):
        pt.launch(bad, wd(queue), fill, out, 1.0)


@every_backend
@pytest.mark.parametrize("bad,named", [
    (plain, "the function"), (twice, "a device function runs inside kernels"),
    (None, "the NoneType None"), ("fill", "the str 'fill'")])
def test_launch_needs_a_kernel(queue, bad, named):
    out = poisoned(queue, 4, np.float64)
    with refused(pt.LaunchError, "argument 'kernel'", "@pt.kernel", named, queue=queue,
                 untouched=[out]) as caught:
        pt.launch(queue, wd(queue), bad, out, 1.0)
    assert isinstance(caught.value, ArgumentError)


@every_backend
@pytest.mark.parametrize("bad,named", [((1, 1, 1), "the tuple (1, 1, 1)"), (4, "the int 4"),
                                       (None, "None")])
def test_launch_needs_a_workdiv(queue, bad, named):
    out = poisoned(queue, 4, np.float64)
    with refused(pt.LaunchError, "argument 'workdiv'", named, "pt.make_workdiv", queue=queue,
                 untouched=[out]):
        pt.launch(queue, bad, fill, out, 1.0)


@every_backend
@pytest.mark.parametrize("config,error,named", [
    ("queue", pt.LaunchError, ["fill[queue, workdiv] takes a queue and a work division",
                               "the str 'queue'"]),
    ("q", pt.LaunchError, ["the Queue"]),
    ("q-wd-extra", pt.LaunchError, ["the tuple"]),
    ("device-wd", ArgumentError, ["argument 'queue'", "fill[queue, workdiv]", "pt.Queue"]),
    ("q-tuple", pt.LaunchError, ["argument 'workdiv'", "the tuple (1, 1, 1)"]),
    ("q-none", pt.LaunchError, ["argument 'workdiv'", "None"]),
])
def test_bad_items_in_kernel_brackets(queue, config, error, named):
    items = {"queue": "queue", "q": queue, "q-wd-extra": (queue, wd(queue), 1),
             "device-wd": (queue.device, wd(queue)), "q-tuple": (queue, (1, 1, 1)),
             "q-none": (queue, None)}[config]
    out = poisoned(queue, 4, np.float64)
    with refused(error, *named, queue=queue, untouched=[out]):
        fill[items](out, 1.0)


@every_backend
def test_good_launches_still_run(queue):
    """The checks refuse only what is wrong: numbers, NumPy scalars, tuples of numbers,
    uint64 values past int64 as np.uint64."""
    out = poisoned(queue, 4, np.float64)
    for value in (1, 2.5, True, np.float32(1.5), np.int64(3), np.uint64(2**63)):
        pt.launch(queue, wd(queue), fill, out, value)
    if not is_simulated(queue.backend.name):
        from portable.testing import host_copy
        assert host_copy(queue, out).tolist() == [float(2**63)] * 4
