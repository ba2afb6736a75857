"""The AMDGPU definitions that retargeted kernels call (LLVM IR, opaque pointers).

:mod:`.retarget` renames each NVIDIA intrinsic that numba-cuda emits to one of
the ``__pt_amdgpu_*`` functions defined here, and numba-cuda's atomic helpers and
the libdevice math functions with an AMDGPU equivalent keep their names and get a
body here. Every function is ``linkonce_odr`` (kept only where called) and always inlined, so what a kernel does
not use vanishes at optimisation.

The HSA dispatch packet that ``llvm.amdgcn.dispatch.ptr`` points at holds the
workgroup size as three ``i16`` at byte offsets 4, 6 and 8 and the grid size, in
work-items, as three ``i32`` at 12, 16 and 20.
"""
from __future__ import annotations

from . import mathlib

_AXES = "xyz"
_WORKGROUP_SIZE_OFFSET = {"x": 4, "y": 6, "z": 8}
_GRID_SIZE_OFFSET = {"x": 12, "y": 16, "z": 20}

_INDEX_TEMPLATE = """
define linkonce_odr i32 @__pt_amdgpu_tid_{axis}() alwaysinline nounwind {{
  %v = call i32 @llvm.amdgcn.workitem.id.{axis}()
  ret i32 %v
}}
define linkonce_odr i32 @__pt_amdgpu_ctaid_{axis}() alwaysinline nounwind {{
  %v = call i32 @llvm.amdgcn.workgroup.id.{axis}()
  ret i32 %v
}}
define linkonce_odr i32 @__pt_amdgpu_ntid_{axis}() alwaysinline nounwind {{
  %packet = call ptr addrspace(4) @llvm.amdgcn.dispatch.ptr()
  %at = getelementptr i8, ptr addrspace(4) %packet, i64 {wg_offset}
  %size = load i16, ptr addrspace(4) %at, align 2, !invariant.load !{{}}
  %v = zext i16 %size to i32
  ret i32 %v
}}
define linkonce_odr i32 @__pt_amdgpu_nctaid_{axis}() alwaysinline nounwind {{
  %packet = call ptr addrspace(4) @llvm.amdgcn.dispatch.ptr()
  %at = getelementptr i8, ptr addrspace(4) %packet, i64 {grid_offset}
  %grid = load i32, ptr addrspace(4) %at, align 4, !invariant.load !{{}}
  %group = call i32 @__pt_amdgpu_ntid_{axis}()
  %rest = add i32 %grid, %group
  %rounded = sub i32 %rest, 1
  %v = udiv i32 %rounded, %group
  ret i32 %v
}}
declare i32 @llvm.amdgcn.workitem.id.{axis}()
declare i32 @llvm.amdgcn.workgroup.id.{axis}()
"""

_BARRIER = """
declare ptr addrspace(4) @llvm.amdgcn.dispatch.ptr()
declare void @llvm.amdgcn.s.barrier() convergent nounwind
define linkonce_odr void @__pt_amdgpu_barrier() alwaysinline convergent nounwind {
  fence syncscope("workgroup") release
  call void @llvm.amdgcn.s.barrier()
  fence syncscope("workgroup") acquire
  ret void
}
"""

_ATOMIC_ADD_TEMPLATE = """
define linkonce_odr {t} @__pt_amdgpu_atomic_fadd_{t}(ptr %at, {t} %value) alwaysinline nounwind {{
  %old = atomicrmw fadd ptr %at, {t} %value syncscope("agent") monotonic, align {size}
  ret {t} %old
}}
"""

# A compare-and-swap loop for an operation the hardware has no atomic for: read,
# compute, swap in if nothing changed meanwhile, else retry with what is there.
_CAS_BINARY_TEMPLATE = """
define linkonce_odr {t} @___numba_atomic_{t}_{name}(ptr %at, {t} %value) alwaysinline nounwind {{
entry:
  %first = load atomic {i}, ptr %at monotonic, align {size}
  br label %retry
retry:
  %seen = phi {i} [ %first, %entry ], [ %found, %retry ]
  %seen_f = bitcast {i} %seen to {t}
  %new_f = {op} {t} %seen_f, %value
  %new = bitcast {t} %new_f to {i}
  %pair = cmpxchg ptr %at, {i} %seen, {i} %new syncscope("agent") monotonic monotonic, align {size}
  %found = extractvalue {{ {i}, i1 }} %pair, 0
  %swapped = extractvalue {{ {i}, i1 }} %pair, 1
  br i1 %swapped, label %done, label %retry
done:
  ret {t} %seen_f
}}
"""

