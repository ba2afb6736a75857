"""The kernel-API test kernels (tests/test_kernel_api.py) compile for AMD GPUs:
indices and extents in 1, 2 and 3 dimensions, every loop helper, shared memory and
barriers, every atomic on every atomic dtype, device functions (nested, with acc,
in closures). A math function without an AMDGPU definition, and an NVIDIA
intrinsic off the allow-list, are clear errors naming what is missing."""
from __future__ import annotations

from typing import Any

import numba
import numpy as np
import pytest

import portable as pt
from portable.backends.rocm import codegen
from portable.backends.rocm.backend import RocmBackend
from portable.backends.rocm.codeobject import inspect, mnemonics
from portable.errors import KernelError

import test_kernel_api as api

pytestmark = pytest.mark.skipif(
    bool(numba.config.ENABLE_CUDASIM) or codegen.available_problem() is not None,
    reason="AMD code generation needs numba-cuda's compiler (not the simulator) and ld.lld")

i64 = np.zeros(8, np.int64)
f64 = np.zeros(8)

#: per kernel of test_kernel_api: the dimensions and arguments it is launched with
LAUNCHES: dict[str, list[tuple[int, list[Any]]]] = {
    "visit": [(1, [10, i64, i64])],
    "indices_2d": [(2, [np.zeros((4, 4), np.int64), i64])],
    "indices_3d": [(3, [np.zeros((2, 3, 4), np.int64)])],
    "extents": [(1, [i64])],
    "group_owner": [(1, [10, i64, i64])],
    "reverse_tiles": [(1, [f64, f64])],
    "sum_ragged_groups": [(1, [i64, f64, f64, i64])],
    "count_once": [(1, [i64, i64])],
    "atomics_all": [(1, [10, np.zeros(6, dtype), f64, np.zeros(8, dtype)])
                    for dtype in (np.int32, np.int64, np.uint32, np.uint64)],
    "count_plain": [(1, [i64, i64])],
    "count_atomic": [(1, [i64, i64])],
    "norms": [(1, [f64, f64, f64, f64])],
    "fill_via_device_function": [(1, [f64, 2.5])],
}
#: kernels that cannot compile for AMD GPUs yet, and the error that says why
REFUSED = {"math_funcs": "math.cos"}


@pytest.fixture(scope="module")
def backend() -> RocmBackend:
    return RocmBackend()


def _workdiv(ndim: int) -> pt.WorkDiv:
    ones = (1,) * ndim
    return pt.WorkDiv(ones, ones, ones)


def test_every_kernel_api_kernel_is_covered():
    defined = {name for name, value in vars(api).items() if isinstance(value, pt.Kernel)}
    assert defined == set(LAUNCHES) | set(REFUSED), (
        f"kernels of test_kernel_api without an entry here: {sorted(defined - set(LAUNCHES))}")


@pytest.mark.parametrize("name", sorted(LAUNCHES))
def test_kernel_api_kernel_compiles(backend, name):
    kernel = getattr(api, name)
    for ndim, args in LAUNCHES[name]:
        objects = backend.compile_for(kernel, _workdiv(ndim), args)
        for arch, code in objects.items():
            info = inspect(code.image)
            assert info.arch == arch and info.undefined_symbols == ()
            found = info.kernels[code.symbol]
            assert found.scratch_bytes == 0, (name, arch)
            assert found.lds_bytes == code.shared_bytes


def test_closure_kernel_with_shared_memory_compiles(backend):
    scale = api.make_scaler(3.0, np.float32)
    x = np.zeros(8, np.float32)
    code = backend.compile_for(scale, _workdiv(1), [x, x])["gfx942"]
    assert inspect(code.image).kernels[code.symbol].lds_bytes == 16


def test_barrier_and_shared_memory_reach_the_isa(backend):
    code = backend.compile_for(api.reverse_tiles, _workdiv(1), [f64, f64])["gfx90a"]
    ops = mnemonics(code.assembly)
    assert ops["s_barrier"] >= 2
    assert any(op.startswith("ds_write") for op in ops)
    assert any(op.startswith("ds_read") for op in ops)


def test_float_atomics_without_hardware_instruction_become_cas_loops(backend):
    code = backend.compile_for(api.atomics_all, _workdiv(1),
                               [10, np.zeros(6, np.int64), f64, i64])["gfx942"]
    ops = mnemonics(code.assembly)
    assert ops["global_atomic_add_f64"] + ops["flat_atomic_add_f64"] >= 1  # hardware fadd
    assert ops["global_atomic_cmpswap_x2"] + ops["flat_atomic_cmpswap_x2"] >= 1  # min/max loops


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_math_without_amdgpu_definition_is_a_clear_error(backend, name):
    with pytest.raises(KernelError, match=rf"kernel {name} calls {REFUSED[name]} \(libdevice's "
                                          rf"__nv_cos\).*OCML.*math\.atan2, .*math\.sqrt"):
        backend.compile_for(getattr(api, name), _workdiv(1), [f64, np.zeros((8, 5))])


@pt.kernel
def fenced(acc, out):
    for i in acc.uniform_elements(out.size):
        out[i] = 1.0
        numba.cuda.threadfence()


def test_nvidia_intrinsic_off_the_allow_list_is_a_clear_error(backend):
    with pytest.raises(KernelError, match=r"kernel fenced uses the NVIDIA intrinsic "
                                          r"llvm\.nvvm\.membar\.gl.*no AMDGPU rule"):
        backend.compile_for(fenced, _workdiv(1), [f64])


def test_code_objects_are_cached_per_types_and_arch(backend):
    first = backend.compile_for(api.count_atomic, _workdiv(1), [i64, i64])
    assert backend.compile_for(api.count_atomic, _workdiv(1), [i64, i64]) == first
    other = backend.compile_for(api.count_atomic, _workdiv(1), [i64, np.zeros(8, np.int32)])
    assert other["gfx90a"] is not first["gfx90a"]
    assert "global_atomic_add" in " ".join(mnemonics(other["gfx90a"].assembly))
