"""Turning one kernel source into each backend's code.

A portable kernel is a plain Python function whose first parameter is the
accelerator handle ``acc``. Inside it, ``acc.<member>`` is the only
backend-specific thing, so a kernel is compiled for a backend by rewriting
those members into the backend's own expressions (a :class:`Dialect`), then
handing the rewritten function to the backend's compiler (``numba.njit`` or
``numba.cuda.jit``). The rewrite keeps the user's line numbers, so compiler
errors point at the user's source.

The loop helpers (``acc.uniform_elements`` and friends) may only be the
iterable of a ``for`` loop; they become nested ``range`` loops, which every
Numba target compiles (generators do not compile for GPUs).
"""
from __future__ import annotations

import ast
import builtins
import copy
import difflib
import functools
import hashlib
import inspect
import itertools
import linecache
import textwrap
import types
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from .checks import describe
from .errors import KernelError
from .kernel_cache import cached_function, fingerprint
from .layout import align_up

#: index members read as attributes: ``acc.block_idx`` and so on
INDEX_MEMBERS = ("block_idx", "thread_idx", "grid_blocks", "block_threads",
                 "thread_elements", "global_thread_idx", "grid_threads")
#: loop members, used as ``for i in acc.<member>(...)``
LOOP_MEMBERS = ("uniform_elements", "uniform_groups", "uniform_group_elements",
                "independent_groups", "independent_group_elements")
#: members called like functions
CALL_MEMBERS = ("once_per_grid", "once_per_block", "sync_block", "shared_array",
                "atomic_add", "atomic_sub", "atomic_min", "atomic_max",
                "atomic_exch", "atomic_cas")
ALL_MEMBERS = INDEX_MEMBERS + LOOP_MEMBERS + CALL_MEMBERS + ("ndim",)


@dataclass
class Dialect:
    """How one backend spells the accelerator's members.

    ``index(kind, d)`` returns the source of an expression for the primitive
    index ``kind`` (``block_idx``, ``thread_idx``, ``grid_blocks``,
    ``block_threads``, ``thread_elements``) in dimension ``d`` of an
    ``ndim``-dimensional launch, where ``acc`` names the accelerator
    parameter. ``calls`` maps the call members that are not built from
    indices to the dotted name of the backend function that implements them
    (called without ``acc``); ``globals`` are the names those spellings need.
    """

    ndim: int
    index: Callable[[str, int, str], str]
    calls: dict[str, str]
    globals: dict[str, Any] = field(default_factory=dict)
    #: a function wrapped around every element index from a runtime-sized
    #: chunk, telling the compiler the index is not negative (so indexing
    #: needs no wraparound check and loops vectorize); ``None`` for none
    index_hint: str | None = None
    #: dtypes the backend's compiler cannot index (collection members of these
    #: types are an error when a kernel uses them)
    unsupported_dtypes: frozenset[np.dtype] = frozenset()
    #: whether a view's used members are passed as parameters of their own
    #: (else the view's buffer is, and a prologue builds the member arrays)
    view_members_as_params: bool = False


class _Placeholder(ast.NodeTransformer):
    """Replaces ``__PT_BODY__`` statements and ``__PT_X<n>__`` names in a template."""

    def __init__(self, body: list[ast.stmt], exprs: dict[str, ast.expr]) -> None:
        self.body, self.exprs = body, exprs

    def visit_Expr(self, node: ast.Expr) -> Any:
        if isinstance(node.value, ast.Name) and node.value.id == "__PT_BODY__":
            return self.body
        if isinstance(node.value, ast.Name) and node.value.id == "__PT_BODY_COPY__":
            return copy.deepcopy(self.body)
        return self.generic_visit(node)

    def visit_Name(self, node: ast.Name) -> Any:
        return self.exprs.get(node.id, node)


@dataclass(frozen=True)
class Site:
    """Where a kernel or device function is defined, for errors that point into it."""

    #: ``kernel <name>`` or ``device function <name>``
    where: str
    filename: str

    def error(self, node: ast.AST | int | None, message: str) -> KernelError:
        """A :class:`KernelError` naming the function, ``file:line`` of ``node`` (or
        the line number ``node``) and that line of source.

        Example::

            >>> import ast
            >>> Site("kernel fill", "<none>").error(ast.Pass(lineno=3), "no pass").args[0]
            'kernel fill (<none>:3): no pass'
        """
        line = node if isinstance(node, int) else getattr(node, "lineno", None)
        if line is None:
            return KernelError(f"{self.where} ({self.filename}): {message}")
        text = f"{self.where} ({self.filename}:{line}): {message}"
        source = linecache.getline(self.filename, line).strip()
        return KernelError(f"{text}\n    {line} | {source}" if source else text)


class _KernelRewriter(ast.NodeTransformer):
    """A rewriter of the function at ``site``, whose errors give the line."""

    site: Site

    def _err(self, node: ast.AST, message: str) -> KernelError:
        return self.site.error(node, message)


