"""Checking an event's device results on host copies, and the merge's quality.

:func:`check` compares, for one event:

* the edges with :func:`examples.gnn.reference.build_edges` -- as sets of
  ``(src, dst)``, exactly;
* the edge features with :func:`~examples.gnn.reference.edge_features` (float64
  from the same float32 inputs) within :data:`FEATURE_RTOL` / :data:`FEATURE_ATOL`;
* the scores with the model run on the host copies, within :data:`SCORE_ATOL`;
* the labels with host union-find (:func:`~examples.gnn.reference.union_find`)
  over the edges that the *device* scores pass: exactly;
* the merged particles with :func:`~examples.gnn.reference.merge` of the device
  labels: roots and sizes exactly, energies and barycentres within
  :data:`FEATURE_RTOL`.

:class:`Validation` gathers the outcome of every event and the merge's
energy-weighted efficiency and purity against the generator's truth.

Example::

    >>> v = Validation()
    >>> v.record(0, [], Quality(9.0, 8.0, 10.0, 5.0)); v.record(1, ["edges differ"], None)
    >>> print(v.summary())
    Validation FAILED: 1 of 2 events differ from the reference: event 1
      event 1: edges differ
    Merge against truth (energy weighted, 1 events): efficiency 90.0%, purity 80.0% (unmerged tracksters: efficiency 50.0%)
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np
import torch

import portable as pt

from . import reference
from .generator import Event
from .layouts import EDGE_FEATURES
from .scoring import block_tensors

#: features agree with the float64 reference within these (float32 arithmetic)
FEATURE_RTOL, FEATURE_ATOL = 1e-5, 1e-5
#: device scores agree with the model run on host copies within this (float32 sums
#: in another order, another matrix-multiply library on a GPU)
SCORE_ATOL = 1e-4


@dataclass(frozen=True)
class Quality:
    """One event's efficiency and purity sums, the energy, and the efficiency sum of
    the unmerged tracksters (see :func:`~examples.gnn.reference.efficiency_purity`)."""

    efficiency: float
    purity: float
    energy: float
    unmerged: float


def _differ(name: str, got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> list[str]:
    bad = ~np.isclose(got, want, rtol=rtol, atol=atol)
    if not bad.any():
        return []
    k = int(np.argmax(bad))
    return [f"{name} differs at {int(bad.sum())} of {bad.size} (first at {k}: {got[k]} vs "
            f"{want[k]})"]


def check(event: Event, nodes: pt.PortableCollection, edges: pt.PortableCollection,
          n_edges: int, particles: pt.PortableCollection, n_particles: int,
          module: torch.nn.Module) -> tuple[list[str], Quality]:
    """The problems of one event's host copies of the device results (empty if none)
    and the merge's quality (see the module's docstring)."""
    problems: list[str] = []
    n = event.n_nodes
    src, dst = edges.column("src")[:n_edges], edges.column("dst")[:n_edges]
    want_src, want_dst = reference.build_edges(event.columns)
    got_pairs = set(zip(src.tolist(), dst.tolist()))
    want_pairs = set(zip(want_src.tolist(), want_dst.tolist()))
    if got_pairs != want_pairs or len(got_pairs) != n_edges:
        problems.append(f"edges differ: {n_edges} edges ({len(got_pairs)} distinct), "
                        f"{len(want_pairs)} expected, {len(got_pairs - want_pairs)} extra, "
                        f"{len(want_pairs - got_pairs)} missing")
        return problems, Quality(0.0, 0.0, 0.0, 0.0)
    features = np.stack([edges.column(f)[:n_edges] for f in EDGE_FEATURES], axis=1)
    want = reference.edge_features(event.columns, src, dst)
    for k, name in enumerate(EDGE_FEATURES):
        problems += _differ(f"edge feature {name}", features[:, k], want[:, k],
                            FEATURE_RTOL, FEATURE_ATOL)
    node_x, index, edge_x, _ = block_tensors(nodes, edges)
    with torch.inference_mode():
        host_scores = module(node_x, index, edge_x,
                             torch.tensor([n_edges], dtype=torch.int32))[:n_edges, 0].numpy()
    scores = edges.column("score")[:n_edges]
    problems += _differ("score", scores, host_scores, 0.0, SCORE_ATOL)
    passing = reference.passing(event.columns, src, dst, scores)
    labels = nodes.column("label")[:n]
    want_labels = reference.union_find(n, src[passing], dst[passing])
    if not np.array_equal(labels, want_labels):
        problems.append(f"labels differ at {int((labels != want_labels).sum())} of {n} "
                        f"tracksters")
    merged = reference.merge(event.columns, labels)
    if n_particles != merged.root.size or not np.array_equal(
            particles.column("root")[:n_particles], merged.root) or not np.array_equal(
            particles.column("n_tracksters")[:n_particles], merged.n_tracksters):
        problems.append(f"particles differ: {n_particles} particles, {merged.root.size} "
                        f"expected (or other roots or sizes)")
    else:
        for name in ("energy", "x", "y", "z"):
            problems += _differ(f"particle {name}", particles.column(name)[:n_particles],
                                getattr(merged, name), FEATURE_RTOL, FEATURE_ATOL)
    energy = event.feature("raw_energy").astype(np.float64)
    efficiency, purity, total = reference.efficiency_purity(energy, event.particle, labels)
    unmerged = reference.efficiency_purity(energy, event.particle, np.arange(n))[0]
    return problems, Quality(efficiency, purity, total, unmerged)


@dataclass
class Validation:
    """The events checked, the problems of those that differ and the quality sums
    (from any thread)."""

    checked: int = 0
    failed: dict[int, list[str]] = field(default_factory=dict)
    efficiency: float = 0.0
    purity: float = 0.0
    energy: float = 0.0
    unmerged: float = 0.0
    scored: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, number: int, problems: list[str], quality: Quality | None) -> None:
        """Count event ``number`` with its ``problems`` (empty if none) and quality."""
        with self.lock:
            self.checked += 1
            if problems:
                self.failed[number] = problems
            if quality is not None and quality.energy > 0:
                self.scored += 1
                self.efficiency += quality.efficiency
                self.purity += quality.purity
                self.energy += quality.energy
                self.unmerged += quality.unmerged

    def summary(self) -> str:
        """A line, a line per failed event, and the merge's quality."""
        if not self.failed:
            lines = [f"Validation: all {self.checked} events agree with the reference"]
        else:
            numbers = sorted(self.failed)
            lines = [f"Validation FAILED: {len(numbers)} of {self.checked} events differ from "
                     f"the reference: event{'s' if len(numbers) > 1 else ''} "
                     f"{', '.join(map(str, numbers))}"]
            lines += [f"  event {n}: {'; '.join(self.failed[n])}" for n in numbers]
        if self.energy > 0:
            lines.append(f"Merge against truth (energy weighted, {self.scored} events): "
                         f"efficiency {100 * self.efficiency / self.energy:.1f}%, purity "
                         f"{100 * self.purity / self.energy:.1f}% (unmerged tracksters: "
                         f"efficiency {100 * self.unmerged / self.energy:.1f}%)")
        return "\n".join(lines)


