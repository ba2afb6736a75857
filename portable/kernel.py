"""Kernels: one Python function, compiled for every backend, launched on a queue.

Write a kernel once; its first parameter is the accelerator ``acc``::

    import portable as pt

    @pt.kernel
    def axpy(acc, a, x, y, out):
        for i in acc.uniform_elements(x.size):
            out[i] = a * x[i] + y[i]

    pt.launch(queue, pt.make_workdiv(queue.device, n), axpy, 2.0, x, y, out)

What ``acc`` offers inside a kernel (``d``-tuples for an n-D work division):

* indices and extents: ``acc.block_idx``, ``acc.thread_idx``,
  ``acc.grid_blocks``, ``acc.block_threads``, ``acc.thread_elements``,
  ``acc.global_thread_idx``, ``acc.grid_threads``, ``acc.ndim``;
* loops, used as ``for ... in acc.<loop>(...)``:
  ``uniform_elements(n)`` (or ``(n0, n1[, n2])`` with a tuple target),
  ``uniform_groups(n)`` and ``uniform_group_elements(group, n)`` (target ``i``
  or ``(i, local)``), ``independent_groups(ngroups)`` and
  ``independent_group_elements(extent)``;
* ``acc.once_per_grid()``, ``acc.once_per_block()``;
* ``acc.shared_array(shape, dtype)`` (constant shape) and ``acc.sync_block()``;
* ``acc.atomic_add/sub/min/max/exch(array, index, value)`` and
  ``acc.atomic_cas(array, index, expected, value)``, each returning the old
  value;
* the ``math`` module, and device functions decorated with
  :func:`device_function`.
"""
from __future__ import annotations

import functools
from typing import Any, Callable

from .errors import KernelError, LaunchError
from .queue import Queue
from .collection import View
from .transform import ParsedFunction, ViewParam, parse_function
from .workdiv import WorkDiv


class Acc:
    """The accelerator handle's type, for annotating a kernel's first parameter.

    Example::

        >>> import portable as pt
        >>> @pt.kernel
        ... def fill(a: pt.Acc, out, value):
        ...     for i in a.uniform_elements(out.size):
        ...         out[i] = value
    """


class DeviceFunction:
    """A function callable from kernels on every backend.

    Its first parameter may be ``acc`` (then it can use the accelerator's
    members, and kernels pass their ``acc`` along). Called from the host, it
    runs as plain Python.

    Example::

        >>> import math, portable as pt
        >>> @pt.device_function
        ... def norm3(x, y, z):
        ...     return math.sqrt(x * x + y * y + z * z)
        >>> norm3(3.0, 4.0, 12.0)
        13.0
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        self.parsed: ParsedFunction = parse_function(func, needs_acc=False)
        self.__name__ = func.__name__
        self.__doc__ = func.__doc__
        self._compiled: dict[tuple[str, Any], Any] = {}

    def compiled(self, backend: Any, key: Any) -> Any:
        """The backend's compiled version for the launch ``key`` (cached)."""
        cache_key = (backend.name, key)
        found = self._compiled.get(cache_key)
        if found is None:
            found = backend.compile_device_function(self, key)
            self._compiled[cache_key] = found
        return found

    def __call__(self, *args: Any) -> Any:
        if self.parsed.acc is not None:
            raise KernelError(f"device function {self.__name__} takes acc and runs only "
                              f"inside kernels")
        return self.parsed.func(*args)


class Kernel:
    """A portable kernel; create it with the :func:`kernel` decorator."""

    def __init__(self, func: Callable[..., Any]) -> None:
        self.parsed: ParsedFunction = parse_function(func, needs_acc=True)
        self.__name__ = func.__name__
        self.__doc__ = func.__doc__
        self.params: list[str] = self.parsed.params[1:]
        #: per (backend, launch key) compiled objects, filled by the backends
        self.compiled: dict[tuple[str, Any], Any] = {}

    def __getitem__(self, config: tuple[Queue, WorkDiv]) -> Callable[..., None]:
        """``kernel[queue, workdiv](*args)`` is ``launch(queue, workdiv, kernel, *args)``."""
        queue, workdiv = config
        return functools.partial(launch, queue, workdiv, self)

    def __call__(self, *args: Any) -> None:
        raise KernelError(f"kernel {self.__name__} is launched on a queue: "
                          f"pt.launch(queue, workdiv, {self.__name__}, ...) or "
                          f"{self.__name__}[queue, workdiv](...)")

    def __repr__(self) -> str:
        return f"<portable kernel {self.__name__}({', '.join(self.parsed.params)})>"


