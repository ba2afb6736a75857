"""PortableCollections: SoA data of a layout, in one buffer, on any device.

A collection holds ``size`` elements of a :class:`~portable.layout.Layout`
in one byte buffer laid out for ``capacity`` elements (CMSSW's byte rules: the
offsets follow the capacity), on a device of any backend. The whole
collection moves between host and device with one ``memcpy``.

Kernels take a whole collection as **one** argument, a view::

    @pt.kernel
    def fill(acc, hits, scale):
        for i in acc.uniform_elements(hits.size):
            hits.x[i] = scale * i                 # a column
            hits.momentum[i, 2] = 1.0             # vector: [element, row]
            hits.cov[i, 0, 1] = 0.5               # matrix: [element, row, col]
        if acc.once_per_grid():
            hits.event_id = 42                    # a scalar

    pt.launch(queue, workdiv, fill, collection.view(), 2.0)

The kernel is compiled for the members it uses: on the CPU backends it gets
the view's buffer, size and capacity and builds those members' arrays once per
block; on CUDA each used member arrives as an array parameter built on the host
from the buffer's address (no per-thread work), then the size and capacity.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .device import Device, get_device
from .errors import PortableError
from .layout import Layout, LayoutError, block_offsets
from .memory import alloc_buffer, alloc_host_buffer, memcpy, memset
from .queue import Queue


class View:
    """A read-write or read-only view of a collection, to pass to kernels.

    On the host, ``view.<member>`` gives the member's array (sharing memory
    with the collection) and ``view.size`` / ``view.capacity`` the counts.
    """

    __slots__ = ("collection", "readonly")

    def __init__(self, collection: PortableCollection, readonly: bool) -> None:
        self.collection, self.readonly = collection, readonly

    @property
    def layout(self) -> type[Layout]:
        return self.collection.layout

    @property
    def size(self) -> int:
        return self.collection.size

    @property
    def capacity(self) -> int:
        return self.collection.capacity

    def kernel_args(self) -> tuple[Any, int, int]:
        """The three arguments a kernel receives for this view. A read-only
        view's buffer is typed read-only, so writes through aliases of its
        columns fail to compile too."""
        buffer = self.collection.buffer
        if self.readonly:
            buffer = self.collection.device.backend.readonly(buffer)
        return buffer, self.collection.size, self.collection.capacity

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "collection":
            raise AttributeError(name)
        try:
            return self.collection.column(name)
        except LayoutError as err:
            raise AttributeError(str(err)) from None

    def __repr__(self) -> str:
        kind = "read-only" if self.readonly else "read-write"
        return f"<{kind} view of {self.collection!r}>"


class PortableCollection:
    """``size`` elements of ``layout`` in one buffer on ``device``.

    ``capacity`` (default ``size``) sets the buffer's geometry; ``zero``
    clears the buffer (on ``queue`` if given); ``pinned`` asks for page-locked
    host memory (host collections only); ``buffer`` adopts an existing
    contiguous buffer of at least ``layout.byte_size(capacity)`` bytes.

    Example::

        >>> import numpy as np, portable as pt
        >>> from portable.layout import Layout, column, scalar
        >>> class Hits(Layout):
        ...     x = column(np.float32)
        ...     event = scalar(np.int64)
        >>> hits = pt.PortableCollection(Hits, 3, pt.get_device("cpu_serial"), zero=True)
        >>> hits.column("x")[:] = [1.0, 2.0, 3.0]
        >>> hits.nbytes, hits.column("x").tolist(), int(hits.column("event"))
        (256, [1.0, 2.0, 3.0], 0)
    """

    def __init__(self, layout: type[Layout], size: int, device: Device | None = None, *,
                 capacity: int | None = None, zero: bool = False, queue: Queue | None = None,
                 pinned: bool = False, buffer: Any = None) -> None:
        if not (isinstance(layout, type) and issubclass(layout, Layout)):
            raise LayoutError(f"{layout!r} is not a layout; declare one by subclassing "
                              f"portable.layout.Layout")
        self.layout = layout
        self.size = _count(size, "size")
        self.capacity = self.size if capacity is None else _count(capacity, "capacity")
        if self.capacity < self.size:
            raise LayoutError(f"capacity {self.capacity} is smaller than size {self.size}")
        self.device = queue.device if device is None and queue is not None else (
            get_device() if device is None else device)
        self.nbytes = layout.byte_size(self.capacity)
        self.buffer = (self._adopt(buffer) if buffer is not None else
                       _new_buffer(self.device, self.nbytes, layout.alignment, pinned))
        if zero:
            q = queue if queue is not None else Queue(self.device)
            memset(q, self.buffer, 0)

    def _adopt(self, buffer: Any) -> Any:
        backend = self.device.backend
        native = backend.as_array(buffer)
        if native is None:
            raise PortableError(f"the buffer ({type(buffer).__name__}) does not live on "
                                f"{self.device}")
        if native.ndim != 1 or np.dtype(native.dtype) != np.uint8:
            raise PortableError(f"the buffer must be a 1-D uint8 array, got "
                                f"{np.dtype(native.dtype)} of shape {tuple(native.shape)}")
        flags = native.flags  # NumPy's flags object, or a dict for device arrays
        writeable = flags["WRITEABLE"] if isinstance(native, np.ndarray) else True
        if not flags["C_CONTIGUOUS"] or not writeable:
            raise PortableError("the buffer must be contiguous and writeable")
        if native.shape[0] < self.nbytes:
            raise PortableError(f"the buffer has {native.shape[0]} bytes but "
                                f"{self.layout.__name__} needs {self.nbytes} for capacity "
                                f"{self.capacity}")
        return native[:self.nbytes]

    # -- views and columns ------------------------------------------------------------
    def view(self) -> View:
        """A read-write view, to pass to kernels as one argument."""
        return View(self, readonly=False)

    def const_view(self) -> View:
        """A read-only view: kernels that write through it fail to compile."""
        return View(self, readonly=True)

    def column(self, name: str) -> Any:
        """Member ``name`` as an array sharing the collection's memory.

        Columns have shape ``(size,)``, vectors ``(size, R)``, matrices
        ``(size, R, C)``; a scalar is a 0-d array on the host, a 1-element
        array on a GPU. Host arrays are NumPy arrays; GPU arrays expose
        ``__cuda_array_interface__``.
        """
        g = self.layout._geometry_of(name, self.capacity)
        if g.kind == "scalar":
            shape, strides = ((), ()) if not self.device.backend.is_gpu else ((1,), (g.itemsize,))
        else:
            shape = (self.size, g.rows, g.cols)[:{"column": 1, "vector": 2, "matrix": 3}[g.kind]]
            strides = (g.itemsize, g.pitch_bytes, g.rows * g.pitch_bytes)[:len(shape)]
        return self.device.backend.strided_view(self.buffer, g.offset, shape, strides, g.dtype)

    def dlpack(self, name: str) -> Any:
        """Member ``name`` as an object exporting DLPack (``__dlpack__``), sharing
        memory: ``torch.from_dlpack(collection.dlpack("x"))`` is a zero-copy
        tensor on the collection's device."""
        return self.device.backend.dlpack_export(self.column(name))

    def table(self) -> str:
        """The layout's table of offsets and sizes for this collection's capacity."""
        return self.layout.table(self.capacity)

    # -- copies -----------------------------------------------------------------------
    def _check_same(self, other: PortableCollection) -> None:
        if not isinstance(other, PortableCollection):
            raise PortableError(f"cannot copy a collection to or from a "
                                f"{type(other).__name__}")
        if other.layout is not self.layout:
            raise LayoutError(f"cannot copy between layouts {other.layout.__name__} and "
                              f"{self.layout.__name__}")
        if (other.size, other.capacity) != (self.size, self.capacity):
            raise LayoutError(f"cannot copy a collection of size {other.size} (capacity "
                              f"{other.capacity}) into one of size {self.size} (capacity "
                              f"{self.capacity}); sizes and capacities must match")

    def copy_from(self, queue: Queue, source: PortableCollection) -> None:
        """Copy ``source`` (same layout, size and capacity) into this collection
        with one ``memcpy`` ordered on ``queue``."""
        self._check_same(source)
        memcpy(queue, self.buffer, source.buffer)

    def to(self, queue: Queue, device: Device | None = None) -> PortableCollection:
        """A copy on ``device`` (default: the queue's), made with one ``memcpy``
        on ``queue``; non-blocking on a non-blocking GPU queue.

        Example::

            >>> import numpy as np, portable as pt
            >>> from portable.layout import Layout, column
            >>> L = Layout.define("L", [("a", column(np.int32))])
            >>> host = pt.PortableCollection(L, 2, pt.get_device("cpu_serial"), zero=True)
            >>> q = pt.Queue(pt.get_device("cpu_threads"))
            >>> host.to(q).column("a").tolist()
            [0, 0]
        """
        target = PortableCollection(self.layout, self.size, device or queue.device,
                                    capacity=self.capacity)
        target.copy_from(queue, self)
        return target

    # -- files ------------------------------------------------------------------------
    def save(self, path: str | Path) -> None:
        """Write a host collection to ``path`` (NumPy ``.npz``, the suffix added if
        missing: the bytes and the layout's members)."""
        if self.device.backend.is_gpu:
            raise PortableError("save() writes host collections; copy it to the host "
                                "first with collection.to(queue, pt.get_device('cpu_serial'))")
        meta = {"layout": self.layout.__name__, "size": self.size, "capacity": self.capacity,
                "alignment": self.layout.alignment, "members": _describe(self.layout)}
        np.savez(_npz(path), buffer=np.asarray(self.buffer), meta=json.dumps(meta))

    @classmethod
    def load(cls, path: str | Path, layout: type[Layout]) -> PortableCollection:
        """Read a collection saved by :meth:`save` into host memory; ``layout``
        must match the file's. Move it to a GPU with :meth:`to`."""
        with np.load(_npz(path)) as data:
            meta, raw = json.loads(str(data["meta"])), data["buffer"]
        if meta["members"] != _describe(layout) or meta["alignment"] != layout.alignment:
            raise LayoutError(f"{path} holds layout {meta['layout']} "
                              f"({meta['members']}, alignment {meta['alignment']}), which "
                              f"differs from {layout.__name__}")
        host = cls(layout, meta["size"], get_device("cpu_serial"), capacity=meta["capacity"])
        np.copyto(host.buffer, raw)
        return host

    def __repr__(self) -> str:
        return (f"<PortableCollection {self.layout.__name__} size={self.size} "
                f"capacity={self.capacity} on {self.device}>")


