"""The CPU backends: ``cpu_serial`` and ``cpu_threads``.

Both run one thread per block. ``cpu_serial`` runs the blocks one after
another; ``cpu_threads`` spreads them over the cores with a Numba ``prange``
loop (``NUMBA_NUM_THREADS`` sets how many). A kernel becomes a Numba
``njit`` function of one block, ``body(acc, *args)``, where ``acc`` is the
tuple ``(block_idx..., grid_blocks..., thread_elements...)``, and a driver
that loops over the blocks.

Range-checked mode (``PORTABLE_BOUNDSCHECK=1``, for debugging) compiles every
array access with a range check, and runs the blocks of ``cpu_threads`` one
after another, as ``cpu_serial`` does, so that an index out of range in any
block is reported (a Numba worker thread cannot hand the error back).

A non-blocking CPU queue runs its work, in order, on a worker thread; the
compiled code releases the GIL, so the host goes on meanwhile.
"""
from __future__ import annotations

import concurrent.futures
import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numba
import numpy as np
from numba.core.errors import NumbaError

from .. import kernel_cache, numba_env
from ..backend import Backend, register
from ..collection import View
from ..device import Device, DeviceLimits
from ..errors import LaunchError, RangeError
from ..kernel import DeviceFunction, Kernel, compile_error, global_resolver
from ..frontend import Dialect, ViewParam, build_function, view_args
from . import cpu_atomics, cpu_hints, cpu_threading

if TYPE_CHECKING:
    from ..event import Event
    from ..queue import Queue
    from ..workdiv import WorkDiv

_CPU_CALLS = {
    "sync_block": "__pt_noop__",
    "shared_array": "__pt_np__.empty",
    **{f"atomic_{op}": f"__pt_atomics__.atomic_{op}"
       for op in ("add", "sub", "min", "max", "exch", "cas")},
}
#: set to 1 to check every array access in kernels on the CPU backends
BOUNDSCHECK_VAR = "PORTABLE_BOUNDSCHECK"


def host_bytes(array: np.ndarray) -> np.ndarray:
    """The bytes of a contiguous host array as a flat uint8 array sharing its memory;
    a strided array is an error (its flattening would be a copy)."""
    if not (array.flags.c_contiguous or array.flags.f_contiguous):
        raise LaunchError("memset needs a contiguous buffer; this one is strided")
    return array.ravel(order="K").view(np.uint8)


@numba.njit
def _noop() -> None:
    """The CPU's block barrier: one thread per block has nothing to wait for."""


def cpu_dialect(ndim: int) -> Dialect:
    """How the CPU backends spell ``acc``'s members for an ``ndim``-D launch."""
    def index(kind: str, d: int, acc: str) -> str:
        return {"block_idx": f"{acc}[{d}]", "grid_blocks": f"{acc}[{ndim + d}]",
                "thread_elements": f"{acc}[{2 * ndim + d}]",
                "thread_idx": "0", "block_threads": "1"}[kind]
    return Dialect(ndim, index, _CPU_CALLS,
                   {"__pt_np__": np, "__pt_atomics__": cpu_atomics,
                    "__pt_noop__": _noop, "__pt_nonneg__": cpu_hints.nonnegative},
                   index_hint="__pt_nonneg__",
                   unsupported_dtypes=frozenset({np.dtype(np.float16)}))


class CpuStream:
    """A CPU queue's engine: runs work now (blocking) or on a worker thread, one piece
    of work at a time and in the order enqueued, also when several host threads
    enqueue on one queue."""

    def __init__(self, blocking: bool) -> None:
        self._pool = (None if blocking else
                      concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="portable-queue"))
        self._lock = threading.RLock()  # one enqueue (blocking: one piece of work) at a time
        self._last: concurrent.futures.Future[None] | None = None
        self._error: BaseException | None = None

    def submit(self, work: Callable[[], None]) -> None:
        with self._lock:
            if self._pool is None:
                work()
            else:
                self._last = self._pool.submit(self._guarded, work)

    def _guarded(self, work: Callable[[], None]) -> None:
        try:
            work()
        except BaseException as err:  # kept for the host: the first error wins
            with self._lock:
                if self._error is None:
                    self._error = err

    def synchronize(self) -> None:
        with self._lock:
            last = self._last
        if last is not None:
            last.result()
        with self._lock:
            if self._last is last:
                self._last = None
            error, self._error = self._error, None
        if error is not None:
            raise error  # the first error of the work since the last synchronize