def kernel(func: Callable[..., Any]) -> Kernel:
    """Decorate a function ``f(acc, *args)`` as a portable kernel.

    The source is checked at once (first parameter, loop forms); it is
    compiled at its first launch for each backend, work-division shape and
    argument types, then cached.

    Example::

        >>> import numpy as np, portable as pt
        >>> @pt.kernel
        ... def scale(acc, x, factor):
        ...     for i in acc.uniform_elements(x.size):
        ...         x[i] *= factor
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> x = np.arange(4.0)
        >>> pt.launch(q, pt.make_workdiv(q.device, x.size), scale, x, 2.0)
        >>> x.tolist()
        [0.0, 2.0, 4.0, 6.0]
    """
    return Kernel(func)


def device_function(func: Callable[..., Any]) -> DeviceFunction:
    """Decorate a function callable from kernels on every backend (see :class:`DeviceFunction`)."""
    return DeviceFunction(func)


_validated: set[tuple[int, WorkDiv]] = set()


def launch(queue: Queue, workdiv: WorkDiv, kernel: Kernel, *args: Any) -> None:
    """Enqueue ``kernel`` with ``args`` on ``queue`` over ``workdiv``.

    Checks, before anything runs: the work division fits the device, the
    argument count matches, and every array lives where the queue runs.

    Example::

        >>> import numpy as np, portable as pt
        >>> @pt.kernel
        ... def iota(acc, out):
        ...     for i in acc.uniform_elements(out.size):
        ...         out[i] = i
        >>> q = pt.Queue(pt.get_device("cpu_threads"))
        >>> out = np.full(5, -1)
        >>> pt.launch(q, pt.make_workdiv(q.device, 5), iota, out)
        >>> out.tolist()
        [0, 1, 2, 3, 4]
    """
    if not isinstance(kernel, Kernel):
        raise LaunchError(f"launch expects a @pt.kernel, got {type(kernel).__name__}")
    if not isinstance(workdiv, WorkDiv):
        raise LaunchError(f"launch expects a pt.WorkDiv, got {type(workdiv).__name__}; "
                          f"use pt.make_workdiv(queue.device, n)")
    if len(args) != len(kernel.params):
        raise LaunchError(
            f"kernel {kernel.__name__} takes {len(kernel.params)} argument(s) after acc "
            f"({', '.join(kernel.params)}) but {len(args)} were given")
    device = queue.device
    if (id(device), workdiv) not in _validated:
        workdiv.validate(device)
        if len(_validated) > 4096:  # work divisions that vary with the data: keep it small
            _validated.clear()
        _validated.add((id(device), workdiv))
    backend = queue.backend
    prepared, views = [], []
    for index, (name, value) in enumerate(zip(kernel.params, args)):
        if isinstance(value, View):
            home = value.collection.device
            if home.backend is not backend and (home.backend.is_gpu or backend.is_gpu):
                raise LaunchError(
                    f"argument {name!r} of kernel {kernel.__name__} is a view of a collection "
                    f"on {home}, but the queue runs on {device}; move it with "
                    f"collection.to(q, pt.get_device({device.backend.name!r})), q a queue on "
                    f"{home if home.backend.is_gpu else device}")
            views.append((index, ViewParam(value.layout, value.readonly)))
            prepared.append(value)  # the backend passes what its kernel takes of it
        else:
            prepared.append(backend.prepare_arg(kernel, name, value))
    backend.launch(queue, workdiv, kernel, prepared, tuple(views))
    queue._done()


def global_resolver(backend: Any, key: Any) -> Callable[[Any], Any]:
    """Maps a kernel's globals for compilation on ``backend``: device functions
    become their compiled versions; calling a kernel from a kernel is an error."""
    def resolve(value: Any) -> Any:
        if isinstance(value, DeviceFunction):
            return value.compiled(backend, key)
        if isinstance(value, Kernel):
            raise KernelError(f"kernel {value.__name__} is called from device code; "
                              f"kernels are launched from the host. Make the shared part "
                              f"a @pt.device_function")
        return value
    return resolve
