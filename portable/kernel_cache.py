"""A disk cache of compiled kernels, shared by processes.

Each rewritten function (a kernel's body, the CPU's block loop, a device
function) is written to a real ``.py`` file in the cache directory, named by a
hash of everything that determines it: its rewritten source, the backend and
launch shape, the source and captured globals of the user's function (and of
the device functions it calls), this library's version and sources, and
Numba's version. The function is defined from that file, so Numba's own cache
(``njit(cache=True)``, ``cuda.jit(cache=True)``), keyed by file and argument
types, keeps the machine code beside it in ``__pycache__``.

The compiled code keeps the user's line numbers: a compile error is reported
at the user's file and line (see :func:`user_paths`).

Environment:

* ``PORTABLE_CACHE_DIR``: the directory (default ``$XDG_CACHE_HOME/portable-kernels``,
  else ``~/.cache/portable-kernels``);
* ``PORTABLE_CACHE=0``: no disk cache (kernels compile in every process).

A directory that cannot be written is reported once with a warning, and
kernels then compile without the disk cache.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.metadata
import linecache
import os
import sys
import tempfile
import types
import warnings
from pathlib import Path
from typing import Any

import numpy as np

#: set to 0 to switch the disk cache off
CACHE_VAR = "PORTABLE_CACHE"
#: the cache directory
DIR_VAR = "PORTABLE_CACHE_DIR"

_unwritable: set[str] = set()
#: cache file -> the user's file whose line numbers its code carries
_origins: dict[str, str] = {}


def cache_dir() -> str | None:
    """The directory of the disk cache, or ``None`` when ``PORTABLE_CACHE=0``.

    Example::

        >>> import os
        >>> from unittest import mock
        >>> with mock.patch.dict(os.environ, {"PORTABLE_CACHE_DIR": "~/kernels"}):
        ...     cache_dir() == os.path.expanduser("~/kernels")
        True
        >>> with mock.patch.dict(os.environ, {"PORTABLE_CACHE": "0"}):
        ...     cache_dir() is None
        True

    With neither variable set it is ``$XDG_CACHE_HOME/portable-kernels``, else
    ``~/.cache/portable-kernels``.
    """
    if os.environ.get(CACHE_VAR, "1").strip() == "0":
        return None
    chosen = os.environ.get(DIR_VAR)
    if chosen:
        return os.path.abspath(os.path.expanduser(chosen))
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "portable-kernels")


@functools.lru_cache(maxsize=None)
def library_stamp() -> str:
    """A hash of what compiles kernels besides their own source: the versions of
    this library, Numba, numba-cuda and Python, and this library's sources."""
    import portable
    digest = hashlib.sha256()
    for dist in ("numba", "numba-cuda", "llvmlite"):
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "none"
        digest.update(f"{dist}={version};".encode())
    digest.update(f"portable={portable.__version__};python={sys.version}".encode())
    root = Path(portable.__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode() + path.read_bytes())
    return digest.hexdigest()


def fingerprint(value: Any) -> str | None:
    """A text that is the same in every process for equal ``value``s and differs
    when a kernel compiled with ``value`` as a global would differ; ``None`` for
    values without one (a kernel using them is not cached on disk).

    Example::

        >>> fingerprint((1, 2.5, np.float32))
        '(int:1,float:2.5,type:numpy.float32)'
        >>> fingerprint(object()) is None
        True
    """
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, np.ndarray):
        data = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()
        return f"ndarray:{value.dtype.str}:{value.shape}:{data}"
    if isinstance(value, (np.generic, np.dtype)):
        return f"{type(value).__name__}:{value!r}"
    if isinstance(value, (tuple, list)):
        parts = [fingerprint(item) for item in value]
        return None if None in parts else "(" + ",".join(parts) + ")"  # type: ignore[arg-type]
    if isinstance(value, types.ModuleType):
        return f"module:{value.__name__}"
    own = getattr(value, "cache_fingerprint", None)  # device functions
    if callable(own):
        return own()
    if isinstance(value, (type, types.BuiltinFunctionType)):
        return f"type:{value.__module__}.{value.__qualname__}"
    function = getattr(value, "py_func", value)  # Numba dispatchers
    if isinstance(function, types.FunctionType):
        code = function.__code__
        body = hashlib.sha256(code.co_code + repr((code.co_consts, code.co_names)).encode())
        return f"function:{function.__module__}.{function.__qualname__}:{body.hexdigest()}"
    text = repr(value)
    return None if " at 0x" in text else f"{type(value).__qualname__}:{text}"