class CpuEvent:
    """A CPU event: set, with a timestamp, when its queue reaches it."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self.time = 0.0

    def fire(self) -> None:
        self.time = time.perf_counter()
        self._done.set()

    def synchronize(self) -> None:
        self._done.wait()

    def query(self) -> bool:
        return self._done.is_set()

    def elapsed_ms(self, end: CpuEvent) -> float:
        return (end.time - self.time) * 1e3


class CpuBackend(Backend):
    """What the two CPU backends share; they differ only in how blocks are run."""

    parallel = False

    def __init__(self) -> None:
        self._device: Device | None = None

    def _probe(self) -> str | None:
        return None  # numba, all these backends need, is imported with this module

    def _cores(self) -> int:
        return 1

    def devices(self) -> list[Device]:
        if self._device is None:
            big = 2**31 - 1
            limits = DeviceLimits(1, (1, 1, 1), (big, big, big), self._cores(), 1)
            name = f"host CPU ({os.cpu_count()} cores, {self._cores()} used)"
            self._device = Device(self, 0, name, limits)
        return [self._device]

    # -- queues and events --------------------------------------------------------
    def make_stream(self, device: Device, blocking: bool) -> CpuStream:
        return CpuStream(blocking)

    def synchronize(self, queue: Queue) -> None:
        queue.native.synchronize()

    def record_event(self, event: Event, queue: Queue) -> None:
        native = CpuEvent()
        event.native = native
        queue.native.submit(native.fire)

    def wait_event(self, queue: Queue, event: Event) -> None:
        native = event._require_recorded()
        queue.native.submit(native.synchronize)

    # -- memory -------------------------------------------------------------------
    def alloc(self, device: Device, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return np.empty(shape, dtype)

    def _host(self, array: Any, role: str) -> np.ndarray:
        view = self.as_array(array)
        if view is None:
            raise LaunchError(f"{role} is a {type(array).__name__} that does not live in "
                              f"host memory; a {self.name} queue works on host arrays")
        return view

    def memcpy(self, queue: Queue, dst: Any, src: Any) -> None:
        d, s = self._host(dst, "memcpy dst"), self._host(src, "memcpy src")
        queue.native.submit(lambda: np.copyto(d, s))

    def memset(self, queue: Queue, dst: Any, byte: int) -> None:
        d = host_bytes(self._host(dst, "memset dst"))
        queue.native.submit(lambda: d.fill(byte))

    def device_of(self, array: Any) -> Device | None:
        return self.devices()[0] if self.as_array(array) is not None else None

    def as_array(self, obj: Any) -> np.ndarray | None:
        if isinstance(obj, np.ndarray):
            return obj
        if getattr(obj, "__cuda_ndarray__", False) or hasattr(obj, "__cuda_array_interface__"):
            return None
        if hasattr(obj, "__dlpack_device__"):
            if obj.__dlpack_device__()[0] != 1:  # kDLCPU
                return None
            if type(obj).__module__.startswith("torch"):
                return obj.detach().numpy()
            return np.from_dlpack(obj)
        if hasattr(obj, "__array_interface__"):
            return np.asarray(obj)
        return None

    # -- kernels ------------------------------------------------------------------
    def prepare_arg(self, kernel: Kernel, name: str, value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return value
        if isinstance(value, (int, float, complex, bool, np.generic, tuple)):
            return value
        view = self.as_array(value)
        if view is None:
            raise LaunchError(
                f"{kernel.argument(name)} is a {type(value).__name__} that does not live in "
                f"host memory, but the queue runs on {self.name}; copy it to a host buffer "
                f"with pt.memcpy first")
        return view

    def strided_view(self, buffer: Any, offset: int, shape: tuple[int, ...],
                     strides: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        return np.ndarray(shape, dtype, buffer=buffer, offset=offset, strides=strides)

    def compile_device_function(self, function: DeviceFunction, key: Any) -> Any:
        ndim, checked = key
        py = build_function(function.parsed, cpu_dialect(ndim), global_resolver(self, key),
                            cache_key=("device", self.name, ndim, checked))
        return numba.njit(py, error_model="numpy", boundscheck=checked, cache=py.disk_cached)

    def _driver(self, kernel: Kernel, ndim: int, nargs: int,
                views: tuple[tuple[int, ViewParam], ...], checked: bool) -> Any:
        key = (self.name, ndim, views, checked)
        found = kernel.compiled.get(key)
        if found is None:
            py = build_function(kernel.parsed, cpu_dialect(ndim),
                                global_resolver(self, (ndim, checked)), views=views,
                                cache_key=("kernel", self.name, ndim, checked))
            body = numba.njit(py, error_model="numpy", nogil=True, boundscheck=checked,
                              cache=py.disk_cached)
            parallel = self.parallel and not checked  # see the module's docstring
            found = kernel.compiled[key] = _make_driver(body, ndim, nargs, parallel,
                                                               py.disk_cached)
        return found

    def launch(self, queue: Queue, workdiv: WorkDiv, kernel: Kernel,
               args: Sequence[Any], views: tuple[tuple[int, ViewParam], ...] = ()) -> None:
        checked = os.environ.get(BOUNDSCHECK_VAR, "") not in ("", "0")
        args = [part for value in args
                for part in (view_args(value) if isinstance(value, View) else (value,))]
        driver = self._driver(kernel, workdiv.ndim, len(args), views, checked)
        blocks, elements = workdiv.blocks, workdiv.elements

        def run() -> None:
            try:
                if self.parallel and not checked:
                    cpu_threading.run_parallel(lambda: driver(blocks, elements, *args))
                else:
                    driver(blocks, elements, *args)
            except NumbaError as err:
                raise compile_error(kernel, self.name, err) from None
            except IndexError as err:
                if not checked:
                    raise
                raise RangeError(f"kernel {kernel.__name__}: an element index is out of "
                                 f"range ({err}); {BOUNDSCHECK_VAR}=1 checks every array "
                                 f"access on the CPU backends (running the blocks one "
                                 f"after another)") from None
        queue.native.submit(run)


def _make_driver(body: Any, ndim: int, nargs: int, parallel: bool, on_disk: bool) -> Any:
    """A jitted loop over all blocks that calls the kernel ``body`` once per block;
    in the disk cache, keyed by ``body``'s cache file, when ``body`` is (``on_disk``)."""
    names = ", ".join(f"a{i}" for i in range(nargs))
    lines = [f"def driver(blocks, elements{', ' if nargs else ''}{names}):",
             "    total = " + " * ".join(f"blocks[{d}]" for d in range(ndim)),
             "    for linear in loop(total):"]
    for d in range(ndim):  # unravel, the last dimension fastest
        inner = " * ".join(f"blocks[{k}]" for k in range(d + 1, ndim)) or "1"
        lines.append(f"        b{d} = (linear // ({inner})) % blocks[{d}]")
    acc = ", ".join([f"b{d}" for d in range(ndim)] + [f"blocks[{d}]" for d in range(ndim)]
                    + [f"elements[{d}]" for d in range(ndim)])
    lines.append(f"        body(({acc},){', ' if nargs else ''}{names})")
    namespace: dict[str, Any] = {"loop": numba.prange if parallel else range, "body": body}
    key = ("driver", body.py_func.__module__, parallel) if on_disk else None
    driver, cached = kernel_cache.cached_function("\n".join(lines) + "\n", "driver",
                                                  namespace, key)
    return numba.njit(driver, parallel=parallel, nogil=True, cache=cached)


class CpuSerial(CpuBackend):
    """Blocks run one after another on the calling thread's core."""

    name = "cpu_serial"


class CpuThreads(CpuBackend):
    """Blocks spread over the cores with Numba's parallel loops."""

    name = "cpu_threads"
    parallel = True

    def __init__(self) -> None:
        super().__init__()
        cpu_threading.ask_for_a_thread_safe_layer()

    def _probe(self) -> str | None:
        return numba_env.THREADS_PROBLEM

    def _cores(self) -> int:
        return numba.get_num_threads()


register(CpuSerial())
register(CpuThreads())
