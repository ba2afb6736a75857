"""Cluster features from clustered hits, and the selection of scored clusters.

:func:`cluster_features` fills one :class:`~examples.calo.layouts.Clusters` row
per cluster: the energy, the energy-weighted barycentre (``x``, ``y``) and
widths (``sigma_x``, ``sigma_y``), the number of hits and the layer. Every
clustered hit adds its energy, its energy-weighted position and squared
position to its cluster's float64 sums with atomics (float64, so that the
widths, differences of large sums, keep their precision), and counts itself
with an integer atomic; one more kernel turns the sums into the float32
features. Atomic float sums depend on the order the hits arrive in: the
features agree with the reference to float32 rounding, not bit for bit
(``n_hits`` and ``layer`` are exact).

Example::

    >>> import portable as pt
    >>> from examples.calo.clue import ClueParams, cluster
    >>> from examples.calo.generator import SHAPES, generate, upload
    >>> from examples.calo.layouts import Clusters
    >>> q = pt.Queue(pt.get_device("cpu_serial"))
    >>> hits = upload(q, generate(1, "tiny"))
    >>> n = cluster(q, hits, ClueParams.for_geometry(SHAPES["tiny"].geometry))
    >>> clusters = pt.PortableCollection(Clusters, n, q.device)
    >>> cluster_features(q, hits, clusters)
    >>> int(clusters.column("n_hits").sum()) == int((hits.column("cluster_id") >= 0).sum())
    True
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

import kernels
import portable as pt

from .clue import Allocator, default_alloc, device_count, workdiv


#: rows of the per-cluster float64 sums: E, E x, E y, E x^2, E y^2
SUMS = 5


@pt.kernel
def accumulate_hits(acc, hits, n_hits, clusters, sums, counts):
    """Each clustered hit ``i < n_hits[0]`` adds ``E``, ``E x``, ``E y``, ``E x^2``,
    ``E y^2`` to its cluster's sums (row ``k`` of ``sums`` at ``k * clusters.size``)
    and 1 to its count; each seed writes its cluster's layer. Cluster ids beyond
    the collection are left out (the count of clusters tells such an event)."""
    rows = clusters.size
    n = n_hits[0]
    for i in acc.uniform_elements(hits.size):
        if i < n:
            c = hits.cluster_id[i]
            if c >= 0 and c < rows:
                e = np.float64(hits.energy[i])
                x = np.float64(hits.x[i])
                y = np.float64(hits.y[i])
                acc.atomic_add(sums, c, e)
                acc.atomic_add(sums, rows + c, e * x)
                acc.atomic_add(sums, 2 * rows + c, e * y)
                acc.atomic_add(sums, 3 * rows + c, e * x * x)
                acc.atomic_add(sums, 4 * rows + c, e * y * y)
                acc.atomic_add(counts, c, np.int32(1))
                if hits.is_seed[i] != 0:
                    clusters.layer[c] = hits.layer[i]


@pt.kernel
def finish_clusters(acc, clusters, n_clusters, sums, counts):
    """Turn the sums of each cluster ``c < n_clusters[0]`` into its energy,
    barycentre, widths and size; the rows after them get zeros."""
    rows = clusters.size
    n = n_clusters[0]
    for c in acc.uniform_elements(rows):
        if c < n:
            energy = sums[c]
            mean_x = sums[rows + c] / energy
            mean_y = sums[2 * rows + c] / energy
            clusters.energy[c] = energy
            clusters.x[c] = mean_x
            clusters.y[c] = mean_y
            clusters.sigma_x[c] = math.sqrt(max(sums[3 * rows + c] / energy - mean_x * mean_x,
                                                0.0))
            clusters.sigma_y[c] = math.sqrt(max(sums[4 * rows + c] / energy - mean_y * mean_y,
                                                0.0))
            clusters.n_hits[c] = counts[c]
        else:
            clusters.energy[c] = 0.0
            clusters.x[c] = 0.0
            clusters.y[c] = 0.0
            clusters.sigma_x[c] = 0.0
            clusters.sigma_y[c] = 0.0
            clusters.n_hits[c] = 0
            clusters.layer[c] = 0


@pt.kernel
def flag_passing(acc, clusters, n_clusters, threshold, flags):
    """``flags[k] = 1`` where cluster ``k < n_clusters[0]`` scores above
    ``threshold``, else 0 (the last flag, ``flags[clusters.size]``, too: so that
    their exclusive scan ends with the count)."""
    n = min(n_clusters[0], clusters.size)
    for k in acc.uniform_elements(flags.size):
        passing = 0
        if k < n:
            if clusters.score[k] > threshold:
                passing = 1
        flags[k] = passing


@pt.kernel
def scatter_passing(acc, positions, out_indices):
    """Write each passing cluster's index at its position (the exclusive scan of the flags)."""
    for k in acc.uniform_elements(positions.size - 1):
        if positions[k + 1] != positions[k]:
            out_indices[positions[k]] = k


