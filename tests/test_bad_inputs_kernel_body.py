"""Bad kernel bodies: each a KernelError that names the kernel, its file and line and
that line of source, raised at decoration when the problem shows in the source, else
at the first launch, before any output is written; the same on every backend (the
CUDA simulator refuses what CUDA's compiler refuses)."""
import math

import numpy as np
import pytest

import portable as pt
from portable.testing import every_backend, poisoned
from portable.frontend import ATOMIC_DTYPES, Site, atomic_dtype_problem

from bad_inputs import refused

HERE = __file__
TILE = 8


# -- refused when decorated ------------------------------------------------------------
# plain functions, decorated by the tests (a decoration that raises cannot stand at
# module level); each ``# <-`` marks the line the error must point at
def with_block(acc, out):
    with open(HERE):  # <-
        out[0] = 1.0


def try_except(acc, out):
    try:  # <-
        out[0] = 1.0
    except IndexError:
        pass


def raises(acc, out):
    if out[0] > 0:
        raise ValueError("no")  # <-


def asserts(acc, out):
    assert out[0] > 0  # <-


def generator(acc, out):
    yield out[0]  # <-


def generator_from(acc, out):
    yield from out  # <-


def lambda_inside(acc, out):
    twice = lambda v: 2 * v  # <-  # noqa: E731
    out[0] = twice(1.0)


def nested_def(acc, out):
    def twice(v):  # <-
        return 2 * v
    out[0] = twice(1.0)


def class_inside(acc, out):
    class Box:  # <-
        pass
    out[0] = 1.0


COUNTER = 0


def uses_global(acc, out):
    global COUNTER  # <-
    out[0] = COUNTER


def make_nonlocal():
    total = 0

    def uses_nonlocal(acc, out):
        nonlocal total  # <-
        out[0] = total
    return uses_nonlocal


def imports(acc, out):
    import cmath  # <-
    out[0] = cmath.pi


def imports_from(acc, out):
    from math import pi  # <-
    out[0] = pi


def list_comprehension(acc, out):
    squares = [i * i for i in range(4)]  # <-
    out[0] = squares[1]


def set_comprehension(acc, out):
    seen = {i for i in range(4)}  # <-
    out[0] = len(seen)


def dict_comprehension(acc, out):
    table = {i: i for i in range(4)}  # <-
    out[0] = table[1]


def generator_expression(acc, out):
    out[0] = sum(i for i in range(4))  # <-


def list_display(acc, out):
    values = [1.0, 2.0]  # <-
    out[0] = values[0]


def dict_display(acc, out):
    table = {"a": 1.0}  # <-
    out[0] = table["a"]


def set_display(acc, out):
    values = {1.0, 2.0}  # <-
    out[0] = len(values)


def f_string(acc, out):
    print(f"{out[0]}")  # <-


def acc_alias(acc, out):
    a = acc  # <-
    for i in a.uniform_elements(out.size):
        out[i] = 1.0


def acc_returned(acc, out):
    return acc  # <-


def acc_in_tuple(acc, out):
    pair = (acc, out)  # <-
    out[0] = pair[1][0]


def acc_assigned(acc, out):
    acc = 0  # <-
    out[0] = acc


def acc_as_keyword(acc, out):
    print(x=acc)  # <-


def atomic_too_few(acc, out):
    acc.atomic_add(out, 0)  # <-


def cas_too_few(acc, out):
    acc.atomic_cas(out, 0, 1)  # <-


def shared_array_one_argument(acc, out):
    tile = acc.shared_array(TILE)  # <-
    out[0] = tile[0]


def shared_array_keywords(acc, out):
    tile = acc.shared_array(shape=TILE, dtype=np.float64)  # <-
    out[0] = tile[0]


