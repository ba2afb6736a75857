"""The checks made when a kernel or device function is decorated: the Python
that no backend's device compiler takes, and every use of ``acc``.

All of them read only the source, so a mistake is reported at the decorator,
with the file, line and column, before anything is compiled or launched.
"""
from __future__ import annotations

import ast
import difflib
from typing import TYPE_CHECKING, cast

from .acc import ALL_MEMBERS, MEMBERS
from .loops import walk_same_loop

if TYPE_CHECKING:
    from .source import ParsedFunction

_NOT_A_COROUTINE = "kernels and device functions are not coroutines; drop async/await"
_DEFINE_OUTSIDE = ("device code cannot create Python functions; write a @pt.device_function "
                   "at module level and call it")
_NO_FLAGS = ("GPUs do not raise or check exceptions (CUDA drops them silently); test the "
             "condition with an if and write an error flag into an output array, then "
             "check it on the host")
NO_CONTAINERS = ("device code cannot build Python containers; loop and write into an "
                 "array (acc.shared_array for scratch space), or use a tuple")
_OUTSIDE_STATE = ("a kernel cannot assign variables outside itself; write results into an "
                  "output array")
#: Python that no backend's device compiler takes, and what to write instead
REFUSED_SYNTAX: tuple[tuple[type, str, str], ...] = (
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
    (ast.ListComp, "a list comprehension", NO_CONTAINERS),
    (ast.SetComp, "a set comprehension", NO_CONTAINERS),
    (ast.DictComp, "a dict comprehension", NO_CONTAINERS),
    (ast.GeneratorExp, "a generator expression", NO_CONTAINERS),
    (ast.Dict, "a dict", NO_CONTAINERS),
    (ast.Set, "a set", NO_CONTAINERS),
    (ast.JoinedStr, "an f-string", "device code has no strings; print(a, b) prints values"),
)


def check_source(parsed: ParsedFunction) -> None:
    """Every check that reads only the source of ``parsed`` (see the module)."""
    fdef = cast(ast.FunctionDef, parsed.tree.body[0])
    _check_statements(parsed, fdef)
    if parsed.acc is not None:
        parents = {child: node for node in ast.walk(fdef)
                   for child in ast.iter_child_nodes(node)}
        _check_acc_uses(parsed, fdef, parents)
        _check_members(parsed, fdef, parents)


def _check_statements(parsed: ParsedFunction, fdef: ast.FunctionDef) -> None:
    """Refuse the Python that no backend's device compiler takes."""
    for stmt in fdef.body:
        for node in ast.walk(stmt):
            if isinstance(node, ast.List) and isinstance(node.ctx, ast.Load):
                raise parsed.site.error(node, f"a list is not supported in a {parsed.kind}: "
                                              f"{NO_CONTAINERS}")
            for kind, what, fix in REFUSED_SYNTAX:
                if isinstance(node, kind):
                    raise parsed.site.error(node, f"{what} is not supported in a "
                                                  f"{parsed.kind}: {fix}")


def acc_member(node: ast.AST, acc: str | None) -> str | None:
    """``m`` when ``node`` is ``acc.m``, else ``None``."""
    if (acc is not None and isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name) and node.value.id == acc):
        return node.attr
    return None


def is_name(node: ast.AST, name: str | None) -> bool:
    """Whether ``node`` is the plain name ``name``."""
    return name is not None and isinstance(node, ast.Name) and node.id == name


def _check_acc_uses(parsed: ParsedFunction, fdef: ast.FunctionDef,
                    parents: dict[ast.AST, ast.AST]) -> None:
    """``acc`` may only be read as ``acc.<member>`` or passed in a call (which
    the first launch checks goes to a device function taking it)."""
    acc = parsed.acc
    for node in ast.walk(fdef):
        if not is_name(node, acc):
            continue
        parent = parents.get(node)
        if not isinstance(node.ctx, ast.Load):  # type: ignore[attr-defined]  # a Name
            raise parsed.site.error(node, f"{acc} is the accelerator and cannot be assigned "
                                          f"or deleted; use another name")
        if isinstance(parent, ast.Attribute) or (
                isinstance(parent, ast.Call) and any(a is node for a in parent.args)):
            continue
        raise parsed.site.error(node, f"{acc} can only be used as {acc}.<member> or passed "
                                      f"as the first argument of a @pt.device_function that "
                                      f"takes acc; write {acc}.<member> where it is needed "
                                      f"instead of keeping {acc} in a variable")


def _check_members(parsed: ParsedFunction, fdef: ast.FunctionDef,
                   parents: dict[ast.AST, ast.AST]) -> None:
    """Every ``acc.<member>`` exists and is used in its form: values read, calls
    called with their arguments, loops as the iterable of a ``for``."""
    site = parsed.site
    for node in ast.walk(fdef):
        member = acc_member(node, parsed.acc)
        if member is None:
            continue
        if member not in MEMBERS:
            close = difflib.get_close_matches(member, ALL_MEMBERS, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise site.error(node, f"the accelerator has no member {member!r}{hint}")
        spec = MEMBERS[member]
        call = parents.get(node)
        called = isinstance(call, ast.Call) and call.func is node
        if spec.kind in ("index", "constant"):
            if called:
                raise site.error(call, f"acc.{member} is a value, not a function; drop the ()")
            continue
        if not called:
            raise site.error(node, f"acc.{member} must be called")
        assert isinstance(call, ast.Call)
        if spec.kind == "loop":
            loop = parents.get(call)
            if not (isinstance(loop, ast.For) and loop.iter is call):
                raise site.error(call, f"acc.{member}(...) can only be the iterable of a "
                                       f"for loop: for i in acc.{member}(...):")
            _check_loop(parsed, loop, member)
            continue
        given = len(call.args) + len(call.keywords)
        if call.keywords or given != len(spec.params or ()):
            takes = ("no arguments" if not spec.params else
                     f"({', '.join(spec.params)}), positional")
            raise site.error(call, f"acc.{member} takes {takes}; {given} argument(s) given")


def _check_loop(parsed: ParsedFunction, node: ast.For, member: str) -> None:
    """A ``for`` loop over ``acc.<member>``: no else, no break, positional
    arguments of the right number, a target of names."""
    site, spec = parsed.site, MEMBERS[member]
    call = node.iter
    assert isinstance(call, ast.Call)
    if node.orelse:
        raise site.error(node, f"a for loop over acc.{member} cannot have an else clause")
    for stmt in node.body:
        for sub in walk_same_loop(stmt):
            if isinstance(sub, ast.Break):
                raise site.error(sub, f"break is not supported in a loop over acc.{member}: "
                                      f"each thread runs only its share of the loop; use a "
                                      f"flag or an early return")
    if call.keywords or any(isinstance(a, ast.Starred) for a in call.args):
        raise site.error(call, f"acc.{member}() takes positional arguments only")
    if spec.params is not None and len(call.args) != len(spec.params):
        raise site.error(call, f"acc.{member} takes ({', '.join(spec.params)}); "
                               f"{len(call.args)} argument(s) given")
    target = node.target
    elts = target.elts if isinstance(target, ast.Tuple) else [target]
    counts = spec.targets
    if not all(isinstance(e, ast.Name) for e in elts) or (
            counts is not None and len(elts) not in counts) or (
            isinstance(target, ast.Tuple) and counts is not None and len(elts) == 1):
        want = ("a name, or a tuple of names (one per dimension)" if counts is None else
                " or ".join("a name" if c == 1 else f"a tuple of {c} names" for c in counts))
        raise site.error(node, f"the target of a loop over acc.{member} must be {want}")