def cluster_features(queue: pt.Queue, hits: pt.PortableCollection,
                     clusters: pt.PortableCollection, alloc: Allocator | None = None,
                     n_hits: Any = None, n_clusters: Any = None) -> None:
    """Enqueue the features of the clusters that :func:`examples.calo.clue.cluster`
    found in ``hits`` into ``clusters``, a :class:`~examples.calo.layouts.Clusters`
    collection on ``queue.device``. Every column but ``score`` is written; a
    seed's energy is positive, so every cluster's is. ``alloc(shape, dtype)``
    gives the temporary sums and counts.

    ``n_hits`` and ``n_clusters`` are one-element int32 buffers on the device
    holding how many of ``hits`` and of ``clusters``' rows are the event's
    (default: :func:`~examples.calo.clue.device_count` of each collection's
    size); the rows of ``clusters`` after ``n_clusters[0]`` get zeros. The
    launches depend on the collections' sizes only.

    Example: two hits of 1 and 3 GeV at x = 1 and 3 cm form one cluster, with
    its barycentre at 2.5 cm and a width of sqrt(0.75) cm::

        >>> import numpy as np, portable as pt
        >>> from examples.calo.clue import ClueParams, cluster
        >>> from examples.calo.generator import Event, upload
        >>> from examples.calo.layouts import Clusters
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> hits = upload(q, Event(np.zeros(2, np.int32), np.array([1.0, 3.0], np.float32),
        ...                        np.zeros(2, np.float32), np.array([1.0, 3.0], np.float32)))
        >>> n = cluster(q, hits, ClueParams(n_layers=1, extent=8.0, dc=2.0, tile_size=8.0))
        >>> clusters = pt.PortableCollection(Clusters, n, q.device)
        >>> cluster_features(q, hits, clusters)
        >>> clusters.column("x").tolist(), round(float(clusters.column("sigma_x")[0]), 6)
        ([2.5], 0.866025)
    """
    rows = clusters.size
    if rows == 0:
        return
    alloc = alloc or default_alloc(queue)
    if n_hits is None:
        n_hits = device_count(queue, hits.size, alloc)
    if n_clusters is None:
        n_clusters = device_count(queue, rows, alloc)
    sums = alloc(SUMS * rows, np.float64)
    counts = alloc(rows, np.int32)
    pt.memset(queue, sums, 0)
    pt.memset(queue, counts, 0)
    pt.launch(queue, workdiv(queue, hits.size), accumulate_hits, hits.const_view(), n_hits,
              clusters.view(), sums, counts)
    pt.launch(queue, workdiv(queue, rows), finish_clusters, clusters.view(), n_clusters, sums,
              counts)


def select(queue: pt.Queue, clusters: pt.PortableCollection, threshold: float,
           out_indices: Any, alloc: Allocator | None = None) -> int:
    """Write the indices of the clusters whose ``score`` exceeds ``threshold``, in
    increasing order, to the front of ``out_indices`` (an int32 or int64 buffer
    on ``queue.device`` of ``clusters.size`` entries); return how many there
    are. Returning the count synchronizes the queue.

    Example::

        >>> import numpy as np, portable as pt
        >>> from examples.calo.layouts import Clusters
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> clusters = pt.PortableCollection(Clusters, 4, q.device, zero=True)
        >>> clusters.column("score")[:] = [0.9, 0.2, 0.7, 0.5]
        >>> out = np.full(4, -1, np.int32)
        >>> select(q, clusters, 0.5, out), out.tolist()
        (2, [0, 2, -1, -1])
    """
    count = enqueue_select(queue, clusters, threshold, out_indices, alloc)
    host = np.empty(1, np.int32)
    pt.memcpy(queue, host, count)
    queue.synchronize()
    return int(host[0])


def enqueue_select(queue: pt.Queue, clusters: pt.PortableCollection, threshold: float,
                   out_indices: Any, alloc: Allocator | None = None,
                   n_clusters: Any = None) -> Any:
    """Enqueue what :func:`select` does, without waiting, among the first
    ``n_clusters[0]`` clusters (a one-element int32 buffer on the device; default:
    :func:`~examples.calo.clue.device_count` of ``clusters.size``): a flag per
    row, their exclusive scan and a scatter of the passing indices, all sized by
    ``clusters.size``, so deterministic and in order without an atomic. Returns
    a one-element int32 buffer on ``queue.device`` (from ``alloc``) that holds the
    count once the queue has done the work.

    Example: the first 3 rows of 4 are clusters::

        >>> import numpy as np, portable as pt
        >>> from examples.calo.clue import device_count
        >>> from examples.calo.layouts import Clusters
        >>> q = pt.Queue(pt.get_device("cpu_serial"), blocking=False)
        >>> clusters = pt.PortableCollection(Clusters, 4, q.device, zero=True)
        >>> clusters.column("score")[:] = [0.1, 0.8, 0.9, 0.9]
        >>> out = np.full(4, -1, np.int64)
        >>> count = enqueue_select(q, clusters, 0.5, out, n_clusters=device_count(q, 3))
        >>> q.synchronize(); int(count[0]), out.tolist()
        (2, [1, 2, -1, -1])
    """
    alloc = alloc or default_alloc(queue)
    rows = clusters.size
    if n_clusters is None:
        n_clusters = device_count(queue, rows, alloc)
    positions = alloc(rows + 1, np.int32)
    pt.launch(queue, workdiv(queue, rows + 1), flag_passing, clusters.const_view(), n_clusters,
              np.float32(threshold), positions)
    kernels.exclusive_scan(queue, positions, positions, alloc=alloc)
    pt.launch(queue, workdiv(queue, rows), scatter_passing, positions, out_indices)
    return positions[rows:]
