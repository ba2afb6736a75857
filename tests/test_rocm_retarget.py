"""The rules that retarget numba-cuda's NVIDIA IR to AMDGPU, the prelude they call,
code object reading and kernel argument packing, each on its own."""
from __future__ import annotations

import ctypes
import math
import struct

import numpy as np
import pytest

from portable.backends.rocm import codegen, mathlib, prelude
from portable.backends.rocm.codeobject import (CodeObjectError, KernelArg, inspect,
                                               unpack_msgpack)
from portable.backends.rocm.kernargs import flatten, pack
from portable.backends.rocm.retarget import (NVVM_RENAMES, drop_target, mark_kernel,
                                             private_allocas, rename_intrinsics)
from portable.errors import KernelError, LaunchError

needs_llvm = pytest.mark.skipif(codegen.available_problem() is not None,
                                reason=str(codegen.available_problem()))


# -- rename_intrinsics ---------------------------------------------------------------
@pytest.mark.parametrize("nvvm,amdgpu", sorted(NVVM_RENAMES.items()))
def test_every_allowed_intrinsic_becomes_a_prelude_function(nvvm, amdgpu):
    text = f'declare i32 @"{nvvm}"()\n  %v = call i32 @"{nvvm}"()'
    renamed = rename_intrinsics(text, "k")
    assert nvvm not in renamed and renamed.count(f'@"{amdgpu}"') == 2
    assert f"@{amdgpu}(" in prelude.prelude_ir()


def test_unquoted_intrinsic_names_are_renamed_too():
    assert rename_intrinsics("call void @llvm.nvvm.barrier0()", "k") == \
        'call void @"__pt_amdgpu_barrier"()'


@pytest.mark.parametrize("name", ["llvm.nvvm.membar.gl", "llvm.nvvm.shfl.sync.bfly.i32",
                                  "llvm.nvvm.read.ptx.sreg.warpsize"])
def test_intrinsic_off_the_allow_list_is_refused_by_name(name):
    with pytest.raises(KernelError, match=rf"kernel k uses the NVIDIA intrinsic {name}, "):
        rename_intrinsics(f'call i32 @"{name}"()', "k")


def test_math_without_amdgpu_definition_is_refused_by_its_python_name():
    with pytest.raises(KernelError, match=r"kernel k calls math\.exp \(libdevice's __nv_expf\)"
                                          r".*OCML.*math\.sqrt"):
        rename_intrinsics('declare float @"__nv_expf"(float %".1")', "k")


def test_math_with_amdgpu_definition_passes():
    text = 'declare double @"__nv_sqrt"(double %".1")\ndeclare float @"__nv_fabsf"(float %".1")'
    assert rename_intrinsics(text, "k") == text


# -- the other rules -----------------------------------------------------------------
def test_drop_target_keeps_the_code():
    text = ('target triple = "nvptx64-nvidia-cuda"\ntarget datalayout = "e-p:64"\n'
            'define void @f() {\n  ret void\n}\n!nvvm.annotations = !{!1}\n'
            '!nvvmir.version = !{!0}\n!0 = !{i32 2}\n')
    assert drop_target(text) == 'define void @f() {\n  ret void\n}\n!0 = !{i32 2}\n'


def test_private_allocas_handles_quoted_numbered_and_aligned_names():
    text = '  %".5" = alloca {ptr, i64}, align 8\n  %x = alloca i32\n  %7 = alloca double, align 8'
    assert private_allocas(text).splitlines() == [
        '  %".5.private" = alloca {ptr, i64}, align 8, addrspace(5)',
        '  %".5" = addrspacecast ptr addrspace(5) %".5.private" to ptr',
        '  %"x.private" = alloca i32, addrspace(5)',
        '  %x = addrspacecast ptr addrspace(5) %"x.private" to ptr',
        '  %"7.private" = alloca double, align 8, addrspace(5)',
        '  %7 = addrspacecast ptr addrspace(5) %"7.private" to ptr']


def test_mark_kernel_gives_the_kernel_the_amdgpu_calling_convention():
    text = 'define void @"_Z1kv"(ptr %a) {\n}\ndefine linkonce_odr void @"_Z1dv"() {\n}'
    marked = mark_kernel(text, "_Z1kv")
    assert 'define amdgpu_kernel void @"_Z1kv"(ptr %a)' in marked
    assert 'define linkonce_odr void @"_Z1dv"()' in marked
    with pytest.raises(KernelError, match="does not define the kernel missing"):
        mark_kernel(text, "missing")


