"""Hardware atomics for the CPU backends, callable from ``@njit`` code.

Kernels reach atomics through ``acc.atomic_add(...)``, ``acc.atomic_max(...)``
and so on; on the CUDA backend those map to ``cuda.atomic.*``, and on the CPU
backends to the functions here. They take the same arguments and return the
same value as their ``cuda.atomic`` counterparts: each updates ``ary[idx]``
atomically and returns the value it held just before.

Each function is a numba intrinsic that emits an LLVM ``atomicrmw`` or
``cmpxchg`` instruction, so it stays atomic between the threads of an
``@njit(parallel=True)`` ``prange`` loop. Float add/sub/min/max run a
compare-exchange loop on the element's bit pattern: x86 has no atomic float
instructions (LLVM expands ``atomicrmw fadd`` into the same loop), and
``atomicrmw fmin``/``fmax`` would ignore NaNs, unlike CUDA's min/max.

Rules shared by every function:

* ``ary`` is a writable, aligned array of any ndim and layout with dtype
  int32, int64, uint32, uint64, float32 or float64 for add, sub, min and max,
  and of one of the four integer dtypes for ``atomic_exch`` and
  ``atomic_cas``, as for ``cuda.atomic``. Other dtypes are a TypingError.
* ``idx`` is an integer for a 1-D array, else a tuple of one integer per
  dimension. Negative indices are not wrapped around; indices are bounds
  checked only when numba's boundscheck option is on.
* ``val`` (and ``old`` for ``atomic_cas``) is cast to the array's dtype.
* Ordering is sequentially consistent, at least as strong as CUDA's relaxed
  atomics, so code written for the GPU keeps its guarantees.
* Float ``atomic_min``/``atomic_max`` follow ``cuda.atomic.min``/``max``: the
  element is replaced only when ``val`` is strictly smaller (larger) in an
  ordered comparison, so a NaN ``val`` never changes the element and a NaN
  element stays NaN; ``-0.0`` and ``0.0`` count as equal.
"""
from __future__ import annotations

from typing import Any, Callable

from llvmlite import ir
from numba.core import cgutils, types
from numba.core.base import BaseContext
from numba.core.errors import TypingError
from numba.core.extending import intrinsic
from numba.core.typing.templates import Signature

__all__ = [
    "atomic_add",
    "atomic_sub",
    "atomic_min",
    "atomic_max",
    "atomic_exch",
    "atomic_cas",
]

INT_DTYPES = (types.int32, types.int64, types.uint32, types.uint64)
FLOAT_DTYPES = (types.float32, types.float64)
SUPPORTED_DTYPES = INT_DTYPES + FLOAT_DTYPES
_UNSIGNED_DTYPES = (types.uint32, types.uint64)
#: the operations that, as on CUDA, take integer arrays only
_INT_ONLY = ("atomic_exch", "atomic_cas")

_ORDERING = "seq_cst"

# (builder, old, val) -> (new value, i1 flag "store new")
_FloatUpdate = Callable[[ir.IRBuilder, ir.Value, ir.Value],
                        tuple[ir.Value, ir.Value]]


def _signature(name: str, ary: types.Type, idx: types.Type,
               *vals: types.Type) -> Signature:
    """Check the arguments of atomic ``name`` and return its signature."""
    if not isinstance(ary, types.Array):
        raise TypingError(f"{name}: first argument must be an array, "
                          f"got {ary}")
    supported = INT_DTYPES if name in _INT_ONLY else SUPPORTED_DTYPES
    if ary.dtype not in supported:
        raise TypingError(
            f"{name}: unsupported array dtype {ary.dtype}; supported dtypes "
            f"are {', '.join(str(t) for t in supported)}")
    if not (ary.mutable and ary.aligned):
        raise TypingError(f"{name}: array must be writable and aligned, "
                          f"got {ary}")
    idx_types = idx.types if isinstance(idx, types.BaseTuple) else (idx,)  # type: ignore[attr-defined]
    if (len(idx_types) != ary.ndim
            or not all(isinstance(t, types.Integer) for t in idx_types)):
        raise TypingError(
            f"{name}: index of a {ary.ndim}-D array must be "
            f"{'an integer or ' if ary.ndim == 1 else ''}a tuple of "
            f"{ary.ndim} integers, got {idx}")
    for val in vals:
        if not isinstance(val, (types.Integer, types.Float, types.Boolean)):
            raise TypingError(f"{name}: value must be a real number, "
                              f"got {val}")
    return ary.dtype(ary, idx, *vals)