class MultiCollection:
    """Several layouts, each with its own size, in one buffer (CMSSW's SoA blocks).

    Example::

        >>> import numpy as np, portable as pt
        >>> from portable.layout import Layout, column
        >>> Hits = Layout.define("Hits", [("x", column(np.float32))])
        >>> Tracks = Layout.define("Tracks", [("pt", column(np.float64))])
        >>> both = pt.MultiCollection([(Hits, 100), (Tracks, 7)], pt.get_device("cpu_serial"))
        >>> both.nbytes, both[1].size, both[1].layout.__name__
        (640, 7, 'Tracks')
    """

    def __init__(self, blocks: Iterable[tuple[type[Layout], int]],
                 device: Device | None = None, *, zero: bool = False,
                 queue: Queue | None = None) -> None:
        pairs = list(blocks)
        placed = block_offsets(pairs)
        self.device = get_device() if device is None else device
        self.nbytes = placed.total
        self.buffer = _new_buffer(self.device, self.nbytes,
                                  max((layout.alignment for layout, _ in pairs), default=1))
        if zero:
            memset(queue if queue is not None else Queue(self.device), self.buffer, 0)
        self.blocks = [
            PortableCollection(layout, size, self.device,
                               buffer=self.buffer[start:start + layout.byte_size(size)])
            for (layout, size), start in zip(pairs, placed.offsets)]

    def __getitem__(self, index: int) -> PortableCollection:
        return self.blocks[index]

    def __len__(self) -> int:
        return len(self.blocks)


def _new_buffer(device: Device, nbytes: int, alignment: int, pinned: bool = False) -> Any:
    """A collection's own bytes: device memory on a GPU (256-byte aligned), else host
    memory whose first byte sits on ``alignment``."""
    if not device.backend.is_gpu:
        return _aligned_host(nbytes, alignment, pinned)
    if pinned:
        raise PortableError("pinned=True is for host collections; a GPU collection lives in "
                            "device memory")
    return alloc_buffer(device, nbytes, np.uint8)


def _aligned_host(nbytes: int, alignment: int, pinned: bool) -> np.ndarray:
    """Host bytes whose first byte sits on ``alignment``, as CMSSW's buffers do."""
    raw = alloc_host_buffer(nbytes + alignment, np.uint8, pinned=pinned)
    start = -raw.ctypes.data % alignment
    return raw[start:start + nbytes]


def _npz(path: str | Path) -> Path:
    path = Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise LayoutError(f"{what} must be a non-negative integer, got {value!r}")
    return int(value)


def _describe(layout: type[Layout]) -> list[list[Any]]:
    return [[m.name, m.kind, m.dtype.str, m.rows, m.cols] for m in layout.members()]