class _AccRewriter(_KernelRewriter):
    """Rewrites every ``acc.<member>`` of one function for one dialect."""

    def __init__(self, acc: str, dialect: Dialect, site: Site) -> None:
        self.acc, self.dialect, self.site = acc, dialect, site
        self._ids = itertools.count()

    # -- helpers -----------------------------------------------------------
    def _member(self, node: ast.AST) -> str | None:
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == self.acc):
            return node.attr  # checked by _check_members at decoration
        return None

    def _ix(self, kind: str, d: int) -> str:
        return f"({self.dialect.index(kind, d, self.acc)})"

    def _expr(self, source: str, like: ast.AST) -> ast.expr:
        expr = ast.parse(source, mode="eval").body
        for sub in ast.walk(expr):
            ast.copy_location(sub, like)
        return expr

    def _index_source(self, member: str, d: int) -> str:
        if member == "global_thread_idx":
            return (f"{self._ix('block_idx', d)} * {self._ix('block_threads', d)}"
                    f" + {self._ix('thread_idx', d)}")
        if member == "grid_threads":
            return f"{self._ix('grid_blocks', d)} * {self._ix('block_threads', d)}"
        return self._ix(member, d)

    # -- attribute reads and calls --------------------------------------------
    def visit_Attribute(self, node: ast.Attribute) -> Any:
        member = self._member(node)
        if member is None:
            return self.generic_visit(node)
        if member == "ndim":
            return ast.copy_location(ast.Constant(self.dialect.ndim), node)
        if member not in INDEX_MEMBERS:
            raise self._err(node, f"acc.{member} must be called")
        parts = [self._index_source(member, d) for d in range(self.dialect.ndim)]
        source = parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ",)"
        return self._expr(source, node)

    def visit_Call(self, node: ast.Call) -> Any:
        member = self._member(node.func)
        if member is None:
            return self.generic_visit(node)
        if member in LOOP_MEMBERS:
            raise self._err(node, f"acc.{member}(...) can only be the iterable of a "
                                  f"for loop: for i in acc.{member}(...):")
        if member in INDEX_MEMBERS or member == "ndim":
            raise self._err(node, f"acc.{member} is a value, not a function; drop the ()")
        if node.keywords:
            raise self._err(node, f"acc.{member}() takes positional arguments only")
        args = [self.visit(a) for a in node.args]
        if member in ("once_per_grid", "once_per_block"):
            if args:
                raise self._err(node, f"acc.{member}() takes no arguments")
            kinds = ("thread_idx",) if member == "once_per_block" else ("block_idx", "thread_idx")
            tests = [f"{self._ix(k, d)} == 0" for k in kinds for d in range(self.dialect.ndim)]
            return self._expr(" and ".join(tests), node)
        target = self._expr(self.dialect.calls[member], node)
        return ast.copy_location(ast.Call(func=target, args=args, keywords=[]), node)

    # -- loops ----------------------------------------------------------------
    def visit_For(self, node: ast.For) -> Any:
        member = self._member(node.iter.func) if isinstance(node.iter, ast.Call) else None
        if member is None or member not in LOOP_MEMBERS:
            return self.generic_visit(node)
        if node.orelse:
            raise self._err(node, f"a for loop over acc.{member} cannot have an else clause")
        for stmt in node.body:
            for sub in _walk_same_loop(stmt):
                if isinstance(sub, ast.Break):
                    raise self._err(sub, f"break is not supported in a loop over "
                                         f"acc.{member}: each thread runs only its share "
                                         f"of the loop; use a flag or an early return")
        if node.iter.keywords:
            raise self._err(node, f"acc.{member}() takes positional arguments only")
        body = [s for stmt in node.body for s in _as_list(self.visit(stmt))]
        args = [self.visit(a) for a in node.iter.args]
        stmts = getattr(self, f"_loop_{member}")(node, args, body)
        for stmt in stmts:
            for sub in ast.walk(stmt):
                if not hasattr(sub, "lineno") or sub.lineno is None:
                    ast.copy_location(sub, node)
        return stmts

    def _targets(self, node: ast.For, count: int, member: str) -> list[ast.expr]:
        target = node.target
        elts = target.elts if isinstance(target, ast.Tuple) else [target]
        if len(elts) != count or not all(isinstance(e, ast.Name) for e in elts):
            want = "a name" if count == 1 else f"a tuple of {count} names"
            raise self._err(node, f"the target of a loop over acc.{member} must be {want}")
        return elts

    def _template(self, source: str, body: list[ast.stmt], exprs: dict[str, ast.expr],
                  like: ast.AST) -> list[ast.stmt]:
        tree = ast.parse(textwrap.dedent(source))
        for sub in ast.walk(tree):
            if isinstance(sub, (ast.stmt, ast.expr)):
                ast.copy_location(sub, like)
        return _Placeholder(body, exprs).visit(tree).body

    def _element_loops(self, loops: list[tuple[str, str, str, str, str]], body: list[ast.stmt],
                       uid: int) -> str:
        """Template source that gives each ``(var, first, extent, stride, elements)``
        its indices: from ``first``, ``elements`` consecutive ones every
        ``stride``, below ``extent``; the body goes at ``__PT_BODY__``.

        With one element per thread (a compile-time 1) the loops are ``while``
        loops, the first iteration peeled in 1-D: a ``range`` loop computes its
        trip count with two integer divisions per thread, which costs a GPU a
        third of its bandwidth when each thread runs one iteration. Bodies
        with ``continue`` keep ``range`` loops (``continue`` would skip the
        increment of a ``while`` loop).
        """
        single = all(e == "(1)" for *_, e in loops) and not _has_continue(body)
        lines: list[str] = []
        if single and len(loops) == 1:
            var, first, extent, stride, _ = loops[0]
            lines = [f"{var} = {first}", f"if {var} < {extent}:", "    __PT_BODY__",
                     f"    {var} += {stride}", f"    while {var} < {extent}:",
                     "        __PT_BODY_COPY__", f"        {var} += {stride}"]
            return "\n".join(lines) + "\n"
        if single:
            closers: list[str] = []
            for depth, (var, first, extent, stride, _) in enumerate(loops):
                pad = "    " * depth
                lines += [f"{pad}{var} = {first}", f"{pad}while {var} < {extent}:"]
                closers.append(f"{pad}    {var} += {stride}")
            lines.append("    " * len(loops) + "__PT_BODY__")
            return "\n".join(lines + closers[::-1]) + "\n"
        depth, inner = 0, []
        for var, first, extent, stride, e in loops:
            pad = "    " * depth
            if e == "(1)":
                lines.append(f"{pad}for {var} in range({first}, {extent}, {stride}):")
            else:
                chunk = f"__pt_c{uid}_{var}"
                lines.append(f"{pad}for {chunk} in range({first}, {extent}, {stride}):")
                inner.append((var, chunk, extent, e))
            depth += 1
        for var, chunk, extent, e in inner:
            lines += self._index_loop(var, chunk, f"min({chunk} + {e}, {extent})", depth, uid)
            depth += 1
        lines.append("    " * depth + "__PT_BODY__")
        return "\n".join(lines) + "\n"

    def _index_loop(self, var: str, start: str, stop: str, depth: int, uid: int) -> list[str]:
        """``for var in range(start, stop)``, through the dialect's index hint."""
        pad = "    " * depth
        hint = self.dialect.index_hint
        if hint is None:
            return [f"{pad}for {var} in range({start}, {stop}):"]
        raw = f"__pt_j{uid}_{var}"
        return [f"{pad}for {raw} in range({start}, {stop}):", f"{pad}    {var} = {hint}({raw})"]

    def _loop_uniform_elements(self, node: ast.For, args: list[ast.expr],
                               body: list[ast.stmt]) -> list[ast.stmt]:
        nd = self.dialect.ndim
        if len(args) != nd:
            raise self._err(node, f"acc.uniform_elements takes one extent per dimension of "
                                  f"the work division: {nd} expected, {len(args)} given")
        targets = self._targets(node, nd, "uniform_elements")
        uid = next(self._ids)
        src, exprs, loops = "", {}, []
        for d in range(nd):
            exprs[f"__PT_X{d}__"] = args[d]
            e = self._ix("thread_elements", d)
            src += (f"__pt_n{uid}_{d} = __PT_X{d}__\n"
                    f"__pt_s{uid}_{d} = {self._ix('grid_blocks', d)} * "
                    f"{self._ix('block_threads', d)} * {e}\n")
            first = (f"({self._ix('block_idx', d)} * {self._ix('block_threads', d)} + "
                     f"{self._ix('thread_idx', d)}) * {e}")
            loops.append((targets[d].id, first, f"__pt_n{uid}_{d}", f"__pt_s{uid}_{d}", e))
        return self._template(src + self._element_loops(loops, body, uid), body, exprs, node)

    def _one_dim(self, node: ast.For, member: str) -> None:
        if self.dialect.ndim != 1:
            raise self._err(node, f"acc.{member} needs a 1-D work division, "
                                  f"this launch is {self.dialect.ndim}-D")

    def _nargs(self, node: ast.For, args: list[ast.expr], count: int, member: str,
               names: str) -> None:
        if len(args) != count:
            raise self._err(node, f"acc.{member} takes {names}; {len(args)} argument(s) given")

    def _loop_uniform_groups(self, node: ast.For, args: list[ast.expr],
                             body: list[ast.stmt]) -> list[ast.stmt]:
        self._one_dim(node, "uniform_groups")
        self._nargs(node, args, 1, "uniform_groups", "one extent (the number of elements)")
        (g,) = self._targets(node, 1, "uniform_groups")
        uid = next(self._ids)
        size = f"{self._ix('block_threads', 0)} * {self._ix('thread_elements', 0)}"
        src = (f"__pt_s{uid} = {size}\n"
               f"for {g.id} in range({self._ix('block_idx', 0)}, (__PT_X0__ + __pt_s{uid} - 1)"
               f" // __pt_s{uid}, {self._ix('grid_blocks', 0)}):\n"
               f"    __PT_BODY__\n")
        return self._template(src, body, {"__PT_X0__": args[0]}, node)

    def _loop_uniform_group_elements(self, node: ast.For, args: list[ast.expr],
                                     body: list[ast.stmt]) -> list[ast.stmt]:
        self._one_dim(node, "uniform_group_elements")
        self._nargs(node, args, 2, "uniform_group_elements", "a group index and an extent")
        target = node.target
        count = len(target.elts) if isinstance(target, ast.Tuple) else 1
        if count not in (1, 2):
            raise self._err(node, "the target of a loop over acc.uniform_group_elements "
                                  "must be a name or a pair (global_index, local_index)")
        names = self._targets(node, count, "uniform_group_elements")
        uid = next(self._ids)
        e = self._ix("thread_elements", 0)
        start = f"__pt_g{uid}"
        src = (f"__pt_n{uid} = __PT_X1__\n"
               f"{start} = (__PT_X0__) * {self._ix('block_threads', 0)} * {e}\n"
               f"__pt_f{uid} = {start} + {self._ix('thread_idx', 0)} * {e}\n")
        var = names[0].id
        if e == "(1)" and not _has_continue(body):  # one index, no loop
            head = [f"{var} = __pt_f{uid}", f"if {var} < __pt_n{uid}:"]
        else:
            head = self._index_loop(var, f"__pt_f{uid}", f"min(__pt_f{uid} + {e}, __pt_n{uid})",
                                    0, uid)
        src += "\n".join(head) + "\n"
        if count == 2:
            src += f"    {names[1].id} = {var} - {start}\n"
        src += "    __PT_BODY__\n"
        return self._template(src, body, {"__PT_X0__": args[0], "__PT_X1__": args[1]}, node)

    def _loop_independent_groups(self, node: ast.For, args: list[ast.expr],
                                 body: list[ast.stmt]) -> list[ast.stmt]:
        self._one_dim(node, "independent_groups")
        self._nargs(node, args, 1, "independent_groups", "one argument (the number of groups)")
        (g,) = self._targets(node, 1, "independent_groups")
        src = (f"for {g.id} in range({self._ix('block_idx', 0)}, __PT_X0__, "
               f"{self._ix('grid_blocks', 0)}):\n    __PT_BODY__\n")
        return self._template(src, body, {"__PT_X0__": args[0]}, node)

    def _loop_independent_group_elements(self, node: ast.For, args: list[ast.expr],
                                         body: list[ast.stmt]) -> list[ast.stmt]:
        self._one_dim(node, "independent_group_elements")
        self._nargs(node, args, 1, "independent_group_elements",
                    "one extent (the elements of the group)")
        (i,) = self._targets(node, 1, "independent_group_elements")
        uid = next(self._ids)
        e = self._ix("thread_elements", 0)
        loop = (i.id, f"{self._ix('thread_idx', 0)} * {e}", f"__pt_n{uid}",
                f"__pt_s{uid}", e)
        src = (f"__pt_n{uid} = __PT_X0__\n"
               f"__pt_s{uid} = {self._ix('block_threads', 0)} * {e}\n")
        return self._template(src + self._element_loops([loop], body, uid), body,
                              {"__PT_X0__": args[0]}, node)


