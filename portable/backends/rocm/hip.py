"""The HIP runtime, through AMD's Python bindings (``rocm-bindings-hip``).

Only what the ``rocm`` backend needs: devices, memory, streams, events, code
objects and launches. Every call's status is checked; a failure is a
:class:`~portable.errors.BackendError` naming the call and HIP's error.

This module runs only where ``libamdhip64.so`` and an AMD GPU are present
(``pytest -m rocm`` on such a machine exercises it); elsewhere :func:`problem`
says why not.
"""
from __future__ import annotations

import ctypes
import functools
from typing import Any

import numpy as np

from ...errors import BackendError

#: hipMemcpyKind: the runtime works out the direction from the addresses
MEMCPY_DEFAULT = 4
STREAM_NON_BLOCKING = 1
EVENT_DISABLE_TIMING = 2
HOST_MALLOC_DEFAULT = 0


@functools.cache
def runtime() -> Any:
    """The bindings' ``hip`` module (the HIP runtime is loaded at its first call)."""
    from rocm.bindings import hip
    return hip


def problem() -> str | None:
    """Why no HIP device can be used here, or ``None`` when one can.

    Example::

        >>> problem() is None or isinstance(problem(), str)
        True
    """
    try:
        hip = runtime()
    except ImportError:
        return ("the HIP Python bindings are not installed: install the 'rocm' extra "
                "(pip install 'hep-portable-kernels[rocm]')")
    try:
        status, count = hip.hipGetDeviceCount()
    except RuntimeError as err:  # the bindings load libamdhip64.so at the first call
        if "libamdhip64" in str(err):
            return "the HIP runtime (libamdhip64.so, part of ROCm) is not installed"
        return f"the HIP runtime cannot be loaded ({' '.join(str(err).split())})"
    if status != hip.hipError_t.hipSuccess:
        return f"hipGetDeviceCount answers {_name(status)}"
    if count == 0:
        return "no AMD GPU is visible"
    return None


def _name(err: Any) -> str:
    return getattr(err, "name", str(err))


def call(name: str, *args: Any) -> Any:
    """``hip.<name>(*args)``: its result after the status, or a BackendError."""
    hip = runtime()
    result = getattr(hip, name)(*args)
    err, rest = (result[0], result[1:]) if isinstance(result, tuple) else (result, ())
    if err != hip.hipError_t.hipSuccess:
        raise BackendError(f"{name} failed: {_name(err)}")
    return rest[0] if len(rest) == 1 else rest


class HipArray:
    """An array in AMD GPU memory, described by ``__cuda_array_interface__`` (which
    PyTorch's ROCm builds read too). ``owner`` keeps the allocation alive; the
    allocation is freed when no array uses it."""

    __array_priority__ = -1.0

    def __init__(self, pointer: int, shape: tuple[int, ...], strides: tuple[int, ...],
                 dtype: np.dtype, owner: Any, readonly: bool = False) -> None:
        self.pointer, self.shape, self.strides = pointer, tuple(shape), tuple(strides)
        self.dtype, self.owner, self.readonly = np.dtype(dtype), owner, readonly

    @classmethod
    def empty(cls, shape: tuple[int, ...], dtype: np.dtype) -> HipArray:
        dtype = np.dtype(dtype)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        allocation = DeviceAllocation(nbytes)
        strides = tuple(int(np.prod(shape[k + 1:], dtype=np.int64)) * dtype.itemsize
                        for k in range(len(shape)))
        return cls(allocation.pointer, shape, strides, dtype, allocation)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def contiguous(self) -> bool:
        step = self.dtype.itemsize
        for extent, stride in zip(reversed(self.shape), reversed(self.strides)):
            if extent > 1 and stride != step:
                return False
            step *= extent
        return True

    @property
    def __cuda_array_interface__(self) -> dict[str, Any]:
        return {"version": 3, "shape": self.shape, "strides": self.strides,
                "typestr": self.dtype.str, "data": (self.pointer, self.readonly)}

    def view(self, offset: int, shape: tuple[int, ...], strides: tuple[int, ...],
             dtype: np.dtype, readonly: bool = False) -> HipArray:
        """An array ``offset`` bytes into this one, sharing its memory."""
        return HipArray(self.pointer + offset, shape, strides, dtype, self.owner,
                        readonly or self.readonly)

    def __repr__(self) -> str:
        return f"<HipArray {self.shape} {self.dtype} at 0x{self.pointer:x}>"


class DeviceAllocation:
    """``hipMalloc``'d memory, freed with the object."""

    def __init__(self, nbytes: int) -> None:
        self.nbytes = nbytes
        self._memory = call("hipMalloc", max(nbytes, 1))
        self.pointer = int(self._memory)

    def __del__(self) -> None:
        try:
            runtime().hipFree(self._memory)
        except Exception:  # interpreter shutdown: the runtime frees everything
            pass


def pinned_array(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A NumPy array in page-locked host memory (``hipHostMalloc``), freed with its
    last view."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    allocation = PinnedAllocation(nbytes)
    raw = (ctypes.c_byte * max(nbytes, 1)).from_address(allocation.pointer)
    raw._owner = allocation  # type: ignore[attr-defined]  # the buffer keeps it alive
    return np.ctypeslib.as_array(raw).view(np.uint8)[:nbytes].view(dtype).reshape(shape)


class PinnedAllocation:
    """``hipHostMalloc``'d memory, freed with the object."""

    def __init__(self, nbytes: int) -> None:
        self._memory = call("hipHostMalloc", max(nbytes, 1), HOST_MALLOC_DEFAULT)
        self.pointer = int(self._memory)

    def __del__(self) -> None:
        try:
            runtime().hipHostFree(self._memory)
        except Exception:  # interpreter shutdown: the runtime frees everything
            pass
