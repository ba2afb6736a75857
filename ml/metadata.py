"""Tensor metadata: which SoA members form which tensor (the CMS bridge's rules).

A block is a run of adjacent members of one dtype; it becomes one strided
tensor over the collection's memory, with no copy. Shapes and strides, in
elements, ``pitch`` being the member's padded column length:

=========================================  ============  ======================
registered                                 shape         strides
=========================================  ============  ======================
k adjacent columns of one dtype            (N, k)        (1, pitch)
k adjacent vectors of dimension R          (N, k, R)     (1, R*pitch, pitch)
one R x C matrix                           (N, R, C)     (1, pitch, R*pitch)
a scalar                                   (N, 1)        (0, 1), broadcast
=========================================  ============  ======================

Example::

    >>> import numpy as np, portable as pt, ml
    >>> class Hits(pt.Layout):
    ...     x = pt.column(np.float32)
    ...     y = pt.column(np.float32)
    ...     z = pt.column(np.float32)
    ...     score = pt.column(np.float32)
    >>> hits = pt.PortableCollection(Hits, 100, pt.get_device("cpu_serial"), zero=True)
    >>> meta = ml.SoAMetadata(hits)
    >>> meta.append_block("features", "x", "y", "z")
    >>> t = meta.tensor("features")
    >>> tuple(t.shape), t.stride()
    ((100, 3), (1, 128))
"""
from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

from portable.checks import describe, expect_count, expect_flag
from portable.collection import MultiCollection, PortableCollection, View
from portable.errors import ArgumentError, PortableError
from portable.layout import align_up

from .tensors import BlockGeometry, block_tensor, row_quantum


class MetadataError(PortableError):
    """Members that cannot form the tensor asked for, or outputs that do not fit."""


@dataclass(frozen=True)
class Block:
    """A named block: the members it covers and how they form a tensor."""

    name: str
    members: tuple[str, ...]
    geometry: BlockGeometry
    copy: bool = False