def _has_continue(body: list[ast.stmt]) -> bool:
    """Whether ``continue`` in ``body`` belongs to the loop that holds it."""
    return any(isinstance(sub, ast.Continue) for stmt in body for sub in _walk_same_loop(stmt))


def _walk_same_loop(node: ast.AST):
    """Nodes under ``node`` that belong to the same loop (not to nested loops
    or nested functions)."""
    yield node
    if isinstance(node, (ast.For, ast.While, ast.FunctionDef, ast.Lambda)):
        return
    for child in ast.iter_child_nodes(node):
        yield from _walk_same_loop(child)


@dataclass
class ParsedFunction:
    """A kernel or device function's source, checked once at decoration time."""

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
        return f"{self.kind} {self.func.__qualname__}"

    @property
    def site(self) -> Site:
        return Site(self.where, self.filename)


def parse_function(func: Callable[..., Any], *, needs_acc: bool) -> ParsedFunction:
    """Read and check the source of a kernel (``needs_acc``) or device function.

    A kernel's first parameter must be the accelerator: named ``acc`` or
    annotated with :class:`portable.Acc`. A device function takes ``acc``
    first if it uses accelerator members, and nothing special otherwise.
    Python that no GPU compiles (``with``, ``try``, ``raise``, ``yield``,
    ``lambda``, nested ``def``, ``global``, comprehensions...) and any use of
    ``acc`` other than ``acc.<member>`` or passing it on is refused here, on
    every backend.

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
    try:
        source = textwrap.dedent(inspect.getsource(func))
        filename = inspect.getsourcefile(func) or "<unknown>"
    except (OSError, TypeError) as err:
        raise KernelError(f"the source of {func.__qualname__} is not available ({err}); "
                          f"define kernels in a file, not in an interactive prompt") from None
    fdef = ast.parse(source).body[0]
    if not isinstance(fdef, ast.FunctionDef):
        raise KernelError(f"{kind} {func.__qualname__} must be defined with a plain def "
                          f"(not async def, a lambda or a callable object)")
    tree = ast.Module(body=[fdef], type_ignores=[])
    fdef.decorator_list = []
    ast.increment_lineno(tree, func.__code__.co_firstlineno - 1)
    a = fdef.args
    if a.vararg or a.kwarg or a.kwonlyargs or a.posonlyargs or a.defaults:
        raise KernelError(f"{func.__qualname__}: kernels and device functions take plain "
                          f"positional parameters only (no *args, **kwargs, defaults or "
                          f"keyword-only parameters)")
    params = [p.arg for p in a.args]
    first = a.args[0] if a.args else None
    is_acc = first is not None and (first.arg == "acc" or _annotated_acc(first, func))
    if needs_acc and not is_acc:
        got = f"is {first.arg!r}" if first is not None else "is missing"
        raise KernelError(
            f"{kind} {func.__qualname__}: the first parameter must be the accelerator "
            f"but {got}; write def {func.__name__}(acc, ...): (or annotate it as pt.Acc)")
    parsed = ParsedFunction(func, tree, first.arg if is_acc else None, params, filename, kind)
    _check_statements(parsed, fdef)
    if parsed.acc is not None:
        _check_members(parsed)
        _check_acc_uses(parsed, fdef)
    parsed.atomic_params, parsed.written_params = _writes(fdef, parsed.acc, params)
    return parsed


_NOT_A_COROUTINE = "kernels and device functions are not coroutines; drop async/await"
_DEFINE_OUTSIDE = ("device code cannot create Python functions; write a @pt.device_function "
                   "at module level and call it")
_NO_FLAGS = ("GPUs do not raise or check exceptions (CUDA drops them silently); test the "
             "condition with an if and write an error flag into an output array, then "
             "check it on the host")
_NO_CONTAINERS = ("device code cannot build Python containers; loop and write into an "
                  "array (acc.shared_array for scratch space), or use a tuple")
_OUTSIDE_STATE = ("a kernel cannot assign variables outside itself; write results into an "
                  "output array")
#: Python that no backend's device compiler takes, and what to write instead
_REFUSED_SYNTAX: tuple[tuple[type, str, str], ...] = (
    (ast.With, "a with block", "context managers are Python objects that device code "
                               "cannot use; enter the context on the host, around pt.launch"),
    (ast.AsyncWith, "async with", _NOT_A_COROUTINE),
    (ast.Try, "try/except", _NO_FLAGS),
    *(((ast.TryStar, "try/except*", _NO_FLAGS),) if hasattr(ast, "TryStar") else ()),
    (ast.Raise, "raise", _NO_FLAGS),
    (ast.Assert, "assert", _NO_FLAGS),
    (ast.Yield, "yield", "a kernel cannot be a generator; write results into an array"),
    (ast.YieldFrom, "yield from", "a kernel cannot be a generator; write results into an "
                                  "array"),
    (ast.Await, "await", _NOT_A_COROUTINE),
    (ast.AsyncFor, "async for", _NOT_A_COROUTINE),
    (ast.Lambda, "lambda", _DEFINE_OUTSIDE),
    (ast.FunctionDef, "a nested def", _DEFINE_OUTSIDE),
    (ast.AsyncFunctionDef, "a nested async def", _DEFINE_OUTSIDE),
    (ast.ClassDef, "a class definition", "define classes outside kernels; kernels take "
                                         "arrays and numbers"),
    (ast.Global, "global", _OUTSIDE_STATE),
    (ast.Nonlocal, "nonlocal", _OUTSIDE_STATE),
    (ast.Import, "import", "import at module level; kernels may use math and numpy"),
    (ast.ImportFrom, "import", "import at module level; kernels may use math and numpy"),
    (ast.ListComp, "a list comprehension", _NO_CONTAINERS),
    (ast.SetComp, "a set comprehension", _NO_CONTAINERS),
    (ast.DictComp, "a dict comprehension", _NO_CONTAINERS),
    (ast.GeneratorExp, "a generator expression", _NO_CONTAINERS),
    (ast.Dict, "a dict", _NO_CONTAINERS),
    (ast.Set, "a set", _NO_CONTAINERS),
    (ast.JoinedStr, "an f-string", "device code has no strings; print(a, b) prints values"),
)


def _check_statements(parsed: ParsedFunction, fdef: ast.FunctionDef) -> None:
    """Refuse the Python that no backend's device compiler takes, at decoration."""
    for stmt in fdef.body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.List) and isinstance(node.ctx, ast.Load):
                raise parsed.site.error(node, f"a list is not supported in a {parsed.kind}: "
                                              f"{_NO_CONTAINERS}")
            for kind, what, fix in _REFUSED_SYNTAX:
                if isinstance(node, kind):
                    raise parsed.site.error(node, f"{what} is not supported in a "
                                                  f"{parsed.kind}: {fix}")


