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
itemsize, data, *shape, *strides`` (strides in bytes); Python ints and floats
go as they are (``cuda.core`` passes them as 64-bit values), NumPy scalars as
ctypes values of their type.
"""
from __future__ import annotations

import ctypes
import threading
import weakref
from typing import Any, Callable, Sequence

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
    """Turns launch arguments into kernel parameters and a signature: one small
    int per argument standing for its numba type. Each kind of argument finds its
    code in a cache keyed by what decides its type (dtype, shape and strides), so
    a launch with arguments seen before builds no numba type and hashes none."""

    def __init__(self) -> None:
        from numba.cuda.cudadrv.devicearray import DeviceNDArray
        from numba.cuda.typing.typeof import Purpose, _typeof_cuda_array_interface, typeof
        self._new_code = threading.Lock()  # host threads meet new types together
        self._device_array = DeviceNDArray
        self._typeof_cai = _typeof_cuda_array_interface
        self._typeof = lambda value: typeof(value, Purpose.argument)
        #: numba type of each code, and code of each numba type
        self.types: list[Any] = []
        self._codes: dict[Any, int] = {}
        self._int, self._float, self._bool = (self.code(self._typeof(v)) for v in (1, 1.0, True))
        #: (code, itemsize) per array key; code per scalar dtype and per view member
        self._arrays: dict[tuple[Any, ...], tuple[int, int]] = {}
        self._scalars: dict[np.dtype, int] = {}
        self._members: dict[tuple[Any, str, bool], int] = {}
        #: per numba device array (by id, checked through a weak reference): its code
        #: and parameters, which cannot change (its shape, strides and memory are fixed)
        self._seen: dict[int, tuple[weakref.ref[Any], int, tuple[Any, ...]]] = {}

    def code(self, numba_type: Any) -> int:
        """The code standing for ``numba_type``."""
        found = self._codes.get(numba_type)
        if found is None:
            with self._new_code:
                found = self._codes.get(numba_type)
                if found is None:
                    self.types.append(numba_type)
                    found = self._codes[numba_type] = len(self.types) - 1
        return found

    def _array(self, key: tuple[Any, ...], dtype: Any, typeof: Callable[[], Any]
               ) -> tuple[int, int]:
        """The (code, itemsize) of an array kind not seen before (``typeof`` types it)."""
        if len(self._arrays) > 4096:  # shapes that vary with the data: keep it small
            self._arrays.clear()
        found = self._arrays[key] = (self.code(typeof()), np.dtype(dtype).itemsize)
        return found

    def _device_params(self, value: Any, kind: type) -> tuple[Any, int, tuple[Any, ...]]:
        """The code and kernel parameters of a numba device array, remembered."""
        shape, strides = value.shape, value.strides
        key = (kind, value.dtype, shape, strides)
        code, itemsize = self._arrays.get(key) or self._array(key, value.dtype,
                                                              lambda: value._numba_type_)
        params = (0, 0, value.size, itemsize, value.device_ctypes_pointer.value or 0, *shape,
                  *strides)
        if len(self._seen) > 4096:  # arrays made and dropped: keep it small
            self._seen.clear()
        seen = self._seen[id(value)] = (weakref.ref(value), code, params)
        return seen

    def marshal(self, args: Sequence[Any], members: Sequence[tuple[str, ...] | None]
                ) -> tuple[tuple[int, ...], list[Any]] | None:
        """``(signature, kernel parameters)``, or ``None`` if some argument needs
        numba's own launch path. ``members[i]`` lists the members the kernel uses
        of argument ``i`` when that argument is a collection view."""
        codes: list[int] = []
        params: list[Any] = []
        for value, used in zip(args, members):
            kind = type(value)
            if used is not None:
                self._view(value, used, codes, params)
            elif kind is self._device_array or isinstance(value, self._device_array):
                seen = self._seen.get(id(value))
                if seen is None or seen[0]() is not value:
                    seen = self._device_params(value, kind)
                codes.append(seen[1])
                params += seen[2]
            elif kind is int:
                if value not in _INT64_RANGE:
                    return None
                codes.append(self._int)
                params.append(value)  # a Python int is passed as 64 bits
            elif kind is float:
                codes.append(self._float)
                params.append(value)  # a Python float is passed as a double
            elif kind is bool:
                codes.append(self._bool)
                params.append(value)
            elif isinstance(value, np.generic):
                ctype = _SCALAR_CTYPES.get(value.dtype)
                if ctype is None:
                    return None
                found_code = self._scalars.get(value.dtype)
                if found_code is None:
                    found_code = self._scalars[value.dtype] = self.code(self._typeof(value))
                codes.append(found_code)
                params.append(ctype(value))  # type: ignore[arg-type]  # ctypes takes NumPy scalars
            else:
                cai = getattr(value, "__cuda_array_interface__", None)
                if cai is None or cai.get("mask") is not None:
                    return None
                strides = cai.get("strides")
                key = (cai["typestr"], tuple(cai["shape"]),
                       None if strides is None else tuple(strides), bool(cai["data"][1]))
                found = self._arrays.get(key) or self._array(
                    key, cai["typestr"], lambda: self._typeof_cai(cai, None))
                codes.append(found[0])
                params += _cai_params(cai, found[1])
        return tuple(codes), params

    def _view(self, view: Any, used: tuple[str, ...], codes: list[int],
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
            found = self._members.get(key)
            if found is None:
                found = self._members[key] = self.code(_member_type(g, view.readonly))
            codes.append(found)
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
        codes += (self._int, self._int)
        params += (n, collection.capacity)


def _member_type(g: Any, readonly: bool) -> Any:
    """The numba type of a collection member's array: C-contiguous for columns
    and scalars, strided for vectors and matrices."""
    from numba.cuda import types
    from numba.cuda.np import numpy_support
    ndim = {"scalar": 1, "column": 1, "vector": 2, "matrix": 3}[g.kind]
    layout = "C" if ndim == 1 else "A"
    return types.Array(numpy_support.from_dtype(g.dtype), ndim, layout,  # type: ignore[attr-defined]
                       readonly=readonly)


def _cai_params(cai: dict[str, Any], itemsize: int) -> list[Any]:
    shape = tuple(cai["shape"])
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


class Launcher:
    """Launches compiled kernels through ``cuda.core``: per kernel dispatcher,
    argument signature, work division and device, the kernel handle and launch
    configuration are looked up once and kept."""

    def __init__(self, gpus: Any, several_devices: bool) -> None:
        from cuda.core import LaunchConfig, launch
        self._launch, self._config_type = launch, LaunchConfig
        self.marshaller = Marshaller()
        self._gpus, self._several_devices = gpus, several_devices
        self._compiled: dict[tuple[int, tuple[int, ...]], Any] = {}
        self._entries: dict[tuple[Any, ...], tuple[Any, Any]] = {}
        #: numba-cuda compiles and loads a kernel's module unguarded: two host threads
        #: launching a new kernel together would load it twice and corrupt its cache
        self._first_launch = threading.Lock()

    def launch(self, queue: Any, workdiv: Any, dispatcher: Any,
               members: Sequence[tuple[str, ...] | None], args: Sequence[Any]) -> bool:
        """Launch ``dispatcher``'s kernel for ``args`` on ``queue``; ``False`` (nothing
        launched) if some argument needs numba's own launch path. Compiling may raise
        numba's errors."""
        marshalled = self.marshaller.marshal(args, members)
        if marshalled is None:
            return False
        codes, params = marshalled
        index = queue.device.index
        key = (id(dispatcher), codes, workdiv, index)
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entry(key, dispatcher)
        stream = queue.backend_cache.get("launch_stream")
        if stream is None:
            from numba.cuda.cudadrv.driver import _to_core_stream  # type: ignore[attr-defined]
            stream = queue.backend_cache["launch_stream"] = _to_core_stream(queue.native)
        if self._several_devices:
            with self._gpus[index]:
                self._launch(stream, entry[1], entry[0], *params)
        else:
            self._launch(stream, entry[1], entry[0], *params)
        return True

    def _entry(self, key: tuple[Any, ...], dispatcher: Any) -> tuple[Any, Any]:
        """The kernel handle and launch configuration for ``key``, compiling the
        kernel for the signature's types at the first launch."""
        _, codes, workdiv, index = key
        with self._first_launch:
            compiled = self._compiled.get(key[:2])
            if compiled is None:
                types = tuple(self.marshaller.types[code] for code in codes)
                compiled = self._compiled[key[:2]] = (dispatcher, dispatcher.compile(types))
            with self._gpus[index]:
                handle = compiled[1]._codelibrary.get_cufunc().kernel
        config = self._config_type(grid=workdiv.blocks[::-1], block=workdiv.threads[::-1],
                                   shmem_size=0)
        if len(self._entries) > 4096:  # work divisions that vary with the data
            self._entries.clear()
        entry = self._entries[key] = (handle, config)
        return entry
