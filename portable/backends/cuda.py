"""The ``cuda`` backend, on numba-cuda.

A kernel becomes a ``numba.cuda.jit`` kernel whose ``acc`` members are the
CUDA built-ins (``blockIdx``, ``threadIdx``, ...; the last work-division
dimension is ``x``) and whose elements per thread are compile-time
constants, so the default one-element-per-thread loop is exactly a
hand-written grid-stride loop. Compiled kernels are cached per work-division
shape and argument types and launched directly, without the numba
dispatcher's per-call type resolution.

Under Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) the ``cuda`` backend
is :class:`~.cuda_simulator.CudaSimulatorBackend`, which runs the same code
through the simulator's launcher.
"""
from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np
from numba.core.errors import NumbaError

from ..backend import Backend, register
from ..device import Device, DeviceLimits
from ..errors import LaunchError, PortableError
from ..kernel import DeviceFunction, Kernel, compile_error, global_resolver
from ..frontend import Dialect, ViewParam, build_function
from .cpu import host_bytes
from .cuda_launch import Launcher

if TYPE_CHECKING:
    from ..event import Event
    from ..queue import Queue
    from ..workdiv import WorkDiv

_AXES = "xyz"
_BUILTINS = {"block_idx": "blockIdx", "thread_idx": "threadIdx",
             "grid_blocks": "gridDim", "block_threads": "blockDim"}
_CUDA_CALLS = {
    "sync_block": "__pt_cuda__.syncthreads",
    "shared_array": "__pt_cuda__.shared.array",
    "atomic_add": "__pt_cuda__.atomic.add", "atomic_sub": "__pt_cuda__.atomic.sub",
    "atomic_min": "__pt_cuda__.atomic.min", "atomic_max": "__pt_cuda__.atomic.max",
    "atomic_exch": "__pt_cuda__.atomic.exch", "atomic_cas": "__pt_cuda__.atomic.cas",
}


def cuda_dialect(key: tuple[int, tuple[int, ...]], block_strided_elements: bool) -> Dialect:
    """How CUDA spells ``acc``'s members; ``key`` is (ndim, elements per thread)."""
    ndim, elements = key
    from numba import cuda

    def index(kind: str, d: int, acc: str) -> str:
        if kind == "thread_elements":
            return str(elements[d])
        return f"__pt_cuda__.{_BUILTINS[kind]}.{_AXES[ndim - 1 - d]}"
    calls, names = dict(_CUDA_CALLS), {"__pt_cuda__": cuda}
    return Dialect(ndim, index, calls, names, view_members_as_params=True,
                   block_strided_elements=block_strided_elements)


class CudaEvent:
    """A CUDA event, with timing or without (cheaper)."""

    def __init__(self, cuda: Any, timing: bool) -> None:
        self.event = cuda.event(timing=timing)

    def synchronize(self) -> None:
        self.event.synchronize()

    def query(self) -> bool:
        # the driver's answer itself: numba's query logs every "not ready yet" as an
        # ERROR, which floods the log of a job that polls its events
        from cuda.bindings import driver
        status = driver.cuEventQuery(self.event.handle)[0]
        if status == driver.CUresult.CUDA_ERROR_NOT_READY:
            return False
        if status != driver.CUresult.CUDA_SUCCESS:
            return bool(self.event.query())  # raises numba's error, naming the status
        return True

    def elapsed_ms(self, end: CudaEvent) -> float:
        return float(self.event.elapsed_time(end.event))


class ReadOnlyDeviceArray:
    """A device array exposed through ``__cuda_array_interface__`` as read-only,
    so kernels are compiled with a read-only type for it."""

    __slots__ = ("__cuda_array_interface__",)

    def __init__(self, array: Any) -> None:
        cai = dict(array.__cuda_array_interface__)
        cai["data"] = (cai["data"][0], True)
        self.__cuda_array_interface__ = cai