def _check_members(parsed: ParsedFunction) -> None:
    """Reject unknown ``acc`` members, and atomics and shared arrays with the wrong
    number of arguments, when the function is decorated, not at launch."""
    for node in ast.walk(parsed.tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == parsed.acc and node.attr not in ALL_MEMBERS):
            close = difflib.get_close_matches(node.attr, ALL_MEMBERS, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise parsed.site.error(node, f"the accelerator has no member {node.attr!r}{hint}")
        if isinstance(node, ast.Call):
            member = _acc_member(node.func, parsed.acc)
            expected = _CALL_SIGNATURES.get(member or "")
            if expected is not None and (len(node.args) != expected.count(",") + 1
                                         or node.keywords):
                raise parsed.site.error(node, f"acc.{member} takes ({expected}), positional; "
                                              f"{len(node.args) + len(node.keywords)} "
                                              f"argument(s) given")


#: the parameters of the call members that take a fixed number of them
_CALL_SIGNATURES = {"shared_array": "shape, dtype",
                    **{f"atomic_{op}": "array, index, value"
                       for op in ("add", "sub", "min", "max", "exch")},
                    "atomic_cas": "array, index, expected, value"}


def _acc_member(node: ast.AST, acc: str | None) -> str | None:
    """``m`` when ``node`` is ``acc.m``, else ``None``."""
    if (acc is not None and isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name) and node.value.id == acc):
        return node.attr
    return None


