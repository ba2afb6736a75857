"""Assembling one backend's version of a kernel or device function."""
from __future__ import annotations

import ast
import copy
import hashlib
from typing import Any, Callable, cast

import numpy as np

from ..kernel_cache import cached_function, fingerprint
from .calls import check_calls
from .dialect import Dialect
from .names import GlobalResolver, assigned, global_value, namespace_of
from .rewrite import AccRewriter, as_list
from .source import ParsedFunction
from .views import ViewParam, expand_views


def build_function(parsed: ParsedFunction, dialect: Dialect,
                   resolve: Callable[[Any], Any], *, drop_acc: bool = False,
                   views: tuple[tuple[int, ViewParam], ...] = (),
                   cache_key: Any = None) -> Any:
    """The backend version of ``parsed``: its ``acc`` members rewritten for
    ``dialect``, and every global that ``resolve`` maps (device functions)
    replaced by the backend's compiled object. Its calls are checked first
    (see :mod:`.calls`), the same way for every backend.

    With ``drop_acc`` (a kernel on a backend whose indices are built-ins) the
    accelerator is no parameter: ``acc`` becomes a local ``0``, which device
    functions taking ``acc`` receive and never read. ``views`` names, by
    position among the parameters after ``acc``, those that receive views of
    collections.

    With a ``cache_key`` (what else determines the compiled code: backend,
    launch shape, options) the function is defined from a file of the disk
    cache (see :mod:`portable.kernel_cache`), and its ``disk_cached`` attribute
    says whether that worked (then the backend's compiler may cache it too).
    The code keeps the user's lines: errors of the backend's compiler point at
    the user's file.
    """
    tree = copy.deepcopy(parsed.tree)
    fdef = cast(ast.FunctionDef, tree.body[0])
    namespace = namespace_of(parsed.func)
    check_calls(parsed, fdef, namespace, set(parsed.params) | assigned(fdef))
    used_by: dict[str, tuple[str, ...]] = {}
    if views:
        first = 1 if parsed.acc is not None else 0
        used_by = expand_views(fdef, {parsed.params[first + i]: spec for i, spec in views},
                               parsed.site, dialect)
    if parsed.acc is not None:
        rewriter = AccRewriter(parsed.acc, dialect, parsed.site)
        fdef.body = [s for stmt in fdef.body for s in as_list(rewriter.visit(stmt))]
        if drop_acc:
            fdef.args.args = fdef.args.args[1:]
            local = ast.parse(f"{parsed.acc} = 0").body[0]
            fdef.body.insert(0, ast.copy_location(local, fdef.body[0]))
    namespace.update(dialect.globals)
    namespace["__pt_np__"] = np
    injected = GlobalResolver(namespace, set(parsed.params) | assigned(fdef), resolve)
    injected.visit(fdef)
    namespace.update(injected.replacements)
    ast.fix_missing_locations(tree)
    if cache_key is not None:
        own = function_fingerprint(parsed)
        parts = fingerprint((cache_key, [(i, spec.layout, spec.readonly) for i, spec in views]))
        cache_key = None if own is None or parts is None else (own, parts)
    built: Any
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

        >>> from portable.frontend import parse_function
        >>> def twice(x):
        ...     return 2 * x
        >>> len(function_fingerprint(parse_function(twice, needs_acc=False)))
        64
    """
    fdef = cast(ast.FunctionDef, parsed.tree.body[0])
    namespace = namespace_of(parsed.func)
    local = set(parsed.params) | assigned(fdef)
    uses: dict[str, str | None] = {}
    for node in ast.walk(fdef):
        if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load):
            ok, value = global_value(node, namespace, local)
            if ok:
                uses[ast.unparse(node)] = fingerprint(value)
    if None in uses.values():
        return None
    text = f"{parsed.filename}:{parsed.func.__code__.co_firstlineno}\n" \
           f"{ast.unparse(parsed.tree)}\n{sorted(uses.items())}"
    return hashlib.sha256(text.encode()).hexdigest()
