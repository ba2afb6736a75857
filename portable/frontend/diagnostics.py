"""Errors of the backends' compilers and of simulated kernels, mapped to the user's source.

A kernel's generated code carries the lines and columns of the user's file (and
a disk-cache file stands for that file, see
:func:`portable.kernel_cache.user_paths`), so a compiler's complaint or a
simulated kernel's exception is reported like the library's own checks: the
kernel's name, ``file:line``, that line of source and a caret.
"""
from __future__ import annotations

import os
import re
import traceback

from ..errors import KernelError
from ..kernel_cache import user_paths
from .site import quote

_LOCATION = re.compile(r'File "([^"]+)", line (\d+)|\bat (\S+\.py) \((\d+)\)')
#: files holding kernels or device functions (where a failing frame is the user's)
SOURCE_FILES: set[str] = set()


def _caret_column(text: str, start: int) -> int | None:
    """The column of the caret line that follows position ``start`` of a Numba
    message (Numba prints the offending line, then a line holding only ``^``)."""
    for line in text[start:].splitlines()[1:8]:
        if line.strip() == "^":
            return line.index("^")
    return None


def compiler_error(where: str, backend: str, error: Exception) -> KernelError:
    """The backend compiler's failure to compile the kernel ``where`` (``kernel
    <name>``) as a :class:`KernelError` naming the kernel, the user's file and
    line Numba points at (quoted, with a caret), and keeping Numba's message.

    Example::

        >>> str(compiler_error("kernel k", "cpu_serial", ValueError("bad")))
        'kernel k does not compile for cpu_serial. Numba says:\\nbad'
    """
    text = user_paths(str(error).strip())  # cache files stand for the user's file
    head, shown = f"{where} does not compile for {backend}", ""
    for match in _LOCATION.finditer(text):
        filename, line = match.group(1) or match.group(3), int(match.group(2) or match.group(4))
        if filename.startswith("<"):
            continue
        filename = os.path.abspath(filename)  # numba shortens paths below the cwd
        head = f"{where} ({filename}:{line}): does not compile for {backend}"
        shown = quote(filename, line, _caret_column(text, match.end()))
        break
    if not shown:  # some compilers keep the location out of the message
        place = _error_loc(error)
        if place is not None:
            filename, line, column = place
            head = f"{where} ({filename}:{line}): does not compile for {backend}"
            shown = quote(filename, line, column)
    hint = ""
    if "readonly array" in text:
        hint = (" It writes a read-only array (a member of a const_view(), or a read-only "
                "argument): pass collection.view() or a writable array.")
    body = f"\n{shown}\n" if shown else " "
    return KernelError(f"{head}.{hint}{body}Numba says:\n{text}")


def _error_loc(error: BaseException) -> tuple[str, int, int | None] | None:
    """The user's file, line and column that ``error`` (or an error it was raised
    from) carries as its Numba ``loc``; else the innermost ``loc`` in one of the
    compiler's frames those errors passed through (numba-cuda raises some typing
    errors bare, from the typing constraint that holds the location)."""
    chain: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    for exc in chain:
        place = _user_loc(getattr(exc, "loc", None))
        if place is not None:
            return place
    for exc in reversed(chain):  # the innermost error's frames first
        frames = []
        tb = exc.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        for frame in reversed(frames):
            local = frame.f_locals
            owner = getattr(local.get("self"), "__dict__", None)  # no properties run
            for loc in (local.get("loc"), owner.get("loc") if isinstance(owner, dict) else None):
                place = _user_loc(loc)
                if place is not None:
                    return place
    return None


def _user_loc(loc: object) -> tuple[str, int, int | None] | None:
    """``(file, line, column)`` of a Numba ``loc`` in a kernel's or device function's file."""
    filename, line = getattr(loc, "filename", None), getattr(loc, "line", None)
    if not isinstance(filename, str) or not isinstance(line, int):
        return None
    filename = os.path.abspath(user_paths(filename))
    if filename not in SOURCE_FILES:
        return None
    column = getattr(loc, "col", None)
    return filename, line, column if isinstance(column, int) else None


def failing_line(error: BaseException) -> tuple[str, int, int | None] | None:
    """The user's file, line and column (where known) of the innermost frame of
    ``error``'s traceback that runs a kernel or device function; ``None`` if
    none does."""
    found = None
    for frame in traceback.extract_tb(error.__traceback__):
        filename = user_paths(frame.filename)
        if filename in SOURCE_FILES:
            found = (filename, frame.lineno or 0, getattr(frame, "colno", None))
    return found


def at_failing_line(where: str, message: str, error: BaseException) -> str:
    """``where (file:line): message`` and the quoted line of ``error``'s failing
    frame (see :func:`failing_line`), or ``where: message`` when there is none.

    Example::

        >>> at_failing_line("kernel k", "fails", ValueError("no traceback"))
        'kernel k: fails'
    """
    place = failing_line(error)
    if place is None:
        return f"{where}: {message}"
    filename, line, column = place
    shown = quote(filename, line, column)
    return f"{where} ({filename}:{line}): {message}" + (f"\n{shown}" if shown else "")
