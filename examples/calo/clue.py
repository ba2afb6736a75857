"""CLUE clustering of calorimeter hits with portable kernels (Rovere et al. 2020).

Each layer is clustered on its own, in the plane. The steps, all enqueued on
one queue:

1. **tiles**: every hit gets the tile of its layer holding it (square tiles
   of ``tile_size`` cm, at least the largest search radius, so that every hit
   within that radius lies in the 3 x 3 tiles around), counted per tile with
   an atomic; an exclusive scan turns the counts into offsets, a scatter
   with an atomic cursor per tile lists each tile's hits, and each tile's list
   is sorted by hit index, so the tiles are the same on every backend;
2. **local density** ``rho``: each hit sums its own energy plus half the
   energy of every other hit within ``dc``, visiting tiles in a fixed order
   (no float atomics);
3. **nearest higher**: the closest denser hit within the outlier distance
   ``dm = outlier_factor * dc`` -- denser meaning a larger ``rho``, or an equal
   ``rho`` and a smaller index, a strict order, so chains never loop; equally
   close candidates go to the smaller index. ``delta`` is the distance to it,
   ``inf`` if there is none;
4. **seeds**: ``rho > rhoc`` and ``delta > dc``; numbered 0, 1, ... in the
   order of their hit indices (an exclusive scan of the seed flags);
5. **followers**: every other hit follows its nearest-higher chain up to the
   first seed and takes its cluster id; a chain that ends without a seed
   (at an outlier: ``rho <= rhoc`` and no denser hit within ``dm``) gives -1.

Every result is an integer, or a float computed in one fixed order, so it is
the same on every backend whatever the scheduling. Distances are compared
squared; with hits at cell centres of a grid whose pitch is a power of two
(as the generator makes them) they are exact, and with energies that are
multiples of a small power of two (the generator's ``ENERGY_LSB``) so are the
densities, whatever the summation order: then every label agrees exactly
with an independent implementation too (:mod:`examples.calo.reference`).

The number of hits is read on the device (a one-element buffer), and every
launch and buffer is sized by the collection's size: a collection allocated at
a fixed capacity, with the event's hits at the front, gives the same launches
for every event (what a captured CUDA graph replays).

Example::

    >>> import portable as pt
    >>> from examples.calo.generator import SHAPES, generate, upload
    >>> q = pt.Queue(pt.get_device("cpu_serial"))
    >>> hits = upload(q, generate(1, "tiny"))
    >>> params = ClueParams.for_geometry(SHAPES["tiny"].geometry)
    >>> n_clusters = cluster(q, hits, params)
    >>> int(hits.column("is_seed").sum()) == n_clusters
    True
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

import kernels
import portable as pt

Allocator = Callable[[Any, Any], Any]
"""``alloc(shape, dtype)``: a new buffer on the queue's device (e.g. a caching allocator)."""