def _is_name(node: ast.AST, name: str | None) -> bool:
    return name is not None and isinstance(node, ast.Name) and node.id == name


def _check_acc_uses(parsed: ParsedFunction, fdef: ast.FunctionDef) -> None:
    """``acc`` may only be read as ``acc.<member>`` or passed in a call (which
    :func:`build_function` checks goes to a device function taking it)."""
    acc = parsed.acc
    parents = {child: node for node in ast.walk(fdef) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(fdef):
        if not _is_name(node, acc):
            continue
        parent = parents.get(node)
        if not isinstance(node.ctx, ast.Load):
            raise parsed.site.error(node, f"{acc} is the accelerator and cannot be assigned "
                                          f"or deleted; use another name")
        if isinstance(parent, ast.Attribute) or (
                isinstance(parent, ast.Call) and any(a is node for a in parent.args)):
            continue
        raise parsed.site.error(node, f"{acc} can only be used as {acc}.<member> or passed "
                                      f"as the first argument of a @pt.device_function that "
                                      f"takes acc; write {acc}.<member> where it is needed "
                                      f"instead of keeping {acc} in a variable")


def _base_name(node: ast.AST) -> str | None:
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
            source = aliases.get(_base_name(value) or "")
            if source and not source <= aliases.setdefault(name, set()):
                aliases[name] |= source
                changed = True
    atomics: list[tuple[str, str, int]] = []
    written: dict[str, int] = {}
    for node in ast.walk(fdef):
        targets: list[ast.AST] = []
        member = _acc_member(node.func, acc) if isinstance(node, ast.Call) else None
        if member in ATOMIC_DTYPES and node.args:
            targets = [node.args[0]]
            atomics += [(member, p, node.lineno)
                        for p in sorted(aliases.get(_base_name(node.args[0]) or "", ()))]
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Store):
            targets = [node]
        for target in targets:
            for p in aliases.get(_base_name(target) or "", ()):
                written.setdefault(p, node.lineno)
    return tuple(atomics), written


def _annotated_acc(arg: ast.arg, func: Callable[..., Any]) -> bool:
    from .kernel import Acc
    hint = func.__annotations__.get(arg.arg)
    return hint is Acc or hint in ("Acc", "pt.Acc", "portable.Acc")


# -- atomics ------------------------------------------------------------------------------
_ATOMIC_INTS = tuple(np.dtype(t) for t in (np.int32, np.int64, np.uint32, np.uint64))
_ATOMIC_NUMBERS = _ATOMIC_INTS + (np.dtype(np.float32), np.dtype(np.float64))
#: the array dtypes each atomic takes on every backend (CUDA's exch and cas take
#: integers only, so no backend offers them on floats)
ATOMIC_DTYPES: dict[str, tuple[np.dtype, ...]] = {
    **{f"atomic_{op}": _ATOMIC_NUMBERS for op in ("add", "sub", "min", "max")},
    "atomic_exch": _ATOMIC_INTS, "atomic_cas": _ATOMIC_INTS}


def atomic_dtype_problem(member: str, dtype: Any) -> str | None:
    """Why ``acc.<member>`` cannot update an array of ``dtype``, or ``None`` if it can.
    The rule is the same on every backend.

    Example::

        >>> atomic_dtype_problem("atomic_add", np.float32) is None
        True
        >>> atomic_dtype_problem("atomic_exch", np.float64)
        'acc.atomic_exch takes an array of int32, int64, uint32 or uint64 on every backend, not float64'
    """
    allowed = ATOMIC_DTYPES[member]
    dtype = np.dtype(dtype)
    if dtype in allowed:
        return None
    names = [d.name for d in allowed]
    return (f"acc.{member} takes an array of {', '.join(names[:-1])} or {names[-1]} on every "
            f"backend, not {dtype}")


# -- checks that need the function's globals --------------------------------------------
#: modules whose functions and classes numba compiles
_NUMBA_MODULES = frozenset({"numpy", "numba", "numba_cuda", "math", "cmath", "operator",
                            "builtins"})


def _python_only(value: Any) -> str | None:
    """What ``value`` is, when it is Python that device code cannot call."""
    if isinstance(value, (types.FunctionType, types.MethodType, functools.partial)):
        kind = "plain Python function"
    elif isinstance(value, type) and type(value) is type:
        kind = "Python class"
    else:
        return None
    module = (getattr(value, "__module__", None) or "").split(".")[0]
    if module in _NUMBA_MODULES:
        return None
    from numba.core.typing.templates import builtin_registry  # @overload targets
    if any(known is value for known, _ in builtin_registry.globals):
        return None
    return kind


def _namespace(func: types.FunctionType) -> dict[str, Any]:
    """The built-ins, globals and closure variables of ``func``, by name."""
    namespace: dict[str, Any] = {**vars(builtins), **func.__globals__}
    for name, cell in zip(func.__code__.co_freevars, func.__closure__ or ()):
        try:
            namespace[name] = cell.cell_contents
        except ValueError:  # a closure variable not assigned yet
            pass
    return namespace


def _global_value(node: ast.expr, namespace: dict[str, Any], local: set[str]
                  ) -> tuple[bool, Any]:
    """``(True, value)`` when ``node`` names a global (or a dotted path through
    modules) of ``namespace``, else ``(False, None)``."""
    if isinstance(node, ast.Name):
        if node.id in local or node.id not in namespace:
            return False, None
        return True, namespace[node.id]
    if isinstance(node, ast.Attribute):
        ok, base = _global_value(node.value, namespace, local)
        if ok and isinstance(base, types.ModuleType) and hasattr(base, node.attr):
            return True, getattr(base, node.attr)
    return False, None


_CONSTANT_NODES = (ast.Constant, ast.Name, ast.Attribute, ast.Tuple, ast.BinOp, ast.UnaryOp,
                   ast.operator, ast.unaryop, ast.expr_context)


def _constant(expr: ast.expr, what: str, site: Site, namespace: dict[str, Any],
              local: set[str]) -> Any:
    """The value of ``expr``, which must be known when the function is compiled."""
    fix = ("use a number, a module-level constant or arithmetic on them (GPUs size "
           "shared memory when the kernel is compiled)")
    for sub in ast.walk(expr):
        if isinstance(sub, ast.Name) and (sub.id in local or sub.id not in namespace):
            known = "known only when the kernel runs" if sub.id in local else "not defined"
            raise site.error(expr, f"{what} must be a compile-time constant, but {sub.id!r} "
                                   f"is {known}; {fix}")
        if not isinstance(sub, _CONSTANT_NODES):
            raise site.error(expr, f"{what} must be a compile-time constant, got "
                                   f"{ast.unparse(expr)!r}; {fix}")
    code = compile(ast.fix_missing_locations(ast.Expression(copy.deepcopy(expr))),
                   site.filename, "eval")
    try:
        return eval(code, dict(namespace))  # names and arithmetic only, checked above
    except Exception as err:
        raise site.error(expr, f"{what} ({ast.unparse(expr)}) cannot be computed: "
                               f"{err}") from None


