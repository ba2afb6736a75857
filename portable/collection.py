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

Every argument is checked before any memory is allocated, written or read:
a wrong kind of argument is an :class:`~portable.errors.ArgumentError` that names it
and says how to get the right one. A collection's ``layout``, ``size``,
``capacity``, ``device``, ``buffer`` and ``nbytes`` cannot be assigned; the size
changes only through :meth:`PortableCollection.resize`, which keeps it within the
capacity, and views read it at each launch.
"""
from __future__ import annotations

import difflib
import json
import os
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .checks import describe, expect_count, expect_device, expect_flag, expect_queue
from .device import Device, get_device
from .errors import ArgumentError, PortableError
from .layout import Layout, LayoutError, block_offsets
from .memory import address_of, aligned_bytes, alloc_buffer, alloc_host_buffer, memcpy, memset
from .queue import Queue

__all__ = ["CollectionAttributeError", "CollectionFileError", "CollectionFileMissing",
           "MultiCollection", "PortableCollection", "View"]


class CollectionAttributeError(PortableError, AttributeError):
    """An attribute of a collection or view that does not exist (the message suggests
    near names), or one that cannot be assigned (the message says what to do instead)."""


class CollectionFileError(PortableError, ValueError):
    """A file that :meth:`PortableCollection.load` cannot read as a collection of the
    layout asked for, or a path :meth:`PortableCollection.save` cannot write."""


class CollectionFileMissing(CollectionFileError, FileNotFoundError):
    """The file to load, or the folder to save into, does not exist."""


class View:
    """A read-write or read-only view of a collection, to pass to kernels.

    On the host, ``view.<member>`` gives the member's array (sharing memory
    with the collection) and ``view.size`` / ``view.capacity`` the counts, read
    from the collection each time. A read-only view's host arrays are
    non-writeable NumPy arrays; on a GPU they are the device arrays themselves,
    which cannot be marked read-only (kernels still cannot write through the
    view: it fails to compile). Nothing of a view can be assigned.

    Example::

        >>> import numpy as np, portable as pt
        >>> L = pt.Layout.define("L", [("x", pt.column(np.float32))])
        >>> c = pt.PortableCollection(L, 2, pt.get_device("cpu_serial"), zero=True)
        >>> c.view().x[0] = 1.5
        >>> const = c.const_view()
        >>> const.x.tolist(), const.x.flags.writeable, const.size
        ([1.5, 0.0], False, 2)
    """

    __slots__ = ("_collection", "_readonly")
    _OWN = ("size", "capacity", "layout", "readonly", "collection", "kernel_args")

    def __init__(self, collection: PortableCollection, readonly: bool) -> None:
        if not isinstance(collection, PortableCollection):
            raise ArgumentError(f"pt.View: argument 'collection' must be a PortableCollection, "
                                f"got {describe(collection)}; use collection.view() or "
                                f"collection.const_view()")
        object.__setattr__(self, "_collection", collection)
        object.__setattr__(self, "_readonly", expect_flag(readonly, "readonly", "pt.View"))

    @property
    def collection(self) -> PortableCollection:
        """The collection this view shows."""
        return self._collection

    @property
    def readonly(self) -> bool:
        """Whether kernels may only read through this view."""
        return self._readonly

    @property
    def layout(self) -> type[Layout]:
        """The collection's layout."""
        return self._collection.layout

    @property
    def size(self) -> int:
        """The collection's current number of elements."""
        return self._collection.size

    @property
    def capacity(self) -> int:
        """The number of elements the collection's buffer is laid out for."""
        return self._collection.capacity

    def kernel_args(self) -> tuple[Any, int, int]:
        """The three arguments a kernel receives for this view. A read-only
        view's buffer is typed read-only, so writes through aliases of its
        columns fail to compile too."""
        collection = self._collection
        buffer = collection.buffer
        if self._readonly:
            buffer = collection.device.backend.readonly(buffer)
        return buffer, collection.size, collection.capacity

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        collection = self._collection
        try:
            collection.layout.member(name)
        except LayoutError as err:
            near = difflib.get_close_matches(name, self._OWN, n=1)
            hint = f"; or did you mean the view's {near[0]!r}?" if near else ""
            raise CollectionAttributeError(f"{err}{hint}") from None
        array = collection.column(name)
        if self._readonly and isinstance(array, np.ndarray):
            array = array.view()
            array.flags.writeable = False
        return array

    def __setattr__(self, name: str, value: Any) -> None:
        if name in self.layout._by_name:
            raise CollectionAttributeError(
                f"view.{name} cannot be assigned; write its elements instead: "
                f"view.{name}[...] = values")
        fix = ("resize the collection with collection.resize(n)" if name == "size" else
               "make another view with collection.view() or collection.const_view()")
        raise CollectionAttributeError(f"view.{name} cannot be assigned: a view's attributes "
                                       f"are read-only; {fix}")

    def __delattr__(self, name: str) -> None:
        raise CollectionAttributeError(f"view.{name} cannot be deleted: a view's attributes "
                                       f"are read-only")

    def __reduce__(self) -> tuple[Any, ...]:
        return (View, (self._collection, self._readonly))

    def __repr__(self) -> str:
        kind = "read-only" if self._readonly else "read-write"
        return f"<{kind} view of {self._collection!r}>"


