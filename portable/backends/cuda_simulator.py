"""The ``cuda`` backend in Numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``).

The same CUDA-dialect kernels run through the simulator's launcher, one host
thread per GPU thread, so CI checks CUDA logic without a GPU. The simulator
types nothing, so it is made to refuse what CUDA's compiler refuses: the
rewriter's checks hold on every backend, atomics check their array's dtype,
read-only views are read-only arrays, and an error inside a simulated kernel
becomes a :class:`~portable.errors.KernelError` (an index out of range a
:class:`~portable.errors.RangeError`) at the user's line that raised it. Its
memory is host memory in disguise: torch cannot reach it, DLPack cannot export
it, and nothing is compiled, so nothing goes to the disk cache.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from ..errors import KernelError, PortableError, RangeError
from ..frontend import ATOMIC_DTYPES, Dialect, ViewParam, at_failing_line, atomic_dtype_problem
from .cpu import host_bytes
from .cuda import _CUDA_CALLS, CudaBackend, cuda_dialect

if TYPE_CHECKING:
    from ..device import Device
    from ..event import Event
    from ..kernel import Kernel
    from ..queue import Queue
    from ..workdiv import WorkDiv


class SimulatedEvent:
    """An event of the simulator, whose work runs synchronously: it is done as soon
    as it is recorded and times as 0 ms."""

    def __init__(self, cuda: Any) -> None:
        self.event = cuda.event()

    def synchronize(self) -> None:
        self.event.synchronize()

    def query(self) -> bool:
        return True

    def elapsed_ms(self, end: SimulatedEvent) -> float:
        return 0.0


class CudaSimulatorBackend(CudaBackend):
    """The ``cuda`` backend's kernels and memory in Numba's CUDA simulator."""

    simulated = True
    torch_device_type = None  # the simulator's arrays are no device memory

    def dialect(self, key: tuple[int, tuple[int, ...]]) -> Dialect:
        """CUDA's spelling, with atomics that check their array's dtype (the
        simulator's ``cuda.atomic`` exists only while a kernel runs, so kernels
        build the checked version at each call)."""
        dialect = cuda_dialect(key, self.block_strided_elements)
        dialect.calls.update({member: f"__pt_checked_atomic__({member!r}, {_CUDA_CALLS[member]})"
                              for member in ATOMIC_DTYPES})
        dialect.globals["__pt_checked_atomic__"] = _checked_atomic
        return dialect

    def capture_problem(self, device: Device) -> str | None:
        return "the CUDA simulator cannot capture graphs"

    def record_event(self, event: Event, queue: Queue) -> None:
        native = event.native if event.native is not None else SimulatedEvent(self.cuda)
        native.event.record(queue.native)
        event.native = native

    def enqueue_host_function(self, queue: Queue, function: Callable[[], None]) -> None:
        function()  # the simulator's streams run everything at once

    def torch_stream(self, queue: Queue) -> int | None:
        return None

    def memory_bytes(self, device: Device) -> int | None:
        return None

    def memset(self, queue: Queue, dst: Any, byte: int) -> None:
        device = self.as_array(dst)
        if device is None or not (device.flags["C_CONTIGUOUS"] or device.flags["F_CONTIGUOUS"]):
            super().memset(queue, dst, byte)  # host arrays, and the strided refusal
            return
        host_bytes(device._ary).fill(byte)

    def _cache_key(self, kind: str, key: tuple[int, tuple[int, ...]]) -> Any:
        return None  # the simulator compiles nothing

    def strided_view(self, buffer: Any, offset: int, shape: tuple[int, ...],
                     strides: tuple[int, ...], dtype: np.dtype) -> Any:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
        host = np.ndarray(shape, dtype, buffer=buffer._ary, offset=offset, strides=strides)
        return FakeCUDAArray(host)

    def readonly(self, array: Any) -> Any:
        from numba.cuda.simulator.cudadrv.devicearray import FakeCUDAArray
        host = array._ary.view()  # the simulator types nothing: its array refuses writes
        host.flags.writeable = False
        return FakeCUDAArray(host)

    def dlpack_export(self, array: Any) -> Any:
        raise PortableError("DLPack export needs a real GPU; the CUDA simulator's "
                            "arrays have no device memory")

    def launch(self, queue: Queue, workdiv: WorkDiv, kernel: Kernel,
               args: Sequence[Any], views: tuple[tuple[int, ViewParam], ...] = ()) -> None:
        dispatcher, members = self._dispatcher(kernel, (workdiv.ndim, workdiv.elements), views)
        grid, block = workdiv.blocks[::-1], workdiv.threads[::-1]
        try:
            dispatcher[grid, block, queue.native](*self._expand_views(args, members))
        except Exception as err:
            raise _simulator_error(kernel, err) from None


def _checked_atomic(member: str, atomic: Callable[..., Any]) -> Callable[..., Any]:
    """The simulator's ``atomic`` for ``acc.<member>``, refusing the array dtypes that
    CUDA's compiler refuses."""
    def run(array: Any, *args: Any) -> Any:
        problem = atomic_dtype_problem(member, array.dtype)
        if problem is not None:
            raise KernelError(problem)
        return atomic(array, *args)
    return run


def _simulator_error(kernel: Kernel, error: Exception) -> PortableError:
    """An error raised inside a simulated kernel, as the error it stands for, at the
    user's line that raised it."""
    message, where = str(error), f"kernel {kernel.__name__}"
    if isinstance(error, IndexError) and "out of bounds" in message:
        return RangeError(at_failing_line(
            where, f"an element index is out of range in the CUDA simulator ({message}); on "
                   f"a GPU this access would read or write outside the array", error))
    if isinstance(error, PortableError):
        return KernelError(at_failing_line(where, message, error))
    if "read-only" in message:
        return KernelError(at_failing_line(
            where, f"writes a read-only array ({message}): a member of a const_view(); pass "
                   f"collection.view() to write", error))
    return KernelError(at_failing_line(
        where, f"fails in the CUDA simulator, so it would not compile or run on a GPU: "
               f"{type(error).__name__}: {message}", error))
