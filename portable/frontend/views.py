"""Views of SoA collections inside kernels: ``v.<member>``, ``v.size``, ``v.capacity``.

A kernel parameter that receives a view is replaced by what the backend passes
for it, and ``v.x`` by a local array. Where each member lies in the buffer is
the layout's own geometry (:meth:`portable.layout.Layout.geometry`), computed
on the host for the collection's capacity and passed along: a view's lowering
restates no byte rule.
"""
from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .atomics import ATOMIC_DTYPES, atomic_dtype_problem
from .dialect import Dialect
from .site import Site
from .source import base_name


@dataclass(frozen=True)
class ViewParam:
    """A kernel parameter that receives a view of a collection: its layout and
    whether it is read-only."""

    layout: Any
    readonly: bool


@lru_cache(maxsize=1024)
def geometry_array(layout: Any, capacity: int) -> np.ndarray:
    """Each member's byte offset and pitch (``offset0, pitch0, offset1, ...``) for
    ``capacity`` elements, from the layout's geometry: what a kernel's view
    prologue reads (read-only, shared by launches).

    Example::

        >>> import portable as pt
        >>> class P(pt.Layout):
        ...     x = pt.column(np.float32)
        ...     n = pt.scalar(np.int64)
        >>> geometry_array(P, 40).tolist()
        [0, 256, 256, 128]
    """
    values = [v for g in layout.geometry(capacity).values() for v in (g.offset, g.pitch_bytes)]
    array = np.array(values, dtype=np.int64)
    array.flags.writeable = False
    return array


def view_args(view: Any) -> tuple[Any, ...]:
    """What a kernel whose view prologue builds the members (see
    :func:`expand_views`) receives for ``view``: its buffer, size, capacity
    and geometry."""
    return (*view.kernel_args(), geometry_array(view.layout, view.collection.capacity))


class ViewRewriter(ast.NodeTransformer):
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
            raise self.site.error(node, f"the view {self.name!r} can only be used as "
                                        f"{self.name}.<member>; pass columns ({self.name}.x), "
                                        f"not the whole view, to device functions")
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
        base = base_name(target)
        through = f" through {base!r}, which holds it" if base is not None else ""
        raise self.site.error(target, f"{member} is written{through}, but {self.name} is a "
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
                    raise self.site.error(node, f"{problem} ({self.name}.{first.attr})")
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
                raise self.site.error(node, f"{self.name}.{attr} cannot be assigned")
            return ast.copy_location(ast.Name(id=f"{self.prefix}_{attr}", ctx=ast.Load()), node)
        member = self.members.get(attr)
        if member is None:
            close = difflib.get_close_matches(attr, list(self.members) + ["size", "capacity"])
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise self.site.error(node, f"layout {self.spec.layout.__name__} has no member "
                                        f"{attr!r}{hint}")
        self.used.add(attr)
        local = ast.Name(id=f"{self.prefix}_{attr}", ctx=ast.Load())
        if member.kind == "scalar":
            return ast.copy_location(
                ast.Subscript(value=local, slice=ast.Constant(0), ctx=node.ctx), node)
        if isinstance(node.ctx, ast.Store):
            raise self.site.error(node, f"{self.name}.{attr} is an array: assign its "
                                        f"elements, {self.name}.{attr}[i] = ...")
        return ast.copy_location(local, node)


def _view_prologue(prefix: str, spec: ViewParam, used: set[str]) -> str:
    """Source that builds a typed array for each ``used`` member of a view from
    the parameters ``<prefix>_buffer`` (bytes), ``_size`` and ``_geometry``
    (each member's offset and pitch in bytes, see :func:`geometry_array`).
    An R x C member is R*C sub-columns a pitch apart, column-major (its
    ``(n, R, C)`` array is their transpose)."""
    buf, n, geo = f"{prefix}_buffer", f"{prefix}_size", f"{prefix}_geometry"
    lines = []
    for k, m in enumerate(spec.layout.members()):
        if m.name not in used:
            continue
        isz, rows, cols = m.itemsize, m.rows, m.cols
        start, pitch = f"{geo}[{2 * k}]", f"{geo}[{2 * k + 1}]"
        dt = f"__pt_np__.{m.dtype.name}"
        if m.kind == "scalar":
            array = f"{buf}[{start}:{start} + {isz}].view({dt})"
        elif m.kind == "column":
            array = f"{buf}[{start}:{start} + {n} * {isz}].view({dt})"
        else:
            whole = f"{buf}[{start}:{start} + {rows * cols} * {pitch}].view({dt})"
            array = (f"{whole}.reshape({rows}, {pitch} // {isz})[:, :{n}].T"
                     if m.kind == "vector" else
                     f"{whole}.reshape({cols}, {rows}, {pitch} // {isz})[:, :, :{n}].T")
        lines.append(f"{prefix}_{m.name} = {array}")
    return "\n".join(lines) + "\n"


def expand_views(fdef: ast.FunctionDef, views: dict[str, ViewParam], site: Site,
                 dialect: Dialect) -> dict[str, tuple[str, ...]]:
    """Replace each view parameter of ``fdef`` and rewrite its member accesses.

    With ``dialect.view_members_as_params`` every member the kernel uses
    becomes a parameter of its own (the host passes the member's array, built
    from the buffer's pointer with no per-thread work: GPUs, where a per-thread
    prologue would cost bandwidth); otherwise the view becomes its buffer and
    geometry (see :func:`view_args`), and a prologue builds the used members'
    arrays from them (CPU: once per block). Size and capacity are parameters in
    both cases. Returns, per view parameter, the members used, in layout order.
    A used member of a dtype the backend cannot index is an error.
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
        rewriter = ViewRewriter(arg.arg, prefix, spec, site)
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
            parts = ["buffer", "size", "capacity", "geometry"]
            if used:
                prologue += ast.parse(_view_prologue(prefix, spec, rewriter.used)).body
        new_args += [ast.arg(arg=f"{prefix}_{part}") for part in parts]
    fdef.args.args = new_args
    for stmt in prologue:
        for sub in ast.walk(stmt):
            ast.copy_location(sub, fdef.body[0])
    fdef.body = prologue + fdef.body
    return used_by