DECORATION_CASES = [
    (with_block, "a with block"), (try_except, "try/except"), (raises, "raise"),
    (asserts, "assert"), (generator, "yield"), (generator_from, "yield from"),
    (lambda_inside, "lambda"), (nested_def, "a nested def"), (class_inside, "a class"),
    (uses_global, "global"), (make_nonlocal(), "nonlocal"), (imports, "import"),
    (imports_from, "import"), (list_comprehension, "a list comprehension"),
    (set_comprehension, "a set comprehension"), (dict_comprehension, "a dict comprehension"),
    (generator_expression, "a generator expression"), (list_display, "a list"),
    (dict_display, "a dict"), (set_display, "a set"), (f_string, "an f-string"),
    (acc_alias, "acc can only be used as acc.<member>"),
    (acc_returned, "acc can only be used as acc.<member>"),
    (acc_in_tuple, "acc can only be used as acc.<member>"),
    (acc_assigned, "cannot be assigned"),
    (acc_as_keyword, "acc can only be used as acc.<member>"),
    (atomic_too_few, "acc.atomic_add takes (array, index, value)"),
    (cas_too_few, "acc.atomic_cas takes (array, index, expected, value)"),
    (shared_array_one_argument, "acc.shared_array takes (shape, dtype)"),
    (shared_array_keywords, "acc.shared_array takes (shape, dtype)"),
]


def marked_line(func) -> tuple[int, str]:
    """The line of ``func`` marked ``# <-``: its number and its code."""
    import inspect
    lines, first = inspect.getsourcelines(func)
    for k, line in enumerate(lines):
        if "# <-" in line:
            return first + k, line.split("# <-")[0].strip()
    raise AssertionError(f"{func.__name__} has no marked line")


@pytest.mark.parametrize("func,what", DECORATION_CASES,
                         ids=[f.__name__ for f, _ in DECORATION_CASES])
def test_refused_at_decoration(func, what):
    line, code = marked_line(func)
    with refused(pt.KernelError, f"kernel {func.__qualname__}", f"{HERE}:{line}", code, what):
        pt.kernel(func)


def test_device_functions_are_checked_at_decoration_too():
    def helper(x):
        with open(HERE):
            return x

    with refused(pt.KernelError, "device function", "helper", "a with block"):
        pt.device_function(helper)


async def coroutine(acc, out):
    out[0] = 1.0


@pytest.mark.parametrize("thing,named", [
    (coroutine, "async def"), (lambda acc, out: None, "<lambda>"),
    (42, "the int 42"), (np.sin, "ufunc"), (math.sqrt, "sqrt")])
def test_only_a_plain_def_can_be_a_kernel(thing, named):
    with refused(pt.KernelError, named):
        pt.kernel(thing)


# -- refused at the first launch: calls, shared arrays, atomics --------------------------
def plain_helper(v):
    return v + 1.0


class Helper:
    def __init__(self, v):
        self.v = v


@pt.device_function
def fills(acc, out, value):
    for i in acc.uniform_elements(out.size):
        out[i] = value


@pt.device_function
def doubled(v):
    return 2.0 * v


@pt.device_function
def calls_fills_without_acc(out):
    fills(out, 1.0)  # <-


@pt.kernel
def calls_plain_function(acc, out):
    for i in acc.uniform_elements(out.size):
        out[i] = plain_helper(1.0)  # <-


@pt.kernel
def calls_python_class(acc, out):
    for i in acc.uniform_elements(out.size):
        out[i] = Helper(1.0).v  # <-


@pt.kernel
def drops_acc(acc, out):
    fills(out, 1.0, 2.0)  # <-


@pt.kernel
def passes_acc_second(acc, out):
    fills(out, acc, 1.0)  # <-


@pt.kernel
def passes_acc_to_plain_device_function(acc, out):
    for i in acc.uniform_elements(out.size):
        out[i] = doubled(acc)  # <-


@pt.kernel
def passes_acc_to_builtin(acc, out):
    for i in acc.uniform_elements(out.size):
        out[i] = len(acc)  # <-


@pt.kernel
def too_many_arguments(acc, out):
    for i in acc.uniform_elements(out.size):
        out[i] = doubled(1.0, 2.0)  # <-


@pt.kernel
def device_function_calls_acc_function_without_acc(acc, out):
    calls_fills_without_acc(out)


@pt.kernel
def kernel_calls_kernel(acc, out):
    calls_plain_function(acc, out)  # <-


@pt.kernel
def shared_shape_from_argument(acc, out):
    tile = acc.shared_array(out.size, np.float64)  # <-
    out[0] = tile[0]


@pt.kernel
def shared_shape_from_local(acc, out):
    n = 4
    tile = acc.shared_array(n, np.float64)  # <-
    out[0] = tile[0]


@pt.kernel
def shared_shape_from_index(acc, out):
    tile = acc.shared_array((acc.block_threads, 2), np.float64)  # <-
    out[0] = tile[0, 0]


