"""Zero-copy torch tensors over a collection's buffer.

The buffer is wrapped once per collection and dtype as a flat torch tensor
(``torch.from_numpy`` on the host, ``__cuda_array_interface__`` on a GPU); a
block's tensor is then one ``as_strided`` call over it, so making one costs a
few microseconds whatever the number of rows.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass
from typing import Any

import numpy as np

from portable.collection import PortableCollection
from portable.errors import ArgumentError, PortableError

_bases: weakref.WeakKeyDictionary[PortableCollection, dict[np.dtype, Any]] = \
    weakref.WeakKeyDictionary()


@dataclass(frozen=True)
class BlockGeometry:
    """Where a block's members lie: ``offsets`` in bytes, ``pitch`` in elements."""

    kind: str
    dtype: np.dtype
    offsets: tuple[int, ...]
    rows: int
    cols: int
    pitch: int
    contiguous: bool

    @property
    def count(self) -> int:
        """How many members the block holds."""
        return len(self.offsets)

    @property
    def itemsize(self) -> int:
        return self.dtype.itemsize


def torch_device(collection: PortableCollection) -> Any:
    """The torch device of ``collection``'s memory; an error if torch cannot reach it."""
    import torch
    device = collection.device
    kind = device.backend.torch_device_type
    if device.backend.host_memory:
        return torch.device("cpu")
    if device.backend.simulated:
        raise PortableError(f"the collection lives on {device} in {device.backend.name}'s "
                            f"simulator, whose memory torch cannot reach; run ml on a CPU "
                            f"backend or on a real GPU")
    if kind is None or not getattr(torch, kind).is_available():
        raise PortableError(f"the collection lives on {device}, but this torch "
                            f"({torch.__version__}) cannot use that GPU; install a torch "
                            f"build for it, or copy the collection to the host with "
                            f"collection.to(queue, pt.get_device('cpu_serial'))")
    return torch.device(kind, device.index)


def row_quantum(collection: PortableCollection, g: BlockGeometry) -> int:
    """Tensors of block ``g`` start on multiples of this many rows: the layout's
    alignment in items of the block's dtype."""
    return collection.layout.alignment // g.itemsize


def flat_tensor(collection: PortableCollection, dtype: np.dtype) -> Any:
    """The whole buffer as a 1-D tensor of ``dtype``, sharing memory (cached)."""
    per_dtype = _bases.get(collection)
    if per_dtype is None:
        per_dtype = _bases[collection] = {}
    found = per_dtype.get(dtype)
    if found is None:
        import torch
        if not collection.device.backend.host_memory:
            raw = torch.as_tensor(collection.buffer, device=torch_device(collection))
        else:
            raw = torch.from_numpy(collection.buffer)
        found = per_dtype[dtype] = raw.view(_torch_dtype(dtype))
    return found


def block_tensor(collection: PortableCollection, g: BlockGeometry, start: int,
                 stop: int) -> Any:
    """Rows ``start:stop`` (checked by the caller to lie in the collection) of
    block ``g`` as a tensor (see the table in metadata.py)."""
    import torch
    quantum = row_quantum(collection, g)
    if start % quantum:
        raise ArgumentError(
            f"argument 'start': rows start at {start}, but tensors over "
            f"{collection.layout.__name__} must start "
            f"on a multiple of {quantum} rows (alignment {collection.layout.alignment} B / "
            f"{g.itemsize} B items); take batches from SoAMetadata.batches()")
    base = flat_tensor(collection, g.dtype)
    rows, first = stop - start, g.offsets[0] // g.itemsize + start
    if g.kind == "scalar":
        return torch.as_strided(base, (rows, 1), (0, 1), g.offsets[0] // g.itemsize)
    if not g.contiguous:  # asked for with copy=True: gather the columns
        columns = [torch.as_strided(base, (rows,), (1,), off // g.itemsize + start)
                   for off in g.offsets]
        return torch.stack(columns, dim=1)
    if g.kind == "column":
        return torch.as_strided(base, (rows, g.count), (1, g.pitch), first)
    if g.kind == "vector":
        return torch.as_strided(base, (rows, g.count, g.rows), (1, g.rows * g.pitch, g.pitch),
                                first)
    return torch.as_strided(base, (rows, g.rows, g.cols), (1, g.pitch, g.rows * g.pitch), first)


def _torch_dtype(dtype: np.dtype) -> Any:
    import torch
    return torch.from_numpy(np.empty(0, dtype)).dtype
