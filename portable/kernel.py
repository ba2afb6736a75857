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
import types
from typing import Any, Callable

import numpy as np

from .checks import describe, expect_queue
from .collection import MultiCollection, PortableCollection, View
from .errors import KernelError, LaunchArgumentError, LaunchError
from .queue import Queue
from .frontend import (ParsedFunction, ViewParam, atomic_dtype_problem, compiler_error,
                       function_fingerprint, parse_function)
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
        self._fingerprint: str | None = None

    def cache_fingerprint(self) -> str | None:
        """A hash of the source and globals this function compiles from (for the
        disk cache's keys); ``None`` when some global has none.

        Example::

            >>> import portable as pt
            >>> @pt.device_function
            ... def half(x):
            ...     return x / 2
            >>> len(half.cache_fingerprint())
            64
        """
        if self._fingerprint is None:
            self._fingerprint = f"recursive {self.__name__}"  # while its calls are hashed
            self._fingerprint = function_fingerprint(self.parsed)
        return self._fingerprint

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
        self.compiled: dict[tuple[Any, ...], Any] = {}

    def __getitem__(self, config: tuple[Queue, WorkDiv]) -> Callable[..., None]:
        """``kernel[queue, workdiv](*args)`` is ``launch(queue, workdiv, kernel, *args)``."""
        where = f"{self.__name__}[queue, workdiv]"
        if not (isinstance(config, tuple) and len(config) == 2):
            raise LaunchArgumentError(
                f"{where} takes a queue and a work division, got {describe(config)}; write "
                f"{self.__name__}[queue, pt.make_workdiv(queue.device, n)](...)")
        queue, workdiv = config
        expect_queue(queue, "queue", where)
        _expect_workdiv(workdiv, where)
        return functools.partial(launch, queue, workdiv, self)

    def argument(self, name: str) -> str:
        """How errors name the kernel's parameter ``name``: by name and position.

        Example::

            >>> import portable as pt
            >>> @pt.kernel
            ... def fill(acc, out, value):
            ...     out[0] = value
            >>> fill.argument("value")
            "argument 'value' (number 2 after acc) of kernel fill"
        """
        position = self.params.index(name) + 1 if name in self.params else "?"
        return f"argument {name!r} (number {position} after acc) of kernel {self.__name__}"

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
    if type(queue) is not Queue:
        expect_queue(queue, "queue", "pt.launch")
    if type(kernel) is not Kernel:
        _expect_kernel(kernel)
    if type(workdiv) is not WorkDiv:
        _expect_workdiv(workdiv, "pt.launch")
    if len(args) != len(kernel.params):
        raise LaunchError(
            f"kernel {kernel.__name__} takes {len(kernel.params)} argument(s) after acc "
            f"({', '.join(kernel.params)}) but {len(args)} were given")
    backend = queue.backend
    accepted = _accepted_args(backend, kernel, args)
    if accepted is None:  # some argument fails a check: find the first, in order, and say so
        accepted = _checked_args(queue, workdiv, kernel, args)
    else:
        _validate(queue.device, workdiv)
    prepared, views = accepted
    _check_uses(kernel, prepared)
    backend.launch(queue, workdiv, kernel, prepared, views)
    queue._done()


def _expect_kernel(kernel: Any) -> None:
    if not isinstance(kernel, Kernel):
        fix = ("a device function runs inside kernels; launch a @pt.kernel that calls it"
               if isinstance(kernel, DeviceFunction) else "decorate the function with @pt.kernel")
        raise LaunchArgumentError(f"pt.launch expects a @pt.kernel as argument 'kernel', got "
                                  f"{describe(kernel)}; {fix}")


def _validate(device: Any, workdiv: WorkDiv) -> None:
    """``workdiv`` fits ``device`` (remembered once it does)."""
    if (id(device), workdiv) not in _validated:
        workdiv.validate(device)
        if len(_validated) > 4096:  # work divisions that vary with the data: keep it small
            _validated.clear()
        _validated.add((id(device), workdiv))


_NUMBERS = (float, bool)
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_view_params: dict[tuple[Any, bool], ViewParam] = {}


