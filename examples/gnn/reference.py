"""Plain NumPy versions of the example's device steps, written independently of the
kernels: the graph (all pairs, no tiles), the edge features, union-find on the
host, the merged particles, and the merge's efficiency and purity against truth.

Example::

    >>> from examples.gnn.generator import generate
    >>> event = generate(0, "tiny")
    >>> src, dst = build_edges(event.columns)
    >>> bool((np.abs(event.feature("barycenter_z")[dst])
    ...       > np.abs(event.feature("barycenter_z")[src])).all())
    True
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .layouts import feature_index

#: neighbours lie within this much in |eta| and in phi (radians)
WINDOW = np.float32(0.1)
PI = np.float32(np.pi)
TWO_PI = np.float32(2 * np.pi)
#: the score an edge must exceed to merge: LOW_CUT when the larger raw energy of its
#: two tracksters is below ENERGY_SPLIT (GeV), else HIGH_CUT
LOW_CUT, HIGH_CUT, ENERGY_SPLIT = np.float32(0.5), np.float32(0.8), np.float32(50.0)


def _column(columns: np.ndarray, name: str) -> np.ndarray:
    return columns[feature_index(name)]


def neighbours(columns: np.ndarray) -> np.ndarray:
    """The (N, N) matrix of directed edges ``i -> j``: same endcap, ``|eta|`` and phi
    (wrapped) within :data:`WINDOW`, and ``|z_j| > |z_i|``; compared in float32 as
    the kernels compare."""
    eta, phi = _column(columns, "barycenter_eta"), _column(columns, "barycenter_phi")
    z = _column(columns, "barycenter_z")
    abs_eta, abs_z = np.abs(eta), np.abs(z)
    d_eta = np.abs(abs_eta[:, None] - abs_eta[None, :])
    d_phi = np.abs(phi[:, None] - phi[None, :])
    d_phi = np.where(d_phi > PI, TWO_PI - d_phi, d_phi)
    same_side = (z[:, None] > 0) == (z[None, :] > 0)
    return same_side & (d_eta <= WINDOW) & (d_phi <= WINDOW) & (abs_z[None, :] > abs_z[:, None])


def build_edges(columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The edges ``(src, dst)`` as int32 arrays, sorted by ``(src, dst)``."""
    src, dst = np.nonzero(neighbours(columns))
    return src.astype(np.int32), dst.astype(np.int32)


def edge_features(columns: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """The (E, 5) float64 edge features: |delta raw energy|, |delta z|, hypot(delta x,
    delta y), the angle between the principal eigenvectors (radians), |delta time|."""
    c = columns.astype(np.float64)

    def delta(name: str) -> np.ndarray:
        return _column(c, name)[dst] - _column(c, name)[src]

    axes = np.stack([_column(c, f"eigenvector_{k}") for k in "xyz"], axis=1)
    a, b = axes[src], axes[dst]
    angle = np.arctan2(np.linalg.norm(np.cross(a, b), axis=1), (a * b).sum(axis=1))
    return np.stack([np.abs(delta("raw_energy")), np.abs(delta("barycenter_z")),
                     np.hypot(delta("barycenter_x"), delta("barycenter_y")), angle,
                     np.abs(delta("time"))], axis=1)


def passing(columns: np.ndarray, src: np.ndarray, dst: np.ndarray,
            score: np.ndarray) -> np.ndarray:
    """Which edges pass the score cut (:data:`LOW_CUT` / :data:`HIGH_CUT`)."""
    energy = _column(columns, "raw_energy")
    larger = np.maximum(energy[src], energy[dst])
    return score > np.where(larger < ENERGY_SPLIT, LOW_CUT, HIGH_CUT)


def union_find(n: int, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Component labels of ``n`` nodes joined by the edges ``src[k] - dst[k]``: each
    node's label is the smallest node index of its component.

    Example::

        >>> union_find(5, np.array([3, 1]), np.array([4, 3])).tolist()
        [0, 1, 2, 1, 1]
    """
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in zip(src.tolist(), dst.tolist()):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return np.array([root(i) for i in range(n)], dtype=np.int32)


@dataclass(frozen=True)
class Merged:
    """Merged particles in the order of their roots."""

    energy: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    n_tracksters: np.ndarray
    root: np.ndarray


def merge(columns: np.ndarray, labels: np.ndarray) -> Merged:
    """The energy sum and energy-weighted barycentre of every component of ``labels``
    (float64)."""
    energy = _column(columns, "raw_energy").astype(np.float64)
    roots, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    total = np.bincount(inverse, energy)

    def weighted(name: str) -> np.ndarray:
        return np.bincount(inverse, energy * _column(columns, name)) / total

    return Merged(total, weighted("barycenter_x"), weighted("barycenter_y"),
                  weighted("barycenter_z"), counts.astype(np.int32), roots.astype(np.int32))


def efficiency_purity(energy: np.ndarray, truth: np.ndarray,
                      labels: np.ndarray) -> tuple[float, float, float]:
    """``(efficiency, purity, total)`` sums of the merge against truth, energy weighted:
    the efficiency sum adds, over the true particles, the energy of each that its
    best merged particle holds; the purity sum adds, over the merged particles, the
    energy of each that its best true particle gave; ``total`` is the energy
    (divide both sums by it).

    Example::

        >>> e = np.array([1.0, 1.0, 2.0])
        >>> efficiency_purity(e, np.array([0, 0, 1]), np.array([0, 1, 1]))
        (3.0, 3.0, 4.0)
    """
    _, t = np.unique(truth, return_inverse=True)
    _, m = np.unique(labels, return_inverse=True)
    shared = np.zeros((t.max(initial=-1) + 1, m.max(initial=-1) + 1))
    np.add.at(shared, (t, m), energy)
    return (float(shared.max(axis=1, initial=0).sum()), float(shared.max(axis=0, initial=0).sum()),
            float(energy.sum()))
