"""Capturing a kernel's or device function's source when it is decorated."""
from __future__ import annotations

import ast
import inspect
import textwrap
import types
from dataclasses import dataclass, field
from typing import Any, Callable

from ..checks import describe
from ..errors import KernelError
from .atomics import ATOMIC_DTYPES
from .diagnostics import SOURCE_FILES
from .names import namespace_of
from .site import Site
from .syntax import acc_member, check_source


@dataclass
class ParsedFunction:
    """A kernel or device function's source, checked once at decoration time.

    ``tree`` is a module holding the function's definition, without decorators,
    its nodes at the lines and columns of the user's file.
    """

    func: types.FunctionType
    tree: ast.Module
    acc: str | None
    params: list[str]
    filename: str
    #: ``"kernel"`` or ``"device function"``
    kind: str = "kernel"
    #: each ``acc.atomic_*`` whose array is a parameter (or an alias of one), as
    #: ``(member, parameter, line)``: launches check the argument's dtype
    atomic_params: tuple[tuple[str, str, int], ...] = ()
    #: the parameters the body stores into (directly or through an alias), with
    #: the line of the first store: launches refuse read-only arrays for them
    written_params: dict[str, int] = field(default_factory=dict)

    @property
    def where(self) -> str:
        """``kernel <name>`` or ``device function <name>``."""
        return f"{self.kind} {self.func.__qualname__}"

    @property
    def site(self) -> Site:
        """Where the function is written, for errors."""
        return Site(self.where, self.filename)


def parse_function(func: Callable[..., Any], *, needs_acc: bool) -> ParsedFunction:
    """Read and check the source of a kernel (``needs_acc``) or device function.

    A kernel's first parameter must be the accelerator: named ``acc`` or
    annotated with :class:`portable.Acc` (also as a string annotation, resolved
    in the function's globals and closure). A device function takes ``acc``
    first if it uses accelerator members, and nothing special otherwise.
    Python that no GPU compiles (``with``, ``try``, ``raise``, ``yield``,
    ``lambda``, nested ``def``, ``global``, comprehensions...), any use of
    ``acc`` other than ``acc.<member>`` or passing it on, and a loop member
    outside a ``for`` (or with ``break``) are refused here, on every backend.

    Example::

        >>> import portable as pt
        >>> @pt.kernel  # doctest: +ELLIPSIS
        ... def bad(acc, out):
        ...     with open("log"):
        ...         out[0] = 1
        Traceback (most recent call last):
        ...
        portable.errors.KernelError: kernel bad (...): a with block is not supported ...
    """
    kind = "kernel" if needs_acc else "device function"
    if not isinstance(func, types.FunctionType) or func.__name__ == "<lambda>":
        raise KernelError(f"a {kind} must be a function defined with def, got "
                          f"{describe(func)}")
    fdef, filename = _definition(func, kind)
    tree = ast.Module(body=[fdef], type_ignores=[])
    a = fdef.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs or a.defaults:
        raise KernelError(f"{func.__qualname__}: kernels and device functions take plain "
                          f"positional parameters only (no *args, **kwargs, defaults or "
                          f"keyword-only parameters)")
    params = [p.arg for p in a.args]
    first = a.args[0] if a.args else None
    is_acc = first is not None and (first.arg == "acc" or annotated_acc(func, first.arg))
    if needs_acc and not is_acc:
        got = f"is {first.arg!r}" if first is not None else "is missing"
        raise KernelError(
            f"{kind} {func.__qualname__}: the first parameter must be the accelerator "
            f"but {got}; write def {func.__name__}(acc, ...): (or annotate it as pt.Acc)")
    acc = first.arg if is_acc and first is not None else None
    parsed = ParsedFunction(func, tree, acc, params, filename, kind)
    check_source(parsed)
    SOURCE_FILES.add(filename)
    parsed.atomic_params, parsed.written_params = _writes(fdef, parsed.acc, params)
    return parsed


def _definition(func: types.FunctionType, kind: str) -> tuple[ast.FunctionDef, str]:
    """The ``def`` of ``func``, without decorators, its nodes at the lines and
    columns they have in the file, and the file's name."""
    try:
        lines, first = inspect.getsourcelines(func)
        filename = inspect.getsourcefile(func) or "<unknown>"
    except (OSError, TypeError) as err:
        raise KernelError(f"the source of {func.__qualname__} is not available ({err}); "
                          f"define kernels in a file, not in an interactive prompt") from None
    raw = "".join(lines)
    source = textwrap.dedent(raw)
    indent = len(raw.splitlines()[0]) - len(source.splitlines()[0])
    fdef = ast.parse(source).body[0]
    if not isinstance(fdef, ast.FunctionDef):
        raise KernelError(f"{kind} {func.__qualname__} must be defined with a plain def "
                          f"(not async def, a lambda or a callable object)")
    fdef.decorator_list = []
    ast.increment_lineno(fdef, first - 1)
    for node in ast.walk(fdef):
        if "col_offset" in node._attributes:
            located: Any = node  # an expression or statement: it has a position
            located.col_offset += indent
            if located.end_col_offset is not None:
                located.end_col_offset += indent
    return fdef, filename


def annotated_acc(func: types.FunctionType, name: str) -> bool:
    """Whether parameter ``name`` of ``func`` is annotated as :class:`portable.Acc`;
    a string annotation (``from __future__ import annotations``) is evaluated in
    the function's globals and closure.

    Example::

        >>> import portable as pt
        >>> def k(a: "pt.Acc", out: "int"):
        ...     pass
        >>> annotated_acc(k, "a"), annotated_acc(k, "out")
        (True, False)
    """
    from ..kernel import Acc
    hint = func.__annotations__.get(name)
    for _ in range(2):  # a quoted annotation under postponed evaluation is quoted twice
        if not isinstance(hint, str):
            break
        try:
            hint = eval(hint, namespace_of(func))  # an annotation: a name or dotted path
        except Exception:
            return False
    return hint is Acc


def base_name(node: ast.AST) -> str | None:
    """The name an array expression starts from: ``x`` for ``x``, ``x[i]``, ``x[a:b]``."""
    while isinstance(node, ast.Subscript):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _writes(fdef: ast.FunctionDef, acc: str | None, params: list[str]
            ) -> tuple[tuple[tuple[str, str, int], ...], dict[str, int]]:
    """The atomics on parameters and the parameters stored into (see
    :class:`ParsedFunction`), following plain aliases such as ``y = x`` or
    ``row = x[i]``."""
    aliases = {p: {p} for p in params if p != acc}
    pairs = [(t.id, node.value) for node in ast.walk(fdef) if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)]
    changed = True
    while changed:
        changed = False
        for name, value in pairs:
            source = aliases.get(base_name(value) or "")
            if source and not source <= aliases.setdefault(name, set()):
                aliases[name] |= source
                changed = True
    atomics: list[tuple[str, str, int]] = []
    written: dict[str, int] = {}
    node: Any
    for node in ast.walk(fdef):
        targets: list[ast.AST] = []
        member = acc_member(node.func, acc) if isinstance(node, ast.Call) else None
        if member in ATOMIC_DTYPES and node.args:
            targets = [node.args[0]]
            atomics += [(member, p, node.lineno)
                        for p in sorted(aliases.get(base_name(node.args[0]) or "", ()))]
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            targets = [node]
        for target in targets:
            for p in aliases.get(base_name(target) or "", ()):
                written.setdefault(p, node.lineno)
    return tuple(atomics), written
