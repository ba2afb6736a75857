"""Memory: device and host buffers, queue-ordered copies and zero-copy views.

Buffers are the backend's own arrays, so they interoperate with everything
that knows them: NumPy arrays on the CPU backends, numba device arrays on
CUDA (which expose ``__cuda_array_interface__``).
"""
from __future__ import annotations

import contextlib
import math
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from .backend import Backend, all_backends
from .device import Device
from .checks import describe, expect_device, expect_flag, expect_queue
from .errors import ArgumentError, BackendError, PortableError
from .queue import Queue


#: dtype kinds a kernel can take: bool, signed and unsigned integers, floats, complex
NUMERIC_KINDS = "biufc"


def _shape(shape: Any, where: str) -> tuple[int, ...]:
    dims = (shape,) if isinstance(shape, (int, np.integer)) else shape
    if not isinstance(dims, (tuple, list)) or any(
            isinstance(d, (bool, np.bool_)) or not isinstance(d, (int, np.integer)) or d < 0
            for d in dims):
        raise ArgumentError(f"{where}: argument 'shape' must be a non-negative integer or a "
                            f"tuple of them, got {describe(shape)}")
    return tuple(int(d) for d in dims)


def request_bytes(dims: tuple[int, ...], dtype: np.dtype, where: str) -> int:
    """The bytes an array of ``dims`` and ``dtype`` takes; an :class:`ArgumentError`
    for a request larger than any address space.

    Example::

        >>> import numpy as np
        >>> request_bytes((10, 3), np.dtype(np.float32), "pt.alloc_buffer")
        120
    """
    nbytes = math.prod(dims) * dtype.itemsize
    if nbytes >= 2**63:
        raise ArgumentError(f"{where}: shape {dims} of {dtype} would take {nbytes} bytes, "
                            f"more than any machine can address")
    return nbytes


def address_of(array: Any) -> int:
    """The address of an array's first byte: a host array's, a GPU array's (through
    ``__cuda_array_interface__``) or the CUDA simulator's (a NumPy array inside).

    Example::

        >>> import numpy as np
        >>> a = np.zeros(4)
        >>> address_of(a[1:]) - address_of(a)
        8
    """
    interface = getattr(array, "__cuda_array_interface__", None)
    if interface is not None:
        return int(interface["data"][0] or 0)
    return int(array.ctypes.data)


def aligned_bytes(allocate: Callable[[int], Any], nbytes: int, alignment: int, *,
                  exact_first: bool) -> tuple[Any, int]:
    """A byte buffer from ``allocate(size)`` and the offset in it where ``nbytes`` bytes
    start on ``alignment``. With ``exact_first`` (memory that usually comes aligned:
    device and page-locked memory) ``nbytes`` are asked for first, and more only if
    they come off; otherwise room to align is asked for at once.

    Example::

        >>> import numpy as np
        >>> raw, start = aligned_bytes(lambda n: np.empty(n, np.uint8), 100, 64,
        ...                            exact_first=False)
        >>> (address_of(raw) + start) % 64, raw.size - start >= 100
        (0, True)
    """
    if exact_first:
        raw = allocate(nbytes)
        if address_of(raw) % alignment == 0:
            return raw, 0
    raw = allocate(nbytes + alignment - 1)
    return raw, -address_of(raw) % alignment


@contextlib.contextmanager
def _sized(where: str, dims: tuple[int, ...], dtype: np.dtype, place: str) -> Iterator[None]:
    """Refuse a request larger than any address space, and name the request when the
    allocation inside the block fails for want of memory."""
    nbytes = request_bytes(dims, dtype, where)
    try:
        yield
    except (MemoryError, ValueError) as err:
        raise PortableError(f"{where}: cannot allocate shape {dims} of {dtype} "
                            f"({nbytes / 2**30:.3g} GiB) on {place}: {err}") from None


