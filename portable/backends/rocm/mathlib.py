"""Math functions for AMD GPUs that LLVM has no instruction for: ``atan``,
``atan2`` and ``hypot`` (double, and float through double), as LLVM IR bodies for
libdevice's names, so kernels calling them compile without AMD's OCML.

``atan`` reduces its argument to [0, 0.66] (through pi/4 and pi/2 and their low
parts) and evaluates Cephes' rational approximation, accurate to about one unit in
the last place (``hypot``: two); ``atan2`` handles the quadrants, signed zeros, infinities and NaN
as C99 does; ``hypot`` scales by the larger magnitude, so it neither overflows nor
underflows. Tests run these bodies on the host against NumPy.
"""
from __future__ import annotations

import struct

#: libdevice function -> the Python math function it is
FUNCTIONS = {"__nv_atan": "atan", "__nv_atanf": "atan", "__nv_atan2": "atan2",
             "__nv_atan2f": "atan2", "__nv_hypot": "hypot", "__nv_hypotf": "hypot"}
#: the LLVM intrinsics the bodies call (declared by the prelude)
INTRINSICS = ("declare double @llvm.fabs.f64(double)\n"
              "declare double @llvm.copysign.f64(double, double)\n"
              "declare double @llvm.sqrt.f64(double)\n"
              "declare double @llvm.maxnum.f64(double, double)\n"
              "declare double @llvm.minnum.f64(double, double)\n")

_P = (-8.750608600031904122785e-1, -1.615753718733365076637e1, -7.500855792314704667340e1,
      -1.228866684490136173410e2, -6.485021904942025371773e1)
_Q = (2.485846490142306297962e1, 1.650270098316988542046e2, 4.328810604912902668951e2,
      4.853903996359136964868e2, 1.945506571482613964425e2)
_TAN_3PI_8 = 2.41421356237309504880
_MOREBITS = 6.123233995736765886130e-17  # pi/2 - double(pi/2)
_PI = 3.14159265358979323846


def _d(value: float) -> str:
    """``value`` as LLVM's exact hexadecimal double constant."""
    return "0x" + struct.pack(">d", value).hex().upper()


def _atan_abs() -> str:
    """``@__pt_amdgpu_atan_abs(x)``: atan of ``x >= 0`` (``+inf`` included)."""
    lines = [
        "define linkonce_odr double @__pt_amdgpu_atan_abs(double %x) alwaysinline nounwind {",
        f"  %big = fcmp ogt double %x, {_d(_TAN_3PI_8)}",
        f"  %mid = fcmp ogt double %x, {_d(0.66)}",
        "  %inv = fdiv double -1.0, %x",
        "  %below = fsub double %x, 1.0",
        "  %above = fadd double %x, 1.0",
        "  %shift = fdiv double %below, %above",
        "  %xm = select i1 %mid, double %shift, double %x",
        "  %xr = select i1 %big, double %inv, double %xm",
        f"  %basem = select i1 %mid, double {_d(_PI / 4)}, double 0.0",
        f"  %base = select i1 %big, double {_d(_PI / 2)}, double %basem",
        f"  %lowm = select i1 %mid, double {_d(_MOREBITS / 2)}, double 0.0",
        f"  %low = select i1 %big, double {_d(_MOREBITS)}, double %lowm",
        "  %z = fmul double %xr, %xr",
        f"  %p0 = fmul double %z, {_d(_P[0])}",
    ]
    previous = "p0"
    for k, coefficient in enumerate(_P[1:], 1):
        lines.append(f"  %p{k}a = fadd double %{previous}, {_d(coefficient)}")
        previous = f"p{k}a"
        if k < len(_P) - 1:
            lines.append(f"  %p{k}m = fmul double %{previous}, %z")
            previous = f"p{k}m"
    p = previous
    lines.append(f"  %q0 = fadd double %z, {_d(_Q[0])}")
    previous = "q0"
    for k, coefficient in enumerate(_Q[1:], 1):
        lines.append(f"  %q{k}m = fmul double %{previous}, %z")
        lines.append(f"  %q{k}a = fadd double %q{k}m, {_d(coefficient)}")
        previous = f"q{k}a"
    lines += [
        f"  %zp = fmul double %z, %{p}",
        f"  %ratio = fdiv double %zp, %{previous}",
        "  %xratio = fmul double %xr, %ratio",
        "  %small = fadd double %xratio, %xr",
        "  %corrected = fadd double %small, %low",
        "  %v = fadd double %base, %corrected",
        "  ret double %v",
        "}",
    ]
    return "\n".join(lines) + "\n"


