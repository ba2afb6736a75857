"""Building the trackster graph on the device, in eta-phi tiles.

Per endcap, tiles are 0.1 wide in ``|eta|`` (from :data:`ETA_MIN`) and 2 pi / 72 in
phi. A trackster's neighbours are the tracksters of its endcap within
:data:`~examples.gnn.reference.WINDOW` (0.1) in ``|eta|`` and in phi (phi wraps
round), and the graph has a directed edge from each trackster to each neighbour at
a larger ``|z|``. The steps, all enqueued on one queue over the collections'
capacities, with the counts on the device (so the same launches serve every event
and can be captured into a graph):

1. **tiles**: each trackster's tile, a count per tile (atomic), an exclusive scan
   into offsets (a thread per row of 72 tiles, then the rows' starts), a scatter
   (atomic cursor per tile) and a sort of each tile's list, so tiles list their
   tracksters in increasing order on every backend;
2. **count**: each trackster counts its edges, visiting the tiles within two bins
   in eta and phi (phi bins are narrower than the window; the second eta bin keeps
   a neighbour that float32 rounding puts two bins away), in a fixed order;
3. **scan**: an exclusive scan of the counts over the capacity gives each
   trackster's first edge, and the total is the number of edges;
4. **fill**: each trackster writes its edges from there, in the order it counted
   them; edges beyond the edge capacity are dropped (the total still says how many
   there were), and the padding rows get ``src = dst = 0``.

The edges come out sorted by ``src``, in the same order on every backend and for
every schedule.

Example::

    >>> import portable as pt
    >>> from examples.gnn.generator import generate
    >>> from examples.gnn.layouts import Edges
    >>> from examples.gnn import reference
    >>> q = pt.Queue(pt.get_device("cpu_serial"))
    >>> event = generate(0, "tiny")
    >>> nodes, n_nodes = upload(q, event, 128)
    >>> edges = pt.PortableCollection(Edges, 1536, q.device)
    >>> n_edges = build_graph(q, nodes, n_nodes, edges)
    >>> q.synchronize(); n = int(n_edges[0])
    >>> src, dst = reference.build_edges(event.columns)
    >>> n == src.size, edges.column("src")[:n].tolist() == src.tolist()
    (True, True)
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import numpy as np

import kernels
import portable as pt

from .checks import expect_collection, expect_counter
from .generator import Event
from .layouts import NODE_FEATURES, Edges, Nodes
from .reference import PI, TWO_PI, WINDOW

Allocator = Callable[[Any, Any], Any]
"""``alloc(shape, dtype)``: a new buffer on the queue's device (e.g. the pipeline's)."""

#: tiles start at this |eta|; tracksters outside the tiles' range go to the end tiles
ETA_MIN = np.float32(1.5)
ETA_BIN = np.float32(0.1)
ETA_BINS = 16
PHI_BINS = 72
PHI_BIN = np.float32(2 * np.pi / PHI_BINS)
#: tiles in both endcaps
N_TILES = 2 * ETA_BINS * PHI_BINS
#: tiles searched on each side of a trackster's own, in eta and in phi
REACH = 2


def default_alloc(queue: pt.Queue) -> Allocator:
    """``alloc(shape, dtype)`` giving plain :func:`portable.alloc_buffer` buffers.

    Example::

        >>> import portable as pt
        >>> default_alloc(pt.Queue(pt.get_device("cpu_serial")))(2, np.int32).shape
        (2,)
    """
    return functools.partial(pt.alloc_buffer, queue.device)


def feature_bytes(capacity: int) -> int:
    """The bytes the 29 feature columns of a :class:`Nodes` collection of
    ``capacity`` rows take from the start of its buffer (they come first, adjacent).

    Example::

        >>> feature_bytes(128) == 29 * 128 * 4
        True
    """
    geometry = Nodes.geometry(capacity)
    last = geometry[NODE_FEATURES[-1]]
    return last.offset + last.size


def feature_pitch(capacity: int) -> int:
    """The padded length (elements) of a feature column for ``capacity`` rows."""
    return Nodes.geometry(capacity)[NODE_FEATURES[0]].pitch_bytes // 4


def stage_columns(event: Event, staging: np.ndarray) -> None:
    """Write ``event``'s features into ``staging``, a host (29, pitch) float32 array
    laid out as the feature columns of a :class:`Nodes` buffer (see
    :func:`feature_pitch`), and zeros into the rows past the event's (whatever the
    memory held before, the padding is then harmless to the model: no NaN, no
    denormal numbers that slow CPUs down).

    Example::

        >>> from examples.gnn.generator import generate
        >>> staging = np.zeros((29, feature_pitch(128)), np.float32)
        >>> stage_columns(generate(0, "tiny"), staging)
        >>> bool(staging[16, 0] == generate(0, "tiny").feature("raw_energy")[0])
        True
    """
    staging[:, :event.n_nodes] = event.columns
    staging[:, event.n_nodes:] = 0.0


def upload(queue: pt.Queue, event: Event, capacity: int) -> tuple[pt.PortableCollection, Any]:
    """``event``'s tracksters as a :class:`Nodes` collection of ``capacity`` rows on
    ``queue.device`` and the number of tracksters as a one-element int32 device
    buffer (rows past it are zero).

    Example::

        >>> import portable as pt
        >>> from examples.gnn.generator import generate
        >>> nodes, n = upload(pt.Queue(pt.get_device("cpu_serial")), generate(0, "tiny"), 128)
        >>> nodes.size, int(n[0]) == generate(0, "tiny").n_nodes
        (128, True)
    """
    if event.n_nodes > capacity:
        raise pt.ArgumentError(f"upload: the event holds {event.n_nodes} tracksters, more "
                               f"than argument 'capacity' ({capacity}); give a capacity of "
                               f"at least {event.n_nodes}")
    staging = np.empty((len(NODE_FEATURES), feature_pitch(capacity)), np.float32)
    stage_columns(event, staging)
    nodes = pt.PortableCollection(Nodes, capacity, queue.device, zero=True)
    pt.memcpy(queue, nodes.buffer[:feature_bytes(capacity)], staging.view(np.uint8).reshape(-1))
    count = pt.alloc_buffer(queue.device, 1, np.int32)
    pt.memcpy(queue, count, np.array([event.n_nodes], np.int32))
    queue.synchronize()  # the host arrays above are temporaries
    return nodes, count


# -- kernels --------------------------------------------------------------------------

@pt.device_function
def tile_coordinates(z, eta, phi, i):
    """(endcap, eta bin, phi bin) of trackster ``i`` (barycentre columns ``z``,
    ``eta``, ``phi``)."""
    side = 0
    if z[i] < 0:
        side = 1
    ieta = int(math.floor((abs(eta[i]) - ETA_MIN) / ETA_BIN))
    iphi = int(math.floor((phi[i] + PI) / PHI_BIN))
    return side, min(max(ieta, 0), ETA_BINS - 1), min(max(iphi, 0), PHI_BINS - 1)


@pt.device_function
def linked(z, eta, phi, i, j):
    """Whether the graph has the edge ``i -> j`` (barycentre columns ``z``, ``eta``,
    ``phi``)."""
    zi = z[i]
    zj = z[j]
    if (zi > 0) != (zj > 0) or not abs(zj) > abs(zi):
        return False
    d_eta = abs(abs(eta[i]) - abs(eta[j]))
    d_phi = abs(phi[i] - phi[j])
    if d_phi > PI:
        d_phi = TWO_PI - d_phi
    return d_eta <= WINDOW and d_phi <= WINDOW


@pt.kernel
def assign_tiles(acc, nodes, n_nodes, tile_of, tile_count):
    """``tile_of[i]``: trackster ``i``'s tile; ``tile_count``: tracksters per tile."""
    for i in acc.uniform_elements(nodes.size):
        if i < n_nodes[0]:
            side, ieta, iphi = tile_coordinates(nodes.barycenter_z, nodes.barycenter_eta,
                                                  nodes.barycenter_phi, i)
            t = (side * ETA_BINS + ieta) * PHI_BINS + iphi
            tile_of[i] = t
            acc.atomic_add(tile_count, t, np.int32(1))