def _accepted_args(backend: Any, kernel: Kernel, args: tuple[Any, ...]
                   ) -> tuple[list[Any], tuple[tuple[int, ViewParam], ...]] | None:
    """In one pass: every argument as ``backend`` passes it and the views among
    them, when each passes :func:`argument_problem` and the backend takes it;
    ``None`` as soon as one does not (:func:`_checked_args` then says which). Numbers
    are passed as they are on every backend."""
    prepare = backend.prepare_arg
    prepared: list[Any] = []
    views: list[tuple[int, ViewParam]] = []
    for index, value in enumerate(args):
        kind = type(value)
        if kind in _NUMBERS or (kind is int and _INT64_MIN <= value <= _INT64_MAX):
            prepared.append(value)
            continue
        if kind is View:
            home = value.collection.device.backend
            if home is not backend and not (home.host_memory and backend.host_memory):
                return None
            key = (value.layout, value.readonly)
            param = _view_params.get(key)
            if param is None:
                param = _view_params[key] = ViewParam(value.layout, value.readonly)
            views.append((index, param))
            prepared.append(value)  # the backend passes what its kernel takes of it
            continue
        if kind in _ARRAY_KINDS:  # what argument_problem asks of these, inline
            dtype = getattr(value, "dtype", None)
            if isinstance(dtype, np.dtype) and _dtype_problem(dtype) is not None:
                return None
        elif argument_problem(value) is not None:
            return None
        try:
            prepared.append(prepare(kernel, kernel.params[index], value))
        except LaunchError:
            return None
    return prepared, tuple(views)


def _checked_args(queue: Queue, workdiv: WorkDiv, kernel: Kernel, args: tuple[Any, ...]
                  ) -> tuple[list[Any], tuple[tuple[int, ViewParam], ...]]:
    """What :func:`_accepted_args` gives, or the error about the first argument, in
    order, that no kernel can take, then about the work division, then about the
    first argument that does not live where the queue runs."""
    for name, value in zip(kernel.params, args):
        problem = argument_problem(value)
        if problem is not None:
            raise LaunchArgumentError(f"{kernel.argument(name)} {problem}")
    device = queue.device
    _validate(device, workdiv)
    backend = queue.backend
    prepared, views = [], []
    for index, (name, value) in enumerate(zip(kernel.params, args)):
        if isinstance(value, View):
            home = value.collection.device
            both_host = home.backend.host_memory and backend.host_memory
            if home.backend is not backend and not both_host:
                raise LaunchError(
                    f"argument {name!r} of kernel {kernel.__name__} is a view of a collection "
                    f"on {home}, but the queue runs on {device}; move it with "
                    f"collection.to(q, pt.get_device({device.backend.name!r})), q a queue on "
                    f"{device if home.backend.host_memory else home}")
            views.append((index, ViewParam(value.layout, value.readonly)))
            prepared.append(value)
        else:
            prepared.append(backend.prepare_arg(kernel, name, value))
    return prepared, tuple(views)


def _expect_workdiv(workdiv: Any, where: str) -> None:
    if not isinstance(workdiv, WorkDiv):
        raise LaunchArgumentError(f"{where} expects a pt.WorkDiv as argument 'workdiv', got "
                                  f"{describe(workdiv)}; use pt.make_workdiv(queue.device, n)")


_INT64 = range(-(2**63), 2**63)