class SoAMetadata:
    """Named tensor blocks over one collection, in the order a model takes them.

    Blocks are checked when declared: the members must exist, share one kind
    and dtype, and be adjacent in the layout (unless ``copy=True``, which
    gathers them into a new tensor, with a warning).
    """

    def __init__(self, collection: PortableCollection) -> None:
        if not isinstance(collection, PortableCollection):
            if isinstance(collection, MultiCollection):
                fix = "take one of its collections, e.g. ml.SoAMetadata(multi[0])"
            elif isinstance(collection, View):
                fix = "pass the collection itself, not its view"
            else:
                fix = "make one with pt.PortableCollection(layout, size, device)"
            raise ArgumentError(f"ml.SoAMetadata: argument 'collection' must be a "
                                f"pt.PortableCollection, got {describe(collection)}; {fix}")
        self.collection = collection
        self.blocks: dict[str, Block] = {}
        self.order: list[str] = []

    def __repr__(self) -> str:
        return (f"<SoAMetadata of {self.collection.layout.__name__}, "
                f"{self.collection.size} rows: blocks {', '.join(self.order) or 'none'}>")

    def append_block(self, name: str, *members: str, copy: bool = False) -> None:
        """Declare block ``name`` made of ``members`` (see the module's table).

        Example::

            >>> import numpy as np, portable as pt, ml
            >>> L = pt.Layout.define("L", [("a", pt.column(np.float32)),
            ...                            ("b", pt.column(np.float64))])
            >>> meta = ml.SoAMetadata(pt.PortableCollection(L, 4, pt.get_device("cpu_serial")))
            >>> meta.append_block("both", "a", "b")  # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            ml.metadata.MetadataError: block 'both': members a (float32) and b (float64) differ in dtype...
        """
        where = "SoAMetadata.append_block"
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"{where}: argument 'name' must be a non-empty str naming the "
                                f"block, got {describe(name)}")
        for member in members:
            if not isinstance(member, str):
                raise ArgumentError(f"{where}: block {name!r}: members are given as str "
                                    f"arguments, got {describe(member)}; write "
                                    f"append_block(name, 'a', 'b'), or *members for a list")
        expect_flag(copy, "copy", where)
        if name in self.blocks:
            raise MetadataError(f"block {name!r} is already declared")
        if not members:
            raise MetadataError(f"block {name!r} names no members")
        layout = self.collection.layout
        known = [m.name for m in layout.members()]
        for member in members:
            if member not in known:
                close = difflib.get_close_matches(member, known, n=3)
                hint = f"; did you mean {', '.join(close)}?" if close else ""
                raise MetadataError(f"block {name!r}: layout {layout.__name__} has no member "
                                    f"{member!r}{hint}")
        twice = sorted({m for m in members if members.count(m) > 1})
        if twice:
            raise MetadataError(f"block {name!r} names member(s) {', '.join(twice)} more than "
                                f"once; name each member once")
        geometry = _geometry(name, self.collection, members, copy)
        self.blocks[name] = Block(name, tuple(members), geometry, copy)
        self.order.append(name)

    def change_order(self, names: Sequence[str]) -> None:
        """Reorder the blocks to the model's input (or output) order.

        Example::

            >>> import numpy as np, portable as pt, ml
            >>> L = pt.Layout.define("L", [("a", pt.column(np.float32)),
            ...                            ("b", pt.column(np.int32))])
            >>> meta = ml.SoAMetadata(pt.PortableCollection(L, 4, pt.get_device("cpu_serial")))
            >>> meta.append_block("a", "a"); meta.append_block("b", "b")
            >>> meta.change_order(["b", "a"])
            >>> meta.order
            ['b', 'a']
        """
        if isinstance(names, str) or not isinstance(names, (list, tuple)) or \
                not all(isinstance(n, str) for n in names):
            raise ArgumentError(f"SoAMetadata.change_order: argument 'names' must be a list "
                                f"of block names, got {describe(names)}; e.g. "
                                f"change_order({self.order[::-1]})")
        if sorted(names) != sorted(self.order):
            raise MetadataError(f"change_order needs every block exactly once: declared "
                                f"{self.order}, given {list(names)}")
        self.order = list(names)

    def tensor(self, name: str, start: int = 0, stop: int | None = None) -> Any:
        """Block ``name`` over rows ``start:stop`` as a torch tensor sharing the
        collection's memory (a copy only for blocks declared with ``copy=True``).

        Example::

            >>> import numpy as np, portable as pt, ml
            >>> L = pt.Layout.define("L", [("a", pt.column(np.float32))])
            >>> meta = ml.SoAMetadata(pt.PortableCollection(L, 4, pt.get_device("cpu_serial")))
            >>> meta.append_block("a", "a")
            >>> tuple(meta.tensor("a", 0, 3).shape)
            (3, 1)
            >>> meta.tensor("a", 0, 9)
            Traceback (most recent call last):
            ...
            portable.errors.ArgumentError: SoAMetadata.tensor: argument 'stop' must lie in start..size = 0..4, got 9
        """
        block = self._block(name)
        start, stop = check_rows("SoAMetadata.tensor", self.collection.size, start, stop)
        return block_tensor(self.collection, block.geometry, start, stop)

    def _block(self, name: str) -> Block:
        """Block ``name``, or an error that lists the declared ones."""
        if isinstance(name, str) and name in self.blocks:
            return self.blocks[name]
        close = difflib.get_close_matches(name, self.order, n=3) if isinstance(name, str) else []
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise MetadataError(f"no block {name!r}; {hint}declared: "
                            f"{', '.join(self.order) or 'none'}")

    def tensors(self, start: int = 0, stop: int | None = None) -> list[Any]:
        """Every block's tensor, in the current order.

        Example::

            >>> import numpy as np, portable as pt, ml
            >>> L = pt.Layout.define("L", [("a", pt.column(np.float32))])
            >>> meta = ml.SoAMetadata(pt.PortableCollection(L, 4, pt.get_device("cpu_serial")))
            >>> meta.append_block("a", "a")
            >>> [tuple(t.shape) for t in meta.tensors()]
            [(4, 1)]
        """
        start, stop = check_rows("SoAMetadata.tensors", self.collection.size, start, stop)
        return [self.tensor(name, start, stop) for name in self.order]

    def batches(self, batch_size: int) -> Iterator[tuple[int, int]]:
        """Row ranges ``(start, stop)`` of about ``batch_size`` rows whose starts
        keep every block's tensor aligned; the last one is shorter.

        Example::

            >>> import numpy as np, portable as pt, ml
            >>> L = pt.Layout.define("L", [("a", pt.column(np.float32))])
            >>> meta = ml.SoAMetadata(pt.PortableCollection(L, 100, pt.get_device("cpu_serial")))
            >>> meta.append_block("a", "a")
            >>> list(meta.batches(40))
            [(0, 64), (64, 100)]
        """
        return _batches("SoAMetadata.batches", self.collection.size, self.row_quantum(),
                        batch_size)

    def row_quantum(self) -> int:
        """Batches start on multiples of this many rows: the alignment in rows
        of the block with the largest items."""
        return max((row_quantum(self.collection, b.geometry) for b in self.blocks.values()),
                   default=1)