def buffer_dtype(dtype: Any, where: str) -> np.dtype:
    """``dtype`` as a NumPy dtype that kernels can take (numbers in the machine's byte
    order), else an :class:`ArgumentError` naming it.

    Example::

        >>> import numpy as np
        >>> buffer_dtype("float32", "pt.alloc_buffer")
        dtype('float32')
        >>> buffer_dtype(object, "pt.alloc_buffer")
        Traceback (most recent call last):
        ...
        portable.errors.ArgumentError: pt.alloc_buffer: argument 'dtype' is object, which no kernel can take; use a number type: bool, an integer, a float or a complex type
    """
    if dtype is None:
        raise ArgumentError(f"{where}: argument 'dtype' is None; name the element type, "
                            f"e.g. np.float32")
    try:
        dt = np.dtype(dtype)
    except TypeError as err:
        raise ArgumentError(f"{where}: argument 'dtype' {dtype!r} is not a data type "
                            f"({err})") from None
    if dt.kind not in NUMERIC_KINDS or dt.fields is not None or dt.subdtype is not None:
        raise ArgumentError(f"{where}: argument 'dtype' is {dt}, which no kernel can take; "
                            f"use a number type: bool, an integer, a float or a complex type")
    if not dt.isnative:
        raise ArgumentError(f"{where}: argument 'dtype' {dt.str!r} is not in this machine's "
                            f"byte order; use {dt.newbyteorder('=').str!r}")
    return dt


def alloc_buffer(device: Device, shape: int | Sequence[int], dtype: Any = np.float64) -> Any:
    """An uninitialised buffer of ``shape`` and ``dtype`` on ``device``.

    Example::

        >>> import numpy as np, portable as pt
        >>> buf = pt.alloc_buffer(pt.get_device("cpu_serial"), (2, 3), np.float32)
        >>> buf.shape, buf.dtype
        ((2, 3), dtype('float32'))
    """
    where = "pt.alloc_buffer"
    device = expect_device(device, "device", where)
    dims, dt = _shape(shape, where), buffer_dtype(dtype, where)
    with _sized(where, dims, dt, str(device)):
        return device.backend.alloc(device, dims, dt)


def alloc_host_buffer(shape: int | Sequence[int], dtype: Any = np.float64,
                      pinned: bool = False) -> np.ndarray:
    """An uninitialised NumPy array in host memory, page-locked if ``pinned``.

    Pinned memory makes host<->GPU copies faster and truly asynchronous; it
    needs the ``cuda`` backend.

    Example::

        >>> import numpy as np, portable as pt
        >>> pt.alloc_host_buffer(3, np.int64).shape
        (3,)
    """
    where = "pt.alloc_host_buffer"
    dims, dt = _shape(shape, where), buffer_dtype(dtype, where)
    pinned = expect_flag(pinned, "pinned", where)
    with _sized(where, dims, dt, "pinned host memory" if pinned else "the host"):
        if not pinned:
            return np.empty(dims, dt)
        return _pinning_backend(where).alloc_pinned(dims, dt)


def _pinning_backend(where: str) -> Backend:
    """The first backend that can run here and allocates page-locked host memory."""
    for backend in all_backends():
        if backend.pinned_host_memory and backend.available:
            return backend
    raise BackendError(f"{where}: argument 'pinned' asks for page-locked host memory, which "
                       f"only a GPU backend allocates, and none can run here; leave pinned out")


def _native(obj: Any, arg: str, where: str) -> Any:
    """The array behind ``obj`` (a NumPy array, a device array, a torch tensor...),
    else an :class:`ArgumentError` naming ``arg``."""
    if isinstance(obj, np.ndarray):
        return obj
    if not isinstance(obj, (str, bytes, list, tuple, dict, int, float, complex, type(None))):
        for backend in _probed_in_turn():
            view = backend.as_array(obj)
            if view is not None:
                return view
    fix = "; make an array of it first with np.asarray(...)" if isinstance(
        obj, (list, tuple)) else ""
    raise ArgumentError(f"{where}: argument {arg!r} must be an array (a buffer from "
                        f"pt.alloc_buffer, a NumPy array, a device array or a tensor), got "
                        f"{describe(obj)}{fix}")


