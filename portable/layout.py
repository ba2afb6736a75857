"""SoA layouts: CMSSW-style Structure-of-Arrays declarations and their byte layout.

A layout declares the members of a collection of ``n`` elements, in order:

* :func:`column` -- one value per element;
* :func:`vector` and :func:`matrix` -- an Eigen-style R x C value per element
  (a vector is R x 1), stored as R*C padded sub-columns in column-major order;
* :func:`scalar` -- one value for the whole collection.

The byte layout follows CMSSW's SoA rules exactly (``SoALayout.h``):

* members lie in declaration order in one buffer, each starting at a multiple
  of the layout's ``alignment`` (default 128 bytes, any power of two at least
  as large as the largest member item);
* a column of ``n`` items of ``T`` takes ``align_up(n * sizeof(T), alignment)``
  bytes, its *pitch*; component ``(r, c)`` of an R x C member starts
  ``(r + c*R) * pitch`` bytes into the member, which takes ``R*C*pitch`` bytes;
* a scalar takes ``align_up(sizeof(T), alignment)`` bytes whatever ``n`` is;
* the buffer size (CMSSW's ``computeDataSize``) is the sum of the members'
  sizes; several layouts can share one buffer (:func:`block_offsets`).

This module is pure host-side geometry: it allocates nothing.

Example (the worked example of CMSSW's rules, ``n = 32``, alignment 64)::

    >>> import numpy as np
    >>> from portable.layout import Layout, column, scalar
    >>> class Example(Layout):
    ...     x = column(np.float32)
    ...     y = column(np.float32)
    ...     energy = scalar(np.float64)
    ...     charge = column(np.int16)
    ...     alignment = 64
    >>> [Example.offset(name, 32) for name in ("x", "y", "energy", "charge")]
    [0, 128, 256, 320]
    >>> Example.byte_size(32)
    384
    >>> print(Example.table(32))
    Example: n = 32, alignment = 64, 4 members, 384 bytes
    member  kind    dtype    shape  offset  pitch B  size B
    ------  ------  -------  -----  ------  -------  ------
    x       column  float32  1x1         0      128     128
    y       column  float32  1x1       128      128     128
    energy  scalar  float64  1x1       256       64      64
    charge  column  int16    1x1       320       64      64
    total                                               384
"""
from __future__ import annotations

import difflib
import keyword
import operator
from dataclasses import dataclass
from functools import lru_cache
from types import MappingProxyType
from typing import Any, Iterable, Literal, Mapping, NamedTuple, Sequence

import numpy as np

from .checks import describe
from .errors import ArgumentError, PortableError

__all__ = [
    "DEFAULT_ALIGNMENT", "SUPPORTED_DTYPES", "BlockOffsets", "Layout", "LayoutError",
    "Member", "MemberGeometry", "MemberKind", "MemberSpec", "align_up", "block_offsets",
    "column", "matrix", "numpy_views", "scalar", "vector",
]

MemberKind = Literal["column", "vector", "matrix", "scalar"]
"""The kinds of layout members."""

DEFAULT_ALIGNMENT = 128
"""CMSSW's default SoA alignment in bytes (``cms::soa::CacheLineSize::defaultSize``)."""

SUPPORTED_DTYPES: tuple[np.dtype, ...] = tuple(np.dtype(t) for t in (
    np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32,
    np.uint64, np.float16, np.float32, np.float64, np.complex64, np.complex128))
"""The item types a member may have, in native byte order. ``bool`` is one of them
(one byte holding 0 or 1); Python's ``int``, ``float`` and ``complex`` mean NumPy's
default ``int64``, ``float64`` and ``complex128``. Objects, strings, dates,
structured and sub-array dtypes are refused: a member holds plain numbers."""

_SUPPORTED_NAMES = ", ".join(dt.name for dt in SUPPORTED_DTYPES)
_MAX_LISTED_MEMBERS = 20


class LayoutError(PortableError, ValueError):
    """A layout declaration, or a question asked of a layout, is invalid."""