class ModelMetadata:
    """Pairs a model's input blocks with its output blocks.

    ``outputs`` receive the model's results in order (a single tensor, a
    tuple) or by block name (a dict).
    """

    def __init__(self, inputs: SoAMetadata, outputs: SoAMetadata) -> None:
        for arg, value in (("inputs", inputs), ("outputs", outputs)):
            if not isinstance(value, SoAMetadata):
                fix = (f"wrap it: ml.SoAMetadata({arg}) and declare its blocks"
                       if isinstance(value, PortableCollection) else
                       "make one with ml.SoAMetadata(collection) and declare its blocks")
                raise ArgumentError(f"ml.ModelMetadata: argument {arg!r} must be an "
                                    f"ml.SoAMetadata, got {describe(value)}; {fix}")
        self.inputs, self.outputs = inputs, outputs

    def batches(self, batch_size: int) -> Iterator[tuple[int, int]]:
        """Row ranges ``(start, stop)`` of about ``batch_size`` rows whose starts
        keep every input and output block aligned (blocks with different item
        sizes need different row multiples); the last one is shorter. Inputs and
        outputs must hold the same number of rows.

        Example::

            >>> import numpy as np, portable as pt, ml
            >>> L = pt.Layout.define("L", [("a", pt.column(np.float64)),
            ...                            ("s", pt.column(np.float16))])
            >>> c = pt.PortableCollection(L, 300, pt.get_device("cpu_serial"))
            >>> inputs, outputs = ml.SoAMetadata(c), ml.SoAMetadata(c)
            >>> inputs.append_block("a", "a"); outputs.append_block("s", "s")
            >>> meta = ml.ModelMetadata(inputs, outputs)
            >>> list(meta.batches(100))
            [(0, 128), (128, 256), (256, 300)]
            >>> # for start, stop in meta.batches(100): model(meta, start, stop)
        """
        quantum = max(self.inputs.row_quantum(), self.outputs.row_quantum())
        return _batches("ModelMetadata.batches", self.rows(), quantum, batch_size)

    def rows(self) -> int:
        """The number of rows of the inputs, which the outputs must hold too (rows
        pair one to one).

        Example::

            >>> import numpy as np, portable as pt, ml
            >>> L = pt.Layout.define("L", [("a", pt.column(np.float32))])
            >>> meta = ml.SoAMetadata(pt.PortableCollection(L, 5, pt.get_device("cpu_serial")))
            >>> ml.ModelMetadata(meta, meta).rows()
            5
        """
        rows = self.inputs.collection.size, self.outputs.collection.size
        if rows[0] != rows[1]:
            raise MetadataError(f"the inputs hold {rows[0]} rows and the outputs {rows[1]}; "
                                f"inputs and outputs pair rows one to one, so give both the "
                                f"same size")
        return rows[0]


def check_rows(where: str, size: int, start: Any, stop: Any) -> tuple[int, int]:
    """``(start, stop)`` as ints, ``stop`` defaulting to ``size``, if they are
    integers with ``0 <= start <= stop <= size``; else an :class:`ArgumentError`.

    Example::

        >>> check_rows("f", 10, 2.0, None)
        Traceback (most recent call last):
        ...
        portable.errors.ArgumentError: f: argument 'start' must be an integer >= 0, got the float 2.0
    """
    start = expect_count(start, "start", where)
    stop = size if stop is None else expect_count(stop, "stop", where)
    if start > size:
        raise ArgumentError(f"{where}: argument 'start' must lie in 0..size = 0..{size}, "
                            f"got {start}")
    if not start <= stop <= size:
        raise ArgumentError(f"{where}: argument 'stop' must lie in start..size = "
                            f"{start}..{size}, got {stop}")
    return start, stop


def _batches(where: str, size: int, quantum: int, batch_size: Any) -> Iterator[tuple[int, int]]:
    batch_size = expect_count(batch_size, "batch_size", where, least=1)
    step = align_up(batch_size, quantum)
    return iter([(start, min(start + step, size)) for start in range(0, size, step)])


def _geometry(name: str, collection: PortableCollection, members: Sequence[str],
              copy: bool) -> BlockGeometry:
    layout = collection.layout
    geometry = layout.geometry(collection.capacity)
    parts = [geometry[m] for m in members]
    first = parts[0]
    for other in parts[1:]:
        if other.dtype != first.dtype:
            raise MetadataError(
                f"block {name!r}: members {first.name} ({first.dtype}) and {other.name} "
                f"({other.dtype}) differ in dtype; a tensor has one dtype, so declare them "
                f"in separate blocks")
        if (other.kind, other.rows, other.cols) != (first.kind, first.rows, first.cols):
            raise MetadataError(f"block {name!r}: members {first.name} ({first.kind} "
                                f"{first.rows}x{first.cols}) and {other.name} ({other.kind} "
                                f"{other.rows}x{other.cols}) differ in kind or shape; declare "
                                f"them in separate blocks")
    if first.kind in ("matrix", "scalar") and len(parts) > 1:
        raise MetadataError(f"block {name!r}: a {first.kind} forms a tensor on its own; "
                            f"declare one block per {first.kind}")
    order = [m.name for m in layout.members()]
    index = [order.index(m) for m in members]
    adjacent = index == list(range(index[0], index[0] + len(index)))
    if not adjacent and not copy:
        raise MetadataError(
            f"block {name!r}: members {', '.join(members)} are not adjacent in layout "
            f"{layout.__name__} (its order: {', '.join(order)}); declare them next to each "
            f"other in that order, or pass copy=True to gather them into a copy")
    if not adjacent:
        warnings.warn(f"block {name!r} is not adjacent in {layout.__name__}: its tensor is a "
                      f"copy, and writes to it do not reach the collection", stacklevel=3)
    return BlockGeometry(kind=first.kind, dtype=first.dtype,
                         offsets=tuple(p.offset for p in parts), rows=first.rows,
                         cols=first.cols, pitch=first.pitch, contiguous=adjacent)
