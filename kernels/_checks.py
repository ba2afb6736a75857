"""Argument checks shared by the public operations; each runs before anything
is enqueued, so a rejected call leaves every buffer untouched.

Every message names the operation, the argument (quoted, as ``'x'``) and the
offending value or property, then says how to fix it.
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable, Sequence

import numpy as np

import portable as pt
from portable.checks import describe, expect_queue
from portable.errors import ArgumentError
from portable.memory import address_of

#: element types of the arithmetic operations (sums, scans, maps)
NUMERIC = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int32), np.dtype(np.int64))
#: element types of index and count buffers
INDEX = (np.dtype(np.int32), np.dtype(np.int64))

#: ``alloc(shape, dtype)``: a new, uninitialised buffer on the queue's device
Alloc = Callable[[Any, Any], Any]

#: attributes by which an object shows it is an array of some device's memory
_ARRAY_MARKS = ("__cuda_array_interface__", "__array_interface__", "__dlpack_device__")


class KernelArgumentError(ArgumentError):
    """An argument of a ``kernels`` operation is invalid; raised before any work
    is enqueued, so no buffer has been touched. It is a
    :class:`portable.ArgumentError`, hence also a ``TypeError`` and a ``ValueError``."""


def check_queue(op: str, queue: Any) -> pt.Queue:
    """``queue`` if it is a :class:`portable.Queue` (else an ``ArgumentError``)."""
    return expect_queue(queue, "queue", op)


def _dtype_text(dtype: np.dtype) -> str:
    if dtype.isnative:
        return dtype.name
    return f"{dtype.name} in non-native byte order ({dtype.str!r})"


def _not_an_array(queue: pt.Queue, op: str, name: str, value: Any) -> KernelArgumentError:
    """The error for ``value`` where a buffer on ``queue.device`` is expected."""
    home = None
    if isinstance(value, np.ndarray) or any(hasattr(value, m) for m in _ARRAY_MARKS):
        home = pt.device_of(value)
    if home is None:
        fix = ("pass a NumPy array, e.g. np.asarray(value, np.float64)"
               if queue.backend.host_memory else
               "copy the values into pt.alloc_buffer(queue.device, n, dtype) with pt.memcpy")
        return KernelArgumentError(f"{op}: argument {name!r} must be a 1-D array on "
                                   f"{queue.device}, got {describe(value)}; {fix}")
    where = "host memory" if home.backend.host_memory else str(home)
    return KernelArgumentError(
        f"{op}: argument {name!r} lives in {where}, but the queue runs on {queue.device}; "
        f"copy it into pt.alloc_buffer(queue.device, n, dtype) with pt.memcpy")


def buffer(queue: pt.Queue, op: str, name: str, value: Any, dtypes: Sequence[np.dtype], *,
           output: bool = False, contiguous: bool = False) -> Any:
    """``value`` as the queue's native 1-D array, after checking where it lives,
    its dimensions, its dtype, its alignment and, for an output, that it is
    writable and that no two of its elements share memory."""
    if isinstance(value, np.ma.MaskedArray):
        raise KernelArgumentError(
            f"{op}: argument {name!r} is a masked array, whose mask would be ignored; "
            f"pass {name}.filled(value) or {name}.compressed()")
    view = queue.backend.as_array(value)
    if view is None or queue.backend.device_of(view) is not queue.device:
        raise _not_an_array(queue, op, name, value)
    if view.ndim != 1:
        raise KernelArgumentError(
            f"{op}: argument {name!r} must be 1-D but has shape {tuple(view.shape)}; pass a "
            f"flat buffer such as {name}.reshape(-1)")
    dtype = np.dtype(view.dtype)
    if dtype not in dtypes:
        reason = ": it needs real numbers (take .real)" if dtype.kind == "c" else ""
        raise KernelArgumentError(
            f"{op}: argument {name!r} has dtype {_dtype_text(dtype)}, which is not "
            f"supported{reason}; use one of {', '.join(d.name for d in dtypes)} (convert "
            f"on the host, e.g. with .astype(np.{dtypes[0].name}))")
    if isinstance(view, np.ndarray) and not view.flags.aligned:
        raise KernelArgumentError(
            f"{op}: argument {name!r} is not aligned to its {dtype.itemsize}-byte elements; "
            f"pass an aligned copy, {name}.copy()")
    if contiguous and view.size > 1 and view.strides[0] != dtype.itemsize:
        raise KernelArgumentError(
            f"{op}: argument {name!r} must be contiguous but has a stride of "
            f"{view.strides[0]} bytes; pass a fresh buffer and copy the result out of it")
    if output:
        _check_writable(op, name, value, view)
    return view


def _check_writable(op: str, name: str, value: Any, view: Any) -> None:
    if isinstance(view, np.ndarray):
        read_only = not view.flags.writeable
    else:
        interface = getattr(value, "__cuda_array_interface__", None)
        read_only = bool(interface and interface["data"][1])
    if read_only:
        raise KernelArgumentError(f"{op}: argument {name!r} is read-only; pass a writable "
                                  f"buffer (for NumPy, one with flags.writeable set)")
    if view.size > 1 and abs(view.strides[0]) < view.dtype.itemsize:
        raise KernelArgumentError(
            f"{op}: the elements of argument {name!r} overlap each other (stride "
            f"{view.strides[0]} bytes); pass a buffer with one place per element")


def _byte_span(view: Any) -> tuple[int, int]:
    """The bytes ``[first, end)`` that a 1-D native array spans (empty for no elements)."""
    start = address_of(view)
    if view.size == 0:
        return start, start
    reach = (view.size - 1) * view.strides[0]
    return start + min(0, reach), start + max(0, reach) + view.dtype.itemsize


def no_overlap(op: str, out_name: str, out: Any, in_name: str, x: Any, *,
               same_elements: bool = False) -> None:
    """``out`` and ``x`` (native 1-D arrays) must not share memory; with
    ``same_elements``, ``out`` may also be exactly ``x`` (the same elements, as in
    an in-place update). Views whose byte ranges overlap count as sharing even
    when they interleave, on every backend alike."""
    out_first, out_end = _byte_span(out)
    x_first, x_end = _byte_span(x)
    if out_first >= x_end or x_first >= out_end:
        return
    if same_elements and (out_first, out_end, out.strides, out.dtype.itemsize) == \
            (x_first, x_end, x.strides, x.dtype.itemsize):
        return
    in_place = (f"pass the very same buffer as {out_name!r} and {in_name!r} for an "
                f"in-place update, or " if same_elements else "")
    raise KernelArgumentError(
        f"{op}: arguments {out_name!r} and {in_name!r} overlap in memory (they are views "
        f"of one buffer), so writing {out_name!r} would change {in_name!r} while it is "
        f"read; {in_place}write to a separate buffer")


def same_size(op: str, name: str, value: Any, like_name: str, like: Any) -> None:
    """``value`` and ``like`` must have the same number of elements."""
    if value.size != like.size:
        raise KernelArgumentError(
            f"{op}: argument {name!r} has shape {tuple(value.shape)} but {like_name!r} has "
            f"shape {tuple(like.shape)}; they must have the same length")


def same_dtype(op: str, name: str, value: Any, like_name: str, like: Any) -> None:
    """``value`` and ``like`` must have the same dtype."""
    if np.dtype(value.dtype) != np.dtype(like.dtype):
        raise KernelArgumentError(
            f"{op}: argument {name!r} has dtype {np.dtype(value.dtype)} but {like_name!r} "
            f"has dtype {np.dtype(like.dtype)}; they must have the same dtype")


def length(op: str, name: str, value: Any, size: int) -> None:
    """``value`` must have exactly ``size`` elements."""
    if value.size != size:
        raise KernelArgumentError(
            f"{op}: argument {name!r} must have exactly {size} element(s) but has shape "
            f"{tuple(value.shape)}; allocate pt.alloc_buffer(queue.device, {size}, dtype)")


def real_number(op: str, name: str, value: Any) -> None:
    """``value`` must be a real Python or NumPy number (not a bool, not complex)."""
    if (isinstance(value, (bool, np.bool_, complex, np.complexfloating))
            or not isinstance(value, (int, float, np.integer, np.floating))):
        raise KernelArgumentError(f"{op}: argument {name!r} must be a real number, got "
                                  f"{describe(value)}; pass an int or a float")


def _short(value: Any) -> str:
    """``repr(value)``, cut short if long (a huge Python int)."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _finite(value: int | float | np.number) -> bool:
    return isinstance(value, (int, np.integer)) or math.isfinite(value)


