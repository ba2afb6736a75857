"""The ``rocm`` backend: AMD GPUs through HIP, kernels compiled by :mod:`.codegen`.

Kernels are the ``cuda`` backend's CUDA-dialect Python functions, lowered by
numba-cuda and retargeted to AMDGPU (see :mod:`.codegen`); a code object is built
per kernel, launch shape, argument types and GPU architecture, and cached. The
launch side (memory, streams, events, code object loading, launches) goes
through HIP's Python bindings (:mod:`.hip`), so the backend is available only
where a HIP device answers. Code generation needs no GPU:
:meth:`RocmBackend.compile_for` builds code objects for ``gfx90a`` and
``gfx942`` (or any architecture llvmlite knows) on any machine.
"""
from __future__ import annotations

import ctypes
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ...backend import Backend, register
from ...device import Device, DeviceLimits
from ...errors import LaunchError, PortableError
from ...frontend import ViewParam, build_function
from ...kernel import DeviceFunction, Kernel, global_resolver
from ..cuda import cuda_dialect
from . import codegen, hip, kernargs
from .codeobject import inspect
from .dlpack import DLPackExport

if TYPE_CHECKING:
    from ...event import Event
    from ...queue import Queue
    from ...workdiv import WorkDiv


class HipEvent:
    """A HIP event, with timing or without."""

    def __init__(self, timing: bool) -> None:
        flags = 0 if timing else hip.EVENT_DISABLE_TIMING
        self.event = hip.call("hipEventCreateWithFlags", flags)

    def synchronize(self) -> None:
        hip.call("hipEventSynchronize", self.event)

    def query(self) -> bool:
        runtime = hip.runtime()
        err = runtime.hipEventQuery(self.event)[0]
        if err == runtime.hipError_t.hipErrorNotReady:
            return False
        hip.call("hipEventQuery", self.event)  # raises for anything but success
        return True

    def elapsed_ms(self, end: HipEvent) -> float:
        return float(hip.call("hipEventElapsedTime", self.event, end.event))