@pt.kernel
def shared_shape_not_positive(acc, out):
    tile = acc.shared_array(TILE - 8, np.float64)  # <-
    out[0] = tile[0]


@pt.kernel
def shared_shape_float(acc, out):
    tile = acc.shared_array(4.0, np.float64)  # <-
    out[0] = tile[0]


@pt.kernel
def shared_dtype_from_argument(acc, out):
    tile = acc.shared_array(TILE, out.dtype)  # <-
    out[0] = tile[0]


@pt.kernel
def shared_dtype_not_numeric(acc, out):
    tile = acc.shared_array(TILE, object)  # <-
    out[0] = tile[0]


@pt.kernel
def shared_dtype_undefined(acc, out):
    tile = acc.shared_array(TILE, np.float128x)  # <-
    out[0] = tile[0]


@pt.kernel
def misspelt_math_function(acc, out):
    for i in acc.uniform_elements(out.size):
        out[i] = math.sqr(2.0)  # <-


@pt.kernel
def atomic_on_float16_shared(acc, out):
    tile = acc.shared_array(TILE, np.float16)
    acc.atomic_add(tile, 0, 1.0)  # <-
    out[0] = tile[0]


LAUNCH_CASES = [
    (calls_plain_function, "plain_helper is a plain Python function", "@pt.device_function"),
    (calls_python_class, "Helper is a Python class", "@pt.device_function"),
    (drops_acc, "device function fills takes acc first", "fills(acc, ...)"),
    (passes_acc_second, "device function fills takes acc first", "fills(acc, ...)"),
    (passes_acc_to_plain_device_function, "device function doubled does not take acc",
     "drop acc"),
    (passes_acc_to_builtin, "acc is passed to len", "not a @pt.device_function"),
    (too_many_arguments, "device function doubled takes 1 argument(s) (v), 2 given", "(v)"),
    (device_function_calls_acc_function_without_acc, "device function "
     "calls_fills_without_acc", "takes acc, so only kernels and device functions"),
    (kernel_calls_kernel, "kernel calls_plain_function is called from device code",
     "launched from the host"),
    (shared_shape_from_argument, "'out' is known only when the kernel runs",
     "compile-time constant"),
    (shared_shape_from_local, "'n' is known only when the kernel runs", "module-level"),
    (shared_shape_from_index, "'acc' is known only when the kernel runs", "constant"),
    (shared_shape_not_positive, "positive integer", "got 0"),
    (shared_shape_float, "positive integer", "got 4.0"),
    (shared_dtype_from_argument, "the dtype of acc.shared_array", "'out'"),
    (shared_dtype_not_numeric, "the dtype of acc.shared_array must be a numeric type", "object"),
    (shared_dtype_undefined, "the dtype of acc.shared_array", "float128x"),
    (atomic_on_float16_shared, "acc.atomic_add takes an array of", "not float16"),
    (misspelt_math_function, "module math has no attribute 'sqr'", "did you mean sqrt"),
]


@every_backend
@pytest.mark.parametrize("kernel,what,fix", LAUNCH_CASES,
                         ids=[k.__name__ for k, *_ in LAUNCH_CASES])
def test_refused_at_the_first_launch(queue, kernel, what, fix):
    out = poisoned(queue, 4, np.float64)
    func = kernel.parsed.func
    named = [what, fix, HERE]
    if kernel is not device_function_calls_acc_function_without_acc:
        line, code = marked_line(func)
        named += [f"kernel {kernel.__name__}", f"{HERE}:{line}", code]
    else:
        line, code = marked_line(calls_fills_without_acc.parsed.func)
        named += [f"{HERE}:{line}", code]
    with refused(pt.KernelError, *named, queue=queue, untouched=[out]):
        pt.launch(queue, pt.make_workdiv(queue.device, 4), kernel, out)


@pt.kernel
def atomic_add_on_argument(acc, counts):
    for i in acc.uniform_elements(counts.size):
        acc.atomic_add(counts, i, 1)


@pt.kernel
def atomic_max_on_argument(acc, counts):
    for i in acc.uniform_elements(counts.size):
        acc.atomic_max(counts, i, 1)


@pt.kernel
def atomic_exch_on_argument(acc, counts):
    for i in acc.uniform_elements(counts.size):
        acc.atomic_exch(counts, i, 1)


