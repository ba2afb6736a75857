"""Errors inside kernels point at the user's source on every backend: Numba's typing
errors (the CPU backends and a GPU) and a simulated kernel's exceptions (the CUDA
simulator) name the kernel, the file and line, quote the line and put a caret
under it, like the library's own checks."""
import inspect

import numpy as np
import pytest

import portable as pt
from portable.testing import every_backend, is_simulated, poisoned

from bad_inputs import refused

HERE = __file__


def marked_line(func) -> tuple[int, str]:
    lines, first = inspect.getsourcelines(func)
    for k, line in enumerate(lines):
        if "# <-" in line:
            return first + k, line.split("# <-")[0].strip()
    raise AssertionError("no marked line")


@pt.kernel
def adds_a_tuple(acc, out):
    for i in acc.uniform_elements(out.size):
        out[i] = out[i] + (1, 2)  # <-


@pt.device_function
def halve_text(x):
    return x / "two"  # <-


@pt.kernel
def calls_a_bad_device_function(acc, out):
    for i in acc.uniform_elements(out.size):
        out[i] = halve_text(out[i])


def quoted_with_caret(message: str, line: int, code: str) -> bool:
    """Whether ``message`` quotes ``line`` as ``code`` with a caret line below it."""
    lines = message.splitlines()
    for k, text in enumerate(lines[:-1]):
        if text.startswith(f"    {line} | {code}"):
            return lines[k + 1].strip() == "^"
    return False


@every_backend
def test_typing_errors_point_at_the_kernels_line(queue):
    out = poisoned(queue, 4, np.float64)
    line, code = marked_line(adds_a_tuple.parsed.func)
    with refused(pt.KernelError, "kernel adds_a_tuple", f"{HERE}:{line}", code,
                 queue=queue, untouched=[out]) as caught:
        pt.launch(queue, pt.make_workdiv(queue.device, 4), adds_a_tuple, out)
    assert quoted_with_caret(str(caught.value), line, code), str(caught.value)
    if not is_simulated(queue.backend.name):
        assert "Numba says" in str(caught.value)


@every_backend
def test_errors_in_device_functions_point_at_their_line(queue):
    out = poisoned(queue, 4, np.float64)
    line, code = marked_line(halve_text.parsed.func)
    with refused(pt.KernelError, "kernel calls_a_bad_device_function", f"{HERE}:{line}", code,
                 queue=queue, untouched=[out]) as caught:
        pt.launch(queue, pt.make_workdiv(queue.device, 4), calls_a_bad_device_function, out)
    assert quoted_with_caret(str(caught.value), line, code), str(caught.value)


def test_cuda_typing_errors_point_at_the_line():
    """numba-cuda's typer (run without a GPU: PTX for an H200, which fails while
    typing, before any code generation) raises a bare TypingError; the location
    comes from the typing frames."""
    from portable.backends.cuda import CudaBackend, cuda_dialect
    from portable.frontend import build_function, compiler_error
    from portable.kernel import global_resolver
    if is_simulated("cuda"):
        pytest.skip("the CUDA simulator types nothing")
    cuda = pytest.importorskip("numba.cuda")
    from numba import types
    key = (1, (1,))
    py = build_function(adds_a_tuple.parsed, cuda_dialect(key, True),
                        global_resolver(CudaBackend(), key), drop_acc=True)
    with pytest.raises(Exception) as caught:
        cuda.compile_ptx(py, (types.float64[::1],), cc=(9, 0))
    message = str(compiler_error("kernel adds_a_tuple", "cuda", caught.value))
    line, code = marked_line(adds_a_tuple.parsed.func)
    assert message.startswith(f"kernel adds_a_tuple ({HERE}:{line}): does not compile for cuda")
    assert quoted_with_caret(message, line, code), message