def cached_function(text: str, name: str, namespace: dict[str, Any], key: Any, *,
                    code: Any = None, origin: str | None = None) -> tuple[Any, bool]:
    """Define the function ``name`` of ``text`` with the globals ``namespace``;
    with the disk cache on, in a module (in ``sys.modules``) of the cache file
    named by ``text`` and ``key``. Returns the function and whether it lives in
    a cache file (then Numba may cache it).

    ``code``, when given, is the AST compiled instead of ``text`` (``text`` is
    its unparsed source), carrying the line numbers of the file ``origin``.
    ``key`` is ``None`` when something in the function has no fingerprint.

    Example::

        >>> space = {}
        >>> f, on_disk = cached_function("def f(x):\\n    return x + 1\\n", "f", space, "demo")
        >>> f(1)
        2
    """
    path = _cache_file(text, key, origin) if key is not None else None
    if path is not None:  # a module Numba can find again when it loads its cache
        name_of_module = Path(path).stem
        module = types.ModuleType(name_of_module)
        module.__dict__.update(namespace)
        module.__dict__.update(__name__=name_of_module, __file__=path, __spec__=None,
                               __loader__=None)
        sys.modules[name_of_module] = module
        namespace = module.__dict__
        _origins[path] = origin or "<portable>"
        if origin is not None:
            lines = linecache.getlines(origin)
            linecache.cache[path] = (sum(map(len, lines)), None, lines, path)
    filename = path or origin or "<portable>"
    exec(compile(code if code is not None else text, filename, "exec"), namespace)
    return namespace[name], path is not None


def _cache_file(text: str, key: Any, origin: str | None) -> str | None:
    """The cache file holding ``text`` for ``key``, written if missing; ``None``
    when the cache is off or its directory cannot be written."""
    directory = cache_dir()
    if directory is None or directory in _unwritable:
        return None
    header = (f"# Compiled by portable; the code carries the line numbers of "
              f"{origin or 'this file'}.\n")
    content = header + text
    digest = hashlib.sha256(f"{library_stamp()}\n{key!r}\n{content}".encode()).hexdigest()
    path = os.path.join(directory, f"pt_{digest[:32]}.py")
    if os.path.exists(path):
        return path
    try:
        os.makedirs(directory, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=directory, prefix=".pt_", suffix=".tmp")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as file:
                file.write(content)
            os.replace(temporary, path)  # atomic: readers see all of it or nothing
        except BaseException:
            os.unlink(temporary)
            raise
    except OSError as err:
        _unwritable.add(directory)
        warnings.warn(f"portable: the kernel cache directory {directory} cannot be written "
                      f"({err}); kernels are compiled without the disk cache. Set "
                      f"{DIR_VAR} to a writable directory, or {CACHE_VAR}=0",
                      RuntimeWarning, stacklevel=2)
        return None
    return path


def user_paths(text: str) -> str:
    """``text`` (a compiler's message) with every cache file replaced by the
    user's file whose lines its code carries.

    Example::

        >>> user_paths("no cache file here")
        'no cache file here'
    """
    for path, origin in _origins.items():
        if path in text:
            text = text.replace(path, origin)
        try:
            short = os.path.relpath(path)  # Numba shows paths relative to the cwd
        except ValueError:
            continue
        text = text.replace(short, origin)
    return text