def align_up(size: int, alignment: int) -> int:
    """``size`` rounded up to a multiple of ``alignment`` (CMSSW's ``alignSize``).

    Example::

        >>> align_up(0, 128), align_up(1, 128), align_up(128, 128), align_up(129, 64)
        (0, 128, 128, 192)
    """
    return -(-size // alignment) * alignment


# --------------------------------------------------------------------------- declarations

@dataclass(frozen=True)
class MemberSpec:
    """An unnamed member declaration, made by :func:`column`, :func:`vector`,
    :func:`matrix` or :func:`scalar`; a layout names and checks it.

    ``dtype`` is kept as given; it is checked when the layout is built, so that
    the error can name the member.
    """

    kind: MemberKind
    dtype: Any
    rows: int = 1
    cols: int = 1


def column(dtype: Any) -> MemberSpec:
    """A column: one ``dtype`` value per element.

    Example::

        >>> import numpy as np
        >>> column(np.float32)
        MemberSpec(kind='column', dtype=<class 'numpy.float32'>, rows=1, cols=1)
    """
    return MemberSpec("column", dtype)


def vector(dtype: Any, rows: int) -> MemberSpec:
    """An Eigen-style ``rows`` x 1 vector column: ``rows`` padded sub-columns.

    Example::

        >>> import numpy as np
        >>> vector(np.float32, 3).rows, vector(np.float32, 3).cols
        (3, 1)
    """
    return MemberSpec("vector", dtype, rows, 1)


def matrix(dtype: Any, rows: int, cols: int) -> MemberSpec:
    """An Eigen-style ``rows`` x ``cols`` matrix column: ``rows * cols`` padded
    sub-columns in column-major order.

    Example::

        >>> import numpy as np
        >>> m = matrix(np.float64, 3, 2)
        >>> m.kind, m.rows, m.cols
        ('matrix', 3, 2)
    """
    return MemberSpec("matrix", dtype, rows, cols)


def scalar(dtype: Any) -> MemberSpec:
    """A scalar: one ``dtype`` value for the whole collection.

    Example::

        >>> import numpy as np
        >>> scalar(np.int64).kind
        'scalar'
    """
    return MemberSpec("scalar", dtype)


@dataclass(frozen=True)
class Member:
    """A named, checked member of a layout (``Layout.members()``; also the
    class attribute of the member's name).

    Example::

        >>> import numpy as np
        >>> Tracks = Layout.define("Tracks", [("cov", matrix(np.float64, 3, 2))])
        >>> Tracks.cov
        Member(name='cov', kind='matrix', dtype=dtype('float64'), rows=3, cols=2)
        >>> Tracks.cov.shape, Tracks.cov.itemsize
        ((3, 2), 8)
    """

    name: str
    kind: MemberKind
    dtype: np.dtype
    rows: int
    cols: int

    @property
    def shape(self) -> tuple[int, int]:
        """``(rows, cols)``: ``(1, 1)`` for columns and scalars, ``(R, 1)`` for vectors."""
        return (self.rows, self.cols)

    @property
    def itemsize(self) -> int:
        """The size in bytes of one item (``sizeof(T)``)."""
        return self.dtype.itemsize

    @property
    def spec(self) -> MemberSpec:
        """The declaration, to reuse this member in another layout."""
        return MemberSpec(self.kind, self.dtype, self.rows, self.cols)


@dataclass(frozen=True)
class MemberGeometry(Member):
    """Where one member lies in a buffer of a layout for ``n`` elements (a
    :class:`Member` with its place).

    ``offset`` is from the start of the layout's buffer; ``pitch_bytes`` is the
    padded size of one sub-column (for a scalar, its padded size); ``size`` is
    the bytes the member takes, ``rows * cols * pitch_bytes``.

    Example::

        >>> import numpy as np
        >>> Tracks = Layout.define("Tracks", [("q", column(np.int8)),
        ...                                   ("p", vector(np.float32, 3))], alignment=64)
        >>> g = Tracks.geometry(20)["p"]
        >>> g.offset, g.pitch_bytes, g.pitch, g.size
        (64, 128, 32, 384)
        >>> [g.component_offset(r) for r in range(3)]
        [64, 192, 320]
    """

    offset: int
    pitch_bytes: int
    size: int

    @property
    def pitch(self) -> int:
        """The pitch in elements: ``pitch_bytes // itemsize``."""
        return self.pitch_bytes // self.dtype.itemsize

    @property
    def end(self) -> int:
        """The offset just past the member: ``offset + size``."""
        return self.offset + self.size

    def component_offset(self, row: int = 0, col: int = 0) -> int:
        """The buffer offset of sub-column ``(row, col)``:
        ``offset + (row + col*rows) * pitch_bytes`` (Eigen's column-major order)."""
        if not (0 <= row < self.rows and 0 <= col < self.cols):
            raise LayoutError(f"component ({row}, {col}) is outside member {self.name!r} "
                              f"of shape {self.rows}x{self.cols}")
        return self.offset + (row + col * self.rows) * self.pitch_bytes


# --------------------------------------------------------------------------- checks

def _check_count(n: Any, what: str = "n") -> int:
    """``n`` as a non-negative int, or a clear error."""
    if isinstance(n, (bool, np.bool_)):
        raise LayoutError(f"{what} must be a non-negative integer number of elements, "
                          f"got the bool {n!r}")
    try:
        value = operator.index(n)
    except TypeError:
        raise LayoutError(f"{what} must be a non-negative integer number of elements, "
                          f"got {n!r} ({type(n).__name__})") from None
    if value < 0:
        raise LayoutError(f"{what} must be a non-negative integer number of elements, "
                          f"got {value}")
    return value


def _check_dtype(value: Any, where: str) -> np.dtype:
    hint = f"supported item types: {_SUPPORTED_NAMES}"
    if value is None:  # np.dtype(None) would silently mean float64
        raise LayoutError(f"{where}: no dtype given; {hint}")
    if not isinstance(value, (np.dtype, type, str)):  # np.dtype(array) is the array's dtype
        raise LayoutError(f"{where}: {value!r} ({type(value).__name__}) is not a dtype; pass "
                          f"a type such as np.float32 or its name 'float32'; {hint}")
    try:
        dt = np.dtype(value)
    except (TypeError, ValueError) as exc:
        raise LayoutError(f"{where}: {value!r} is not a NumPy dtype ({exc}); {hint}") from None
    if dt.subdtype is not None:
        item, shape = dt.subdtype
        raise LayoutError(f"{where}: dtype {dt} holds a {shape} sub-array per item; declare "
                          f"vector({item.name}, R) or matrix({item.name}, R, C) instead")
    if dt.fields is None and not dt.isnative:
        raise LayoutError(f"{where}: dtype {dt.str!r} is not in native byte order; "
                          f"use {dt.newbyteorder('=').name}")
    for supported in SUPPORTED_DTYPES:
        if dt == supported and dt.fields is None:
            return supported
    raise LayoutError(f"{where}: dtype {dt} is not supported (a layout member holds plain "
                      f"numbers); {hint}")


def _check_extent(value: Any, what: str, where: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise LayoutError(f"{where}: {what} must be a positive integer, got {value!r}")
    return int(value)


def _check_alignment(value: Any, layout: str, members: Sequence[Member]) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise LayoutError(f"{layout}: alignment must be a power of two in bytes, "
                          f"got {value!r} ({type(value).__name__})")
    value = int(value)
    if value < 1 or value & (value - 1):
        raise LayoutError(f"{layout}: alignment {value} is not a power of two "
                          f"(use e.g. {DEFAULT_ALIGNMENT})")
    if members:
        widest = max(members, key=lambda m: m.itemsize)
        if value < widest.itemsize:
            raise LayoutError(
                f"{layout}: alignment {value} is smaller than the item of member "
                f"{widest.name!r} ({widest.dtype}, {widest.itemsize} bytes); use a power "
                f"of two >= {widest.itemsize}")
    return value


#: attributes of views and collections: a member of one of these names would be hidden
#: behind them (``view.size`` is the element count, never a member called ``size``)
VIEW_ATTRIBUTES = frozenset({
    "size", "capacity", "layout", "readonly", "buffer", "collection", "kernel_args",
    "device", "nbytes", "resize", "view", "const_view", "column", "dlpack", "table",
    "copy_from", "to", "save", "load"})


@lru_cache(maxsize=None)
def _reserved_names() -> frozenset[str]:
    names = {n for n in dir(Layout) if not n.startswith("_")}
    names |= {n for n in dir(LayoutMeta) if not n.startswith("_")}
    return frozenset(names)


def _check_name(name: Any, layout: str, taken: Iterable[str]) -> str:
    if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
        raise LayoutError(f"{layout}: member name {name!r} is not a valid Python identifier "
                          f"(letters, digits and '_', not starting with a digit, not a "
                          f"keyword)")
    if name.startswith("_"):
        raise LayoutError(f"{layout}: member name {name!r} starts with '_', which is "
                          f"reserved for the layout's internals")
    if name in _reserved_names():
        raise LayoutError(f"{layout}: member name {name!r} clashes with the layout's own "
                          f"attribute {name!r}; rename the member, e.g. {name}_")
    if name in VIEW_ATTRIBUTES:
        raise LayoutError(f"{layout}: member name {name!r} is taken by views and collections "
                          f"(view.{name} has a meaning of its own and would hide the member); "
                          f"rename the member, e.g. {name}_")
    if name in taken:
        raise LayoutError(f"{layout}: member {name!r} is declared twice")
    return name


def _bind(name: str, spec: MemberSpec, layout: str) -> Member:
    where = f"{layout}.{name}"
    kind = spec.kind
    if kind not in ("column", "vector", "matrix", "scalar"):
        raise LayoutError(f"{where}: unknown member kind {kind!r}")
    dtype = _check_dtype(spec.dtype, f"{where} ({kind})")
    rows = _check_extent(spec.rows, "rows", where)
    cols = _check_extent(spec.cols, "cols", where)
    if kind in ("column", "scalar") and (rows, cols) != (1, 1):
        raise LayoutError(f"{where}: a {kind} has shape 1x1, got {rows}x{cols}")
    if kind == "vector" and cols != 1:
        raise LayoutError(f"{where}: a vector has one column, got {rows}x{cols}")
    return Member(name, kind, dtype, rows, cols)


def _misdeclared(layout: str, key: str, value: Any) -> str | None:
    """Why the class-body entry ``key = value`` looks like a member declared wrongly
    (a dtype or a string without ``column(...)``, an uncalled ``column``, a trailing
    comma, another layout's member), or ``None`` if it is an ordinary attribute."""
    where = f"{layout}.{key}"
    if isinstance(value, (tuple, list)) and any(isinstance(v, MemberSpec) for v in value):
        return (f"{where} is a {type(value).__name__} of declarations, not a member (a "
                f"trailing comma?); declare one member per name: {key} = column(np.float32)")
    if isinstance(value, Member):
        return (f"{where} = {value!r} is a member of another layout; reuse its declaration "
                f"with {key} = <Layout>.{value.name}.spec")
    if any(value is declare for declare in (column, vector, matrix, scalar)):
        extents = {"vector": ", R", "matrix": ", R, C"}.get(value.__name__, "")
        return (f"{where} = {value.__name__} is not a member; call it: "
                f"{key} = {value.__name__}(np.float32{extents})")
    dtype_like = isinstance(value, (np.dtype, str)) or (
        isinstance(value, type) and issubclass(value, (np.generic, int, float, complex, str,
                                                       bytes)))
    if not dtype_like:
        return None
    if isinstance(value, type) and issubclass(value, np.generic):
        shown = f"np.{value.__name__}"
    elif isinstance(value, type):
        shown = value.__name__
    else:
        shown = repr(value) if isinstance(value, str) else f"np.dtype({value.name!r})"
    return (f"{where} = {shown} is not a member; declare it as column({shown}), "
            f"vector({shown}, R), matrix({shown}, R, C) or scalar({shown}), e.g. "
            f"{key} = column(np.float32) (a constant that is not a member needs a name "
            f"starting with '_')")


# --------------------------------------------------------------------------- the layout class

class _Namespace(dict):
    """A class body namespace that refuses to redeclare a member."""

    def __init__(self, layout: str) -> None:
        super().__init__()
        self.layout = layout

    def __setitem__(self, key: str, value: Any) -> None:
        if key in self and (isinstance(value, MemberSpec) or isinstance(self[key], MemberSpec)):
            raise LayoutError(f"{self.layout}: member {key!r} is declared twice in the "
                              f"class body")
        super().__setitem__(key, value)


class LayoutMeta(type):
    """The metaclass of layouts: collects and checks the members of a class body."""

    #: set on each layout class by :meth:`__new__`
    alignment: int
    _members: tuple[Member, ...]
    _by_name: dict[str, Member]

    @classmethod
    def __prepare__(mcs, name: str, bases: tuple[type, ...],  # type: ignore[override]
                    **kwargs: Any) -> _Namespace:
        return _Namespace(name)

    def __new__(mcs, name: str, bases: tuple[type, ...], namespace: dict[str, Any],
                **kwargs: Any) -> LayoutMeta:
        layout_bases = [b for b in bases if isinstance(b, LayoutMeta)]
        if len(layout_bases) > 1:
            raise LayoutError(f"{name}: a layout extends at most one layout, got "
                              f"{', '.join(b.__name__ for b in layout_bases)}")
        parent = layout_bases[0] if layout_bases else None
        inherited: tuple[Member, ...] = parent._members if parent is not None else ()
        inherited_names = {m.name for m in inherited}

        own: list[Member] = []
        for key, value in namespace.items():
            if key in inherited_names:
                raise LayoutError(f"{name}: {key!r} would hide the member {key!r} of "
                                  f"{parent.__name__ if parent else name}; rename it")
            if isinstance(value, MemberSpec):
                own.append(_bind(_check_name(key, name, ()), value, name))
            elif not key.startswith("_") and key != "alignment":
                problem = _misdeclared(name, key, value)
                if problem is not None:
                    raise LayoutError(problem)

        members = inherited + tuple(own)
        default = parent.alignment if parent is not None else DEFAULT_ALIGNMENT
        alignment = _check_alignment(namespace.get("alignment", default), name, members)

        cls = super().__new__(mcs, name, bases, dict(namespace), **kwargs)
        type.__setattr__(cls, "alignment", alignment)
        type.__setattr__(cls, "_members", members)
        type.__setattr__(cls, "_by_name", MappingProxyType({m.name: m for m in members}))
        for member in own:
            type.__setattr__(cls, member.name, member)
        return cls

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        raise ArgumentError(f"layout {cls.__name__} is used as a class, never instantiated: "
                            f"pass {cls.__name__} itself, e.g. "
                            f"pt.PortableCollection({cls.__name__}, n, device), not "
                            f"{cls.__name__}()")

    def __setattr__(cls, key: str, value: Any) -> None:
        cls._refuse_change(key)
        super().__setattr__(key, value)

    def __delattr__(cls, key: str) -> None:
        cls._refuse_change(key)
        super().__delattr__(key)

    def _refuse_change(cls, key: str) -> None:
        if key in ("alignment", "_members", "_by_name") or key in cls._by_name:
            raise LayoutError(f"layout {cls.__name__} is immutable: {key!r} cannot change "
                              f"after its declaration; define a new layout instead")

    def __repr__(cls) -> str:
        names = ", ".join(m.name for m in cls._members) or "no members"
        return f"<layout {cls.__name__}: {names}; alignment {cls.alignment}>"


class Layout(metaclass=LayoutMeta):
    """Base class of SoA layouts: subclass it and declare members in order.

    A layout is used as a class (its methods are class methods); each member is
    also a class attribute (a :class:`Member`). ``alignment`` (default 128) may
    be set in the class body. A layout may extend one other layout: the
    parent's members come first.

    Example::

        >>> import numpy as np
        >>> class Hits(Layout):
        ...     x = column(np.float32)
        ...     y = column(np.float32)
        ...     momentum = vector(np.float32, 3)
        ...     cov = matrix(np.float64, 3, 3)
        ...     event_id = scalar(np.int64)
        >>> Hits
        <layout Hits: x, y, momentum, cov, event_id; alignment 128>
        >>> Hits.byte_size(100)                 # 2*512 + 3*512 + 9*896 + 128
        10752
        >>> Hits.offset("cov", 100), Hits.pitch("cov", 100), Hits.pitch_bytes("cov", 100)
        (2560, 112, 896)
        >>> Hits.member_size("event_id", 100)
        128
    """

    alignment: int = DEFAULT_ALIGNMENT
    _members: tuple[Member, ...] = ()
    _by_name: Mapping[str, Member] = MappingProxyType({})

    @classmethod
    def define(cls, name: str,
               members: Iterable[tuple[str, MemberSpec]] | Mapping[str, MemberSpec],
               alignment: int | None = None) -> type[Layout]:
        """A new layout class named ``name``, extending this one, with ``members``
        (pairs of name and declaration, in order) and ``alignment`` (default: this
        layout's, 128 for :class:`Layout`).

        Example::

            >>> import numpy as np
            >>> Hits = Layout.define("Hits", [("x", column(np.float32)),
            ...                               ("e", scalar(np.float64))], alignment=64)
            >>> Hits
            <layout Hits: x, e; alignment 64>
            >>> Hits.byte_size(32)
            192
        """
        if not isinstance(name, str) or not name.isidentifier() or keyword.iskeyword(name):
            raise LayoutError(f"layout name {name!r} is not a valid Python identifier")
        if isinstance(members, (str, bytes)) or not isinstance(members, (Mapping, Iterable)):
            raise LayoutError(f"{name}: members must be (name, declaration) pairs or a "
                              f"mapping from name to declaration, got {describe(members)}")
        items = members.items() if isinstance(members, Mapping) else members
        namespace: dict[str, Any] = {"__qualname__": name, "__module__": cls.__module__}
        seen: set[str] = set()
        for item in items:
            if not (isinstance(item, tuple) and len(item) == 2):
                raise LayoutError(f"{name}: members must be (name, declaration) pairs, "
                                  f"got {item!r}")
            key, spec = item
            _check_name(key, name, seen)
            if not isinstance(spec, MemberSpec):
                problem = _misdeclared(name, key, spec)
                raise LayoutError(problem or (
                    f"{name}.{key}: {spec!r} is not a member declaration; use column(dtype), "
                    f"vector(dtype, R), matrix(dtype, R, C) or scalar(dtype)"))
            seen.add(key)
            namespace[key] = spec
        if alignment is not None:
            namespace["alignment"] = alignment
        return LayoutMeta(name, (cls,), namespace)  # type: ignore[return-value]

    @classmethod
    def members(cls) -> tuple[Member, ...]:
        """The members in declaration order.

        Example::

            >>> import numpy as np
            >>> L = Layout.define("L", [("a", column(np.int32)), ("b", vector(np.float32, 2))])
            >>> [(m.name, m.kind, str(m.dtype), m.shape) for m in L.members()]
            [('a', 'column', 'int32', (1, 1)), ('b', 'vector', 'float32', (2, 1))]
        """
        return cls._members

    @classmethod
    def member(cls, name: str) -> Member:
        """The member called ``name``; an unknown name is an error suggesting near ones.

        Example::

            >>> import numpy as np
            >>> L = Layout.define("L", [("momentum", vector(np.float32, 3))])
            >>> L.member("momentum").rows
            3
            >>> try:
            ...     L.member("mometum")
            ... except LayoutError as error:
            ...     print(error)
            layout L has no member 'mometum'; did you mean 'momentum'? (members: momentum)
        """
        if not isinstance(name, str):
            raise ArgumentError(f"{cls.__name__}: a member name must be a str, got "
                                f"{describe(name)}; members: "
                                f"{', '.join(cls._by_name) or 'none'}")
        if name in cls._by_name:
            return cls._by_name[name]
        names = list(cls._by_name)
        message = f"layout {cls.__name__} has no member {name!r}"
        near = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        near += [n for n in names if n.lower() == name.lower() and n not in near]
        if near:
            message += "; did you mean " + " or ".join(repr(n) for n in near) + "?"
        if not names:
            message += " (it has no members)"
        elif len(names) <= _MAX_LISTED_MEMBERS:
            message += f" (members: {', '.join(names)})"
        raise LayoutError(message)

    @classmethod
    def geometry(cls, n: int) -> Mapping[str, MemberGeometry]:
        """Every member's :class:`MemberGeometry` for ``n`` elements, in order
        (a read-only mapping from member name).

        Example::

            >>> import numpy as np
            >>> L = Layout.define("L", [("a", column(np.float32)), ("s", scalar(np.int8))])
            >>> for g in L.geometry(40).values():
            ...     print(g.name, g.offset, g.pitch_bytes, g.size)
            a 0 256 256
            s 256 128 128
        """
        return _geometry(cls, _check_count(n))

    @classmethod
    def byte_size(cls, n: int) -> int:
        """The bytes a buffer for ``n`` elements needs (CMSSW's ``computeDataSize``).

        Example::

            >>> import numpy as np
            >>> L = Layout.define("L", [("a", column(np.float32)), ("s", scalar(np.int8))])
            >>> L.byte_size(0), L.byte_size(1), L.byte_size(33)
            (128, 256, 384)
        """
        geometry = cls.geometry(n)
        return sum(g.size for g in geometry.values())

    @classmethod
    def offset(cls, name: str, n: int) -> int:
        """The byte offset of member ``name`` in a buffer for ``n`` elements."""
        return cls._geometry_of(name, n).offset

    @classmethod
    def pitch(cls, name: str, n: int) -> int:
        """The pitch of member ``name`` in elements (items) for ``n`` elements."""
        return cls._geometry_of(name, n).pitch

    @classmethod
    def pitch_bytes(cls, name: str, n: int) -> int:
        """The pitch of member ``name`` in bytes (one padded sub-column) for ``n`` elements."""
        return cls._geometry_of(name, n).pitch_bytes

    @classmethod
    def member_size(cls, name: str, n: int) -> int:
        """The bytes member ``name`` takes for ``n`` elements."""
        return cls._geometry_of(name, n).size

    @classmethod
    def table(cls, n: int) -> str:
        """A text table of the byte layout for ``n`` elements: one line per member
        (name, kind, dtype, shape, offset, pitch and size in bytes) and the total.

        Example::

            >>> import numpy as np
            >>> L = Layout.define("L", [("p", vector(np.float32, 2)), ("id", scalar(np.int64))])
            >>> print(L.table(10))
            L: n = 10, alignment = 128, 2 members, 384 bytes
            member  kind    dtype    shape  offset  pitch B  size B
            ------  ------  -------  -----  ------  -------  ------
            p       vector  float32  2x1         0      128     256
            id      scalar  int64    1x1       256      128     128
            total                                               384
        """
        geometry = cls.geometry(n)
        total = sum(g.size for g in geometry.values())
        header = ("member", "kind", "dtype", "shape", "offset", "pitch B", "size B")
        rows = [(g.name, g.kind, g.dtype.name, f"{g.rows}x{g.cols}", str(g.offset),
                 str(g.pitch_bytes), str(g.size)) for g in geometry.values()]
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        widths[-1] = max(widths[-1], len(str(total)))
        right = (False, False, False, False, True, True, True)

        def line(cells: Sequence[str]) -> str:
            return "  ".join(c.rjust(w) if r else c.ljust(w)
                             for c, w, r in zip(cells, widths, right)).rstrip()

        count = len(geometry)
        lines = [f"{cls.__name__}: n = {n}, alignment = {cls.alignment}, "
                 f"{count} member{'' if count == 1 else 's'}, {total} bytes",
                 line(header), line(["-" * w for w in widths])]
        lines += [line(r) for r in rows]
        lines.append(line(["total", "", "", "", "", "", str(total)]))
        return "\n".join(lines)

    @classmethod
    def _geometry_of(cls, name: str, n: int) -> MemberGeometry:
        member = cls.member(name)
        return cls.geometry(n)[member.name]


@lru_cache(maxsize=1024)
def _geometry(layout: type[Layout], n: int) -> Mapping[str, MemberGeometry]:
    alignment = layout.alignment
    offset = 0
    result: dict[str, MemberGeometry] = {}
    for m in layout._members:
        if m.kind == "scalar":
            pitch_bytes = align_up(m.itemsize, alignment)
        else:
            pitch_bytes = align_up(n * m.itemsize, alignment)
        size = m.rows * m.cols * pitch_bytes
        result[m.name] = MemberGeometry(m.name, m.kind, m.dtype, m.rows, m.cols, offset,
                                        pitch_bytes, size)
        offset += size
    return MappingProxyType(result)


# --------------------------------------------------------------------------- several layouts

class BlockOffsets(NamedTuple):
    """Where each layout of a shared buffer starts, and the buffer's total size."""

    offsets: tuple[int, ...]
    total: int


def _check_layout(layout: Any, where: str) -> type[Layout]:
    if not (isinstance(layout, type) and issubclass(layout, Layout)):
        raise LayoutError(f"{where}: expected a Layout subclass, got {layout!r}")
    return layout


def block_offsets(blocks: Iterable[tuple[type[Layout], int]]) -> BlockOffsets:
    """Lay several layouts out in one buffer (CMSSW's SoA blocks / multi-collections).

    ``blocks`` is a sequence of ``(layout, n)`` pairs; each layout starts at the
    previous one's end rounded up to its own alignment (with equal alignments,
    exactly CMSSW's running sum of ``computeDataSize``). The buffer itself must
    be aligned to the largest alignment of the layouts.

    Example::

        >>> import numpy as np
        >>> A = Layout.define("A", [("x", column(np.float32))], alignment=64)
        >>> B = Layout.define("B", [("e", scalar(np.float64))], alignment=128)
        >>> block_offsets([(A, 10), (B, 5), (A, 40)])
        BlockOffsets(offsets=(0, 128, 256), total=448)
    """
    offsets: list[int] = []
    end = 0
    for i, block in enumerate(blocks):
        if not (isinstance(block, tuple) and len(block) == 2):
            raise LayoutError(f"block {i}: expected a (layout, n) pair, got {block!r}")
        layout = _check_layout(block[0], f"block {i}")
        n = _check_count(block[1], f"block {i} ({layout.__name__}) n")
        start = align_up(end, layout.alignment)
        offsets.append(start)
        end = start + layout.byte_size(n)
    return BlockOffsets(tuple(offsets), end)


# --------------------------------------------------------------------------- host views

def numpy_views(layout: type[Layout], buffer: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """NumPy views of every member of ``layout`` for ``n`` elements in a host
    ``uint8`` buffer (offsets are from the buffer's first byte).

    Columns are arrays of shape ``(n,)``; vectors and matrices of shape
    ``(n, R, C)`` with byte strides ``(itemsize, pitch_bytes, R * pitch_bytes)``;
    scalars 0-d arrays. Writes through the views land in the buffer.

    Example::

        >>> import numpy as np
        >>> L = Layout.define("L", [("x", column(np.float32)), ("p", vector(np.int16, 2)),
        ...                         ("id", scalar(np.int64))], alignment=16)
        >>> buf = np.zeros(L.byte_size(3), np.uint8)
        >>> v = numpy_views(L, buf, 3)
        >>> v["p"].shape, v["p"].strides
        ((3, 2, 1), (2, 16, 32))
        >>> v["p"][:, 1, 0] = [7, 8, 9]
        >>> v["id"][()] = 42
        >>> buf[L.offset("p", 3) + 16:][:6].view(np.int16).tolist()
        [7, 8, 9]
        >>> int(buf[L.offset("id", 3):][:8].view(np.int64)[0])
        42
    """
    _check_layout(layout, "numpy_views")
    n = _check_count(n)
    if not isinstance(buffer, np.ndarray) or buffer.dtype != np.uint8 or buffer.ndim != 1 \
            or not buffer.flags.c_contiguous:
        shown = (f"{buffer.dtype} array of shape {buffer.shape}"
                 if isinstance(buffer, np.ndarray) else type(buffer).__name__)
        raise LayoutError(f"numpy_views: the buffer must be a contiguous 1-D uint8 NumPy "
                          f"array, got a {shown}")
    need = layout.byte_size(n)
    if buffer.size < need:
        raise LayoutError(f"numpy_views: {layout.__name__} needs {need} bytes for n = {n}, "
                          f"the buffer has {buffer.size}")
    views: dict[str, np.ndarray] = {}
    for g in layout.geometry(n).values():
        if g.kind == "scalar":
            views[g.name] = np.ndarray((), g.dtype, buffer=buffer, offset=g.offset)
        elif g.kind == "column":
            views[g.name] = np.ndarray((n,), g.dtype, buffer=buffer, offset=g.offset)
        else:
            views[g.name] = np.ndarray(
                (n, g.rows, g.cols), g.dtype, buffer=buffer, offset=g.offset,
                strides=(g.itemsize, g.pitch_bytes, g.rows * g.pitch_bytes))
    return views