def _check_shared_array(node: ast.Call, site: Site, namespace: dict[str, Any],
                        local: set[str]) -> np.dtype:
    """Check ``acc.shared_array(shape, dtype)``, make its shape a literal, and
    return its dtype."""
    shape = _constant(node.args[0], "the shape of acc.shared_array", site, namespace, local)
    dims = shape if isinstance(shape, tuple) else (shape,)
    if not dims or not all(isinstance(d, (int, np.integer)) and not isinstance(d, bool)
                           and d > 0 for d in dims):
        raise site.error(node, f"the shape of acc.shared_array must be a positive integer "
                               f"or a tuple of them, got {shape!r}")
    literal = tuple(int(d) for d in dims) if isinstance(shape, tuple) else int(shape)
    node.args[0] = ast.copy_location(ast.Constant(literal), node.args[0])
    kind = _constant(node.args[1], "the dtype of acc.shared_array", site, namespace, local)
    try:
        dtype = np.dtype(kind)
    except TypeError:
        dtype = None
    if dtype is None or dtype.kind not in "biufc":
        raise site.error(node, f"the dtype of acc.shared_array must be a numeric type such "
                               f"as np.float64, got {kind!r}")
    return dtype


def _check_device_call(node: ast.Call, callee: Any, site: Site, acc: str | None) -> None:
    """A call of the device function ``callee``: ``acc`` passed first exactly
    when it takes ``acc``, and the right number of arguments."""
    name, parsed = callee.__name__, callee.parsed
    passes = [k for k, arg in enumerate(node.args) if _is_name(arg, acc)]
    if parsed.acc is not None:
        if acc is None:
            raise site.error(node, f"device function {name} takes acc, so only kernels and "
                                   f"device functions that take acc can call it; add acc as "
                                   f"the first parameter here and call {name}(acc, ...)")
        if passes != [0]:
            raise site.error(node, f"device function {name} takes acc first: call it as "
                                   f"{name}({acc}, ...)")
    elif passes:
        raise site.error(node, f"device function {name} does not take acc; drop {acc} from "
                               f"the call (or declare def {name}(acc, ...))")
    given = len(node.args) + len(node.keywords)
    starred = any(isinstance(a, ast.Starred) for a in node.args)
    if not starred and given != len(parsed.params):
        raise site.error(node, f"device function {name} takes {len(parsed.params)} "
                               f"argument(s) ({', '.join(parsed.params)}), {given} given")


def _check_calls(parsed: ParsedFunction, fdef: ast.FunctionDef,
                 namespace: dict[str, Any], local: set[str]) -> None:
    """Check every call of ``fdef`` (still written with ``acc.<member>``) against
    the globals it names: kernels are not callable from device code, device
    functions get ``acc`` exactly when they take it, plain Python functions and
    classes are refused, shared arrays have constant shapes (made literal here)
    and atomics on them a dtype every backend takes."""
    from .kernel import DeviceFunction, Kernel
    site, acc = parsed.site, parsed.acc
    shared: dict[str, np.dtype] = {}
    for node in ast.walk(fdef):  # shared arrays first: atomics below look them up
        if isinstance(node, ast.Call) and _acc_member(node.func, acc) == "shared_array":
            dtype = _check_shared_array(node, site, namespace, local)
            for assign in ast.walk(fdef):
                if isinstance(assign, ast.Assign) and assign.value is node:
                    shared.update((t.id, dtype) for t in assign.targets
                                  if isinstance(t, ast.Name))
    for node in ast.walk(fdef):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            ok, module = _global_value(node.value, namespace, local)
            if ok and isinstance(module, types.ModuleType) and not hasattr(module, node.attr):
                close = difflib.get_close_matches(node.attr, dir(module), n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise site.error(node, f"module {module.__name__} has no attribute "
                                       f"{node.attr!r}{hint}")
        if not isinstance(node, ast.Call):
            continue
        member = _acc_member(node.func, acc)
        if member in ATOMIC_DTYPES and _base_name(node.args[0]) in shared:
            problem = atomic_dtype_problem(member, shared[_base_name(node.args[0])])
            if problem:
                raise site.error(node, problem)
        if member is not None:
            continue
        ok, callee = _global_value(node.func, namespace, local)
        called = ast.unparse(node.func)
        if ok and isinstance(callee, Kernel):
            raise site.error(node, f"kernel {callee.__name__} is called from device code; "
                                   f"kernels are launched from the host. Make the shared "
                                   f"part a @pt.device_function")
        if ok and isinstance(callee, DeviceFunction):
            _check_device_call(node, callee, site, acc)
            continue
        if any(_is_name(arg, acc) for arg in node.args):
            raise site.error(node, f"{acc} is passed to {called}, which is not a "
                                   f"@pt.device_function that takes acc; only device "
                                   f"functions declared def f(acc, ...) receive the "
                                   f"accelerator")
        what = _python_only(callee) if ok else None
        if what is not None:
            raise site.error(node, f"{called} is a {what} ({callee.__module__}), which "
                                   f"device code cannot call; decorate it with "
                                   f"@pt.device_function to call it from kernels on "
                                   f"every backend")


def build_function(parsed: ParsedFunction, dialect: Dialect,
                   resolve: Callable[[Any], Any], *, drop_acc: bool = False,
                   views: tuple[tuple[int, ViewParam], ...] = (),
                   cache_key: Any = None) -> types.FunctionType:
    """The backend version of ``parsed``: its ``acc`` members rewritten for
    ``dialect``, and every global that ``resolve`` maps (device functions)
    replaced by the backend's compiled object. Its calls are checked first
    (see :func:`_check_calls`), the same way for every backend.

    With ``drop_acc`` (a kernel on a backend whose indices are built-ins) the
    accelerator is no parameter: ``acc`` becomes a local ``0``, which device
    functions taking ``acc`` receive and never read. ``views`` names, by
    position among the parameters after ``acc``, those that receive views of
    collections.

    With a ``cache_key`` (what else determines the compiled code: backend,
    launch shape, options) the function is defined from a file of the disk
    cache (see :mod:`portable.kernel_cache`), and its ``disk_cached`` attribute
    says whether that worked (then the backend's compiler may cache it too).
    """
    tree = copy.deepcopy(parsed.tree)
    fdef = tree.body[0]
    namespace = _namespace(parsed.func)
    _check_calls(parsed, fdef, namespace, set(parsed.params) | _assigned(fdef))
    used_by: dict[str, tuple[str, ...]] = {}
    if views:
        first = 1 if parsed.acc is not None else 0
        used_by = expand_views(fdef, {parsed.params[first + i]: spec for i, spec in views},
                               parsed.site, dialect)
    if parsed.acc is not None:
        rewriter = _AccRewriter(parsed.acc, dialect, parsed.site)
        fdef.body = [s for stmt in fdef.body
                     for s in _as_list(rewriter.visit(stmt))]
        if drop_acc:
            fdef.args.args = fdef.args.args[1:]
            local = ast.parse(f"{parsed.acc} = 0").body[0]
            fdef.body.insert(0, ast.copy_location(local, fdef.body[0]))
    namespace.update(dialect.globals)
    namespace["__pt_np__"] = np
    injected = _GlobalResolver(namespace, set(parsed.params) | _assigned(fdef), resolve)
    injected.visit(fdef)
    namespace.update(injected.replacements)
    ast.fix_missing_locations(tree)
    if cache_key is not None:
        own = function_fingerprint(parsed)
        parts = fingerprint((cache_key, [(i, spec.layout, spec.readonly) for i, spec in views]))
        cache_key = None if own is None or parts is None else (own, parts)
    built, built.disk_cached = cached_function(ast.unparse(tree), fdef.name, namespace,
                                               cache_key, code=tree, origin=parsed.filename)
    #: per view parameter, the members the function uses (see expand_views)
    built.view_members = used_by
    return built


def function_fingerprint(parsed: ParsedFunction) -> str | None:
    """A hash of a kernel's or device function's source and of the globals it
    uses (device functions it calls by theirs), or ``None`` when one of those
    has no fingerprint (see :func:`portable.kernel_cache.fingerprint`).

    Example::

        >>> def twice(x):
        ...     return 2 * x
        >>> len(function_fingerprint(parse_function(twice, needs_acc=False)))
        64
    """
    fdef = parsed.tree.body[0]
    namespace = _namespace(parsed.func)
    local = set(parsed.params) | _assigned(fdef)
    uses: dict[str, str | None] = {}
    for node in ast.walk(fdef):
        if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load):
            ok, value = _global_value(node, namespace, local)
            if ok:
                uses[ast.unparse(node)] = fingerprint(value)
    if None in uses.values():
        return None
    text = f"{parsed.filename}:{parsed.func.__code__.co_firstlineno}\n" \
           f"{ast.unparse(parsed.tree)}\n{sorted(uses.items())}"
    return hashlib.sha256(text.encode()).hexdigest()


