"""Rules that turn numba-cuda's LLVM IR for NVIDIA GPUs into IR for AMD GPUs.

Each rule is a pure function of IR text, applied in this order by
:mod:`.codegen`:

1. :func:`rename_intrinsics` (on numba-cuda's text, before LLVM parses it: LLVM
   would otherwise upgrade some NVIDIA intrinsics into forms of its own):
   every ``llvm.nvvm.*`` name must be on the allow-list :data:`NVVM_RENAMES`
   and becomes a ``__pt_amdgpu_*`` function of :mod:`.prelude`; any other is a
   :class:`~portable.errors.KernelError` naming it. Math functions
   (``__nv_*`` from libdevice) must have an AMDGPU definition in the prelude.
2. :func:`drop_target` removes the NVPTX triple, data layout and NVVM metadata.
3. :func:`private_allocas` (on LLVM's own, opaque-pointer, text): AMDGPU keeps
   stack variables in address space 5, so each ``alloca`` moves there and is
   cast back to a generic pointer for its users.
4. :func:`mark_kernel` gives the kernel the ``amdgpu_kernel`` calling convention.

Example::

    >>> rename_intrinsics('call i32 @"llvm.nvvm.read.ptx.sreg.tid.x"()', "k")
    'call i32 @"__pt_amdgpu_tid_x"()'
"""
from __future__ import annotations

import math
import re

from ...errors import KernelError
from . import mathlib
from .prelude import MATH_FUNCTIONS, MATH_NAMES

#: the NVIDIA intrinsics that kernels may use, and what each becomes
NVVM_RENAMES: dict[str, str] = {"llvm.nvvm.barrier0": "__pt_amdgpu_barrier",
                                "llvm.nvvm.atomic.load.add.f32.p0f32":
                                    "__pt_amdgpu_atomic_fadd_float",
                                "llvm.nvvm.atomic.load.add.f64.p0f64":
                                    "__pt_amdgpu_atomic_fadd_double"}
for _axis in "xyz":
    for _register in ("tid", "ntid", "ctaid", "nctaid"):
        NVVM_RENAMES[f"llvm.nvvm.read.ptx.sreg.{_register}.{_axis}"] = \
            f"__pt_amdgpu_{_register}_{_axis}"

_NVVM_NAME = re.compile(r'@"?(llvm\.nvvm\.[\w.]+)"?')
_LIBDEVICE_DECLARATION = re.compile(r'^declare [^@\n]*@"?(__nv_\w+)"?\(', re.MULTILINE)
_TARGET_LINE = re.compile(r'^(target (triple|datalayout)|source_filename) = .*$\n?', re.MULTILINE)
_NVVM_METADATA = re.compile(r'^!(nvvm\.annotations|nvvmir\.version) = .*$\n?', re.MULTILINE)
_ALLOCA = re.compile(r'^(\s*)%("?)([^"\s]+)\2 = alloca (.+?)((?:, align \d+)?)$', re.MULTILINE)


def rename_intrinsics(text: str, kernel: str) -> str:
    """``text`` with each allowed NVIDIA intrinsic renamed to its AMDGPU function;
    a :class:`KernelError` for any other NVIDIA intrinsic or a math function that
    has no AMDGPU definition.

    Example::

        >>> rename_intrinsics('call void @"llvm.nvvm.membar.gl"()', "k")
        Traceback (most recent call last):
        ...
        portable.errors.KernelError: kernel k uses the NVIDIA intrinsic llvm.nvvm.membar.gl, which the rocm backend has no AMDGPU rule for (allowed: thread and block indices and extents, the block barrier, float atomic add)
    """
    for name in sorted(set(_NVVM_NAME.findall(text))):
        if name not in NVVM_RENAMES:
            raise KernelError(
                f"kernel {kernel} uses the NVIDIA intrinsic {name}, which the rocm backend "
                f"has no AMDGPU rule for (allowed: thread and block indices and extents, "
                f"the block barrier, float atomic add)")
    for name in sorted(set(_LIBDEVICE_DECLARATION.findall(text))):
        if name not in MATH_FUNCTIONS and name not in mathlib.FUNCTIONS:
            raise KernelError(
                f"kernel {kernel} calls {_math_name(name)} (libdevice's {name}), which the "
                f"rocm backend cannot compile: it needs AMD's OCML device library, which is "
                f"not linked. Math functions the rocm backend compiles: "
                f"{', '.join(MATH_NAMES)}")
    return _NVVM_NAME.sub(lambda m: f'@"{NVVM_RENAMES[m.group(1)]}"', text)


def _math_name(libdevice: str) -> str:
    """``math.<name>`` for a libdevice function name (``__nv_expf`` -> ``math.exp``)."""
    name = libdevice.removeprefix("__nv_")
    if name.endswith("f") and not hasattr(math, name) and hasattr(math, name[:-1]):
        name = name[:-1]  # the float32 version
    return f"math.{name}"


def drop_target(text: str) -> str:
    """``text`` without target triple, data layout, source file name and NVVM metadata.

    Example::

        >>> drop_target('target triple = "nvptx64-nvidia-cuda"\\n!nvvmir.version = !{!0}\\nok')
        'ok'
    """
    return _NVVM_METADATA.sub("", _TARGET_LINE.sub("", text))


def private_allocas(text: str) -> str:
    """Every ``alloca`` of ``text`` (opaque-pointer IR) in address space 5, cast back
    to a generic pointer under its old name.

    Example::

        >>> print(private_allocas('  %x = alloca i64, align 8'))
          %"x.private" = alloca i64, align 8, addrspace(5)
          %x = addrspacecast ptr addrspace(5) %"x.private" to ptr
    """
    def move(match: re.Match[str]) -> str:
        indent, quote, name, allocated, align = match.groups()
        private = f'%"{name}.private"'
        return (f"{indent}{private} = alloca {allocated}{align}, addrspace(5)\n"
                f"{indent}%{quote}{name}{quote} = addrspacecast ptr addrspace(5) {private} to ptr")
    return _ALLOCA.sub(move, text)


def mark_kernel(text: str, kernel_symbol: str) -> str:
    """``text`` with the function ``kernel_symbol`` given the ``amdgpu_kernel``
    calling convention; a :class:`KernelError` if it is not defined there.

    Example::

        >>> mark_kernel('define void @"k"(ptr %a) {', "k")
        'define amdgpu_kernel void @"k"(ptr %a) {'
    """
    pattern = re.compile(r'^define ((?:[a-z_]+ )*)void @("?)' + re.escape(kernel_symbol) + r'\2\(',
                         re.MULTILINE)
    marked, count = pattern.subn(
        lambda m: f"define {m.group(1)}amdgpu_kernel void @{m.group(2)}{kernel_symbol}{m.group(2)}(",
        text)
    if count != 1:
        raise KernelError(f"the lowered module does not define the kernel {kernel_symbol} "
                          f"once (found {count} definitions)")
    return marked