def _item_pointer(context: BaseContext, builder: ir.IRBuilder,
                  sig: Signature, args: tuple[ir.Value, ...]) -> ir.Value:
    """Pointer to ``ary[idx]`` for the first two arguments of ``sig``."""
    aryty, idxty = sig.args[:2]
    ary, idx = args[:2]
    if isinstance(idxty, types.BaseTuple):
        idx_types = idxty.types  # type: ignore[attr-defined]
        indices = cgutils.unpack_tuple(builder, idx, len(idx_types))
    else:
        idx_types, indices = (idxty,), [idx]
    indices = [context.cast(builder, i, t, types.intp)
               for i, t in zip(indices, idx_types)]
    array = context.make_array(aryty)(context, builder, ary)
    return cgutils.get_item_pointer(context, builder, aryty, array, indices,
                                    boundscheck=context.enable_boundscheck)


def _int_pointer(builder: ir.IRBuilder, dtype: types.Float,
                 ptr: ir.Value) -> ir.Value:
    """``ptr`` to a float reinterpreted as a pointer to the same-width integer."""
    return builder.bitcast(ptr, ir.IntType(dtype.bitwidth).as_pointer())


def _float_cas_loop(builder: ir.IRBuilder, dtype: types.Float,
                    ptr: ir.Value, val: ir.Value,
                    update: _FloatUpdate) -> ir.Value:
    """Atomically apply ``update`` to ``*ptr`` by compare-exchange on bits.

    Loads the element, computes ``new, store = update(old, val)``; if
    ``store`` is false the loaded value is the result, else ``new`` is
    swapped in and the loop repeats until no other thread got in between.
    Returns the old value.
    """
    iptr = _int_pointer(builder, dtype, ptr)
    entry = builder.block
    loop = builder.append_basic_block("atomic_float.loop")
    attempt = builder.append_basic_block("atomic_float.attempt")
    done = builder.append_basic_block("atomic_float.done")

    first = builder.load_atomic(iptr, "monotonic", dtype.bitwidth // 8)
    builder.branch(loop)

    builder.position_at_end(loop)
    old_bits = builder.phi(first.type)
    old_bits.add_incoming(first, entry)
    old = builder.bitcast(old_bits, val.type)
    new, store = update(builder, old, val)
    builder.cbranch(store, attempt, done)

    builder.position_at_end(attempt)
    pair = builder.cmpxchg(iptr, old_bits, builder.bitcast(new, first.type),
                           _ORDERING)
    old_bits.add_incoming(builder.extract_value(pair, 0), attempt)
    builder.cbranch(builder.extract_value(pair, 1), done, loop)

    builder.position_at_end(done)
    return old


def _float_arith(op: str) -> _FloatUpdate:
    def update(builder, old, val):
        return getattr(builder, op)(old, val), cgutils.true_bit
    return update


def _float_replace_if(cmp: str) -> _FloatUpdate:
    def update(builder, old, val):
        return val, builder.fcmp_ordered(cmp, val, old)
    return update


def _rmw_intrinsic(name: str, signed_op: str, unsigned_op: str,
                   float_update: _FloatUpdate | None, doc: str) -> Callable:
    """Build intrinsic ``name(ary, idx, val)``.

    Integers use ``atomicrmw signed_op`` (``unsigned_op`` for unsigned
    dtypes); floats use ``float_update`` in a CAS loop (``None`` for the
    operations that take integers only).
    """
    def typer(typingctx, ary: types.Type, idx: types.Type,
              val: types.Type) -> tuple[Signature, Any]:
        def codegen(context, builder, sig, args):
            dtype = sig.return_type
            ptr = _item_pointer(context, builder, sig, args)
            val = context.cast(builder, args[2], sig.args[2], dtype)
            if dtype in FLOAT_DTYPES:  # only the ops with a float_update take floats
                return _float_cas_loop(builder, dtype, ptr, val, float_update)
            op = unsigned_op if dtype in _UNSIGNED_DTYPES else signed_op
            return builder.atomic_rmw(op, ptr, val, _ORDERING)

        return _signature(name, ary, idx, val), codegen

    typer.__name__ = typer.__qualname__ = name
    typer.__doc__ = doc
    return intrinsic(typer)


atomic_add = _rmw_intrinsic(
    "atomic_add", "add", "add", _float_arith("fadd"),
    """atomic_add(ary, idx, val) -> old: atomically ``ary[idx] += val``.

    Integer addition wraps around on overflow. Example::

        @njit(parallel=True)
        def histogram(keys, counts):
            for i in prange(keys.size):
                atomic_add(counts, keys[i], 1)
    """)

atomic_sub = _rmw_intrinsic(
    "atomic_sub", "sub", "sub", _float_arith("fsub"),
    """atomic_sub(ary, idx, val) -> old: atomically ``ary[idx] -= val``.

    Integer subtraction wraps around on overflow. Example::

        @njit
        def take_ticket(remaining):      # True while tickets were left
            return atomic_sub(remaining, 0, 1) > 0
    """)

atomic_min = _rmw_intrinsic(
    "atomic_min", "min", "umin", _float_replace_if("<"),
    """atomic_min(ary, idx, val) -> old: ``ary[idx] = min(ary[idx], val)``.

    For floats a NaN ``val`` leaves the element unchanged and a NaN element
    stays NaN, as with ``cuda.atomic.min``. Example::

        @njit(parallel=True)
        def column_min(x, out):          # out filled with +inf beforehand
            for i in prange(x.shape[0]):
                for j in range(x.shape[1]):
                    atomic_min(out, j, x[i, j])
    """)

atomic_max = _rmw_intrinsic(
    "atomic_max", "max", "umax", _float_replace_if(">"),
    """atomic_max(ary, idx, val) -> old: ``ary[idx] = max(ary[idx], val)``.

    For floats a NaN ``val`` leaves the element unchanged and a NaN element
    stays NaN, as with ``cuda.atomic.max``. Example::

        @njit(parallel=True)
        def grid_max(x, out):            # out is 2-D, filled with -inf
            for i in prange(x.shape[0]):
                atomic_max(out, (i % 2, i % 3), x[i])
    """)

atomic_exch = _rmw_intrinsic(
    "atomic_exch", "xchg", "xchg", None,
    """atomic_exch(ary, idx, val) -> old: atomically ``ary[idx] = val``.

    Example::

        @njit
        def swap_in(slots, k, v):        # returns the value replaced
            return atomic_exch(slots, k, v)
    """)


@intrinsic
def atomic_cas(typingctx, ary: types.Type, idx: types.Type, old: types.Type,
               val: types.Type) -> tuple[Signature, Any]:
    """atomic_cas(ary, idx, old, val) -> found: atomic compare-and-swap.

    Atomically: ``found = ary[idx]; if found == old: ary[idx] = val;
    return found``. The swap happened exactly when the result equals ``old``.
    ``ary`` holds integers. Example::

        @njit
        def claim(owner, slot, me):      # owner filled with -1
            return atomic_cas(owner, slot, -1, me) == -1   # True: slot is mine
    """
    def codegen(context, builder, sig, args):
        dtype = sig.return_type
        ptr = _item_pointer(context, builder, sig, args)
        expected, new = (context.cast(builder, v, t, dtype)
                         for v, t in zip(args[2:], sig.args[2:]))
        pair = builder.cmpxchg(ptr, expected, new, _ORDERING)
        return builder.extract_value(pair, 0)

    return _signature("atomic_cas", ary, idx, old, val), codegen