def argument_problem(value: Any) -> str | None:
    """What makes ``value`` something no kernel can take (the rest of a sentence that
    starts with the argument's name, ending in the fix), or ``None`` if it may be
    passed. The same on every backend; where the value lives is the backend's check.

    Example::

        >>> argument_problem(np.zeros(3)) is None
        True
        >>> argument_problem(None)
        'is None; pass an array or a number'
    """
    kind = type(value)
    if kind is np.ndarray:  # the common kinds first; the checks below agree with these
        return _dtype_problem(value.dtype)
    if kind is float or kind is bool or (kind is int and value in _INT64):
        return None
    if kind is View:
        return None  # a view's members are checked by the layout; it has no dtype
    if kind in _ARRAY_KINDS:
        dtype = getattr(value, "dtype", None)
        return _dtype_problem(dtype) if isinstance(dtype, np.dtype) else None
    if value is None:
        return "is None; pass an array or a number"
    if isinstance(value, (str, bytes)):
        return f"is {describe(value)}; kernels take arrays and numbers (device code has no strings)"
    if isinstance(value, DeviceFunction):
        return (f"is the device function {value.__name__}; device functions are not passed "
                f"to kernels but called inside them, found by their global name: call "
                f"{value.__name__}(...) in the kernel")
    if isinstance(value, Kernel):
        return (f"is the kernel {value.__name__}; kernels cannot be passed to kernels: launch "
                f"it from the host, and share code through a @pt.device_function")
    if isinstance(value, PortableCollection):
        return ("is a PortableCollection; pass collection.view() (read-write) or "
                "collection.const_view() (read-only)")
    if isinstance(value, MultiCollection):
        return "is a MultiCollection; pass the view of one of its collections: multi[i].view()"
    if isinstance(value, (list, dict, set, frozenset)):
        return (f"is a {type(value).__name__}; kernels take arrays: pass np.asarray(...) of "
                f"the values (copied to a device buffer first for a GPU queue)")
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType, types.MethodType,
                          types.ModuleType, np.ufunc)) or (
            isinstance(value, type) and not issubclass(value, np.generic)):
        return (f"is {describe(value)}; kernels take arrays and numbers: call a "
                f"@pt.device_function by its global name inside the kernel instead")
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
        return (f"is the int {value}, beyond the int64 range kernels take; pass "
                f"np.uint64({value}) for an unsigned 64-bit value, or a float")
    if isinstance(value, tuple):
        for k, item in enumerate(value):
            problem = argument_problem(item)
            if problem is not None:
                return f"holds at [{k}] a value that {problem}"
        return None
    if not issubclass(kind, (int, type)):  # none of the checks above fires for its kind
        _ARRAY_KINDS.add(kind)
    dtype = getattr(value, "dtype", None)
    return _dtype_problem(dtype) if isinstance(dtype, np.dtype) else None


#: types whose values only the dtype check concerns (device arrays, tensors...)
_ARRAY_KINDS: set[type] = set()
_dtype_problems: dict[np.dtype, str | None] = {}


def _dtype_problem(dtype: np.dtype) -> str | None:
    try:
        return _dtype_problems[dtype]
    except KeyError:
        problem = _dtype_problems[dtype] = _find_dtype_problem(dtype)
        return problem


def _find_dtype_problem(dtype: np.dtype) -> str | None:
    if dtype.fields is not None or dtype.kind == "V":
        return (f"has the structured dtype {dtype}; pass each field as its own array "
                f"(x['field']), or keep the records in a pt.PortableCollection")
    if dtype.kind == "O":
        return ("has dtype object; kernels take numeric arrays: convert it with "
                "x.astype(np.float64) (or the numeric type the data holds)")
    if dtype.kind in "US":
        return f"holds strings ({dtype}); kernels take numeric arrays"
    if dtype.kind in "mM":
        return f"holds {dtype} dates or times; pass x.view(np.int64)"
    if not dtype.isnative:
        return (f"has non-native byte order ({dtype.str}); convert it with "
                f"x.astype(x.dtype.newbyteorder('='))")
    return None


def _check_uses(kernel: Kernel, prepared: list[Any]) -> None:
    """Refuse, before compiling, read-only arrays the kernel writes and atomics on
    dtypes that some backend has no atomics for."""
    parsed = kernel.parsed
    for name, line in parsed.written_params.items():
        value = prepared[kernel.params.index(name)]
        if isinstance(value, np.ndarray) and not value.flags.writeable:
            raise LaunchArgumentError(
                f"{kernel.argument(name)} is a read-only array, but the kernel writes it "
                f"({parsed.filename}:{line}); pass a writable array (x.copy())")
    for member, name, line in parsed.atomic_params:
        dtype = getattr(prepared[kernel.params.index(name)], "dtype", None)
        problem = atomic_dtype_problem(member, dtype) if isinstance(dtype, np.dtype) else None
        if problem is not None:
            raise parsed.site.error(line, f"{problem} (argument {name!r})")


def compile_error(kernel: Kernel, backend: str, error: Exception) -> KernelError:
    """Numba's failure to compile ``kernel`` for ``backend`` as a :class:`KernelError`
    that names the kernel, the user's file and line numba points at (quoted, with a
    caret), and keeps numba's message (see :func:`portable.frontend.compiler_error`).

    Example (in a backend)::

        try:
            compiled = dispatcher.compile(types)
        except numba.core.errors.NumbaError as err:
            raise compile_error(kernel, "cuda", err) from None
    """
    return compiler_error(f"kernel {kernel.__name__}", backend, error)


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
