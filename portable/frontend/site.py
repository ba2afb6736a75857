"""Where a kernel or device function is written, and errors that point into it.

Every error about a kernel's body names the function, the user's file and line,
quotes that line and puts a caret under the offending column::

    kernel fill (/home/me/work.py:12): a with block is not supported in a kernel: ...
        12 | with open("log"):
             ^
"""
from __future__ import annotations

import ast
import linecache
from dataclasses import dataclass

from ..errors import KernelError


def quote(filename: str, line: int, column: int | None = None) -> str:
    """Line ``line`` of ``filename`` as ``"    <line> | <code>"`` and, below it, a
    caret under ``column`` (0-based, counted in the file's line; the first
    character of the code when ``None``); ``""`` when the line cannot be read.

    Example::

        >>> import portable.frontend.site as here
        >>> print(quote(here.__file__, 1))
            1 | \"\"\"Where a kernel or device function is written, and errors that point into it.
                ^
    """
    text = linecache.getline(filename, line).rstrip()
    code = text.lstrip()
    if not code:
        return ""
    indent = len(text) - len(code)
    offset = 0 if column is None else min(max(column - indent, 0), len(code) - 1)
    prefix = f"    {line} | "
    return f"{prefix}{code}\n{' ' * (len(prefix) + offset)}^"


@dataclass(frozen=True)
class Site:
    """Where a kernel or device function is defined, for errors that point into it."""

    #: ``kernel <name>`` or ``device function <name>``
    where: str
    filename: str

    def error(self, node: ast.AST | int | None, message: str) -> KernelError:
        """A :class:`KernelError` naming the function, ``file:line`` of ``node`` (an
        AST node of the function, or a line number), quoting that line with a caret
        under the node's column.

        Example::

            >>> import ast
            >>> Site("kernel fill", "<none>").error(ast.Pass(lineno=3), "no pass").args[0]
            'kernel fill (<none>:3): no pass'
        """
        line = node if isinstance(node, int) else getattr(node, "lineno", None)
        if line is None:
            return KernelError(f"{self.where} ({self.filename}): {message}")
        column = None if isinstance(node, int) else getattr(node, "col_offset", None)
        return located(f"{self.where} ({self.filename}:{line}): {message}",
                       self.filename, line, column)


def located(text: str, filename: str, line: int, column: int | None = None) -> KernelError:
    """A :class:`KernelError` of ``text`` followed by the quoted line (see :func:`quote`).

    Example::

        >>> located("kernel k (<none>:2): bad", "<none>", 2).args[0]
        'kernel k (<none>:2): bad'
    """
    shown = quote(filename, line, column)
    return KernelError(f"{text}\n{shown}" if shown else text)