@needs_llvm
@pytest.mark.parametrize("arch", codegen.ARCHITECTURES)
def test_retargeted_module_verifies_and_links_into_a_code_object(arch):
    nvidia = ('target triple = "nvptx64-nvidia-cuda"\n'
              'define void @"k"(double* %out) {\n'
              '  %slot = alloca double\n'
              '  %t = call i32 @"llvm.nvvm.read.ptx.sreg.tid.x"()\n'
              '  %n = call i32 @"llvm.nvvm.read.ptx.sreg.nctaid.x"()\n'
              '  %s = add i32 %t, %n\n  %d = sitofp i32 %s to double\n'
              '  store double %d, double* %slot\n  %v = load double, double* %slot\n'
              '  call void @"llvm.nvvm.barrier0"()\n'
              '  %old = call double @"___numba_atomic_double_max"(double* %out, double %v)\n'
              '  ret void\n}\n'
              'declare i32 @"llvm.nvvm.read.ptx.sreg.tid.x"()\n'
              'declare i32 @"llvm.nvvm.read.ptx.sreg.nctaid.x"()\n'
              'declare void @"llvm.nvvm.barrier0"()\n'
              'declare double @"___numba_atomic_double_max"(double* %".1", double %".2")\n')
    module = codegen.amdgpu_module([nvidia], "k", "k", arch)
    codegen.optimise(module, arch)
    image, assembly = codegen.emit(module, arch)
    info = inspect(image)
    assert info.arch == arch and info.undefined_symbols == ()
    assert info.kernels["k"].scratch_bytes == 0  # the alloca was promoted
    assert "s_barrier" in assembly and "cmpswap" in assembly


# -- the prelude's compare-and-swap loops, run on the host ----------------------------
@pytest.fixture(scope="module")
def host_atomics():
    """The prelude's float atomic helpers compiled for this machine's CPU (they use
    only target-independent IR: atomic loads, cmpxchg, float compares)."""
    if codegen.available_problem() is not None:
        pytest.skip(str(codegen.available_problem()))
    import llvmlite.binding as llvm
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    text = prelude.prelude_ir()
    helpers = text[text.index("define linkonce_odr float @___numba_atomic_float_sub"):
                   text.index("declare double @llvm.sqrt.f64")]
    helpers = helpers.replace('syncscope("agent") ', "").replace("define linkonce_odr ",
                                                                  "define ")
    module = llvm.parse_assembly(helpers)
    machine = llvm.Target.from_default_triple().create_target_machine()
    engine = llvm.create_mcjit_compiler(module, machine)
    engine.finalize_object()

    def function(name: str, ctype: type) -> object:
        proto = ctypes.CFUNCTYPE(ctype, ctypes.POINTER(ctype), ctype)
        return proto(engine.get_function_address(name))
    return function  # its closure keeps the engine alive


NAN = math.nan


@pytest.mark.parametrize("ctype,t", [(ctypes.c_double, "double"), (ctypes.c_float, "float")])
@pytest.mark.parametrize("op,stored,value,after", [
    ("max", 1.0, 2.0, 2.0), ("max", 3.0, 2.0, 3.0), ("min", 1.0, 2.0, 1.0),
    ("min", 3.0, 2.0, 2.0), ("max", 1.0, NAN, 1.0), ("max", NAN, 1.0, NAN),
    ("nanmax", NAN, 1.0, 1.0), ("nanmax", 1.0, NAN, 1.0), ("nanmin", NAN, -1.0, -1.0),
    ("sub", 5.0, 1.5, 3.5)])
def test_cas_loops_follow_numba_cuda_semantics(host_atomics, ctype, t, op, stored, value, after):
    cell = ctype(stored)
    old = host_atomics(f"___numba_atomic_{t}_{op}", ctype)(ctypes.byref(cell), value)
    np.testing.assert_equal([old, cell.value], [stored, after])