@pt.kernel
def scan_rows(acc, offsets, row_total):
    """Within each row of tiles (one endcap and eta bin), turn the counts in
    ``offsets`` into offsets from the row's start, in place; ``row_total``: each
    row's count."""
    for row in acc.uniform_elements(row_total.size):
        running = 0
        for k in range(row * PHI_BINS, (row + 1) * PHI_BINS):
            count = offsets[k]
            offsets[k] = running
            running += count
        row_total[row] = running


@pt.kernel
def add_row_starts(acc, offsets, row_total):
    """Add each row's start (the counts of the rows before it) to its offsets; the
    last entry of ``offsets`` becomes the total."""
    for row in acc.uniform_elements(row_total.size):
        start = 0
        for before in range(row):
            start += row_total[before]
        for k in range(row * PHI_BINS, (row + 1) * PHI_BINS):
            offsets[k] += start
        if row == row_total.size - 1:
            offsets[row_total.size * PHI_BINS] = start + row_total[row]


@pt.kernel
def scatter_to_tiles(acc, n_nodes, tile_of, offsets, cursor, tile_nodes):
    """List every trackster in its tile's range, at a position taken with an atomic."""
    for i in acc.uniform_elements(tile_of.size):
        if i < n_nodes[0]:
            t = tile_of[i]
            tile_nodes[offsets[t] + acc.atomic_add(cursor, t, np.int32(1))] = i


