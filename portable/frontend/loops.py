"""The loop members of the accelerator, lowered to plain loops every Numba target compiles.

``for i in acc.uniform_elements(n):`` and the other loop members (see
:mod:`.acc`) become nested ``while``/``range`` loops around the loop's body
(generators do not compile for GPUs). A thread's several elements are
block-strided on a dialect with ``block_strided_elements`` (thread ``t`` of a
block takes ``base + k * block_threads + t``: each load of a warp touches
consecutive addresses) and consecutive otherwise (a CPU thread's run, which
vectorizes).

The checks that depend only on the source are made at decoration (see
:mod:`.syntax`); those that depend on the launch's shape are made here.
"""
from __future__ import annotations

import ast
import copy
import itertools
import textwrap
from typing import Any, Callable, cast

from .dialect import Dialect
from .site import Site

#: one loop to lower: (index variable, first index, extent, stride between a
#: thread's chunks, elements per thread), each as source
Loop = tuple[str, str, str, str, str]


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


def has_continue(body: list[ast.stmt]) -> bool:
    """Whether ``continue`` in ``body`` belongs to the loop that holds it."""
    return any(isinstance(sub, ast.Continue) for stmt in body for sub in walk_same_loop(stmt))


def walk_same_loop(node: ast.AST):
    """Nodes under ``node`` that belong to the same loop (not to nested loops
    or nested functions)."""
    yield node
    if isinstance(node, (ast.For, ast.While, ast.FunctionDef, ast.Lambda)):
        return
    for child in ast.iter_child_nodes(node):
        yield from walk_same_loop(child)