def real_scalar(op: str, name: str, value: Any, dtype: np.dtype) -> Any:
    """``value`` converted to a scalar of ``dtype``: a real number, an integer that
    fits when ``dtype`` is an integer type, and a finite one staying finite."""
    real_number(op, name, value)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        whole = isinstance(value, (int, np.integer)) or float(value).is_integer()
        if not (whole and info.min <= value <= info.max):
            raise KernelArgumentError(
                f"{op}: argument {name!r} = {_short(value)} is not an integer that fits "
                f"{dtype}, the dtype of the arrays; pass an integer in [{info.min}, "
                f"{info.max}]")
        return dtype.type(int(value))
    try:
        with np.errstate(over="ignore"):
            converted = dtype.type(value)
    except OverflowError:  # a Python int beyond every float
        converted = dtype.type(np.inf)
    if _finite(value) and not np.isfinite(converted):
        raise KernelArgumentError(
            f"{op}: argument {name!r} = {_short(value)} overflows {dtype}, the dtype of "
            f"the arrays; pass a value within +-{np.finfo(dtype).max}")
    return converted


def as_float(op: str, name: str, value: Any) -> float:
    """``value``, a real number, as a finite Python float."""
    real_number(op, name, value)
    try:
        converted = float(value)
    except OverflowError:  # a Python int beyond every float
        converted = math.inf
    if not math.isfinite(converted):
        raise KernelArgumentError(f"{op}: argument {name!r} = {_short(value)} must be "
                                  f"finite")
    return converted