def _writable(array: Any, arg: str, where: str) -> None:
    if isinstance(array, np.ndarray) and not array.flags.writeable:
        raise ArgumentError(f"{where}: argument {arg!r} is a read-only array; pass a "
                            f"writeable buffer")


def _check_same_layout(dst: Any, src: Any, what: str) -> None:
    if tuple(dst.shape) != tuple(src.shape) or np.dtype(dst.dtype) != np.dtype(src.dtype):
        raise PortableError(
            f"{what}: dst is {tuple(dst.shape)} {np.dtype(dst.dtype)} but src is "
            f"{tuple(src.shape)} {np.dtype(src.dtype)}; both must have the same "
            f"shape and dtype")

def memcpy(queue: Queue, dst: Any, src: Any) -> None:
    """Copy ``src`` into ``dst``, ordered on ``queue`` (host<->device or within a device).

    Example::

        >>> import numpy as np, portable as pt
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> dst = pt.alloc_buffer(q.device, 3, np.int32)
        >>> pt.memcpy(q, dst, np.arange(3, dtype=np.int32)); dst.tolist()
        [0, 1, 2]
    """
    where = "pt.memcpy"
    queue = expect_queue(queue, "queue", where)
    dst, src = _native(dst, "dst", where), _native(src, "src", where)
    _writable(dst, "dst", where)
    _check_same_layout(dst, src, "memcpy")
    queue.backend.memcpy(queue, dst, src)
    queue._done()


def memset(queue: Queue, dst: Any, byte: int) -> None:
    """Set every byte of ``dst`` to ``byte`` (0..255), ordered on ``queue``.

    Example::

        >>> import numpy as np, portable as pt
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> buf = pt.alloc_buffer(q.device, 2, np.uint16)
        >>> pt.memset(q, buf, 1); buf.tolist()
        [257, 257]
    """
    where = "pt.memset"
    queue = expect_queue(queue, "queue", where)
    dst = _native(dst, "dst", where)
    _writable(dst, "dst", where)
    if isinstance(byte, (bool, np.bool_)) or not isinstance(byte, (int, np.integer)) \
            or not 0 <= byte <= 255:
        raise ArgumentError(f"{where}: argument 'byte' must be an integer from 0 to 255, got "
                            f"{describe(byte)}")
    queue.backend.memset(queue, dst, int(byte))
    queue._done()


def device_of(array: Any) -> Device | None:
    """The device whose memory holds ``array``, or ``None`` if no backend knows it.

    Example::

        >>> import numpy as np, portable as pt
        >>> pt.device_of(np.zeros(3)).backend.host_memory
        True
    """
    for backend in _probed_in_turn():
        found = backend.device_of(array)
        if found is not None:
            return found
    return None


def as_view(obj: Any, device: Device | None = None) -> Any:
    """A native array sharing memory with ``obj``; nothing is copied.

    ``obj`` may be a NumPy array, a numba device array, a torch tensor, or
    anything exposing ``__cuda_array_interface__``, ``__array_interface__`` or
    DLPack. With ``device`` given, ``obj`` must live there.

    Example::

        >>> import numpy as np, portable as pt
        >>> a = np.arange(4.0)
        >>> v = pt.as_view(a); v[0] = 7.0; a[0]
        np.float64(7.0)
    """
    if device is not None:
        device = expect_device(device, "device", "pt.as_view")
    candidates = [device.backend] if device is not None else _probed_in_turn()
    for backend in candidates:
        view = backend.as_array(obj)
        if view is not None:
            if device is not None and backend.device_of(view) is not device:
                break
            return view
    where = f" on {device}" if device is not None else ""
    raise PortableError(
        f"cannot view a {type(obj).__name__} as an array{where} without a copy: "
        f"it lives elsewhere or exposes neither __cuda_array_interface__, "
        f"__array_interface__ nor DLPack. Copy it with pt.memcpy into a buffer "
        f"from pt.alloc_buffer.")


def _probed_in_turn() -> Iterator[Backend]:
    """The available backends in registry order, each probed only when reached: a
    host array is recognised without starting the GPU drivers."""
    return (backend for backend in all_backends() if backend.available)