def _as_list(node: Any) -> list[ast.stmt]:
    return node if isinstance(node, list) else [node]


def _assigned(fdef: ast.FunctionDef) -> set[str]:
    return {n.id for n in ast.walk(fdef) if isinstance(n, ast.Name)
            and isinstance(n.ctx, ast.Store)}


class _GlobalResolver(ast.NodeTransformer):
    """Replaces global names (and dotted paths through modules) whose value
    ``resolve`` maps to something else, e.g. a device function to its
    backend-compiled version."""

    def __init__(self, namespace: dict[str, Any], local: set[str],
                 resolve: Callable[[Any], Any]) -> None:
        self.namespace, self.local, self.resolve = namespace, local, resolve
        self.replacements: dict[str, Any] = {}

    def _replace(self, node: ast.expr) -> ast.expr | None:
        ok, value = _global_value(node, self.namespace, self.local)
        if not ok:
            return None
        new = self.resolve(value)
        if new is value:
            return None
        name = f"__pt_g{len(self.replacements)}_{getattr(value, '__name__', 'obj')}"
        self.replacements[name] = new
        return ast.copy_location(ast.Name(id=name, ctx=ast.Load()), node)

    def visit_Name(self, node: ast.Name) -> Any:
        if isinstance(node.ctx, ast.Load):
            return self._replace(node) or node
        return node

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        if isinstance(node.ctx, ast.Load):
            new = self._replace(node)
            if new is not None:
                return new
        return self.generic_visit(node)


# -- views of SoA collections ----------------------------------------------------------
@dataclass(frozen=True)
class ViewParam:
    """A kernel parameter that receives a view of a collection: its layout and
    whether it is read-only."""

    layout: Any
    readonly: bool


