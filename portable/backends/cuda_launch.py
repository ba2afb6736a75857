"""Fast kernel launches for the ``cuda`` backend.

numba-cuda's launch path re-derives every argument's type and rebuilds its
launch configuration on each call (tens of microseconds). A portable launch
instead marshals the common argument kinds itself — numba device arrays,
anything with ``__cuda_array_interface__`` (torch tensors, CuPy arrays), and
Python or NumPy scalars — into exactly the parameter list numba's compiled
kernel expects, and hands it to ``cuda.core.launch`` with a cached
configuration and kernel handle. Other arguments (tuples, records) take
numba's own path.

The array ABI of a numba kernel parameter is ``meminfo, parent, nitems,
itemsize, data, *shape, *strides`` (strides in bytes); scalars are ctypes
values of their type.
"""
from __future__ import annotations

import ctypes
from typing import Any, Sequence

import numpy as np

_SCALAR_CTYPES = {
    np.dtype(np.int8): ctypes.c_int8, np.dtype(np.int16): ctypes.c_int16,
    np.dtype(np.int32): ctypes.c_int32, np.dtype(np.int64): ctypes.c_int64,
    np.dtype(np.uint8): ctypes.c_uint8, np.dtype(np.uint16): ctypes.c_uint16,
    np.dtype(np.uint32): ctypes.c_uint32, np.dtype(np.uint64): ctypes.c_uint64,
    np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double,
}
_INT64_RANGE = range(-(2**63), 2**63)


class Marshaller:
    """Turns launch arguments into numba types and kernel parameters."""

    def __init__(self) -> None:
        from numba.cuda.cudadrv.devicearray import DeviceNDArray
        from numba.cuda.typing.typeof import Purpose, _typeof_cuda_array_interface, typeof
        self._device_array = DeviceNDArray
        self._typeof_cai = _typeof_cuda_array_interface
        self._typeof = lambda value: typeof(value, Purpose.argument)
        self._python_types = {int: self._typeof(1), float: self._typeof(1.0),
                              bool: self._typeof(True)}
        self._dtype_types: dict[np.dtype, Any] = {}
        self._member_types: dict[tuple[Any, str, bool], Any] = {}

    def marshal(self, args: Sequence[Any], members: Sequence[tuple[str, ...] | None]
                ) -> tuple[tuple[Any, ...], list[Any]] | None:
        """``(numba types, kernel parameters)``, or ``None`` if some argument
        needs numba's own launch path. ``members[i]`` lists the members the
        kernel uses of argument ``i`` when that argument is a collection view."""
        types, params = [], []
        for value, used in zip(args, members):
            kind = type(value)
            if used is not None:
                self._view(value, used, types, params)
            elif kind is self._device_array or isinstance(value, self._device_array):
                types.append(value._numba_type_)
                params += (0, 0, value.size, value.dtype.itemsize,
                           value.device_ctypes_pointer.value or 0, *value.shape,
                           *value.strides)
            elif kind is int:
                if value not in _INT64_RANGE:
                    return None
                types.append(self._python_types[int])
                params.append(ctypes.c_int64(value))
            elif kind is float:
                types.append(self._python_types[float])
                params.append(ctypes.c_double(value))
            elif kind is bool:
                types.append(self._python_types[bool])
                params.append(value)
            elif isinstance(value, np.generic):
                ctype = _SCALAR_CTYPES.get(value.dtype)
                if ctype is None:
                    return None
                found = self._dtype_types.get(value.dtype)
                if found is None:
                    found = self._dtype_types[value.dtype] = self._typeof(value)
                types.append(found)
                params.append(ctype(value))
            else:
                cai = getattr(value, "__cuda_array_interface__", None)
                if cai is None or cai.get("mask") is not None:
                    return None
                types.append(self._typeof_cai(cai, None))
                params += _cai_params(cai)
        return tuple(types), params


    def _view(self, view: Any, used: tuple[str, ...], types: list[Any],
              params: list[Any]) -> None:
        """A view's used members, each an array parameter pointing into the
        collection's buffer, then its size and capacity."""
        collection = view.collection
        layout, n = collection.layout, collection.size
        geometry = layout.geometry(collection.capacity)
        base = collection.buffer.device_ctypes_pointer.value or 0
        for name in used:
            g = geometry[name]
            key = (layout, name, view.readonly)
            found = self._member_types.get(key)
            if found is None:
                found = self._member_types[key] = _member_type(g, view.readonly)
            types.append(found)
            isz = g.itemsize
            if g.kind == "scalar":
                params += (0, 0, 1, isz, base + g.offset, 1, isz)
            elif g.kind == "column":
                params += (0, 0, n, isz, base + g.offset, n, isz)
            elif g.kind == "vector":
                params += (0, 0, n * g.rows, isz, base + g.offset, n, g.rows, isz,
                           g.pitch_bytes)
            else:
                params += (0, 0, n * g.rows * g.cols, isz, base + g.offset, n, g.rows,
                           g.cols, isz, g.pitch_bytes, g.rows * g.pitch_bytes)
        types += (self._python_types[int], self._python_types[int])
        params += (ctypes.c_int64(n), ctypes.c_int64(collection.capacity))


def _member_type(g: Any, readonly: bool) -> Any:
    """The numba type of a collection member's array: C-contiguous for columns
    and scalars, strided for vectors and matrices."""
    from numba.cuda import types
    from numba.cuda.np import numpy_support
    ndim = {"scalar": 1, "column": 1, "vector": 2, "matrix": 3}[g.kind]
    layout = "C" if ndim == 1 else "A"
    return types.Array(numpy_support.from_dtype(g.dtype), ndim, layout, readonly=readonly)


def _cai_params(cai: dict[str, Any]) -> list[Any]:
    shape = tuple(cai["shape"])
    itemsize = np.dtype(cai["typestr"]).itemsize
    strides = cai.get("strides")
    if strides is None:  # C-contiguous
        strides, step = [], itemsize
        for extent in reversed(shape):
            strides.append(step)
            step *= extent
        strides = strides[::-1]
    size = 1
    for extent in shape:
        size *= extent
    return [0, 0, size, itemsize, cai["data"][0] or 0, *shape, *strides]


class LaunchCache:
    """Per compiled kernel and device: the kernel handle; per grid: the config."""

    def __init__(self) -> None:
        from cuda.core import LaunchConfig, launch
        self.launch, self._config_type = launch, LaunchConfig
        self._handles: dict[tuple[int, int], Any] = {}
        self._configs: dict[tuple[Any, Any], Any] = {}

    def handle(self, compiled: Any, device_index: int) -> Any:
        key = (id(compiled), device_index)
        found = self._handles.get(key)
        if found is None:
            found = self._handles[key] = (compiled, compiled._codelibrary.get_cufunc().kernel)
        return found[1]

    def config(self, grid: tuple[int, ...], block: tuple[int, ...]) -> Any:
        found = self._configs.get((grid, block))
        if found is None:
            found = self._configs[(grid, block)] = self._config_type(grid=grid, block=block,
                                                                     shmem_size=0)
        return found