@pt.kernel
def sort_tiles(acc, offsets, tile_nodes):
    """Sort each tile's list (an insertion sort: tiles hold few tracksters)."""
    for t in acc.uniform_elements(offsets.size - 1):
        first = offsets[t]
        for k in range(first + 1, offsets[t + 1]):
            value = tile_nodes[k]
            j = k
            while j > first and tile_nodes[j - 1] > value:
                tile_nodes[j] = tile_nodes[j - 1]
                j -= 1
            tile_nodes[j] = value


@pt.kernel
def count_edges(acc, nodes, n_nodes, offsets, tile_nodes, counts):
    """``counts[i]``: the edges leaving trackster ``i`` (0 for the padding rows)."""
    for i in acc.uniform_elements(nodes.size):
        count = 0
        if i < n_nodes[0]:
            side, ieta, iphi = tile_coordinates(nodes.barycenter_z, nodes.barycenter_eta,
                                                  nodes.barycenter_phi, i)
            for e in range(max(ieta - REACH, 0), min(ieta + REACH + 1, ETA_BINS)):
                for step in range(-REACH, REACH + 1):
                    t = (side * ETA_BINS + e) * PHI_BINS + (iphi + step + PHI_BINS) % PHI_BINS
                    for k in range(offsets[t], offsets[t + 1]):
                        if linked(nodes.barycenter_z, nodes.barycenter_eta,
                                  nodes.barycenter_phi, i, tile_nodes[k]):
                            count += 1
        counts[i] = count


@pt.kernel
def fill_edges(acc, nodes, n_nodes, offsets, tile_nodes, first_edge, edges):
    """Each trackster's edges from ``first_edge[i]`` on, in the order counted; those
    beyond the edge capacity are dropped."""
    for i in acc.uniform_elements(nodes.size):
        if i < n_nodes[0]:
            side, ieta, iphi = tile_coordinates(nodes.barycenter_z, nodes.barycenter_eta,
                                                  nodes.barycenter_phi, i)
            slot = first_edge[i]
            for e in range(max(ieta - REACH, 0), min(ieta + REACH + 1, ETA_BINS)):
                for step in range(-REACH, REACH + 1):
                    t = (side * ETA_BINS + e) * PHI_BINS + (iphi + step + PHI_BINS) % PHI_BINS
                    for k in range(offsets[t], offsets[t + 1]):
                        j = tile_nodes[k]
                        if linked(nodes.barycenter_z, nodes.barycenter_eta,
                                  nodes.barycenter_phi, i, j):
                            if slot < edges.size:
                                edges.src[slot] = i
                                edges.dst[slot] = j
                            slot += 1