class PortableCollection:
    """``size`` elements of ``layout`` in one buffer on ``device``.

    ``capacity`` (default ``size``) sets the buffer's geometry; ``zero``
    clears the buffer (on ``queue`` if given, which must run on ``device``;
    ``device`` defaults to the queue's); ``pinned`` asks for page-locked host
    memory (host collections only); ``buffer`` adopts an existing contiguous,
    writeable 1-D ``uint8`` buffer on ``device`` of at least
    ``layout.byte_size(capacity)`` bytes whose first byte sits on the layout's
    alignment. The attributes are read-only; :meth:`resize` changes the size.

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

    _READ_ONLY = frozenset({"layout", "size", "capacity", "device", "buffer", "nbytes"})
    _layout: type[Layout]
    _size: int
    _capacity: int
    _device: Device
    _nbytes: int
    _buffer: Any

    def __init__(self, layout: type[Layout], size: int, device: Device | None = None, *,
                 capacity: int | None = None, zero: bool = False, queue: Queue | None = None,
                 pinned: bool = False, buffer: Any = None) -> None:
        where = "pt.PortableCollection"
        layout = _expect_layout(layout, "layout", where)
        size = expect_count(size, "size", where)
        capacity = size if capacity is None else expect_count(capacity, "capacity", where)
        if capacity < size:
            raise ArgumentError(f"{where}: argument 'capacity' ({capacity}) is smaller than "
                                f"'size' ({size}); give a capacity >= size, or leave it out "
                                f"(it defaults to the size)")
        zero, pinned = expect_flag(zero, "zero", where), expect_flag(pinned, "pinned", where)
        device, queue = _home(device, queue, where)
        nbytes = layout.byte_size(capacity)
        if buffer is None:
            own = _new_buffer(device, nbytes, layout.alignment, pinned, where)
        elif pinned:
            raise ArgumentError(f"{where}: argument 'pinned' asks for new page-locked memory, "
                                f"but 'buffer' is given; pin the buffer when allocating it, or "
                                f"leave pinned out")
        else:
            own = _adopt(buffer, device, layout, capacity, nbytes, where)
        for name, value in (("_layout", layout), ("_size", size), ("_capacity", capacity),
                            ("_device", device), ("_nbytes", nbytes), ("_buffer", own)):
            object.__setattr__(self, name, value)
        if zero:
            memset(queue if queue is not None else Queue(device), own, 0)

    @property
    def layout(self) -> type[Layout]:
        """The layout of the elements."""
        return self._layout

    @property
    def size(self) -> int:
        """The number of elements: views and kernels see this many; see :meth:`resize`."""
        return self._size

    @property
    def capacity(self) -> int:
        """The number of elements the buffer is laid out for (its offsets follow it)."""
        return self._capacity

    @property
    def device(self) -> Device:
        """The device whose memory holds the buffer."""
        return self._device

    @property
    def buffer(self) -> Any:
        """The collection's bytes: a 1-D ``uint8`` array of :attr:`nbytes` on :attr:`device`."""
        return self._buffer

    @property
    def nbytes(self) -> int:
        """The buffer's size in bytes: ``layout.byte_size(capacity)``."""
        return self._nbytes

    def resize(self, n: int) -> None:
        """Make the collection ``n`` elements long, ``0 <= n <= capacity``; the bytes
        and offsets stay as they are, views see the new size.

        Example::

            >>> import numpy as np, portable as pt
            >>> L = pt.Layout.define("L", [("x", pt.column(np.float32))])
            >>> c = pt.PortableCollection(L, 2, pt.get_device("cpu_serial"), capacity=8)
            >>> c.resize(5); c.size, c.view().size, c.column("x").shape
            (5, 5, (5,))
        """
        if isinstance(n, (bool, np.bool_)) or not isinstance(n, (int, np.integer)) \
                or not 0 <= n <= self._capacity:
            raise ArgumentError(
                f"PortableCollection.resize: argument 'n' must be an integer from 0 to the "
                f"capacity {self._capacity}, got {describe(n)}; to hold more elements, make "
                f"a collection with a larger capacity")
        object.__setattr__(self, "_size", int(n))

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "size":
            raise CollectionAttributeError(
                f"collection.size cannot be assigned ({describe(value)}); use "
                f"collection.resize(n) "
                f"with 0 <= n <= capacity {self._capacity}")
        if name in self._READ_ONLY:
            raise CollectionAttributeError(
                f"collection.{name} cannot be assigned: it is fixed when the collection is "
                f"made; make another collection")
        object.__setattr__(self, name, value)

    # -- views and columns ------------------------------------------------------------
    def view(self) -> View:
        """A read-write view, to pass to kernels as one argument."""
        return View(self, readonly=False)

    def const_view(self) -> View:
        """A read-only view: kernels that write through it fail to compile, and its
        host arrays are non-writeable."""
        return View(self, readonly=True)

    def column(self, name: str) -> Any:
        """Member ``name`` as an array sharing the collection's memory.

        Columns have shape ``(size,)``, vectors ``(size, R)``, matrices
        ``(size, R, C)``; a scalar is a 0-d array on the host, a 1-element
        array on a GPU. Host arrays are NumPy arrays; GPU arrays expose
        ``__cuda_array_interface__``.

        Example::

            >>> import numpy as np, portable as pt
            >>> L = pt.Layout.define("L", [("p", pt.vector(np.int16, 2))])
            >>> pt.PortableCollection(L, 3, pt.get_device("cpu_serial")).column("p").shape
            (3, 2)
        """
        g = self._layout._geometry_of(name, self._capacity)
        backend = self._device.backend
        shape: tuple[int, ...]
        strides: tuple[int, ...]
        if g.kind == "scalar":
            shape, strides = ((), ()) if backend.host_memory else ((1,), (g.itemsize,))
        else:
            shape = (self._size, g.rows, g.cols)[:{"column": 1, "vector": 2,
                                                   "matrix": 3}[g.kind]]
            strides = (g.itemsize, g.pitch_bytes, g.rows * g.pitch_bytes)[:len(shape)]
        return backend.strided_view(self._buffer, g.offset, shape, strides, g.dtype)

    def dlpack(self, name: str) -> Any:
        """Member ``name`` as an object exporting DLPack (``__dlpack__``), sharing
        memory: ``torch.from_dlpack(collection.dlpack("x"))`` is a zero-copy
        tensor on the collection's device."""
        return self._device.backend.dlpack_export(self.column(name))

    def table(self) -> str:
        """The layout's table of offsets and sizes for this collection's capacity."""
        return self._layout.table(self._capacity)

    # -- copies -----------------------------------------------------------------------
    def _check_same(self, other: PortableCollection) -> None:
        if other.layout is not self._layout:
            raise LayoutError(f"cannot copy between layouts {other.layout.__name__} and "
                              f"{self._layout.__name__}")
        if (other.size, other.capacity) != (self._size, self._capacity):
            raise LayoutError(f"cannot copy a collection of size {other.size} (capacity "
                              f"{other.capacity}) into one of size {self._size} (capacity "
                              f"{self._capacity}); sizes and capacities must match")

    def copy_from(self, queue: Queue, source: PortableCollection) -> None:
        """Copy ``source`` (same layout, size and capacity) into this collection
        with one ``memcpy`` ordered on ``queue``.

        Example::

            >>> import numpy as np, portable as pt
            >>> L = pt.Layout.define("L", [("a", pt.column(np.int32))])
            >>> host = pt.get_device("cpu_serial")
            >>> src = pt.PortableCollection(L, 2, host); src.column("a")[:] = [4, 5]
            >>> dst = pt.PortableCollection(L, 2, host)
            >>> dst.copy_from(pt.Queue(host), src); dst.column("a").tolist()
            [4, 5]
        """
        where = "PortableCollection.copy_from"
        queue = expect_queue(queue, "queue", where)
        if not isinstance(source, PortableCollection):
            raise ArgumentError(f"{where}: argument 'source' must be a PortableCollection, got "
                                f"{describe(source)}; to copy raw bytes use "
                                f"pt.memcpy(queue, collection.buffer, array)")
        self._check_same(source)
        memcpy(queue, self._buffer, source.buffer)

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
        where = "PortableCollection.to"
        queue = expect_queue(queue, "queue", where)
        device = queue.device if device is None else expect_device(device, "device", where)
        target = PortableCollection(self._layout, self._size, device, capacity=self._capacity)
        target.copy_from(queue, self)
        return target

    # -- files ------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a host collection to ``path`` (NumPy ``.npz``, the suffix added if
        missing: the bytes and the layout's members) in an existing folder.

        Example::

            >>> import numpy as np, portable as pt, tempfile, pathlib
            >>> L = pt.Layout.define("L", [("a", pt.column(np.int32))])
            >>> c = pt.PortableCollection(L, 2, pt.get_device("cpu_serial"), zero=True)
            >>> folder = pathlib.Path(tempfile.mkdtemp())
            >>> c.save(folder / "hits"); sorted(p.name for p in folder.iterdir())
            ['hits.npz']
        """
        where = "PortableCollection.save"
        file = _npz(_expect_path(path, where))
        if not self._device.backend.host_memory:
            raise PortableError("save() writes host collections; copy it to the host "
                                "first with collection.to(queue, pt.get_device('cpu_serial'))")
        if not file.parent.is_dir():
            raise CollectionFileMissing(f"{where}: cannot write {file}: the folder "
                                        f"{file.parent} does not exist; create it first "
                                        f"(Path(folder).mkdir(parents=True))")
        if file.is_dir():
            raise CollectionFileError(f"{where}: cannot write {file}: it is a folder; give a "
                                      f"file name")
        meta = {"layout": self._layout.__name__, "size": self._size,
                "capacity": self._capacity, "alignment": self._layout.alignment,
                "members": _describe(self._layout)}
        try:
            np.savez(file, buffer=np.asarray(self._buffer), meta=json.dumps(meta))
        except OSError as err:
            raise CollectionFileError(f"{where}: cannot write {file}: "
                                      f"{err.strerror or err}") from None

    @classmethod
    def load(cls, path: str | os.PathLike[str], layout: type[Layout]) -> PortableCollection:
        """Read a collection saved by :meth:`save` into host memory; ``layout``
        must match the file's. Move it to a GPU with :meth:`to`. The file is
        checked before anything is allocated, and never unpickled.

        Example::

            >>> import numpy as np, portable as pt, tempfile, pathlib
            >>> L = pt.Layout.define("L", [("a", pt.column(np.int32))])
            >>> c = pt.PortableCollection(L, 2, pt.get_device("cpu_serial"), zero=True)
            >>> c.column("a")[:] = [7, 8]
            >>> path = pathlib.Path(tempfile.mkdtemp()) / "c.npz"
            >>> c.save(path); pt.PortableCollection.load(path, L).column("a").tolist()
            [7, 8]
        """
        where = "PortableCollection.load"
        layout = _expect_layout(layout, "layout", where)
        given = _expect_path(path, where)
        file = given if given.is_file() else _npz(given)
        if not file.is_file():
            also = f" nor {file}" if file != given else ""
            raise CollectionFileMissing(f"{where}: there is no file {given}{also}; write one "
                                        f"with collection.save(path)")
        meta, raw = _read_collection_file(file, where)
        if meta["members"] != _describe(layout) or meta["alignment"] != layout.alignment:
            raise LayoutError(f"{where}: {file} holds layout {meta['layout']} "
                              f"({meta['members']}, alignment {meta['alignment']}), which "
                              f"differs from {layout.__name__}; load it with the layout it "
                              f"was saved with")
        need = layout.byte_size(meta["capacity"])
        if raw.dtype != np.uint8 or raw.ndim != 1 or raw.size != need:
            raise CollectionFileError(
                f"{where}: {file} is damaged: its buffer is {raw.dtype} of shape {raw.shape}, "
                f"but {layout.__name__} with capacity {meta['capacity']} takes {need} bytes "
                f"(uint8 of shape ({need},))")
        host = cls(layout, meta["size"], get_device("cpu_serial"), capacity=meta["capacity"])
        np.copyto(host.buffer, raw)
        return host

    def __repr__(self) -> str:
        return (f"<PortableCollection {self._layout.__name__} size={self._size} "
                f"capacity={self._capacity} on {self._device}>")


class MultiCollection:
    """Several layouts, each with its own size, in one buffer (CMSSW's SoA blocks).

    ``blocks`` is a non-empty sequence of ``(layout, size)`` pairs; each block is
    a :class:`PortableCollection` sharing the one buffer. The attributes are
    read-only.

    Example::

        >>> import numpy as np, portable as pt
        >>> from portable.layout import Layout, column
        >>> Hits = Layout.define("Hits", [("x", column(np.float32))])
        >>> Tracks = Layout.define("Tracks", [("pt", column(np.float64))])
        >>> both = pt.MultiCollection([(Hits, 100), (Tracks, 7)], pt.get_device("cpu_serial"))
        >>> both.nbytes, both[1].size, both[1].layout.__name__
        (640, 7, 'Tracks')
    """

    _device: Device
    _nbytes: int
    _buffer: Any
    _blocks: tuple[PortableCollection, ...]

    def __init__(self, blocks: Iterable[tuple[type[Layout], int]],
                 device: Device | None = None, *, zero: bool = False,
                 queue: Queue | None = None) -> None:
        where = "pt.MultiCollection"
        pairs = _expect_blocks(blocks, where)
        zero = expect_flag(zero, "zero", where)
        device, queue = _home(device, queue, where)
        placed = block_offsets(pairs)
        alignment = max(layout.alignment for layout, _ in pairs)
        buffer = _new_buffer(device, placed.total, alignment, False, where)
        object.__setattr__(self, "_device", device)
        object.__setattr__(self, "_nbytes", placed.total)
        object.__setattr__(self, "_buffer", buffer)
        if zero:
            memset(queue if queue is not None else Queue(device), buffer, 0)
        object.__setattr__(self, "_blocks", tuple(
            PortableCollection(layout, size, device,
                               buffer=buffer[start:start + layout.byte_size(size)])
            for (layout, size), start in zip(pairs, placed.offsets)))

    @property
    def device(self) -> Device:
        """The device whose memory holds the buffer."""
        return self._device

    @property
    def nbytes(self) -> int:
        """The buffer's size in bytes."""
        return self._nbytes

    @property
    def buffer(self) -> Any:
        """The one buffer all blocks share."""
        return self._buffer

    @property
    def blocks(self) -> tuple[PortableCollection, ...]:
        """The blocks, in the order given."""
        return self._blocks

    def __getitem__(self, index: int) -> PortableCollection:
        return self._blocks[index]

    def __len__(self) -> int:
        return len(self._blocks)

    def __setattr__(self, name: str, value: Any) -> None:
        raise CollectionAttributeError(f"multi_collection.{name} cannot be assigned: a "
                                       f"MultiCollection is fixed when it is made")


def _expect_layout(value: Any, arg: str, where: str) -> type[Layout]:
    """``value`` if it is a layout class with members, else an :class:`ArgumentError`."""
    if isinstance(value, type) and issubclass(value, Layout) and value is not Layout:
        return value
    if isinstance(value, str):
        fix = f"pass the layout class itself, not its name {value!r}"
    elif value is Layout:
        fix = "pt.Layout is the base class; pass a subclass that declares members"
    else:
        fix = "declare one with class Hits(pt.Layout): x = pt.column(np.float32)"
    raise ArgumentError(f"{where}: argument {arg!r} must be a Layout class, got "
                        f"{describe(value)}; {fix}")


def _home(device: Any, queue: Any, where: str) -> tuple[Device, Queue | None]:
    """The device a collection lives on, and the queue (if any), both checked."""
    if queue is not None:
        queue = expect_queue(queue, "queue", where)
    if device is None:
        return (queue.device if queue is not None else get_device()), queue
    device = expect_device(device, "device", where)
    if queue is not None and queue.device != device:
        raise ArgumentError(f"{where}: argument 'queue' runs on {queue.device}, but 'device' "
                            f"is {device}; pass a queue on {device} (pt.Queue(device)), or "
                            f"leave device out to use the queue's")
    return device, queue


def _expect_blocks(blocks: Any, where: str) -> list[tuple[type[Layout], int]]:
    """``blocks`` as a non-empty list of checked ``(layout, size)`` pairs."""
    if isinstance(blocks, (str, bytes, dict)) or not isinstance(blocks, Iterable):
        raise ArgumentError(f"{where}: argument 'blocks' must be a list of (layout, size) "
                            f"pairs, got {describe(blocks)}")
    pairs = []
    for i, block in enumerate(blocks):
        if not isinstance(block, (tuple, list)) or len(block) != 2:
            raise ArgumentError(f"{where}: blocks[{i}] must be a (layout, size) pair, got "
                                f"{describe(block)}")
        layout = _expect_layout(block[0], f"blocks[{i}][0]", where)
        pairs.append((layout, expect_count(block[1], f"blocks[{i}][1]", where)))
    if not pairs:
        raise ArgumentError(f"{where}: argument 'blocks' is empty; give at least one "
                            f"(layout, size) pair")
    return pairs


def _adopt(buffer: Any, device: Device, layout: type[Layout], capacity: int, nbytes: int,
           where: str) -> Any:
    """``buffer``'s first ``nbytes`` as a collection's bytes, once every check passes."""
    native = device.backend.as_array(buffer)
    if native is None:
        raise ArgumentError(f"{where}: argument 'buffer' ({describe(buffer)}) does not live "
                            f"on {device}; allocate it there with "
                            f"pt.alloc_buffer(device, nbytes, np.uint8)")
    dtype, shape = np.dtype(native.dtype), tuple(native.shape)
    if len(shape) != 1 or dtype != np.uint8:
        raise ArgumentError(f"{where}: argument 'buffer' must be a 1-D uint8 array, got "
                            f"{dtype} of shape {shape}; view its bytes with "
                            f"buffer.view(np.uint8) on a contiguous 1-D array")
    flags = native.flags  # NumPy's flags object, or a dict for device arrays
    if not flags["C_CONTIGUOUS"]:
        raise ArgumentError(f"{where}: argument 'buffer' must be contiguous, got strides "
                            f"{tuple(native.strides)}; pass a contiguous copy or slice")
    if isinstance(native, np.ndarray) and not flags["WRITEABLE"]:
        raise ArgumentError(f"{where}: argument 'buffer' is read-only; a collection writes "
                            f"its buffer, so pass a writeable array")
    if shape[0] < nbytes:
        raise ArgumentError(f"{where}: argument 'buffer' has {shape[0]} bytes but "
                            f"{layout.__name__} needs {nbytes} for capacity {capacity}")
    address, alignment = address_of(native), layout.alignment
    if address % alignment:
        raise ArgumentError(
            f"{where}: argument 'buffer' starts at address {address:#x}, not on "
            f"{layout.__name__}'s alignment of {alignment} bytes; pass a buffer whose first "
            f"byte is aligned (slice raw[-address % {alignment}:] of one {alignment} bytes "
            f"larger), or leave buffer out and the collection allocates one")
    return native[:nbytes]


def _new_buffer(device: Device, nbytes: int, alignment: int, pinned: bool, where: str) -> Any:
    """``nbytes`` new bytes on ``device`` whose first byte sits on ``alignment``, as
    CMSSW's buffers do; page-locked host memory if ``pinned``."""
    gpu = not device.backend.host_memory
    if gpu and pinned:
        raise ArgumentError(f"{where}: argument 'pinned' is for host collections; a "
                            f"collection on {device} lives in device memory; leave pinned out")

    def allocate(size: int) -> Any:
        if gpu:
            return alloc_buffer(device, size, np.uint8)
        return alloc_host_buffer(size, np.uint8, pinned=pinned)

    raw, start = aligned_bytes(allocate, nbytes, alignment, exact_first=gpu or pinned)
    return raw[start:start + nbytes]


def _expect_path(value: Any, where: str) -> Path:
    """``value`` as a :class:`~pathlib.Path`, if it is a non-empty str or path."""
    if isinstance(value, (str, os.PathLike)) and not isinstance(value, bytes) \
            and os.fspath(value) != "":
        return Path(value)
    raise ArgumentError(f"{where}: argument 'path' must be a file name (a non-empty str or "
                        f"pathlib.Path), got {describe(value)}")


def _npz(path: Path) -> Path:
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


_META_KEYS = {"layout": str, "size": int, "capacity": int, "alignment": int, "members": list}


def _read_collection_file(file: Path, where: str) -> tuple[dict[str, Any], np.ndarray]:
    """The checked metadata and the bytes of a file written by ``save()``; a
    :class:`CollectionFileError` naming ``file`` and what is wrong otherwise."""
    def bad(what: str) -> CollectionFileError:
        return CollectionFileError(f"{where}: {file} is not a collection saved by "
                                   f"PortableCollection.save(): {what}")

    try:
        with file.open("rb") as stream:
            head = stream.read(6)
    except OSError as err:
        raise CollectionFileError(f"{where}: cannot read {file}: "
                                  f"{err.strerror or err}") from None
    if not head:
        raise bad("the file is empty")
    if not head.startswith(b"PK"):
        kind = ("a pickle (load() never unpickles: that could run any code)"
                if head[:1] == b"\x80" else "a single NumPy array (.npy)"
                if head.startswith(b"\x93NUMPY") else "not a NumPy .npz (zip) archive")
        raise bad(f"it is {kind}")
    try:
        with np.load(file, allow_pickle=False) as data:
            held = list(data.files)
            entries = {key: data[key] for key in ("meta", "buffer") if key in held}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as err:
        text = str(err)
        raise bad("an entry holds pickled Python objects, which load() never unpickles"
                  if "pickle" in text else f"it is damaged or truncated ({text})") from None
    missing = [key for key in ("meta", "buffer") if key not in entries]
    if missing:
        raise bad(f"it lacks the entries {', '.join(missing)} (it holds "
                  f"{', '.join(held[:8]) or 'nothing'})")
    meta_text, raw = entries["meta"], entries["buffer"]
    if meta_text.dtype.kind != "U" or meta_text.ndim != 0:
        raise bad(f"its 'meta' entry is {meta_text.dtype} of shape {meta_text.shape}, not "
                  f"the JSON text save() writes")
    try:
        meta = json.loads(str(meta_text))
    except json.JSONDecodeError as err:
        raise bad(f"its 'meta' entry is not valid JSON ({err.msg} at character "
                  f"{err.pos})") from None
    if not isinstance(meta, dict):
        raise bad(f"its 'meta' entry holds a JSON {type(meta).__name__}, not an object")
    wrong = [key for key, kind in _META_KEYS.items()
             if not isinstance(meta.get(key), kind) or isinstance(meta.get(key), bool)]
    if wrong:
        raise bad(f"its 'meta' entry lacks or garbles {', '.join(wrong)}")
    if not 0 <= meta["size"] <= meta["capacity"]:
        raise bad(f"its 'meta' entry has size {meta['size']} and capacity "
                  f"{meta['capacity']}; 0 <= size <= capacity must hold")
    return meta, raw


def _describe(layout: type[Layout]) -> list[list[Any]]:
    return [[m.name, m.kind, m.dtype.str, m.rows, m.cols] for m in layout.members()]
