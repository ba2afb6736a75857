"""Argument checks shared by the public operations; each runs before anything
is enqueued, so a rejected call leaves every buffer untouched."""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np

import portable as pt
from portable.errors import PortableError

#: element types of the arithmetic operations (sums, scans, maps)
NUMERIC = (np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int32), np.dtype(np.int64))
#: element types of index and count buffers
INDEX = (np.dtype(np.int32), np.dtype(np.int64))


class KernelArgumentError(PortableError):
    """An argument of a ``kernels`` operation is invalid; raised before any work
    is enqueued, so no buffer has been touched."""


def check_queue(op: str, queue: Any) -> None:
    """``queue`` must be a :class:`portable.Queue`."""
    if not isinstance(queue, pt.Queue):
        raise KernelArgumentError(f"{op}: queue must be a pt.Queue, got "
                                  f"{type(queue).__name__}; create one with "
                                  f"pt.Queue(pt.get_device(...))")


def _names(dtypes: Sequence[np.dtype]) -> str:
    return ", ".join(d.name for d in dtypes)


def buffer(queue: pt.Queue, op: str, name: str, value: Any,
           dtypes: Sequence[np.dtype], *, output: bool = False) -> Any:
    """``value`` as the queue's native 1-D array, after checking where it lives,
    its dimensions, its dtype and (for outputs) that it is writable."""
    view = queue.backend.as_array(value)
    if view is None:
        raise KernelArgumentError(
            f"{op}: {name} is a {type(value).__name__} that does not live on "
            f"{queue.device}, where the queue runs; allocate it with "
            f"pt.alloc_buffer(queue.device, ...) and fill it with pt.memcpy")
    if view.ndim != 1:
        raise KernelArgumentError(
            f"{op}: {name} must be 1-D but has shape {tuple(view.shape)}; pass a flat "
            f"buffer such as {name}.reshape(-1)")
    dtype = np.dtype(view.dtype)
    if dtype not in dtypes:
        raise KernelArgumentError(
            f"{op}: {name} has dtype {dtype}, which is not supported; use one of "
            f"{_names(dtypes)} (convert on the host, e.g. with .astype(np.{dtypes[0].name}))")
    if output and isinstance(view, np.ndarray) and not view.flags.writeable:
        raise KernelArgumentError(f"{op}: {name} is read-only; pass a writable buffer")
    return view


def same_size(op: str, name: str, value: Any, like_name: str, like: Any) -> None:
    """``value`` and ``like`` must have the same number of elements."""
    if value.size != like.size:
        raise KernelArgumentError(
            f"{op}: {name} has shape {tuple(value.shape)} but {like_name} has shape "
            f"{tuple(like.shape)}; they must have the same length")


def same_dtype(op: str, name: str, value: Any, like_name: str, like: Any) -> None:
    """``value`` and ``like`` must have the same dtype."""
    if np.dtype(value.dtype) != np.dtype(like.dtype):
        raise KernelArgumentError(
            f"{op}: {name} has dtype {np.dtype(value.dtype)} but {like_name} has dtype "
            f"{np.dtype(like.dtype)}; they must have the same dtype")


def length(op: str, name: str, value: Any, size: int) -> None:
    """``value`` must have exactly ``size`` elements."""
    if value.size != size:
        raise KernelArgumentError(
            f"{op}: {name} must have exactly {size} element(s) but has shape "
            f"{tuple(value.shape)}; allocate pt.alloc_buffer(queue.device, {size}, dtype)")


def real_scalar(op: str, name: str, value: Any, dtype: np.dtype) -> Any:
    """``value`` converted exactly to a scalar of ``dtype``: a real number, and an
    integer when ``dtype`` is an integer type."""
    _real_number(op, name, value)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        if not (float(value).is_integer() and info.min <= value <= info.max):
            raise KernelArgumentError(
                f"{op}: {name}={value!r} is not an integer that fits {dtype}, the dtype "
                f"of the arrays; pass an integer in [{info.min}, {info.max}]")
        return dtype.type(int(value))
    return dtype.type(value)


def finite_range(op: str, lo: Any, hi: Any) -> tuple[float, float]:
    """``(lo, hi)`` as Python floats with ``lo < hi``, both finite."""
    _real_number(op, "lo", lo)
    _real_number(op, "hi", hi)
    lo_f, hi_f = float(lo), float(hi)
    if not (math.isfinite(lo_f) and math.isfinite(hi_f) and lo_f < hi_f):
        raise KernelArgumentError(
            f"{op}: the range [lo, hi) = [{lo!r}, {hi!r}) must be finite with lo < hi")
    return lo_f, hi_f


def _real_number(op: str, name: str, value: Any) -> None:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise KernelArgumentError(f"{op}: {name} must be a real number, got "
                                  f"{type(value).__name__}")


def one_argument_function(op: str, fn: Any) -> None:
    """``fn`` must be a ``@pt.device_function`` of one argument, without ``acc``."""
    if (not isinstance(fn, pt.DeviceFunction) or fn.parsed.acc is not None
            or len(fn.parsed.params) != 1):
        raise KernelArgumentError(
            f"{op}: fn must be a @pt.device_function taking one value (and no acc), "
            f"got {fn!r}; write @pt.device_function\\ndef f(v): return ...")
