"""The globals a kernel names: what they are, and their backend versions."""
from __future__ import annotations

import ast
import builtins
import functools
import types
from typing import Any, Callable

#: modules whose functions and classes numba compiles
_NUMBA_MODULES = frozenset({"numpy", "numba", "numba_cuda", "math", "cmath", "operator",
                            "builtins"})


def namespace_of(func: types.FunctionType) -> dict[str, Any]:
    """The built-ins, globals and closure variables of ``func``, by name.

    Example::

        >>> def outer():
        ...     scale = 3
        ...     def inner(x):
        ...         return scale * x
        ...     return inner
        >>> namespace_of(outer())["scale"]
        3
    """
    namespace: dict[str, Any] = {**vars(builtins), **func.__globals__}
    for name, cell in zip(func.__code__.co_freevars, func.__closure__ or ()):
        try:
            namespace[name] = cell.cell_contents
        except ValueError:  # a closure variable not assigned yet
            pass
    return namespace


def assigned(fdef: ast.FunctionDef) -> set[str]:
    """The names ``fdef`` assigns (its locals, besides its parameters)."""
    return {n.id for n in ast.walk(fdef) if isinstance(n, ast.Name)
            and isinstance(n.ctx, ast.Store)}


def global_value(node: ast.expr, namespace: dict[str, Any], local: set[str]
                 ) -> tuple[bool, Any]:
    """``(True, value)`` when ``node`` names a global (or a dotted path through
    modules) of ``namespace``, else ``(False, None)``.

    Example::

        >>> import ast, math
        >>> global_value(ast.parse("math.pi", mode="eval").body, {"math": math}, set())
        (True, 3.141592653589793)
    """
    if isinstance(node, ast.Name):
        if node.id in local or node.id not in namespace:
            return False, None
        return True, namespace[node.id]
    if isinstance(node, ast.Attribute):
        ok, base = global_value(node.value, namespace, local)
        if ok and isinstance(base, types.ModuleType) and hasattr(base, node.attr):
            return True, getattr(base, node.attr)
    return False, None


def python_only(value: Any) -> str | None:
    """What ``value`` is, when it is Python that device code cannot call.

    Example::

        >>> import math
        >>> python_only(math.sqrt) is None, python_only(lambda: 0)
        (True, 'plain Python function')
    """
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


class GlobalResolver(ast.NodeTransformer):
    """Replaces global names (and dotted paths through modules) whose value
    ``resolve`` maps to something else, e.g. a device function to its
    backend-compiled version; the new values are in ``replacements``."""

    def __init__(self, namespace: dict[str, Any], local: set[str],
                 resolve: Callable[[Any], Any]) -> None:
        self.namespace, self.local, self.resolve = namespace, local, resolve
        self.replacements: dict[str, Any] = {}

    def _replace(self, node: ast.expr) -> ast.expr | None:
        ok, value = global_value(node, self.namespace, self.local)
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