# min/max as numba-cuda defines them: a NaN operand or a NaN already stored leaves
# the memory as it is (``nan`` variants: only a NaN operand does, and a stored NaN
# is replaced); the value found before the swap is returned.
_CAS_MINMAX_TEMPLATE = """
define linkonce_odr {t} @___numba_atomic_{t}_{nan}{name}(ptr %at, {t} %value) alwaysinline nounwind {{
entry:
  %first_i = load atomic {i}, ptr %at monotonic, align {size}
  %first = bitcast {i} %first_i to {t}
  %skip = fcmp uno {t} %value, %{skip_operand}
  br i1 %skip, label %done, label %compare
compare:
  %seen = phi {t} [ %first, %entry ], [ %found, %retry ]
  %improves = fcmp {cmp} {t} %seen, %value
  br i1 %improves, label %retry, label %done
retry:
  %seen_i = bitcast {t} %seen to {i}
  %new_i = bitcast {t} %value to {i}
  %pair = cmpxchg ptr %at, {i} %seen_i, {i} %new_i syncscope("agent") monotonic monotonic, align {size}
  %found_i = extractvalue {{ {i}, i1 }} %pair, 0
  %found = bitcast {i} %found_i to {t}
  %swapped = extractvalue {{ {i}, i1 }} %pair, 1
  br i1 %swapped, label %done, label %compare
done:
  %old = phi {t} [ %first, %entry ], [ %seen, %compare ], [ %seen, %retry ]
  ret {t} %old
}}
"""

#: libdevice's math functions with an AMDGPU equivalent: name, LLVM intrinsic, arity
_MATH = (("sqrt", "sqrt", 1), ("fabs", "fabs", 1), ("floor", "floor", 1), ("ceil", "ceil", 1),
         ("trunc", "trunc", 1), ("rint", "rint", 1), ("round", "round", 1),
         ("copysign", "copysign", 2), ("fmin", "minnum", 2), ("fmax", "maxnum", 2),
         ("fma", "fma", 3))
#: what kernels may call of the ``math`` module on AMD GPUs
MATH_NAMES = tuple(sorted({f"math.{name}" for name, _, _ in _MATH}
                          | {f"math.{name}" for name in mathlib.FUNCTIONS.values()}))
#: libdevice function name -> (type, LLVM intrinsic, arity)
MATH_FUNCTIONS: dict[str, tuple[str, str, int]] = {}
for _name, _intrinsic, _arity in _MATH:
    MATH_FUNCTIONS[f"__nv_{_name}"] = ("double", f"llvm.{_intrinsic}.f64", _arity)
    MATH_FUNCTIONS[f"__nv_{_name}f"] = ("float", f"llvm.{_intrinsic}.f32", _arity)


def _math_definition(name: str, t: str, intrinsic: str, arity: int) -> str:
    params = ", ".join(f"{t} %a{k}" for k in range(arity))
    return (f"declare {t} @{intrinsic}({', '.join([t] * arity)})\n"
            f"define linkonce_odr {t} @{name}({params}) alwaysinline nounwind {{\n"
            f"  %v = call {t} @{intrinsic}({params})\n  ret {t} %v\n}}\n")


def prelude_ir() -> str:
    """The whole prelude, as LLVM IR text without triple or data layout."""
    parts = [_BARRIER]
    parts += [_INDEX_TEMPLATE.format(axis=a, wg_offset=_WORKGROUP_SIZE_OFFSET[a],
                                     grid_offset=_GRID_SIZE_OFFSET[a]) for a in _AXES]
    for t, i, size in (("float", "i32", 4), ("double", "i64", 8)):
        parts.append(_ATOMIC_ADD_TEMPLATE.format(t=t, size=size))
        parts.append(_CAS_BINARY_TEMPLATE.format(t=t, i=i, size=size, name="sub", op="fsub"))
        for nan, skip_operand in (("", "first"), ("nan", "value")):
            for name, cmp in (("max", "olt"), ("min", "ogt")):
                parts.append(_CAS_MINMAX_TEMPLATE.format(
                    t=t, i=i, size=size, nan=nan, name=name, skip_operand=skip_operand,
                    cmp=cmp if nan == "" else cmp.replace("o", "u")))
    declared: set[str] = set()
    for name, (t, intrinsic, arity) in MATH_FUNCTIONS.items():
        text = _math_definition(name, t, intrinsic, arity)
        if intrinsic in declared:  # each intrinsic is declared once
            text = text.split("\n", 1)[1]
        declared.add(intrinsic)
        parts.append(text)
    parts.append(mathlib.math_ir())  # calls intrinsics declared above
    return "\n".join(parts)