_BODIES = f"""
define linkonce_odr double @__nv_atan(double %x) alwaysinline nounwind {{
  %a = call double @llvm.fabs.f64(double %x)
  %t = call double @__pt_amdgpu_atan_abs(double %a)
  %v = call double @llvm.copysign.f64(double %t, double %x)
  ret double %v
}}
define linkonce_odr double @__nv_atan2(double %y, double %x) alwaysinline nounwind {{
  %ay = call double @llvm.fabs.f64(double %y)
  %ax = call double @llvm.fabs.f64(double %x)
  %q = fdiv double %ay, %ax
  %a = call double @__pt_amdgpu_atan_abs(double %q)
  %yinf = fcmp oeq double %ay, 0x7FF0000000000000
  %xinf = fcmp oeq double %ax, 0x7FF0000000000000
  %bothinf = and i1 %yinf, %xinf
  %a1 = select i1 %bothinf, double {_d(_PI / 4)}, double %a
  %yzero = fcmp oeq double %ay, 0.0
  %xzero = fcmp oeq double %ax, 0.0
  %bothzero = and i1 %yzero, %xzero
  %a2 = select i1 %bothzero, double 0.0, double %a1
  %xbits = bitcast double %x to i64
  %xneg = icmp slt i64 %xbits, 0
  %mirrored = fsub double {_d(_PI)}, %a2
  %a3 = select i1 %xneg, double %mirrored, double %a2
  %signed = call double @llvm.copysign.f64(double %a3, double %y)
  %nan = fcmp uno double %x, %y
  %sum = fadd double %x, %y
  %v = select i1 %nan, double %sum, double %signed
  ret double %v
}}
define linkonce_odr double @__nv_hypot(double %x, double %y) alwaysinline nounwind {{
  %ax = call double @llvm.fabs.f64(double %x)
  %ay = call double @llvm.fabs.f64(double %y)
  %m = call double @llvm.maxnum.f64(double %ax, double %ay)
  %n = call double @llvm.minnum.f64(double %ax, double %ay)
  %r = fdiv double %n, %m
  %rr = fmul double %r, %r
  %one = fadd double %rr, 1.0
  %s = call double @llvm.sqrt.f64(double %one)
  %h = fmul double %m, %s
  %mzero = fcmp oeq double %m, 0.0
  %h1 = select i1 %mzero, double 0.0, double %h
  %xinf = fcmp oeq double %ax, 0x7FF0000000000000
  %yinf = fcmp oeq double %ay, 0x7FF0000000000000
  %inf = or i1 %xinf, %yinf
  %nan = fcmp uno double %x, %y
  %sum = fadd double %x, %y
  %h2 = select i1 %nan, double %sum, double %h1
  %v = select i1 %inf, double 0x7FF0000000000000, double %h2
  ret double %v
}}
define linkonce_odr float @__nv_atanf(float %x) alwaysinline nounwind {{
  %wide = fpext float %x to double
  %r = call double @__nv_atan(double %wide)
  %v = fptrunc double %r to float
  ret float %v
}}
define linkonce_odr float @__nv_atan2f(float %y, float %x) alwaysinline nounwind {{
  %wy = fpext float %y to double
  %wx = fpext float %x to double
  %r = call double @__nv_atan2(double %wy, double %wx)
  %v = fptrunc double %r to float
  ret float %v
}}
define linkonce_odr float @__nv_hypotf(float %x, float %y) alwaysinline nounwind {{
  %wx = fpext float %x to double
  %wy = fpext float %y to double
  %r = call double @__nv_hypot(double %wx, double %wy)
  %v = fptrunc double %r to float
  ret float %v
}}
"""


def math_ir() -> str:
    """The bodies, as LLVM IR text (the intrinsics they call are declared apart:
    :data:`INTRINSICS`)."""
    return _atan_abs() + _BODIES
