"""The backend registry and the rules that select a backend.

A backend is one way of running kernels (``cpu_serial``, ``cpu_threads``,
``cuda``, ``rocm``). Every difference between backends lives in one
:class:`Backend` subclass under :mod:`portable.backends`; the rest of the
library calls the free functions here and the methods of the backend object.

Selection precedence, strongest first:

1. an explicit choice in code: a :class:`~portable.Device` or
   :class:`~portable.Queue` passed to a function, or ``with use_backend(name):``;
2. the environment variable ``PORTABLE_BACKEND``;
3. the default: ``cuda`` if available, else ``rocm``, else ``cpu_serial``.

A backend named explicitly (by code or by the variable) that cannot run is an
error that says why and lists the backends that can; there is never a silent
fallback.
"""
from __future__ import annotations

import contextlib
import contextvars
import difflib
import functools
import os
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from .errors import BackendError

if TYPE_CHECKING:
    import numpy as np

    from .device import Device
    from .event import Event
    from .kernel import DeviceFunction, Kernel
    from .queue import Queue
    from .frontend import ViewParam
    from .workdiv import WorkDiv

ENV_VAR = "PORTABLE_BACKEND"
DEFAULT_ORDER = ("cuda", "rocm", "cpu_serial")


class Backend(ABC):
    """One way of running kernels: its devices, queues, memory and compiler."""

    name: str = ""
    # -- what the backend does, for code that must act on it (never its name) --
    #: the backend's arrays are host memory (NumPy arrays the host reads and writes
    #: directly); else they live in device memory, reached through copies
    host_memory: bool = True
    #: a block has one thread, which loops over many elements: work divisions put
    #: the parallelism into blocks and elements per thread, not threads per block
    one_thread_per_block: bool = True
    #: queues are device streams: the backend (and torch) enqueue work onto them and
    #: the host goes on; else a queue runs host functions in order
    device_streams: bool = False
    #: kernels run in a simulator on the host: nothing is typed or compiled, launches
    #: are slow (tests keep sizes small), and its memory is not device memory
    simulated: bool = False
    #: page-locked host memory (:meth:`alloc_pinned`) makes copies to and from the
    #: backend's memory faster and asynchronous
    pinned_host_memory: bool = False
    #: torch's device type for the backend's memory (``None``: torch cannot reach it)
    torch_device_type: str | None = "cpu"
    #: DLPack's device type for the backend's memory (kDLCPU 1, kDLCUDA 2, kDLROCM 10)
    dlpack_device_type: int = 1
    #: whether a thread's several elements lie a block's width apart (element
    #: base + k * block_threads + thread_idx: a warp's loads are coalesced)
    #: rather than next to each other (a CPU thread's run, which vectorizes)
    block_strided_elements: bool = False

    # -- availability -------------------------------------------------------
    @abstractmethod
    def _probe(self) -> str | None:
        """Return ``None`` if the backend can run here, else the reason why not."""

    @functools.cached_property
    def reason(self) -> str | None:
        """Why the backend cannot run here, or ``None`` when it can (probed once)."""
        return self._probe()

    @property
    def available(self) -> bool:
        """Whether the backend can run on this machine."""
        return self.reason is None

    # -- devices, queues, events ---------------------------------------------
    @abstractmethod
    def devices(self) -> list[Device]:
        """The devices of this backend, in index order."""

    @abstractmethod
    def make_stream(self, device: Device, blocking: bool) -> Any:
        """A new native stream for a queue on ``device``."""

    def wrap_stream(self, device: Device, stream: Any) -> Any:
        """Adopt an existing native stream (GPU backends only)."""
        raise BackendError(f"backend {self.name!r} has no streams to wrap; "
                           f"create a queue with pt.Queue(device) instead")

    @abstractmethod
    def synchronize(self, queue: Queue) -> None:
        """Block the host until everything enqueued on ``queue`` has finished."""

    @abstractmethod
    def record_event(self, event: Event, queue: Queue) -> None:
        """Record ``event`` on ``queue``."""

    @abstractmethod
    def wait_event(self, queue: Queue, event: Event) -> None:
        """Make ``queue`` wait, without blocking the host, for ``event``."""

    # -- memory -----------------------------------------------------------------
    @abstractmethod
    def alloc(self, device: Device, shape: tuple[int, ...], dtype: np.dtype) -> Any:
        """An uninitialised array on ``device``."""

    @abstractmethod
    def memcpy(self, queue: Queue, dst: Any, src: Any) -> None:
        """Copy ``src`` into ``dst`` (same shape and dtype), ordered on ``queue``."""

    @abstractmethod
    def memset(self, queue: Queue, dst: Any, byte: int) -> None:
        """Set every byte of ``dst`` to ``byte``, ordered on ``queue``."""

    @abstractmethod
    def device_of(self, array: Any) -> Device | None:
        """The device of this backend that holds ``array``, or ``None``."""

    @abstractmethod
    def as_array(self, obj: Any) -> Any:
        """A native array sharing memory with ``obj``, or ``None`` if ``obj``
        does not live in this backend's memory."""

    # -- kernels ------------------------------------------------------------------
    @abstractmethod
    def prepare_arg(self, kernel: Kernel, name: str, value: Any) -> Any:
        """``value`` as this backend passes it to a kernel, or a
        :class:`~portable.errors.LaunchError` naming the argument ``name``."""

    @abstractmethod
    def compile_device_function(self, function: DeviceFunction, key: Any) -> Any:
        """The backend's compiled ``function`` for the launch ``key``."""

    @abstractmethod
    def strided_view(self, buffer: Any, offset: int, shape: tuple[int, ...],
                     strides: tuple[int, ...], dtype: np.dtype) -> Any:
        """An array of ``shape``, byte ``strides`` and ``dtype`` starting
        ``offset`` bytes into the byte ``buffer``, sharing its memory."""

    def readonly(self, array: Any) -> Any:
        """``array`` as kernels must see it when it may not be written."""
        view = array.view()
        view.flags.writeable = False
        return view

    def memory_bytes(self, device: Device) -> int | None:
        """The device's total memory in bytes, or ``None`` where its memory is the
        host's (the CPU backends)."""
        return None

    def dlpack_export(self, array: Any) -> Any:
        """An object exporting ``array`` (a native array of this backend) through DLPack."""
        return array  # NumPy arrays export DLPack themselves

    def alloc_pinned(self, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
        """Page-locked host memory for fast, asynchronous copies (where
        :attr:`pinned_host_memory`)."""
        raise BackendError(f"backend {self.name!r} has no page-locked host memory: its "
                           f"arrays are host memory already")

    def enqueue_host_function(self, queue: Queue, function: Callable[[], None]) -> None:
        """Run ``function`` on the host after the work enqueued on ``queue`` so far,
        before the work enqueued after it; the host does not wait."""
        queue.native.submit(function)

    def torch_stream(self, queue: Queue) -> int | None:
        """The handle of ``queue``'s stream for torch to adopt, or ``None`` where
        queues are no device streams."""
        return None

    @abstractmethod
    def launch(self, queue: Queue, workdiv: WorkDiv, kernel: Kernel,
               args: Sequence[Any], views: tuple[tuple[int, ViewParam], ...] = ()) -> None:
        """Compile (once, cached) and enqueue ``kernel`` on ``queue``; ``views``
        says which parameters receive collection views (each as three args)."""

    # -- graphs ---------------------------------------------------------------------
    def capture_problem(self, device: Device) -> str | None:
        """Why work on ``device``'s queues cannot be captured into graphs and replayed,
        or ``None`` when it can (see :meth:`graph_capture`)."""
        return (f"backend {self.name!r} runs queue work as host calls, which no graph "
                f"captures")

    def graph_capture(self, device: Device) -> Any:
        """An object that captures queue work on ``device`` into graphs: ``.queue``
        (the queue to capture on), ``.capture(work) -> graph`` (runs ``work()`` while
        capturing that queue) and ``graph.launch()`` (enqueues the captured work on
        ``.queue``); only where :meth:`capture_problem` is ``None``."""
        raise BackendError(self.capture_problem(device) or "no graph capture")

    def notes(self) -> list[str]:
        """What else this machine can do for the backend, available or not (one
        line each; ``python -m portable`` shows them under the backend)."""
        return []

    @property
    def state(self) -> str:
        """``available``, or ``unavailable: <reason>``."""
        return "available" if self.available else f"unavailable: {self.reason}"

    def __repr__(self) -> str:
        return f"<backend {self.name} ({self.state})>"


_REGISTRY: dict[str, Backend] = {}
_scoped: contextvars.ContextVar[Backend | None] = contextvars.ContextVar(
    "portable_scoped_backend", default=None)


def register(backend: Backend) -> Backend:
    """Add ``backend`` to the registry under ``backend.name`` and return it."""
    _REGISTRY[backend.name] = backend
    return backend


def all_backends() -> list[Backend]:
    """Every registered backend, available or not.

    Example::

        >>> import portable as pt
        >>> sorted(b.name for b in pt.all_backends())
        ['cpu_serial', 'cpu_threads', 'cuda', 'rocm']
    """
    return list(_REGISTRY.values())


def available_backends() -> list[Backend]:
    """The registered backends that can run on this machine."""
    return [b for b in _REGISTRY.values() if b.available]


def get_backend(name: str | Backend) -> Backend:
    """The backend called ``name``; an error if it is unknown or cannot run.

    Example::

        >>> import portable as pt
        >>> pt.get_backend("cpu_serial").name
        'cpu_serial'
    """
    if isinstance(name, Backend):
        backend = name
    elif not isinstance(name, str):
        raise BackendError(f"a backend is named by a string such as 'cpu_serial', got the "
                           f"{type(name).__name__} {name!r}. Known backends: "
                           f"{', '.join(_REGISTRY)}.")
    else:
        found = _REGISTRY.get(name)
        if found is None:
            raise BackendError(f"unknown backend {name!r}.{_did_you_mean(name)} Known "
                               f"backends: {', '.join(_REGISTRY)}.")
        backend = found
    if not backend.available:
        runnable = ", ".join(b.name for b in available_backends()) or "none"
        raise BackendError(
            f"backend {backend.name!r} was asked for but cannot run here: "
            f"{backend.reason}. Backends that can run: {runnable}.")
    return backend


def _spelling(name: str) -> str:
    """``name`` folded the way people misspell backend names: case, ``-`` and blanks."""
    return name.strip().lower().replace("-", "_").replace(" ", "_")


def _did_you_mean(name: str) -> str:
    """`` Did you mean 'x'?`` for the known names closest to ``name``, or ``""``."""
    same = [known for known in _REGISTRY if _spelling(known) == _spelling(name)]
    close = same or difflib.get_close_matches(_spelling(name), _REGISTRY, n=2)
    return f" Did you mean {' or '.join(map(repr, close))}?" if close else ""


def selected_backend() -> Backend:
    """The backend in force: scoped choice, else ``$PORTABLE_BACKEND``, else default.

    Example::

        >>> import portable as pt
        >>> with pt.use_backend("cpu_threads"):
        ...     pt.selected_backend().name
        'cpu_threads'
    """
    scoped = _scoped.get()
    if scoped is not None:
        return scoped
    env = os.environ.get(ENV_VAR, "").strip()
    if env:
        try:
            return get_backend(env)
        except BackendError as err:
            raise BackendError(f"{ENV_VAR}={env!r}: {err}") from None
    for name in DEFAULT_ORDER:
        backend = _REGISTRY.get(name)
        if backend is not None and backend.available:
            return backend
    raise BackendError("no backend can run here")  # cpu_serial always can


@contextlib.contextmanager
def use_backend(name: str | Backend) -> Iterator[Backend]:
    """Select a backend for the code inside the ``with`` block.

    The scoped choice beats ``$PORTABLE_BACKEND``; an unavailable backend is
    an error raised on entry.

    Example::

        >>> import portable as pt
        >>> with pt.use_backend("cpu_serial") as backend:
        ...     backend.name
        'cpu_serial'
    """
    backend = get_backend(name)
    token = _scoped.set(backend)
    try:
        yield backend
    finally:
        _scoped.reset(token)