@pt.kernel
def atomic_cas_on_argument(acc, counts):
    for i in acc.uniform_elements(counts.size):
        acc.atomic_cas(counts, i, 0, 1)


ATOMIC_KERNELS = {"atomic_add": atomic_add_on_argument, "atomic_max": atomic_max_on_argument,
                  "atomic_exch": atomic_exch_on_argument, "atomic_cas": atomic_cas_on_argument}


@pt.kernel
def atomic_through_alias(acc, counts):
    alias = counts
    for i in acc.uniform_elements(counts.size):
        acc.atomic_sub(alias, i, 1)  # <-


@every_backend
@pytest.mark.parametrize("dtype,member", [
    (np.float16, "atomic_add"), (np.bool_, "atomic_add"), (np.complex128, "atomic_add"),
    (np.int8, "atomic_add"), (np.uint8, "atomic_max"), (np.int16, "atomic_max"),
    (np.uint16, "atomic_add"), (np.float32, "atomic_exch"), (np.float64, "atomic_cas"),
    (np.complex64, "atomic_cas")])
def test_atomics_take_the_same_dtypes_everywhere(queue, dtype, member):
    counts = poisoned(queue, 4, dtype)
    kernel = ATOMIC_KERNELS[member]
    with refused(pt.KernelError, f"kernel {kernel.__name__}", f"acc.{member}",
                 f"not {np.dtype(dtype)}", "'counts'", HERE, queue=queue, untouched=[counts]):
        pt.launch(queue, pt.make_workdiv(queue.device, 4), kernel, counts)


@every_backend
def test_atomics_through_an_alias(queue):
    counts = poisoned(queue, 4, np.float16)
    line, code = marked_line(atomic_through_alias.parsed.func)
    with refused(pt.KernelError, "kernel atomic_through_alias", "acc.atomic_sub", "float16",
                 f"{HERE}:{line}", code, queue=queue, untouched=[counts]):
        pt.launch(queue, pt.make_workdiv(queue.device, 4), atomic_through_alias, counts)


# -- numba's own errors, wrapped -------------------------------------------------------
@pt.kernel
def adds_a_tuple(acc, out):
    for i in acc.uniform_elements(out.size):
        out[i] = out[i] + (1, 2)  # <-


@pt.kernel
def unknown_global(acc, out):
    for i in acc.uniform_elements(out.size):
        out[i] = undefined_name(1.0)  # noqa: F821


@pt.kernel
def calls_a_method_numba_lacks(acc, out):
    for i in acc.uniform_elements(out.size):
        out[i] = out.no_such_method()


@every_backend
@pytest.mark.parametrize("kernel", [adds_a_tuple, unknown_global, calls_a_method_numba_lacks],
                         ids=lambda k: k.__name__)
def test_compiler_errors_name_the_kernel(queue, kernel):
    out = poisoned(queue, 4, np.float64)
    with refused(pt.KernelError, f"kernel {kernel.__name__}", queue=queue, untouched=[out]):
        pt.launch(queue, pt.make_workdiv(queue.device, 4), kernel, out)


@pytest.mark.parametrize("backend", ["cpu_serial", "cpu_threads"])
def test_compiler_errors_keep_numbas_message_and_line(queue):
    out = np.full(4, np.nan)
    line, code = marked_line(adds_a_tuple.parsed.func)
    with refused(pt.KernelError, "kernel adds_a_tuple", "Numba says", f"{HERE}:{line}", code,
                 untouched=[out]):
        pt.launch(queue, pt.make_workdiv(queue.device, 4), adds_a_tuple, out)


# -- read-only views: aliases and device functions ----------------------------------------
class Hits(pt.Layout):
    x = pt.column(np.float32)
    n = pt.scalar(np.int64)


@pt.kernel
def writes_const_alias(acc, c):
    col = c.x
    for i in acc.uniform_elements(c.size):
        col[i] = 5.0  # <-


@pt.kernel
def writes_const_slice_alias(acc, c):
    head = c.x[1:]
    tail = head
    for i in acc.uniform_elements(c.size - 1):
        tail[i] += 5.0  # <-


@pt.kernel
def atomic_on_const_alias(acc, c):
    col = c.x
    acc.atomic_add(col, 0, 1.0)  # <-


@pt.device_function
def bump(column, i):
    column[i] = 5.0


