"""Rewriting a function's ``acc.<member>`` uses into one backend's code."""
from __future__ import annotations

import ast
from typing import Any, cast

from .acc import CONDITION_MEMBERS, LOOP_MEMBERS, call_source, value_source
from .dialect import Dialect
from .loops import LoopLowering
from .site import Site


def as_list(node: Any) -> list[ast.stmt]:
    """A visitor's result as a list of statements."""
    return node if isinstance(node, list) else [node]


def parse_expr(source: str, like: ast.AST) -> ast.expr:
    """The expression ``source``, placed at ``like``'s line and column."""
    expr = ast.parse(source, mode="eval").body
    for sub in ast.walk(expr):
        ast.copy_location(sub, like)
    return expr


class AccRewriter(ast.NodeTransformer):
    """Rewrites every ``acc.<member>`` of one function for one dialect. The forms
    were checked at decoration (see :mod:`.syntax`)."""

    def __init__(self, acc: str, dialect: Dialect, site: Site) -> None:
        self.acc, self.dialect = acc, dialect
        self.loops = LoopLowering(acc, dialect, site)

    def _member(self, node: ast.AST) -> str | None:
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                and node.value.id == self.acc):
            return node.attr
        return None

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        member = self._member(node)
        if member is None:
            return self.generic_visit(node)
        return parse_expr(value_source(member, self.dialect, self.acc), node)

    def visit_Call(self, node: ast.Call) -> Any:
        member = self._member(node.func)
        if member is None:
            return self.generic_visit(node)
        source = call_source(member, self.dialect, self.acc)
        if member in CONDITION_MEMBERS:  # the source is the whole call
            return parse_expr(source, node)
        args = [self.visit(a) for a in node.args]
        return ast.copy_location(ast.Call(func=parse_expr(source, node), args=args,
                                          keywords=[]), node)

    def visit_For(self, node: ast.For) -> Any:
        member = self._member(node.iter.func) if isinstance(node.iter, ast.Call) else None
        if member not in LOOP_MEMBERS:
            return self.generic_visit(node)
        self.loops.check(member, node)
        body = [s for stmt in node.body for s in as_list(self.visit(stmt))]
        args = [self.visit(a) for a in cast(ast.Call, node.iter).args]
        stmts = self.loops.lower(member, node, args, body)
        for stmt in stmts:
            for sub in ast.walk(stmt):
                if not hasattr(sub, "lineno") or sub.lineno is None:
                    ast.copy_location(sub, node)
        return stmts
