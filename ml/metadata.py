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

import numpy as np

from portable.collection import PortableCollection
from portable.errors import PortableError
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
            raise MetadataError(f"SoAMetadata describes a PortableCollection, got "
                                f"{type(collection).__name__}")
        self.collection = collection
        self.blocks: dict[str, Block] = {}
        self.order: list[str] = []

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
        geometry = _geometry(name, self.collection, members, copy)
        self.blocks[name] = Block(name, tuple(members), geometry, copy)
        self.order.append(name)

    def change_order(self, names: Sequence[str]) -> None:
        """Reorder the blocks to the model's input (or output) order."""
        if sorted(names) != sorted(self.order):
            raise MetadataError(f"change_order needs every block exactly once: declared "
                                f"{self.order}, given {list(names)}")
        self.order = list(names)

    def tensor(self, name: str, start: int = 0, stop: int | None = None) -> Any:
        """Block ``name`` over rows ``start:stop`` as a torch tensor sharing the
        collection's memory (a copy only for blocks declared with ``copy=True``)."""
        block = self.blocks.get(name)
        if block is None:
            raise MetadataError(f"no block {name!r}; declared: {', '.join(self.order)}")
        stop = self.collection.size if stop is None else stop
        return block_tensor(self.collection, block.geometry, start, stop)

    def tensors(self, start: int = 0, stop: int | None = None) -> list[Any]:
        """Every block's tensor, in the current order."""
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
        return _batches(self.collection.size, self.row_quantum(), batch_size)

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
        rows = self.inputs.collection.size, self.outputs.collection.size
        if rows[0] != rows[1]:
            raise MetadataError(f"the inputs hold {rows[0]} rows and the outputs {rows[1]}; "
                                f"batches pair rows one to one, so give both the same size")
        quantum = max(self.inputs.row_quantum(), self.outputs.row_quantum())
        return _batches(rows[0], quantum, batch_size)


def _batches(size: int, quantum: int, batch_size: int) -> Iterator[tuple[int, int]]:
    if batch_size < 1:
        raise MetadataError(f"batch_size must be a positive number of rows, not {batch_size}")
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