class CudaBackend(Backend):
    """NVIDIA GPUs through numba-cuda."""

    name = "cuda"
    block_strided_elements = True
    host_memory = False
    one_thread_per_block = False
    device_streams = True
    pinned_host_memory = True
    torch_device_type: str | None = "cuda"
    dlpack_device_type = 2  # kDLCUDA

    def __init__(self) -> None:
        self._devices: list[Device] | None = None
        self._launcher: Launcher | None = None
        self._numba_launch = threading.Lock()

    # -- availability -------------------------------------------------------------
    def _probe(self) -> str | None:
        if np.lib.NumpyVersion(np.__version__) >= "2.5.0":
            return (f"numba-cuda 0.30 does not work with NumPy {np.__version__} "
                    f"(it needs numpy<2.5)")
        try:
            from numba import cuda
        except ImportError as err:
            return f"numba-cuda is not installed ({err}); install the 'cuda' extra"
        if not hasattr(cuda, "jit"):
            return "numba-cuda is not installed; install the 'cuda' extra"
        try:
            if len(cuda.gpus) == 0:
                return "no CUDA GPU is visible"
        except Exception as err:  # the driver's own reason: no library, no device
            return " ".join(str(err).split()).rstrip(" :.") or type(err).__name__
        return None

    @property
    def cuda(self) -> Any:
        from numba import cuda
        return cuda

    def devices(self) -> list[Device]:
        if self._devices is None:
            cuda, found = self.cuda, []
            for index, gpu in enumerate(cuda.gpus):
                with gpu:
                    dev = cuda.get_current_device()
                    found.append(Device(self, index, _device_name(dev), _limits(dev)))
            self._devices = found
        return self._devices

    # -- queues and events ----------------------------------------------------------
    def make_stream(self, device: Device, blocking: bool) -> Any:
        with self.cuda.gpus[device.index]:
            return self.cuda.stream()

    def wrap_stream(self, device: Device, stream: Any) -> Any:
        cuda = self.cuda
        if hasattr(stream, "cuda_stream"):  # torch.cuda.Stream and friends
            stream = stream.cuda_stream
        if isinstance(stream, int):
            with cuda.gpus[device.index]:
                return cuda.external_stream(stream)
        if hasattr(stream, "synchronize") and hasattr(stream, "handle"):
            return stream  # already a numba stream
        raise PortableError(f"cannot wrap a {type(stream).__name__} as a CUDA stream: "
                            f"pass a numba stream, a torch.cuda.Stream or a CUstream handle")

    def synchronize(self, queue: Queue) -> None:
        queue.native.synchronize()

    def record_event(self, event: Event, queue: Queue) -> None:
        with self._context_of(queue.device):  # the event lives in the queue's context
            native = event.native  # a CUDA event may be recorded again
            if native is None:
                native = CudaEvent(self.cuda, event.timing)
            native.event.record(queue.native)
        event.native = native

    def wait_event(self, queue: Queue, event: Event) -> None:
        with self._context_of(queue.device):
            event._require_recorded().event.wait(queue.native)

    def enqueue_host_function(self, queue: Queue, function: Callable[[], None]) -> None:
        # a stream callback would run Python on the driver's thread, where it must not
        # call CUDA and holds up every stream of the context: refuse, loudly
        raise PortableError("a CUDA queue runs no host functions: its work is device work "
                            "(kernels, copies, torch on the queue's stream); run the host "
                            "step after queue.synchronize(), or in a pipeline's "
                            "ExternalWork.produce")

    def torch_stream(self, queue: Queue) -> int | None:
        return int(queue.native)

    def capture_problem(self, device: Device) -> str | None:
        from .cuda_graphs import torch_problem
        return torch_problem()

    def graph_capture(self, device: Device) -> Any:
        from .cuda_graphs import GraphCapture
        return GraphCapture(device)

    def memory_bytes(self, device: Device) -> int | None:
        with self.cuda.gpus[device.index]:
            return int(self.cuda.current_context().get_memory_info()[1])

    def _context_of(self, device: Device) -> Any:
        """Make ``device``'s context current for the block, where there is more than one
        device to choose from (entering a context costs microseconds)."""
        if len(self.devices()) == 1:
            return contextlib.nullcontext()
        return self.cuda.gpus[device.index]

    # -- memory -------------------------------------------------------------------
    def alloc(self, device: Device, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        with self.cuda.gpus[device.index]:
            return self.cuda.device_array(shape, dtype)

    def alloc_pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """Page-locked host memory, for fast and asynchronous copies."""
        return self.cuda.pinned_array(shape, dtype)

    def memcpy(self, queue: Queue, dst: Any, src: Any) -> None:
        stream = queue.native
        d_dev, s_dev = self.as_array(dst), self.as_array(src)
        for role, arr, dev in (("dst", dst, d_dev), ("src", src, s_dev)):
            if dev is None and not isinstance(arr, np.ndarray):
                raise PortableError(f"memcpy {role} is a {type(arr).__name__}; pass a "
                                    f"device buffer or a NumPy array")
            contiguous = (dev if dev is not None else arr).flags
            if not (contiguous["C_CONTIGUOUS"] or contiguous["F_CONTIGUOUS"]):
                raise PortableError(f"memcpy {role} is not contiguous; copy whole buffers")
        if d_dev is not None:
            d_dev.copy_to_device(s_dev if s_dev is not None else src, stream=stream)
        elif s_dev is not None:
            s_dev.copy_to_host(dst, stream=stream)
        else:  # host to host, after the queue's earlier work
            stream.synchronize()
            np.copyto(dst, src)

    def memset(self, queue: Queue, dst: Any, byte: int) -> None:
        dev = self.as_array(dst)
        if dev is None:
            if not isinstance(dst, np.ndarray):
                raise PortableError(f"memset dst is a {type(dst).__name__}; pass a buffer")
            target = host_bytes(dst)
            queue.native.synchronize()
            target.fill(byte)
            return
        if not (dev.flags["C_CONTIGUOUS"] or dev.flags["F_CONTIGUOUS"]):
            raise PortableError("memset needs a contiguous buffer; this one is strided")
        from numba.cuda.cudadrv import driver
        driver.device_memset(dev, byte, dev.nbytes, stream=queue.native)

    def device_of(self, array: Any) -> Device | None:
        dev = self.as_array(array)
        if dev is None:
            return None
        devices = self.devices()
        if len(devices) == 1:
            return devices[0]
        context = getattr(getattr(dev, "gpu_data", None), "context", None)
        return devices[context.device.id if context is not None else 0]

    def as_array(self, obj: Any) -> Any:
        if getattr(obj, "__cuda_ndarray__", False):
            return obj
        if hasattr(obj, "__cuda_array_interface__"):
            return self.cuda.as_cuda_array(obj)
        return None

    # -- kernels ------------------------------------------------------------------
    def prepare_arg(self, kernel: Kernel, name: str, value: Any) -> Any:
        if getattr(value, "__cuda_ndarray__", False):
            return value
        if isinstance(value, (int, float, complex, bool, np.generic, tuple)):
            return value
        if hasattr(value, "__cuda_array_interface__"):
            return value  # torch tensors, CuPy arrays: launched without conversion
        copy = "copy it to a device buffer first (pt.alloc_buffer and pt.memcpy)"
        if isinstance(value, np.ndarray):
            where = "a host NumPy array"
        elif type(value).__module__.startswith("torch"):
            where = f"a torch tensor on {getattr(value, 'device', 'the host')}"
            copy = "move it with tensor.cuda() (or tensor.to('cuda')), or " + copy
        else:
            where = f"a {type(value).__name__} that is not in GPU memory"
        raise LaunchError(f"{kernel.argument(name)} is {where}, but the queue runs on cuda; "
                          f"{copy}")

    def compile_device_function(self, function: DeviceFunction, key: Any) -> Any:
        dialect = self.dialect(key)
        py = build_function(function.parsed, dialect, global_resolver(self, key),
                            cache_key=self._cache_key("device", key))
        return self.cuda.jit(py, device=True, cache=py.disk_cached)

    def _cache_key(self, kind: str, key: tuple[int, tuple[int, ...]]) -> Any:
        """What keys a function in the disk cache besides its source (``None``: no
        disk cache)."""
        return (kind, self.name, key)

    def dialect(self, key: tuple[int, tuple[int, ...]]) -> Dialect:
        """How kernels spell ``acc``'s members for launch ``key``."""
        return cuda_dialect(key, self.block_strided_elements)

    def _dispatcher(self, kernel: Kernel, key: tuple[int, tuple[int, ...]],
                    views: tuple[tuple[int, ViewParam], ...]) -> tuple[Any, list[Any]]:
        """The numba dispatcher for ``kernel`` and, per argument, the members
        used of it when it is a view (``None`` otherwise)."""
        found = kernel.compiled.get((self.name, key, views))
        if found is None:
            dialect = self.dialect(key)
            py = build_function(kernel.parsed, dialect, global_resolver(self, key),
                                drop_acc=True, views=views,
                                cache_key=self._cache_key("kernel", key))
            members: list[Any] = [None] * len(kernel.params)
            for index, _ in views:
                members[index] = py.view_members[kernel.params[index]]
            dispatcher = self.cuda.jit(py, cache=py.disk_cached)
            found = kernel.compiled[(self.name, key, views)] = (dispatcher, members)
        return found

    def strided_view(self, buffer: Any, offset: int, shape: tuple[int, ...],
                     strides: tuple[int, ...], dtype: np.dtype) -> Any:
        if 0 in shape:
            return self.cuda.device_array(shape, dtype)
        from numba.cuda.cudadrv.devicearray import DeviceNDArray
        return DeviceNDArray(shape, strides, dtype, gpu_data=buffer.gpu_data.view(offset))

    def readonly(self, array: Any) -> Any:
        return ReadOnlyDeviceArray(array)

    def dlpack_export(self, array: Any) -> Any:
        from cuda.core.utils import StridedMemoryView
        return StridedMemoryView.from_cuda_array_interface(array, stream_ptr=-1)

    def launch(self, queue: Queue, workdiv: WorkDiv, kernel: Kernel,
               args: Sequence[Any], views: tuple[tuple[int, ViewParam], ...] = ()) -> None:
        key = (workdiv.ndim, workdiv.elements)
        dispatcher, members = self._dispatcher(kernel, key, views)
        launcher = self._launcher
        if launcher is None:
            launcher = self._launcher = Launcher(self.cuda.gpus, len(self.devices()) > 1)
        try:
            if launcher.launch(queue, workdiv, dispatcher, members, args):
                return
        except NumbaError as err:  # raised while compiling, before it runs
            raise compile_error(kernel, self.name, err) from None
        grid, block = workdiv.blocks[::-1], workdiv.threads[::-1]
        # an argument kind only numba knows; its first launch compiles and loads the
        # kernel unguarded, so host threads take turns
        with self._numba_launch, self.cuda.gpus[queue.device.index]:
            try:
                dispatcher[grid, block, queue.native](*self._expand_views(args, members))
            except NumbaError as err:
                raise compile_error(kernel, self.name, err) from None

    def _expand_views(self, args: Sequence[Any], members: Sequence[Any]) -> list[Any]:
        """Arguments with each view replaced by its used members' arrays (read-only
        ones for a read-only view), its size and its capacity (numba's own launch
        path and the simulator)."""
        expanded: list[Any] = []
        for value, used in zip(args, members):
            if used is None:
                expanded.append(value)
                continue
            collection = value.collection
            for name in used:
                column = collection.column(name)
                expanded.append(self.readonly(column) if value.readonly else column)
            expanded += [collection.size, collection.capacity]
        return expanded


def _device_name(dev: Any) -> str:
    name = getattr(dev, "name", b"CUDA device")
    return name.decode() if isinstance(name, bytes) else str(name)


def _limits(dev: Any) -> DeviceLimits:
    def attr(name: str, default: int) -> int:
        return int(getattr(dev, name, default))
    return DeviceLimits(
        max_threads_per_block=attr("MAX_THREADS_PER_BLOCK", 1024),
        max_block_dims=(attr("MAX_BLOCK_DIM_Z", 64), attr("MAX_BLOCK_DIM_Y", 1024),
                        attr("MAX_BLOCK_DIM_X", 1024)),
        max_grid_dims=(attr("MAX_GRID_DIM_Z", 65535), attr("MAX_GRID_DIM_Y", 65535),
                       attr("MAX_GRID_DIM_X", 2**31 - 1)),
        multiprocessors=attr("MULTIPROCESSOR_COUNT", 1),
        warp_size=attr("WARP_SIZE", 32),
    )


def _backend() -> CudaBackend:
    """The ``cuda`` backend of this process: in Numba's CUDA simulator where
    ``NUMBA_ENABLE_CUDASIM=1`` is set, else on NVIDIA GPUs."""
    import numba
    if numba.config.ENABLE_CUDASIM:  # type: ignore[attr-defined]
        from .cuda_simulator import CudaSimulatorBackend
        return CudaSimulatorBackend()
    return CudaBackend()


register(_backend())
