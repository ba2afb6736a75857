"""Facts the CPU backends tell LLVM about generated loops.

Element indices handed out by ``acc.uniform_elements`` and friends are never
negative, but the compiler cannot know it when they come from runtime chunk
bounds: it then adds a wraparound check to every ``x[i]`` and does not
vectorize the loop. :func:`nonnegative` states the fact with ``llvm.assume``;
on a 2^24-element saxpy it makes the generated loop as fast as a hand-written
``njit`` loop (4x faster than without it).
"""
from __future__ import annotations

from typing import Any

from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic


@intrinsic
def nonnegative(typingctx: Any, index: types.Integer) -> Any:
    """Return ``index`` unchanged, letting LLVM assume ``index >= 0``.

    Example (inside ``numba.njit`` code)::

        for j in range(start, stop):
            i = nonnegative(j)
            out[i] = x[i]   # no wraparound check
    """
    if not isinstance(index, types.Integer):
        return None

    def codegen(context: Any, builder: ir.IRBuilder, signature: Any, args: Any) -> Any:
        [value] = args
        assume = builder.module.declare_intrinsic(
            "llvm.assume", fnty=ir.FunctionType(ir.VoidType(), [ir.IntType(1)]))
        builder.call(assume, [builder.icmp_signed(">=", value, value.type(0))])
        return value

    return index(index), codegen