def one_argument_function(op: str, fn: Any) -> None:
    """``fn`` must be a ``@pt.device_function`` of one argument, without ``acc``."""
    if (not isinstance(fn, pt.DeviceFunction) or fn.parsed.acc is not None
            or len(fn.parsed.params) != 1):
        raise KernelArgumentError(
            f"{op}: argument 'fn' must be a @pt.device_function taking one value (and no "
            f"acc), got {describe(fn)}; write @pt.device_function\\ndef f(v): return ...")


def allocator(op: str, queue: pt.Queue, alloc: Any) -> Alloc:
    """``alloc`` if it is callable; ``None`` means :func:`portable.alloc_buffer` on
    ``queue.device``."""
    if alloc is None:
        return functools.partial(pt.alloc_buffer, queue.device)
    if not callable(alloc):
        raise KernelArgumentError(
            f"{op}: argument 'alloc' must be a callable alloc(shape, dtype) returning a new "
            f"buffer on the queue's device, got {describe(alloc)}; pass e.g. "
            f"functools.partial(pt.alloc_buffer, queue.device), or leave it out")
    return alloc


def temporary(queue: pt.Queue, op: str, alloc: Alloc, size: int, dtype: Any) -> Any:
    """``alloc(size, dtype)`` as the queue's native array, checked to be a writable
    contiguous 1-D buffer of ``size`` elements of ``dtype`` on ``queue.device``."""
    dtype = np.dtype(dtype)
    value = alloc(size, dtype)
    view = queue.backend.as_array(value)
    if (view is None or queue.backend.device_of(view) is not queue.device
            or tuple(view.shape) != (size,) or np.dtype(view.dtype) != dtype
            or (size > 1 and view.strides[0] != dtype.itemsize)):
        raise KernelArgumentError(
            f"{op}: argument 'alloc' returned {describe(value)} for alloc({size}, "
            f"{dtype.name}); it must return a new contiguous buffer of that shape and dtype "
            f"on {queue.device}")
    _check_writable(op, "alloc", value, view)
    return view
