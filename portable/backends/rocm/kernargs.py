"""Kernel arguments for AMD GPU kernels: their numba types and their bytes.

A kernel lowered by numba-cuda takes each array as ``meminfo, parent, nitems,
itemsize, data, *shape, *strides`` (strides in bytes), each scalar as a value of
its type, and each collection view as its used members' arrays followed by the
collection's size and capacity. :func:`flatten` lists those parameters as
``(struct format, value)`` pairs; :func:`pack` places them at the offsets that
the code object's metadata gives (see :mod:`.codeobject`), which is the buffer
``hipModuleLaunchKernel`` takes.

Example::

    >>> import numpy as np
    >>> types, params = flatten([np.zeros(3), 2.5], [None, None])
    >>> [fmt for fmt, _ in params]
    ['Q', 'Q', 'q', 'q', 'Q', 'q', 'q', 'd']
"""
from __future__ import annotations

import struct
from typing import Any, Sequence

import numpy as np

from ...errors import LaunchError
from .codeobject import KernelArg

Param = tuple[str, Any]
_POINTER, _INT = "Q", "q"


def address(array: Any) -> int:
    """The address of the first byte of ``array``: device memory through
    ``__cuda_array_interface__`` (HIP arrays, torch tensors on ROCm), host memory
    through NumPy's array interface."""
    interface = getattr(array, "__cuda_array_interface__", None)
    if interface is None:
        interface = np.asarray(array).__array_interface__
    return int(interface["data"][0] or 0)


def _array_params(pointer: int, shape: Sequence[int], strides: Sequence[int],
                  itemsize: int) -> list[Param]:
    size = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    return ([(_POINTER, 0), (_POINTER, 0), (_INT, size), (_INT, itemsize), (_POINTER, pointer)]
            + [(_INT, int(n)) for n in shape] + [(_INT, int(s)) for s in strides])


def _array_type(dtype: np.dtype, ndim: int, layout: str, readonly: bool) -> Any:
    from numba.cuda import types
    from numba.cuda.np import numpy_support
    return types.Array(numpy_support.from_dtype(dtype), ndim, layout,  # type: ignore[attr-defined]
                       readonly=readonly)


def _interface(array: Any) -> tuple[np.dtype, tuple[int, ...], tuple[int, ...], bool]:
    """dtype, shape, byte strides and read-only flag of a device or host array."""
    cai = getattr(array, "__cuda_array_interface__", None)
    if cai is None:
        host = np.asarray(array)
        return host.dtype, host.shape, host.strides, not host.flags.writeable
    dtype, shape = np.dtype(cai["typestr"]), tuple(cai["shape"])
    strides = cai.get("strides") or tuple(
        int(np.prod(shape[k + 1:], dtype=np.int64)) * dtype.itemsize for k in range(len(shape)))
    return dtype, shape, tuple(strides), bool(cai["data"][1])


def _layout(shape: tuple[int, ...], strides: tuple[int, ...], itemsize: int) -> str:
    step = itemsize
    for extent, stride in zip(reversed(shape), reversed(strides)):
        if extent > 1 and stride != step:
            return "A"
        step *= extent
    return "C"


def flatten(args: Sequence[Any], members: Sequence[tuple[str, ...] | None]
            ) -> tuple[tuple[Any, ...], list[Param]]:
    """The numba types of ``args`` and their kernel parameters; ``members[i]``
    lists the used members of argument ``i`` when it is a collection view."""
    types: list[Any] = []
    params: list[Param] = []
    for value, used in zip(args, members):
        if used is not None:
            _view(value, used, types, params)
        elif isinstance(value, (bool, np.bool_)):
            types.append(_scalar_type(np.dtype(np.bool_)))
            params.append(("?", bool(value)))
        elif isinstance(value, int):
            types.append(_scalar_type(np.dtype(np.int64)))
            params.append((_INT, value))
        elif isinstance(value, float):
            types.append(_scalar_type(np.dtype(np.float64)))
            params.append(("d", value))
        elif isinstance(value, np.generic):
            types.append(_scalar_type(value.dtype))
            params.append((value.dtype.char if value.dtype.char != "l" else _INT, value.item()))
        else:
            dtype, shape, strides, readonly = _interface(value)
            types.append(_array_type(dtype, len(shape), _layout(shape, strides, dtype.itemsize),
                                     readonly))
            params += _array_params(address(value), shape, strides, dtype.itemsize)
    return tuple(types), params


def _scalar_type(dtype: np.dtype) -> Any:
    from numba.cuda.np import numpy_support
    return numpy_support.from_dtype(dtype)


def _view(view: Any, used: tuple[str, ...], types: list[Any], params: list[Param]) -> None:
    """A view's used members, each an array into the collection's buffer, then
    the collection's size and capacity."""
    collection = view.collection
    n, base = collection.size, address(collection.buffer)
    geometry = collection.layout.geometry(collection.capacity)
    for name in used:
        g = geometry[name]
        isz = g.itemsize
        shape: tuple[int, ...]
        strides: tuple[int, ...]
        if g.kind == "scalar":
            shape, strides = (1,), (isz,)
        elif g.kind == "column":
            shape, strides = (n,), (isz,)
        elif g.kind == "vector":
            shape, strides = (n, g.rows), (isz, g.pitch_bytes)
        else:
            shape, strides = (n, g.rows, g.cols), (isz, g.pitch_bytes, g.rows * g.pitch_bytes)
        types.append(_array_type(g.dtype, len(shape), "C" if len(shape) == 1 else "A",
                                 view.readonly))
        params += _array_params(base + g.offset, shape, strides, isz)
    types += [_scalar_type(np.dtype(np.int64))] * 2
    params += [(_INT, n), (_INT, collection.capacity)]


def pack(layout: Sequence[KernelArg], params: Sequence[Param], kernel: str) -> bytes:
    """The kernel argument buffer: each parameter at its metadata offset; a
    :class:`LaunchError` if the parameters do not match the layout.

    Example::

        >>> pack([KernelArg(0, 8, "by_value"), KernelArg(8, 4, "by_value")],
        ...      [("q", 7), ("f", 1.5)], "k").hex()
        '07000000000000000000c03f00000000'
    """
    explicit = [a for a in layout if not a.kind.startswith("hidden_")]
    if len(explicit) != len(params):
        raise LaunchError(f"kernel {kernel}: the code object takes {len(explicit)} argument "
                          f"words but the launch built {len(params)}")
    end = max((a.offset + a.size for a in explicit), default=0)
    buffer = bytearray((end + 7) // 8 * 8)
    for arg, (fmt, value) in zip(explicit, params):
        if struct.calcsize(fmt) != arg.size:
            raise LaunchError(f"kernel {kernel}: the argument at byte {arg.offset} is "
                              f"{arg.size} bytes in the code object but {struct.calcsize(fmt)} "
                              f"in the launch")
        struct.pack_into("<" + fmt, buffer, arg.offset, value)
    return bytes(buffer)