# -- atan, atan2 and hypot, run on the host --------------------------------------------
@pytest.fixture(scope="module")
def host_math():
    """The math bodies compiled for this machine's CPU (target-independent IR)."""
    if codegen.available_problem() is not None:
        pytest.skip(str(codegen.available_problem()))
    import llvmlite.binding as llvm
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    module = llvm.parse_assembly(mathlib.INTRINSICS
                                 + mathlib.math_ir().replace("define linkonce_odr ", "define "))
    engine = llvm.create_mcjit_compiler(module,
                                        llvm.Target.from_default_triple().create_target_machine())
    engine.finalize_object()

    def function(name: str, ctype: type, arity: int) -> object:
        proto = ctypes.CFUNCTYPE(ctype, *[ctype] * arity)
        return proto(engine.get_function_address(name))
    return function


def _ulps(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.max(np.abs(got - want) / np.spacing(np.abs(want))))


@pytest.mark.parametrize("name,reference,ulps", [("__nv_atan2", np.arctan2, 1),
                                                 ("__nv_hypot", np.hypot, 2)])
def test_math_bodies_match_numpy_to_an_ulp_or_two(host_math, name, reference, ulps):
    rng = np.random.default_rng()
    a = rng.standard_normal(5000) * 10.0 ** rng.integers(-30, 30, 5000)
    b = rng.standard_normal(5000) * 10.0 ** rng.integers(-30, 30, 5000)
    f = host_math(name, ctypes.c_double, 2)
    assert _ulps(np.array([f(x, y) for x, y in zip(a, b)]), reference(a, b)) <= ulps
    single = host_math(name + "f", ctypes.c_float, 2)
    a32, b32 = a.astype(np.float32), b.astype(np.float32)
    got32 = np.array([single(x, y) for x, y in zip(a32, b32)], np.float32)
    assert _ulps(got32, reference(a32.astype(np.float64), b32.astype(np.float64))
                 .astype(np.float32)) <= 1


def test_atan_matches_numpy(host_math):
    x = np.linspace(-50.0, 50.0, 20001)
    atan = host_math("__nv_atan", ctypes.c_double, 1)
    assert _ulps(np.array([atan(v) for v in x]), np.arctan(x)) <= 1


SPECIAL = [0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, math.nan, 1e-310, -1e308]


@pytest.mark.parametrize("name,reference", [("__nv_atan2", np.arctan2),
                                            ("__nv_hypot", np.hypot)])
def test_math_bodies_handle_zeros_infinities_and_nan_as_c99(host_math, name, reference):
    f = host_math(name, ctypes.c_double, 2)
    for a in SPECIAL:
        for b in SPECIAL:
            got, want = f(a, b), float(reference(a, b))
            if math.isnan(want):
                assert math.isnan(got), (name, a, b, got)
            else:
                assert got == pytest.approx(want, rel=4e-16, abs=0), (name, a, b)
                assert math.copysign(1, got) == math.copysign(1, want), (name, a, b)


# -- code objects and kernel arguments -----------------------------------------------
def test_msgpack_reader_covers_what_metadata_uses():
    data = (bytes([0x83, 0xA4]) + b".len" + bytes([0xCE, 0, 1, 0, 0]) + bytes([0xA3])
            + b"neg" + bytes([0xFF]) + bytes([0xD9, 5]) + b".args" + bytes([0x91, 0xC2]))
    assert unpack_msgpack(data) == ({".len": 65536, "neg": -1, ".args": [False]}, len(data))


def test_inspect_refuses_what_is_no_elf_file():
    with pytest.raises(CodeObjectError, match="not an ELF file"):
        inspect(b"\x00" * 64)


def test_flatten_lays_out_arrays_as_numba_passes_them():
    x = np.zeros((3, 4), np.float32)
    _, params = flatten([x, np.int32(7)], [None, None])
    address = x.__array_interface__["data"][0]
    assert params == [("Q", 0), ("Q", 0), ("q", 12), ("q", 4), ("Q", address), ("q", 3),
                      ("q", 4), ("q", 16), ("q", 4), ("i", 7)]


def test_pack_refuses_a_layout_that_does_not_match():
    layout = [KernelArg(0, 8, "by_value"), KernelArg(8, 8, "hidden_block_count_x")]
    assert struct.unpack("<q", pack(layout, [("q", -3)], "k")) == (-3,)
    with pytest.raises(LaunchError, match="takes 1 argument words but the launch built 2"):
        pack(layout, [("q", 1), ("q", 2)], "k")
    with pytest.raises(LaunchError, match="is 8 bytes in the code object but 4 in the launch"):
        pack(layout, [("i", 1)], "k")