@dataclass(frozen=True)
class ClueParams:
    """CLUE's parameters and the calorimeter's extent.

    ``n_layers`` layers whose hits have ``0 <= x, y < extent`` (cm; hits
    outside go to the border tiles); ``dc`` the density radius (cm), ``rhoc``
    the density a seed exceeds (GeV), ``outlier_factor`` the outlier distance
    in units of ``dc``, ``tile_size`` the tiles' side (cm), larger than the
    outlier distance.

    Example::

        >>> p = ClueParams(n_layers=10, extent=128.0)
        >>> float(p.dc2), float(p.dm2), p.tiles_per_side
        (2.25, 9.0, 32)
    """

    n_layers: int
    extent: float
    dc: float = 1.5
    rhoc: float = 0.6
    outlier_factor: float = 2.0
    tile_size: float = 4.0

    def __post_init__(self) -> None:
        if self.n_layers < 1 or not self.extent > 0:
            raise ValueError(f"ClueParams: need n_layers >= 1 and extent > 0, got "
                             f"n_layers={self.n_layers}, extent={self.extent}")
        if not (self.dc > 0 and self.outlier_factor >= 1 and self.rhoc >= 0):
            raise ValueError(f"ClueParams: need dc > 0, outlier_factor >= 1, rhoc >= 0, got "
                             f"dc={self.dc}, outlier_factor={self.outlier_factor}, "
                             f"rhoc={self.rhoc}")
        if not self.tile_size > self.dc * self.outlier_factor:
            raise ValueError(f"ClueParams: tile_size={self.tile_size} must exceed the outlier "
                             f"distance dc * outlier_factor = {self.dc * self.outlier_factor}")

    @classmethod
    def for_geometry(cls, geometry: Any, **changes: float) -> ClueParams:
        """The parameters for a :class:`~examples.calo.generator.Geometry` (anything
        with ``n_layers`` and ``extent``), with ``changes`` to the defaults.

        Example::

            >>> from examples.calo.generator import Geometry
            >>> ClueParams.for_geometry(Geometry(n_layers=3, cells=32), rhoc=1.0).extent
            32.0
        """
        return cls(n_layers=geometry.n_layers, extent=float(geometry.extent), **changes)

    @property
    def dc2(self) -> np.float32:
        """``dc`` squared, in float32 as the kernels compare it."""
        return np.float32(self.dc * self.dc)

    @property
    def dm2(self) -> np.float32:
        """The outlier distance squared, in float32."""
        dm = self.dc * self.outlier_factor
        return np.float32(dm * dm)

    @property
    def tiles_per_side(self) -> int:
        """Tiles along each side of a layer."""
        return max(1, math.ceil(self.extent / self.tile_size))

    @property
    def n_tiles(self) -> int:
        """Tiles in all layers."""
        return self.n_layers * self.tiles_per_side ** 2


@dataclass(frozen=True)
class Tiles:
    """The hits binned in tiles: ``tile_of[i]`` is hit ``i``'s tile; the hits of
    tile ``t`` are ``hits[offsets[t]:offsets[t + 1]]``, in increasing order."""

    tile_of: Any
    offsets: Any
    hits: Any


def default_alloc(queue: pt.Queue) -> Allocator:
    """``alloc(shape, dtype)`` giving plain :func:`portable.alloc_buffer` buffers on
    ``queue.device``.

    Example::

        >>> import numpy as np, portable as pt
        >>> alloc = default_alloc(pt.Queue(pt.get_device("cpu_serial")))
        >>> alloc(3, np.int32).shape
        (3,)
    """
    return functools.partial(pt.alloc_buffer, queue.device)