class LoopLowering:
    """Lowers the loop members of one function for one dialect."""

    def __init__(self, acc: str, dialect: Dialect, site: Site) -> None:
        self.acc, self.dialect, self.site = acc, dialect, site
        self._ids = itertools.count()
        self.lowerings: dict[str, Callable[[ast.For, list[ast.expr], list[ast.stmt]],
                                           list[ast.stmt]]] = {
            "uniform_elements": self._uniform_elements,
            "uniform_groups": self._uniform_groups,
            "uniform_group_elements": self._uniform_group_elements,
            "independent_groups": self._independent_groups,
            "independent_group_elements": self._independent_group_elements,
        }

    def check(self, member: str, node: ast.For) -> None:
        """Refuse a loop over ``acc.<member>`` that does not fit the launch's shape."""
        nd = self.dialect.ndim
        if member != "uniform_elements":
            if nd != 1:
                raise self.site.error(node, f"acc.{member} needs a 1-D work division, "
                                            f"this launch is {nd}-D")
            return
        given = len(node.iter.args)  # type: ignore[attr-defined]
        if given != nd:
            raise self.site.error(node, f"acc.uniform_elements takes one extent per dimension "
                                        f"of the work division: {nd} expected, {given} given")
        if len(self._names(node)) != nd:
            want = "a name" if nd == 1 else f"a tuple of {nd} names"
            raise self.site.error(node, f"the target of a loop over acc.uniform_elements "
                                        f"must be {want} in this {nd}-D launch")

    def lower(self, member: str, node: ast.For, args: list[ast.expr],
              body: list[ast.stmt]) -> list[ast.stmt]:
        """The statements replacing ``for <node.target> in acc.<member>(*args): body``
        (checked first with :meth:`check`)."""
        return self.lowerings[member](node, args, body)

    # -- helpers ----------------------------------------------------------------------
    def _ix(self, kind: str, d: int = 0) -> str:
        return self.dialect.ix(kind, d, self.acc)

    def _template(self, source: str, body: list[ast.stmt], exprs: dict[str, ast.expr],
                  like: ast.AST) -> list[ast.stmt]:
        tree = ast.parse(textwrap.dedent(source))
        for sub in ast.walk(tree):
            if isinstance(sub, (ast.stmt, ast.expr)):
                ast.copy_location(sub, like)
        return _Placeholder(body, exprs).visit(tree).body

    @staticmethod
    def _names(node: ast.For) -> list[str]:
        target = node.target
        elts = target.elts if isinstance(target, ast.Tuple) else [target]
        return [cast(ast.Name, e).id for e in elts]  # names only: checked at decoration

    def _index_loop(self, var: str, start: str, stop: str, depth: int, uid: int) -> list[str]:
        """``for var in range(start, stop)``, through the dialect's index hint."""
        pad = "    " * depth
        hint = self.dialect.index_hint
        if hint is None:
            return [f"{pad}for {var} in range({start}, {stop}):"]
        raw = f"__pt_j{uid}_{var}"
        return [f"{pad}for {raw} in range({start}, {stop}):", f"{pad}    {var} = {hint}({raw})"]

    def _element_loops(self, loops: list[Loop], body: list[ast.stmt], uid: int,
                       spacings: list[str] | None = None) -> str:
        """Template source that gives each ``(var, first, extent, stride, elements)``
        its indices below ``extent``: ``elements`` of them per chunk, chunks
        ``stride`` apart from ``first``; the body goes at ``__PT_BODY__``.

        A chunk's elements are ``spacings[d]`` apart in dimension ``d`` (the
        block's width, for block-strided elements; ``first`` is then the
        thread's first element), or consecutive when ``spacings`` is ``None``
        (``first`` is then the chunk's start).

        With one element per thread (a compile-time 1) the loops are ``while``
        loops, the first iteration peeled in 1-D: a ``range`` loop computes its
        trip count with two integer divisions per thread, which costs a GPU a
        third of its bandwidth when each thread runs one iteration. Bodies
        with ``continue`` keep ``range`` loops (``continue`` would skip the
        increment of a ``while`` loop).
        """
        single = all(e == "(1)" for *_, e in loops) and not has_continue(body)
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
        if spacings is not None:
            return self._strided_loops(loops, spacings, uid)
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

    @staticmethod
    def _strided_loops(loops: list[Loop], spacings: list[str], uid: int) -> str:
        """Block-strided elements: per dimension, a ``while`` loop over the thread's
        chunks and, inside it, ``elements`` indices ``spacings[d]`` apart (a
        compile-time count on GPUs, so the loop unrolls); ``continue`` in the
        body goes to the next index, never past a chunk's increment."""
        lines: list[str] = []
        closers: list[str] = []
        depth = 0
        for (var, first, extent, stride, e), spacing in zip(loops, spacings):
            pad = "    " * depth
            chunk, k = f"__pt_c{uid}_{var}", f"__pt_k{uid}_{var}"
            lines += [f"{pad}{chunk} = {first}", f"{pad}while {chunk} < {extent}:",
                      f"{pad}    for {k} in range({e}):",
                      f"{pad}        {var} = {chunk} + {k} * {spacing}",
                      f"{pad}        if {var} < {extent}:"]
            closers.append(f"{pad}    {chunk} += {stride}")
            depth += 3
        lines.append("    " * depth + "__PT_BODY__")
        return "\n".join(lines + closers[::-1]) + "\n"

    # -- the loop members ---------------------------------------------------------------
    def _uniform_elements(self, node: ast.For, args: list[ast.expr],
                          body: list[ast.stmt]) -> list[ast.stmt]:
        nd = self.dialect.ndim
        names = self._names(node)
        strided = self.dialect.block_strided_elements
        uid = next(self._ids)
        src, exprs, loops = "", {}, []
        for d in range(nd):
            exprs[f"__PT_X{d}__"] = args[d]
            e = self._ix("thread_elements", d)
            src += (f"__pt_n{uid}_{d} = __PT_X{d}__\n"
                    f"__pt_s{uid}_{d} = {self._ix('grid_blocks', d)} * "
                    f"{self._ix('block_threads', d)} * {e}\n")
            block_start = f"{self._ix('block_idx', d)} * {self._ix('block_threads', d)}"
            first = (f"{block_start} * {e} + {self._ix('thread_idx', d)}" if strided else
                     f"({block_start} + {self._ix('thread_idx', d)}) * {e}")
            loops.append((names[d], first, f"__pt_n{uid}_{d}", f"__pt_s{uid}_{d}", e))
        spacings = [self._ix("block_threads", d) for d in range(nd)] if strided else None
        source = src + self._element_loops(loops, body, uid, spacings)
        return self._template(source, body, exprs, node)

    def _uniform_groups(self, node: ast.For, args: list[ast.expr],
                        body: list[ast.stmt]) -> list[ast.stmt]:
        (g,) = self._names(node)
        uid = next(self._ids)
        size = f"{self._ix('block_threads')} * {self._ix('thread_elements')}"
        src = (f"__pt_s{uid} = {size}\n"
               f"for {g} in range({self._ix('block_idx')}, (__PT_X0__ + __pt_s{uid} - 1)"
               f" // __pt_s{uid}, {self._ix('grid_blocks')}):\n"
               f"    __PT_BODY__\n")
        return self._template(src, body, {"__PT_X0__": args[0]}, node)

    def _uniform_group_elements(self, node: ast.For, args: list[ast.expr],
                                body: list[ast.stmt]) -> list[ast.stmt]:
        names = self._names(node)
        uid = next(self._ids)
        e = self._ix("thread_elements")
        start = f"__pt_g{uid}"
        src = (f"__pt_n{uid} = __PT_X1__\n"
               f"{start} = (__PT_X0__) * {self._ix('block_threads')} * {e}\n"
               f"__pt_f{uid} = {start} + {self._ix('thread_idx')} * {e}\n")
        var = names[0]
        if e == "(1)" and not has_continue(body):  # one index, no loop
            head = [f"{var} = __pt_f{uid}", f"if {var} < __pt_n{uid}:"]
        else:
            head = self._index_loop(var, f"__pt_f{uid}", f"min(__pt_f{uid} + {e}, __pt_n{uid})",
                                    0, uid)
        src += "\n".join(head) + "\n"
        if len(names) == 2:
            src += f"    {names[1]} = {var} - {start}\n"
        src += "    __PT_BODY__\n"
        return self._template(src, body, {"__PT_X0__": args[0], "__PT_X1__": args[1]}, node)

    def _independent_groups(self, node: ast.For, args: list[ast.expr],
                            body: list[ast.stmt]) -> list[ast.stmt]:
        (g,) = self._names(node)
        src = (f"for {g} in range({self._ix('block_idx')}, __PT_X0__, "
               f"{self._ix('grid_blocks')}):\n    __PT_BODY__\n")
        return self._template(src, body, {"__PT_X0__": args[0]}, node)

    def _independent_group_elements(self, node: ast.For, args: list[ast.expr],
                                     body: list[ast.stmt]) -> list[ast.stmt]:
        (i,) = self._names(node)
        uid = next(self._ids)
        e = self._ix("thread_elements")
        loop = (i, f"{self._ix('thread_idx')} * {e}", f"__pt_n{uid}", f"__pt_s{uid}", e)
        src = (f"__pt_n{uid} = __PT_X0__\n"
               f"__pt_s{uid} = {self._ix('block_threads')} * {e}\n")
        return self._template(src + self._element_loops([loop], body, uid), body,
                              {"__PT_X0__": args[0]}, node)