class _ViewRewriter(_KernelRewriter):
    """Rewrites ``v.<member>`` of a view parameter ``v`` into the local arrays
    that the view's prologue builds (a scalar member ``v.s`` becomes ``v_s[0]``),
    ``v.size`` and ``v.capacity`` into the parameters that carry them."""

    def __init__(self, name: str, prefix: str, spec: ViewParam, site: Site) -> None:
        self.name, self.prefix, self.spec, self.site = name, prefix, spec, site
        self.members = {m.name: m for m in spec.layout.members()}
        self.used: set[str] = set()
        #: for a read-only view: local names holding (part of) a member, and which
        self.aliases: dict[str, str] = {}

    def _is_view(self, node: ast.AST) -> bool:
        return isinstance(node, ast.Name) and node.id == self.name

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id == self.name:
            raise self._err(node, f"the view {self.name!r} can only be used as "
                                  f"{self.name}.<member>; pass columns ({self.name}.x), not "
                                  f"the whole view, to device functions")
        return node

    def _check_write(self, target: ast.AST, whole: bool = False) -> None:
        """Refuse a store into ``target`` when it is (part of) a member of a
        read-only view; a bare name is rebound, not written, unless ``whole``
        (the array of an atomic)."""
        if not self.spec.readonly:
            return
        if isinstance(target, (ast.Tuple, ast.List)):
            for element in target.elts:
                self._check_write(element)
            return
        member = self._member_of(target)
        if member is None or (isinstance(target, ast.Name) and not whole):
            return
        base = _base_name(target)
        through = f" through {base!r}, which holds it" if base is not None else ""
        raise self._err(target, f"{member} is written{through}, but {self.name} is a "
                                f"read-only view; pass collection.view() instead of "
                                f"const_view() to write")

    def _member_of(self, node: ast.AST) -> str | None:
        """``v.m`` when ``node`` is (an element or slice of) member ``m`` of the
        view, or of a local name that holds one."""
        while isinstance(node, ast.Subscript):
            node = node.value
        if isinstance(node, ast.Attribute) and self._is_view(node.value):
            return f"{self.name}.{node.attr}"
        if isinstance(node, ast.Name):
            return self.aliases.get(node.id)
        return None

    def visit_Assign(self, node: ast.Assign) -> Any:
        for target in node.targets:
            self._check_write(target)
        value = node.value
        scalar = (isinstance(value, ast.Attribute) and self._is_view(value.value)
                  and getattr(self.members.get(value.attr), "kind", None) == "scalar")
        # a name assigned a scalar member holds its value, not the member
        source = self._member_of(value) if self.spec.readonly and not scalar else None
        for target in node.targets:
            if isinstance(target, ast.Name):
                if source is not None:
                    self.aliases[target.id] = source
                else:
                    self.aliases.pop(target.id, None)
        return self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> Any:
        func = node.func
        if (isinstance(func, ast.Attribute) and func.attr in ATOMIC_DTYPES
                and node.args):
            self._check_write(node.args[0], whole=True)
            first = node.args[0]
            if isinstance(first, ast.Attribute) and self._is_view(first.value) \
                    and first.attr in self.members:
                problem = atomic_dtype_problem(func.attr, self.members[first.attr].dtype)
                if problem:
                    raise self._err(node, f"{problem} ({self.name}.{first.attr})")
        return self.generic_visit(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        self._check_write(node.target)
        return self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        if not self._is_view(node.value):
            return self.generic_visit(node)
        attr = node.attr
        if attr in ("size", "capacity"):
            if isinstance(node.ctx, ast.Store):
                raise self._err(node, f"{self.name}.{attr} cannot be assigned")
            return ast.copy_location(ast.Name(id=f"{self.prefix}_{attr}", ctx=ast.Load()), node)
        member = self.members.get(attr)
        if member is None:
            close = difflib.get_close_matches(attr, list(self.members) + ["size", "capacity"])
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise self._err(node, f"layout {self.spec.layout.__name__} has no member "
                                  f"{attr!r}{hint}")
        self.used.add(attr)
        local = ast.Name(id=f"{self.prefix}_{attr}", ctx=ast.Load())
        if member.kind == "scalar":
            return ast.copy_location(
                ast.Subscript(value=local, slice=ast.Constant(0), ctx=node.ctx), node)
        if isinstance(node.ctx, ast.Store):
            raise self._err(node, f"{self.name}.{attr} is an array: assign its elements, "
                                  f"{self.name}.{attr}[i] = ...")
        return ast.copy_location(local, node)


def _view_prologue(prefix: str, spec: ViewParam, used: set[str]) -> str:
    """Source that builds a typed array for each ``used`` member of a view from
    the parameters ``<prefix>_buffer`` (bytes), ``_size`` and ``_capacity``,
    following the layout's byte rules (offsets depend on the capacity)."""
    layout, align = spec.layout, spec.layout.alignment
    buf, n, cap = f"{prefix}_buffer", f"{prefix}_size", f"{prefix}_capacity"
    lines, offset = [f"{prefix}_o0 = 0"], f"{prefix}_o0"
    for k, m in enumerate(layout.members()):
        isz, rows, cols = m.itemsize, m.rows, m.cols
        pitch = f"(({cap} * {isz} + {align - 1}) // {align} * {align})"
        size = str(align_up(isz, align)) if m.kind == "scalar" else f"{rows * cols} * {pitch}"
        if m.name in used:
            dt = f"__pt_np__.{m.dtype.name}"
            if m.kind == "scalar":
                array = f"{buf}[{offset}:{offset} + {isz}].view({dt})"
            elif m.kind == "column":
                array = f"{buf}[{offset}:{offset} + {n} * {isz}].view({dt})"
            else:  # (R, pitch) rows -> (n, R); (C, R, pitch) sub-columns -> (n, R, C)
                whole = f"{buf}[{offset}:{offset} + {size}].view({dt})"
                array = (f"{whole}.reshape({rows}, {pitch} // {isz})[:, :{n}].T"
                         if m.kind == "vector" else
                         f"{whole}.reshape({cols}, {rows}, {pitch} // {isz})[:, :, :{n}].T")
            lines.append(f"{prefix}_{m.name} = {array}")
        following = f"{prefix}_o{k + 1}"
        lines.append(f"{following} = {offset} + {size}")
        offset = following
    return "\n".join(lines) + "\n"


def expand_views(fdef: ast.FunctionDef, views: dict[str, ViewParam], site: Site,
                 dialect: Dialect) -> dict[str, tuple[str, ...]]:
    """Replace each view parameter of ``fdef`` and rewrite its member accesses.

    With ``dialect.view_members_as_params`` every member the kernel uses
    becomes a parameter of its own (the host passes the member's array, built
    from the buffer's pointer with no per-thread work: GPUs, where a per-thread
    prologue would cost bandwidth); otherwise the view becomes its buffer, and
    a prologue builds the used members' arrays from it (CPU: once per block).
    Size and capacity are parameters in both cases. Returns, per view
    parameter, the members used, in layout order. A used member of a dtype the
    backend cannot index is an error.
    """
    new_args: list[ast.arg] = []
    prologue: list[ast.stmt] = []
    used_by: dict[str, tuple[str, ...]] = {}
    for k, arg in enumerate(fdef.args.args):
        spec = views.get(arg.arg)
        if spec is None:
            new_args.append(arg)
            continue
        prefix = f"__pt_v{k}"
        rewriter = _ViewRewriter(arg.arg, prefix, spec, site)
        fdef.body = [rewriter.visit(stmt) for stmt in fdef.body]
        used = tuple(m.name for m in spec.layout.members() if m.name in rewriter.used)
        for name in used:
            dtype = spec.layout.member(name).dtype
            if dtype in dialect.unsupported_dtypes:
                raise site.error(None, f"member {arg.arg}.{name} is {dtype}, which this "
                                       f"backend's compiler cannot index; use another dtype "
                                       f"or another backend")
        used_by[arg.arg] = used
        if dialect.view_members_as_params:
            parts = [*used, "size", "capacity"]
        else:
            parts = ["buffer", "size", "capacity"]
            prologue += ast.parse(_view_prologue(prefix, spec, rewriter.used)).body
        new_args += [ast.arg(arg=f"{prefix}_{part}") for part in parts]
    fdef.args.args = new_args
    for stmt in prologue:
        for sub in ast.walk(stmt):
            ast.copy_location(sub, fdef.body[0])
    fdef.body = prologue + fdef.body
    return used_by