def workdiv(queue: pt.Queue, n: int) -> pt.WorkDiv:
    """A 1-D work division for a grid-stride loop over ``n`` elements: the
    backend's default on the CPU; on a GPU, blocks of 32 to 128 threads, and
    at most 32 blocks per multiprocessor (the loop covers the rest).

    Example::

        >>> import portable as pt
        >>> workdiv(pt.Queue(pt.get_device("cpu_serial")), 10)
        WorkDiv(blocks=(1,), threads=(1,), elements=(10,))
    """
    n = max(n, 1)
    if queue.backend.host_memory:
        return pt.make_workdiv(queue.device, n)
    threads = 32
    while threads < min(n, 128):
        threads *= 2
    most = max(1, queue.device.limits.multiprocessors) * 32
    return pt.WorkDiv(min(most, -(-n // threads)), threads, 1)


# -- kernels --------------------------------------------------------------------------

@pt.kernel
def store_count(acc, count, value):
    """``count[0] = value``."""
    for _ in acc.uniform_elements(1):
        count[0] = value


@pt.kernel
def assign_tiles(acc, hits, n_hits, tile_size, per_side, n_layers, tile_of, tile_counts):
    """``tile_of[i]``: the tile of hit ``i < n_hits[0]`` (layer-major, then y, then x),
    counted in ``tile_counts``."""
    n = n_hits[0]
    for i in acc.uniform_elements(hits.size):
        if i < n:
            layer = min(max(hits.layer[i], 0), n_layers - 1)
            tx = min(max(int(math.floor(hits.x[i] / tile_size)), 0), per_side - 1)
            ty = min(max(int(math.floor(hits.y[i] / tile_size)), 0), per_side - 1)
            t = (layer * per_side + ty) * per_side + tx
            tile_of[i] = t
            acc.atomic_add(tile_counts, t, np.int32(1))


@pt.kernel
def scatter_to_tiles(acc, tile_of, n_hits, offsets, fill, tile_hits):
    """List every hit in its tile's range, at a position taken with an atomic."""
    n = n_hits[0]
    for i in acc.uniform_elements(tile_of.size):
        if i < n:
            t = tile_of[i]
            tile_hits[offsets[t] + acc.atomic_add(fill, t, np.int32(1))] = i


@pt.kernel
def sort_tiles(acc, offsets, tile_hits):
    """Sort each tile's hit indices (an insertion sort: tiles hold few hits)."""
    for t in acc.uniform_elements(offsets.size - 1):
        first = offsets[t]
        for k in range(first + 1, offsets[t + 1]):
            value = tile_hits[k]
            j = k
            while j > first and tile_hits[j - 1] > value:
                tile_hits[j] = tile_hits[j - 1]
                j -= 1
            tile_hits[j] = value


@pt.kernel
def local_density(acc, hits, n_hits, tile_of, offsets, tile_hits, per_side, dc2):
    """``rho[i]``: hit ``i``'s energy plus half that of each other hit within ``dc``."""
    per_layer = per_side * per_side
    half = np.float32(0.5)
    n = n_hits[0]
    for i in acc.uniform_elements(hits.size):
        if i < n:
            t = tile_of[i]
            base = (t // per_layer) * per_layer
            ty = (t - base) // per_side
            tx = t - base - ty * per_side
            xi = hits.x[i]
            yi = hits.y[i]
            rho = np.float32(0.0)
            for ny in range(max(ty - 1, 0), min(ty + 2, per_side)):
                for nx in range(max(tx - 1, 0), min(tx + 2, per_side)):
                    near = base + ny * per_side + nx
                    for k in range(offsets[near], offsets[near + 1]):
                        j = tile_hits[k]
                        if j == i:
                            rho += hits.energy[j]
                        else:
                            dx = hits.x[j] - xi
                            dy = hits.y[j] - yi
                            if dx * dx + dy * dy <= dc2:
                                rho += half * hits.energy[j]
            hits.rho[i] = rho


@pt.kernel
def nearest_higher(acc, hits, n_hits, tile_of, offsets, tile_hits, per_side, dc2, dm2, rhoc):
    """``nearest_higher``, ``delta`` and ``is_seed`` of every hit ``i < n_hits[0]``;
    ``is_seed`` is 0 in the rows after them (so that a scan over all rows counts
    the seeds)."""
    per_layer = per_side * per_side
    n = n_hits[0]
    for i in acc.uniform_elements(hits.size):
        seed = 0
        if i < n:
            t = tile_of[i]
            base = (t // per_layer) * per_layer
            ty = (t - base) // per_side
            tx = t - base - ty * per_side
            xi = hits.x[i]
            yi = hits.y[i]
            rho_i = hits.rho[i]
            best = -1
            best_d2 = dm2
            for ny in range(max(ty - 1, 0), min(ty + 2, per_side)):
                for nx in range(max(tx - 1, 0), min(tx + 2, per_side)):
                    near = base + ny * per_side + nx
                    for k in range(offsets[near], offsets[near + 1]):
                        j = tile_hits[k]
                        rho_j = hits.rho[j]
                        if rho_j > rho_i or (rho_j == rho_i and j < i):
                            dx = hits.x[j] - xi
                            dy = hits.y[j] - yi
                            d2 = dx * dx + dy * dy
                            if d2 <= dm2 and (best < 0 or d2 < best_d2
                                              or (d2 == best_d2 and j < best)):
                                best = j
                                best_d2 = d2
            hits.nearest_higher[i] = best
            if best < 0:
                hits.delta[i] = math.inf
            else:
                hits.delta[i] = math.sqrt(best_d2)
            if rho_i > rhoc and (best < 0 or best_d2 > dc2):
                seed = 1
        hits.is_seed[i] = seed


@pt.kernel
def follow_chains(acc, hits, n_hits, seed_rank):
    """Cluster ids: a seed's is its rank among the seeds (``seed_rank``, the
    exclusive scan of ``is_seed``); any other hit takes the id of the first seed
    up its nearest-higher chain, or -1 when the chain ends without one."""
    n = n_hits[0]
    for i in acc.uniform_elements(hits.size):
        if i < n:
            j = i
            while hits.is_seed[j] == 0 and hits.nearest_higher[j] >= 0:
                j = hits.nearest_higher[j]
            label = -1
            if hits.is_seed[j] != 0:
                label = seed_rank[j]
            hits.cluster_id[i] = label


@pt.kernel
def count_seeds(acc, hits, n_hits, seed_rank, count):
    """``count[0]``: the number of seeds, from the exclusive scan of ``is_seed``."""
    for _ in acc.uniform_elements(1):
        last = n_hits[0] - 1
        seeds = 0
        if last >= 0:
            seeds = seed_rank[last] + hits.is_seed[last]
        count[0] = seeds


# -- host functions -------------------------------------------------------------------

def device_count(queue: pt.Queue, value: int, alloc: Allocator | None = None) -> Any:
    """A one-element int32 buffer on ``queue.device`` (from ``alloc``, default
    :func:`default_alloc`) that holds ``value`` once the queue gets there: the
    form in which the enqueue functions take a number of hits or clusters.

    Example::

        >>> import portable as pt
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> device_count(q, 7).tolist()
        [7]
    """
    count = (alloc or default_alloc(queue))(1, np.int32)
    pt.launch(queue, pt.WorkDiv(1, 1, 1), store_count, count, np.int32(value))
    return count


def build_tiles(queue: pt.Queue, hits: pt.PortableCollection, params: ClueParams,
                alloc: Allocator | None = None, n_hits: Any = None) -> Tiles:
    """Enqueue the binning of the first ``n_hits[0]`` of ``hits`` into the tiles of
    ``params``: each hit's tile, counted with an atomic per tile, the counts'
    exclusive scan, a scatter and a sort per tile. ``n_hits`` is a one-element
    int32 buffer on the device (default: :func:`device_count` of ``hits.size``);
    every buffer's size follows ``hits.size``, whatever the count.

    Example::

        >>> import numpy as np, portable as pt
        >>> from examples.calo.generator import Event, upload
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> event = Event(np.array([0, 0, 1], np.int32), np.array([5.0, 1.0, 1.0], np.float32),
        ...               np.array([1.0, 1.0, 1.0], np.float32), np.ones(3, np.float32))
        >>> tiles = build_tiles(q, upload(q, event), ClueParams(n_layers=2, extent=8.0))
        >>> tiles.offsets.tolist(), tiles.hits.tolist()
        ([0, 1, 2, 2, 2, 3, 3, 3, 3], [1, 0, 2])
    """
    alloc = alloc or default_alloc(queue)
    size, n_tiles, per_side = hits.size, params.n_tiles, params.tiles_per_side
    tile_of = alloc(size, np.int32)
    offsets = alloc(n_tiles + 1, np.int32)  # a last, empty bin: offsets[n_tiles] = n
    tile_hits = alloc(size, np.int32)
    pt.memset(queue, offsets, 0)
    if size == 0:
        return Tiles(tile_of, offsets, tile_hits)
    if n_hits is None:
        n_hits = device_count(queue, size, alloc)
    div = workdiv(queue, size)
    pt.launch(queue, div, assign_tiles, hits.const_view(), n_hits,
              np.float32(params.tile_size), per_side, params.n_layers, tile_of, offsets)
    kernels.exclusive_scan(queue, offsets, offsets, alloc=alloc)
    fill = alloc(n_tiles, np.int32)
    pt.memset(queue, fill, 0)
    pt.launch(queue, div, scatter_to_tiles, tile_of, n_hits, offsets, fill, tile_hits)
    pt.launch(queue, workdiv(queue, n_tiles), sort_tiles, offsets, tile_hits)
    return Tiles(tile_of, offsets, tile_hits)


def cluster(queue: pt.Queue, hits: pt.PortableCollection, params: ClueParams,
            alloc: Allocator | None = None) -> int:
    """Run CLUE on ``hits`` (a :class:`~examples.calo.layouts.Hits` collection on
    ``queue.device``), filling their ``rho``, ``delta``, ``nearest_higher``,
    ``is_seed`` and ``cluster_id``; return the number of clusters. Temporary
    buffers come from ``alloc(shape, dtype)`` (default: :func:`default_alloc`).
    Returning the count copies it to the host, which synchronizes the queue.

    Example: two hits 1 cm apart in layer 0 and a lone one in layer 1; the
    densest hit of the pair seeds cluster 0 and the other follows it, the lone
    hit seeds cluster 1::

        >>> import numpy as np, portable as pt
        >>> from examples.calo.generator import Event, upload
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> event = Event(np.array([0, 0, 1], np.int32), np.array([1.5, 2.5, 1.5], np.float32),
        ...               np.array([1.5, 1.5, 1.5], np.float32),
        ...               np.array([1.0, 2.0, 1.0], np.float32))
        >>> hits = upload(q, event)
        >>> cluster(q, hits, ClueParams(n_layers=2, extent=8.0, rhoc=0.5))
        2
        >>> hits.column("rho").tolist(), hits.column("cluster_id").tolist()
        ([2.0, 2.5, 1.0], [0, 0, 1])
    """
    count = enqueue_cluster(queue, hits, params, alloc)
    host = np.empty(1, np.int32)
    pt.memcpy(queue, host, count)
    queue.synchronize()
    return int(host[0])


def enqueue_cluster(queue: pt.Queue, hits: pt.PortableCollection, params: ClueParams,
                    alloc: Allocator | None = None, n_hits: Any = None) -> Any:
    """Enqueue what :func:`cluster` does, without waiting, on the first ``n_hits[0]``
    of ``hits``: ``n_hits`` is a one-element int32 buffer on ``queue.device``
    (default: :func:`device_count` of ``hits.size``), read by the kernels, so that
    the launches are the same whatever the count (up to ``hits.size``, the
    capacity every buffer is sized for). The rows after the count get
    ``is_seed = 0`` and nothing else. Returns a one-element int32 buffer on
    ``queue.device`` that holds the number of clusters once the queue has done
    the work. Everything, that buffer included, comes from ``alloc(shape,
    dtype)`` (default: :func:`default_alloc`).

    Example: the hits of an event in a collection with room for 100 more::

        >>> import numpy as np, portable as pt
        >>> from examples.calo.generator import SHAPES, generate
        >>> from examples.calo.layouts import Hits
        >>> q = pt.Queue(pt.get_device("cpu_serial"), blocking=False)
        >>> event = generate(1, "tiny")
        >>> hits = pt.PortableCollection(Hits, event.n_hits + 100, q.device)
        >>> for name in ("layer", "x", "y", "energy"):
        ...     hits.column(name)[:event.n_hits] = getattr(event, name)
        >>> n_hits = device_count(q, event.n_hits)
        >>> count = enqueue_cluster(q, hits, ClueParams.for_geometry(SHAPES["tiny"].geometry),
        ...                         n_hits=n_hits)
        >>> q.synchronize(); int(count[0]) == int(hits.column("is_seed").sum()) > 0
        True
    """
    alloc = alloc or default_alloc(queue)
    size = hits.size
    count = alloc(1, np.int32)
    if size == 0:
        pt.memset(queue, count, 0)
        return count
    if n_hits is None:
        n_hits = device_count(queue, size, alloc)
    tiles = build_tiles(queue, hits, params, alloc, n_hits)
    per_side, div = params.tiles_per_side, workdiv(queue, size)
    pt.launch(queue, div, local_density, hits.view(), n_hits, tiles.tile_of, tiles.offsets,
              tiles.hits, per_side, params.dc2)
    pt.launch(queue, div, nearest_higher, hits.view(), n_hits, tiles.tile_of, tiles.offsets,
              tiles.hits, per_side, params.dc2, params.dm2, np.float32(params.rhoc))
    seed_rank = alloc(size, np.int32)
    kernels.exclusive_scan(queue, hits.column("is_seed"), seed_rank, alloc=alloc)
    pt.launch(queue, div, follow_chains, hits.view(), n_hits, seed_rank)
    pt.launch(queue, pt.WorkDiv(1, 1, 1), count_seeds, hits.const_view(), n_hits, seed_rank,
              count)
    return count
