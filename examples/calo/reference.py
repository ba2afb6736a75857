"""CLUE and cluster features in plain NumPy, for validating the portable kernels.

Written for clarity, not speed: each layer's hits are compared all against
all (fine up to a few thousand hits per layer). Distances and densities are
computed in float64 from the float32 inputs, then rounded to float32 and
compared as the kernels store them: on the generator's events (cell centres on a unit grid, energies on
the ``ENERGY_LSB`` grid) every one of them is exact, so the labels must match
the kernels' exactly. The cluster numbering is the kernels': seeds in the
order of their hit indices.

Example::

    >>> import numpy as np
    >>> from examples.calo.clue import ClueParams
    >>> from examples.calo.generator import Event
    >>> event = Event(np.array([0, 0, 1], np.int32), np.array([1.5, 2.5, 1.5], np.float32),
    ...               np.array([1.5, 1.5, 1.5], np.float32), np.array([1.0, 2.0, 1.0], np.float32))
    >>> result = clue(event, ClueParams(n_layers=2, extent=8.0, rhoc=0.5))
    >>> result.cluster_id.tolist(), result.n_clusters
    ([0, 0, 1], 2)
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .clue import ClueParams
from .generator import Event


class ClueResult(NamedTuple):
    """Per-hit results of CLUE, as the kernels store them."""

    rho: np.ndarray             # float32
    delta: np.ndarray           # float32, inf without a denser hit within dm
    nearest_higher: np.ndarray  # int32, -1 for none
    is_seed: np.ndarray         # int32, 0 or 1
    cluster_id: np.ndarray      # int32, -1 for unclustered hits

    @property
    def n_clusters(self) -> int:
        """The number of clusters (of seeds)."""
        return int(self.is_seed.sum())


class Features(NamedTuple):
    """Per-cluster features, in float64 (``n_hits`` and ``layer`` as int64)."""

    energy: np.ndarray
    x: np.ndarray
    y: np.ndarray
    sigma_x: np.ndarray
    sigma_y: np.ndarray
    n_hits: np.ndarray
    layer: np.ndarray


def clue(event: Event, params: ClueParams) -> ClueResult:
    """CLUE on ``event``'s hits with ``params`` (see :mod:`examples.calo.clue` for
    the definitions this follows)."""
    n = event.n_hits
    rho = np.zeros(n)
    nearest_d2 = np.full(n, np.inf)
    nearest = np.full(n, -1, np.int64)
    dc2, dm2 = float(params.dc2), float(params.dm2)
    x, y, energy = (a.astype(np.float64) for a in (event.x, event.y, event.energy))
    for layer in np.unique(event.layer):
        members = np.flatnonzero(event.layer == layer)  # increasing hit index
        dx = x[members][:, None] - x[members][None, :]
        dy = y[members][:, None] - y[members][None, :]
        d2 = dx * dx + dy * dy
        weight = np.where(d2 <= dc2, 0.5, 0.0)
        np.fill_diagonal(weight, 1.0)
        rho[members] = weight @ energy[members]
        here = rho[members].astype(np.float32)
        # denser[a, b]: hit b is denser than hit a (larger rho, or equal and smaller index)
        denser = (here[None, :] > here[:, None]) | (
            (here[None, :] == here[:, None]) & (members[None, :] < members[:, None]))
        candidate = np.where(denser & (d2 <= dm2), d2, np.inf)
        best = np.argmin(candidate, axis=1)  # the first minimum: the smallest index
        closest = candidate[np.arange(members.size), best]
        found = np.isfinite(closest)
        nearest[members[found]] = members[best[found]]
        nearest_d2[members[found]] = closest[found]
    rho32 = rho.astype(np.float32)
    is_seed = (rho32 > np.float32(params.rhoc)) & (nearest_d2 > dc2)
    cluster_id = np.full(n, -1, np.int64)
    cluster_id[is_seed] = np.arange(int(is_seed.sum()))
    # a hit's nearest higher is denser, so visiting hits from the densest down
    # labels every hit after the one it follows
    for i in sorted(range(n), key=lambda k: (-rho32[k], k)):
        if not is_seed[i] and nearest[i] >= 0:
            cluster_id[i] = cluster_id[nearest[i]]
    delta = np.sqrt(nearest_d2).astype(np.float32)
    return ClueResult(rho32, delta, nearest.astype(np.int32),
                      is_seed.astype(np.int32), cluster_id.astype(np.int32))


def features(event: Event, cluster_id: np.ndarray, n_clusters: int) -> Features:
    """The energy, energy-weighted barycentre and widths, size and layer of each
    of the ``n_clusters`` clusters that ``cluster_id`` assigns the hits to.

    Example::

        >>> import numpy as np
        >>> from examples.calo.generator import Event
        >>> event = Event(np.zeros(2, np.int32), np.array([1.0, 3.0], np.float32),
        ...               np.zeros(2, np.float32), np.array([1.0, 3.0], np.float32))
        >>> f = features(event, np.array([0, 0]), 1)
        >>> float(f.energy[0]), float(f.x[0]), float(f.sigma_x[0])
        (4.0, 2.5, 0.8660254037844386)
    """
    inside = cluster_id >= 0
    ids = cluster_id[inside]
    e = event.energy[inside].astype(np.float64)
    x = event.x[inside].astype(np.float64)
    y = event.y[inside].astype(np.float64)
    energy = np.bincount(ids, e, n_clusters)
    mean_x = np.bincount(ids, e * x, n_clusters) / energy
    mean_y = np.bincount(ids, e * y, n_clusters) / energy
    var_x = np.bincount(ids, e * (x - mean_x[ids]) ** 2, n_clusters) / energy
    var_y = np.bincount(ids, e * (y - mean_y[ids]) ** 2, n_clusters) / energy
    layer = np.zeros(n_clusters, np.int64)
    layer[ids] = event.layer[inside]
    return Features(energy, mean_x, mean_y, np.sqrt(var_x), np.sqrt(var_y),
                    np.bincount(ids, minlength=n_clusters), layer)