@pt.kernel
def writes_const_in_device_function(acc, c):
    for i in acc.uniform_elements(c.size):
        bump(c.x, i)


@every_backend
@pytest.mark.parametrize("kernel,alias", [
    (writes_const_alias, "'col'"), (writes_const_slice_alias, "'tail'"),
    (atomic_on_const_alias, "'col'")], ids=lambda k: getattr(k, "__name__", None))
def test_writes_through_aliases_of_a_const_view(queue, kernel, alias):
    c = pt.PortableCollection(Hits, 4, queue.device)
    pt.memset(queue, c.buffer, 0xFF)
    line, code = marked_line(kernel.parsed.func)
    with refused(pt.KernelError, f"kernel {kernel.__name__}", f"c.x is written through "
                 f"{alias}", "read-only view", "collection.view()", f"{HERE}:{line}", code,
                 queue=queue, untouched=[c.buffer]):
        pt.launch(queue, pt.make_workdiv(queue.device, 4), kernel, c.const_view())


@every_backend
def test_writes_to_a_const_view_in_a_device_function(queue):
    c = pt.PortableCollection(Hits, 4, queue.device)
    pt.memset(queue, c.buffer, 0xFF)
    with refused(pt.KernelError, "kernel writes_const_in_device_function", "read-only",
                 queue=queue, untouched=[c.buffer]):
        pt.launch(queue, pt.make_workdiv(queue.device, 4), writes_const_in_device_function,
                  c.const_view())


# -- range-checked mode on every block ----------------------------------------------------
@pt.kernel
def past_the_end_in_block(acc, out, bad_block):
    for i in acc.uniform_elements(out.size):
        if acc.block_idx == bad_block:
            out[i + out.size] = 1.0
        else:
            out[i] = 1.0


@pytest.mark.parametrize("backend", ["cpu_serial", "cpu_threads"])
@pytest.mark.parametrize("bad_block", [7, 3, 0], ids=["last", "middle", "first"])
def test_range_check_holds_in_every_block(queue, bad_block, monkeypatch):
    monkeypatch.setenv("PORTABLE_BOUNDSCHECK", "1")
    out = np.zeros(32)
    with refused(pt.RangeError, "kernel past_the_end_in_block", "out of range",
                 "PORTABLE_BOUNDSCHECK=1"):
        pt.launch(queue, pt.WorkDiv(8, 1, 4), past_the_end_in_block, out, bad_block)


@pytest.mark.parametrize("backend", ["cpu_threads"])
def test_range_check_off_keeps_the_parallel_driver(queue, monkeypatch):
    monkeypatch.delenv("PORTABLE_BOUNDSCHECK", raising=False)
    out = np.zeros(32)
    pt.launch(queue, pt.WorkDiv(8, 1, 4), past_the_end_in_block, out, -1)
    assert out.tolist() == [1.0] * 32


# -- the rewriter's helpers ---------------------------------------------------------------
def test_site_errors_quote_the_line():
    line, code = marked_line(with_block)
    error = Site("kernel with_block", HERE).error(line, "no with")
    prefix = f"    {line} | "
    assert str(error) == (f"kernel with_block ({HERE}:{line}): no with\n{prefix}{code}  # <-\n"
                          f"{' ' * len(prefix)}^")


@pytest.mark.parametrize("member", sorted(ATOMIC_DTYPES))
def test_atomic_dtypes_are_those_cuda_types(member):
    integers = [np.int32, np.int64, np.uint32, np.uint64]
    floats = [np.float32, np.float64]
    takes_floats = member not in ("atomic_exch", "atomic_cas")
    for dtype in integers + floats * takes_floats:
        assert atomic_dtype_problem(member, dtype) is None
    for dtype in [np.int8, np.int16, np.uint8, np.uint16, np.float16, np.bool_,
                  np.complex64] + floats * (not takes_floats):
        assert f"not {np.dtype(dtype)}" in atomic_dtype_problem(member, dtype)


def test_parsed_kernels_know_what_they_write():
    assert atomic_through_alias.parsed.atomic_params == (
        ("atomic_sub", "counts", marked_line(atomic_through_alias.parsed.func)[0]),)
    assert set(past_the_end_in_block.parsed.written_params) == {"out"}
    assert set(writes_const_alias.parsed.written_params) == set()  # a view, checked apart