class RocmBackend(Backend):
    """AMD GPUs through HIP; kernels compiled for AMDGPU without ROCm's compiler."""

    name = "rocm"
    block_strided_elements = True
    host_memory = False
    one_thread_per_block = False
    device_streams = True
    pinned_host_memory = True
    torch_device_type: str | None = "cuda"  # ROCm builds of torch name AMD GPUs "cuda"
    dlpack_device_type = 10  # kDLROCM

    def __init__(self) -> None:
        self._devices: list[Device] | None = None
        self._archs: dict[int, str] = {}
        self._functions: dict[tuple[int, int], Any] = {}  # (code object, device) -> handle

    # -- availability -------------------------------------------------------------
    def _probe(self) -> str | None:
        return codegen.available_problem() or hip.problem()

    def notes(self) -> list[str]:
        """Whether this machine can compile kernels for AMD GPUs, a GPU or not.

        Example::

            >>> RocmBackend().notes()[0].startswith("AMD code generation: ")
            True
        """
        problem = codegen.available_problem()
        if problem is not None:
            return [f"AMD code generation: unavailable: {problem}"]
        return [f"AMD code generation: works here (code objects for "
                f"{', '.join(codegen.ARCHITECTURES)})"]

    def devices(self) -> list[Device]:
        if self._devices is None:
            found = []
            for index in range(hip.call("hipGetDeviceCount")):
                props = hip.call("hipGetDeviceProperties", index)
                self._archs[index] = _text(props.gcnArchName).split(":")[0]
                found.append(Device(self, index, _text(props.name), _limits(props)))
            self._devices = found
        return self._devices

    def arch(self, device: Device) -> str:
        """The GPU architecture of ``device`` (``gcnArchName`` without its features)."""
        self.devices()
        return self._archs[device.index]

    # -- queues and events ----------------------------------------------------------
    def make_stream(self, device: Device, blocking: bool) -> Any:
        hip.call("hipSetDevice", device.index)
        return hip.call("hipStreamCreateWithFlags", 0 if blocking else hip.STREAM_NON_BLOCKING)

    def wrap_stream(self, device: Device, stream: Any) -> Any:
        if hasattr(stream, "cuda_stream"):  # torch.cuda.Stream on a ROCm build of torch
            stream = stream.cuda_stream
        if isinstance(stream, int):
            return hip.runtime().ihipStream_t.fromObj(stream)
        raise PortableError(f"cannot wrap a {type(stream).__name__} as a HIP stream: pass a "
                            f"torch.cuda.Stream (ROCm build) or a hipStream_t handle")

    def synchronize(self, queue: Queue) -> None:
        hip.call("hipStreamSynchronize", queue.native)

    def record_event(self, event: Event, queue: Queue) -> None:
        native = event.native if event.native is not None else HipEvent(event.timing)
        hip.call("hipEventRecord", native.event, queue.native)
        event.native = native

    def wait_event(self, queue: Queue, event: Event) -> None:
        hip.call("hipStreamWaitEvent", queue.native, event._require_recorded().event, 0)

    def enqueue_host_function(self, queue: Queue, function: Callable[[], None]) -> None:
        def run(data: Any) -> None:
            _run_host_function(callback, function)
        callback: Any = _HOST_FUNCTION(run)
        _PENDING.add(callback)  # alive until it has run
        hip.call("hipLaunchHostFunc", queue.native, callback, None)

    def torch_stream(self, queue: Queue) -> int | None:
        return int(queue.native)

    def memory_bytes(self, device: Device) -> int | None:
        return int(hip.call("hipGetDeviceProperties", device.index).totalGlobalMem)

    # -- memory -------------------------------------------------------------------
    def alloc(self, device: Device, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        hip.call("hipSetDevice", device.index)
        return hip.HipArray.empty(shape, dtype)

    def alloc_pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """Page-locked host memory, for fast and asynchronous copies."""
        return hip.pinned_array(shape, dtype)

    def memcpy(self, queue: Queue, dst: Any, src: Any) -> None:
        ends, nbytes = [], 0
        for role, value in (("dst", dst), ("src", src)):
            found: Any = self.as_array(value)
            if found is None and isinstance(value, np.ndarray):
                found, contiguous = value, value.flags["C_CONTIGUOUS"]
            elif found is not None:
                contiguous = found.contiguous
            else:
                raise PortableError(f"memcpy {role} is a {type(value).__name__}; pass a "
                                    f"device buffer or a NumPy array")
            if not contiguous:
                raise PortableError(f"memcpy {role} is not contiguous; copy whole buffers")
            ends.append(kernargs.address(found))
            nbytes = int(found.nbytes)  # the source's, checked equal by pt.memcpy
        hip.call("hipMemcpyAsync", ends[0], ends[1], nbytes, hip.MEMCPY_DEFAULT, queue.native)

    def memset(self, queue: Queue, dst: Any, byte: int) -> None:
        device = self.as_array(dst)
        if device is None:
            if not isinstance(dst, np.ndarray):
                raise PortableError(f"memset dst is a {type(dst).__name__}; pass a buffer")
            self.synchronize(queue)
            dst.view(np.uint8).fill(byte)
            return
        if not device.contiguous:
            raise PortableError("memset needs a contiguous buffer; this one is strided")
        hip.call("hipMemsetD8Async", device.pointer, byte, device.nbytes, queue.native)

    def device_of(self, array: Any) -> Device | None:
        found = self.as_array(array)
        if found is None:
            return None
        attributes = hip.call("hipPointerGetAttributes", found.pointer)
        return self.devices()[int(getattr(attributes, "device", 0))]

    def as_array(self, obj: Any) -> hip.HipArray | None:
        if isinstance(obj, hip.HipArray):
            return obj
        cai = getattr(obj, "__cuda_array_interface__", None)
        if cai is None:
            return None
        dtype, shape = np.dtype(cai["typestr"]), tuple(cai["shape"])
        strides = cai.get("strides") or tuple(
            int(np.prod(shape[k + 1:], dtype=np.int64)) * dtype.itemsize
            for k in range(len(shape)))
        return hip.HipArray(int(cai["data"][0] or 0), shape, tuple(strides), dtype, obj,
                            bool(cai["data"][1]))

    def dlpack_export(self, array: Any) -> Any:
        device = self.device_of(array)
        return DLPackExport(array, self.dlpack_device_type, device.index if device else 0)

    def strided_view(self, buffer: Any, offset: int, shape: tuple[int, ...],
                     strides: tuple[int, ...], dtype: np.dtype) -> Any:
        return buffer.view(offset, shape, strides, dtype)

    def readonly(self, array: Any) -> Any:
        return array.view(0, array.shape, array.strides, array.dtype, readonly=True)

    # -- kernels ------------------------------------------------------------------
    def prepare_arg(self, kernel: Kernel, name: str, value: Any) -> Any:
        if isinstance(value, (int, float, bool, np.generic)):
            return value
        device = self.as_array(value)
        if device is not None:
            return device
        where = ("a host NumPy array" if isinstance(value, np.ndarray)
                 else f"a {type(value).__name__} that is not in GPU memory")
        raise LaunchError(f"{kernel.argument(name)} is {where}, but the queue runs on rocm; "
                          f"copy it to a device buffer first (pt.alloc_buffer and pt.memcpy)")

    def compile_device_function(self, function: DeviceFunction, key: Any) -> Any:
        from numba import cuda
        dialect = cuda_dialect(key, self.block_strided_elements)
        return cuda.jit(build_function(function.parsed, dialect, global_resolver(self, key)),
                        device=True)

    def _function(self, kernel: Kernel, key: tuple[int, tuple[int, ...]],
                  views: tuple[tuple[int, ViewParam], ...]) -> tuple[Any, list[Any], dict]:
        """The CUDA-dialect Python function of ``kernel``, the members it uses of
        each view argument, and its code objects by (argument types, arch)."""
        found = kernel.compiled.get((self.name, key, views))
        if found is None:
            py = build_function(kernel.parsed, cuda_dialect(key, self.block_strided_elements),
                                global_resolver(self, key), drop_acc=True, views=views)
            members: list[Any] = [None] * len(kernel.params)
            for index, _ in views:
                members[index] = py.view_members[kernel.params[index]]
            found = kernel.compiled[(self.name, key, views)] = (py, members, {})
        return found

    def compile_for(self, kernel: Kernel, workdiv: WorkDiv, args: Sequence[Any],
                    archs: Sequence[str] = codegen.ARCHITECTURES
                    ) -> dict[str, codegen.CodeObject]:
        """The code objects of ``kernel`` launched over ``workdiv`` with ``args``, one
        per architecture in ``archs``; works without an AMD GPU. ``args`` may be
        host arrays, numbers and views of host collections: only their types and
        layouts matter.

        Example::

            >>> import numpy as np, portable as pt
            >>> from portable.backends.rocm.backend import RocmBackend
            >>> @pt.kernel
            ... def twice(acc, x):
            ...     for i in acc.uniform_elements(x.size):
            ...         x[i] *= 2
            >>> wd = pt.WorkDiv(blocks=4, threads=64)
            >>> objects = RocmBackend().compile_for(twice, wd, [np.zeros(256)])
            >>> sorted(objects), objects["gfx942"].image[1:4]
            (['gfx90a', 'gfx942'], b'ELF')
        """
        return self.build(kernel, workdiv, args, archs)[0]

    def build(self, kernel: Kernel, workdiv: WorkDiv, args: Sequence[Any],
              archs: Sequence[str]) -> tuple[dict[str, codegen.CodeObject], list[kernargs.Param]]:
        """The code objects of ``kernel`` per arch in ``archs`` (compiled once per
        launch shape and argument types, then cached) and the kernel parameters
        that ``args`` become, in the order of the code object's arguments."""
        from ...collection import View
        views = tuple((index, _view_param(value)) for index, value in enumerate(args)
                      if isinstance(value, View))
        py, members, cache = self._function(kernel, (workdiv.ndim, workdiv.elements), views)
        types, params = kernargs.flatten(args, members)
        missing = [arch for arch in archs if (types, arch) not in cache]
        if missing:
            for arch, code in codegen.compile_kernel(py, types, kernel, missing).items():
                cache[(types, arch)] = code
        return {arch: cache[(types, arch)] for arch in archs}, params

    def launch(self, queue: Queue, workdiv: WorkDiv, kernel: Kernel,
               args: Sequence[Any], views: tuple[tuple[int, ViewParam], ...] = ()) -> None:
        device = queue.device
        codes, params = self.build(kernel, workdiv, args, [self.arch(device)])
        code = next(iter(codes.values()))
        function, layout = self._loaded(code, device)
        buffer = kernargs.pack(layout, params, kernel.__name__)
        grid, block = workdiv.blocks[::-1], workdiv.threads[::-1]
        grid3 = tuple(grid) + (1,) * (3 - len(grid))
        block3 = tuple(block) + (1,) * (3 - len(block))
        kernarg = (ctypes.c_byte * len(buffer)).from_buffer_copy(buffer)
        size = ctypes.c_size_t(len(buffer))
        extra = (ctypes.c_void_p * 5)(1, ctypes.addressof(kernarg), 2, ctypes.addressof(size), 3)
        hip.call("hipModuleLaunchKernel", function, *grid3, *block3, 0, queue.native, None,
                 extra)

    def _loaded(self, code: codegen.CodeObject, device: Device) -> tuple[Any, Any]:
        """The HIP function handle of ``code`` on ``device`` and its argument layout."""
        key = (id(code), device.index)
        found = self._functions.get(key)
        if found is None:
            hip.call("hipSetDevice", device.index)
            module = hip.call("hipModuleLoadData", code.image)
            function = hip.call("hipModuleGetFunction", module, code.symbol.encode())
            layout = inspect(code.image).kernels[code.symbol].args
            found = self._functions[key] = (function, layout, module, code)
        return found[0], found[1]


#: hipHostFn_t: ``void (*)(void* userData)``
_HOST_FUNCTION = ctypes.CFUNCTYPE(None, ctypes.c_void_p)
_PENDING: set[Any] = set()


def _run_host_function(callback: Any, function: Callable[[], None]) -> None:
    try:
        function()
    finally:
        _PENDING.discard(callback)


def _view_param(view: Any) -> ViewParam:
    return ViewParam(view.layout, view.readonly)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _limits(props: Any) -> DeviceLimits:
    threads, grid = list(props.maxThreadsDim), list(props.maxGridSize)
    return DeviceLimits(max_threads_per_block=int(props.maxThreadsPerBlock),
                        max_block_dims=(int(threads[2]), int(threads[1]), int(threads[0])),
                        max_grid_dims=(int(grid[2]), int(grid[1]), int(grid[0])),
                        multiprocessors=int(props.multiProcessorCount),
                        warp_size=int(props.warpSize))


register(RocmBackend())