@pt.kernel
def total_edges(acc, counts, first_edge, n_edges):
    """``n_edges[0]``: the number of edges, from the last count and its offset."""
    if acc.once_per_grid():
        last = counts.size - 1
        n_edges[0] = first_edge[last] + counts[last]


@pt.kernel
def pad_edges(acc, edges, n_edges):
    """Edge rows past the number of edges point at trackster 0."""
    for e in acc.uniform_elements(edges.size):
        if e >= n_edges[0]:
            edges.src[e] = 0
            edges.dst[e] = 0


# -- host function --------------------------------------------------------------------

def build_graph(queue: pt.Queue, nodes: pt.PortableCollection, n_nodes: Any,
                edges: pt.PortableCollection, alloc: Allocator | None = None) -> Any:
    """Enqueue the graph of the ``n_nodes[0]`` tracksters of ``nodes`` into ``edges``
    (their ``src`` and ``dst``; both collections at their capacity, ``n_nodes`` a
    one-element int32 device buffer); returns a one-element int32 device buffer that
    holds the number of edges once the queue has done the work (more than
    ``edges.size`` if they did not fit: then only the first ``edges.size`` are kept).
    Temporary buffers come from ``alloc(shape, dtype)``. Nothing depends on the
    event's size on the host, so the same calls serve every event of a capacity."""
    where = "build_graph"
    expect_collection(nodes, Nodes, "nodes", where, queue)
    expect_counter(n_nodes, "n_nodes", where, queue)
    expect_collection(edges, Edges, "edges", where, queue)
    alloc = alloc or default_alloc(queue)
    capacity = nodes.size
    tile_of = alloc(capacity, np.int32)
    tile_offsets = alloc(N_TILES + 1, np.int32)  # a last, empty bin: its offset is the total
    cursor = alloc(N_TILES, np.int32)
    tile_nodes = alloc(capacity, np.int32)
    counts = alloc(capacity, np.int32)
    first_edge = alloc(capacity, np.int32)
    n_edges = alloc(1, np.int32)
    per_node = pt.make_workdiv(queue.device, capacity)
    pt.memset(queue, tile_offsets, 0)
    pt.memset(queue, cursor, 0)
    pt.launch(queue, per_node, assign_tiles, nodes.const_view(), n_nodes, tile_of, tile_offsets)
    row_total = alloc(N_TILES // PHI_BINS, np.int32)
    per_row = pt.make_workdiv(queue.device, row_total.size)
    pt.launch(queue, per_row, scan_rows, tile_offsets, row_total)
    pt.launch(queue, per_row, add_row_starts, tile_offsets, row_total)
    pt.launch(queue, per_node, scatter_to_tiles, n_nodes, tile_of, tile_offsets, cursor,
              tile_nodes)
    # a grid over the nodes, not the tiles: most tiles are empty, and the grid-stride
    # loop covers them all
    pt.launch(queue, per_node, sort_tiles, tile_offsets, tile_nodes)
    pt.launch(queue, per_node, count_edges, nodes.const_view(), n_nodes, tile_offsets,
              tile_nodes, counts)
    kernels.exclusive_scan(queue, counts, first_edge, alloc=alloc)
    pt.launch(queue, per_node, fill_edges, nodes.const_view(), n_nodes, tile_offsets,
              tile_nodes, first_edge, edges.view())
    pt.launch(queue, pt.WorkDiv(1, 1, 1), total_edges, counts, first_edge, n_edges)
    pt.launch(queue, pt.make_workdiv(queue.device, edges.size), pad_edges, edges.view(),
              n_edges)
    return n_edges
