"""DLPack export of device arrays (``__dlpack__`` / ``__dlpack_device__``).

A :class:`DLPackExport` wraps an array described by ``__cuda_array_interface__``
and hands consumers (``torch.from_dlpack``, ``np.from_dlpack``...) a
``"dltensor"`` capsule holding a ``DLManagedTensor`` with the backend's device
type (``kDLROCM`` = 10 for AMD GPUs). The shape, strides (in elements) and the
exporter itself stay alive until the consumer calls the tensor's deleter, or,
when no consumer took it, until the capsule is destroyed.

Example (host memory, device type ``kDLCPU``, read back by NumPy)::

    >>> import numpy as np
    >>> host = np.arange(6.0).reshape(2, 3)[:, ::2]
    >>> np.from_dlpack(DLPackExport(host, device_type=1, device_id=0)).tolist()
    [[0.0, 2.0], [3.0, 5.0]]
"""
from __future__ import annotations

import ctypes
from typing import Any

import numpy as np

_DTYPE_CODES = {"i": 0, "u": 1, "f": 2, "c": 5, "b": 6}  # kDLInt, kDLUInt, kDLFloat, ...


class _Device(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class _DataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class _Tensor(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("device", _Device), ("ndim", ctypes.c_int32),
                ("dtype", _DataType), ("shape", ctypes.POINTER(ctypes.c_int64)),
                ("strides", ctypes.POINTER(ctypes.c_int64)), ("byte_offset", ctypes.c_uint64)]


class _ManagedTensor(ctypes.Structure):
    pass


_DELETER = ctypes.CFUNCTYPE(None, ctypes.POINTER(_ManagedTensor))
_ManagedTensor._fields_ = [("dl_tensor", _Tensor), ("manager_ctx", ctypes.c_void_p),
                           ("deleter", _DELETER)]
_CAPSULE_DESTRUCTOR = ctypes.CFUNCTYPE(None, ctypes.c_void_p)  # a dying object: no refs

_py = ctypes.pythonapi
_py.PyCapsule_New.restype = ctypes.py_object
_py.PyCapsule_New.argtypes = [ctypes.c_void_p, ctypes.c_char_p, _CAPSULE_DESTRUCTOR]
_py.PyCapsule_IsValid.restype = ctypes.c_int
_py.PyCapsule_IsValid.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
_py.PyCapsule_GetPointer.restype = ctypes.c_void_p
_py.PyCapsule_GetPointer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]

#: what each exported tensor keeps alive, by the address of its DLManagedTensor
_ALIVE: dict[int, tuple[Any, ...]] = {}


@_DELETER
def _delete(managed: Any) -> None:
    _ALIVE.pop(ctypes.addressof(managed.contents), None)


@_CAPSULE_DESTRUCTOR
def _destroy_capsule(capsule: Any) -> None:
    """A capsule no consumer took (still named "dltensor") frees its tensor."""
    if _py.PyCapsule_IsValid(capsule, b"dltensor"):
        _ALIVE.pop(_py.PyCapsule_GetPointer(capsule, b"dltensor"), None)


class DLPackExport:
    """``array`` (anything with ``__cuda_array_interface__``, or a NumPy array)
    exported through DLPack as memory of ``device_type`` / ``device_id``."""

    def __init__(self, array: Any, device_type: int, device_id: int) -> None:
        cai = getattr(array, "__cuda_array_interface__", None)
        if cai is None:
            cai = np.asarray(array).__array_interface__
        self.array, self.device = array, (device_type, device_id)
        self.dtype = np.dtype(cai["typestr"])
        self.shape = tuple(int(n) for n in cai["shape"])
        item = self.dtype.itemsize
        strides = cai.get("strides") or tuple(
            int(np.prod(self.shape[k + 1:], dtype=np.int64)) * item for k in range(len(self.shape)))
        if any(s % item for s in strides):
            raise ValueError(f"strides {strides} are not whole elements of {self.dtype}")
        self.strides = tuple(s // item for s in strides)
        self.pointer = int(cai["data"][0] or 0)

    def __dlpack_device__(self) -> tuple[int, int]:
        return self.device

    def __dlpack__(self, stream: Any = None, **options: Any) -> Any:
        """A ``"dltensor"`` capsule (``stream`` and DLPack 1.0 options are accepted
        and ignored: the producer's work is ordered by its queue)."""
        ndim = len(self.shape)
        shape = (ctypes.c_int64 * max(ndim, 1))(*self.shape)
        strides = (ctypes.c_int64 * max(ndim, 1))(*self.strides)
        managed = _ManagedTensor()
        tensor = managed.dl_tensor
        tensor.data, tensor.ndim, tensor.byte_offset = self.pointer, ndim, 0
        tensor.device = _Device(*self.device)
        tensor.dtype = _DataType(_DTYPE_CODES[self.dtype.kind], self.dtype.itemsize * 8, 1)
        tensor.shape = ctypes.cast(shape, ctypes.POINTER(ctypes.c_int64))
        tensor.strides = ctypes.cast(strides, ctypes.POINTER(ctypes.c_int64))
        managed.deleter = _delete
        address = ctypes.addressof(managed)
        _ALIVE[address] = (managed, shape, strides, self)
        return _py.PyCapsule_New(address, b"dltensor", _destroy_capsule)
