"""Deterministic synthetic events for the GNN example: particles fragmented into
tracksters in the two endcaps of a calorimeter (z > 0 and z < 0).

Particles come in jets (a few particles around a common axis) at ``1.6 < |eta| <
2.9``; each particle breaks into one or more tracksters strung along its direction
at ``320 < |z| < 500`` cm, close in eta and phi and in time, sharing its energy.
Pileup adds lone soft tracksters spread in eta, phi and time. Each trackster
carries the 29 features of :data:`examples.gnn.layouts.NODE_FEATURES` and the id
of the particle it came from (the truth the model learns and the merge is scored
against). Everything is drawn from a generator seeded by ``(seed, event)``: the
same event number gives the same event on every machine and thread.

Example::

    >>> event = generate(3)
    >>> event.n_nodes == generate(3).n_nodes, event.columns.shape[0], event.columns.dtype.name
    (True, 29, 'float32')
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .layouts import feature_index

#: the front face and the back of the calorimeter, |z| in cm
Z_FRONT, Z_BACK = 320.0, 500.0
#: the |eta| range of the particles
ETA_RANGE = (1.6, 2.9)
#: the six particle kinds of the ID probabilities (photon, electron, muon, neutral
#: hadron, charged hadron, unknown) and each one's electromagnetic energy fraction
EM_FRACTION = ((0.92, 1.0), (0.9, 1.0), (0.05, 0.15), (0.1, 0.5), (0.2, 0.6), (0.3, 0.7))


@dataclass(frozen=True)
class EventShape:
    """How busy an event is: per endcap, ``jets`` jets on average (binomially
    spread; the mean itself varies from event to event by a factor in ``spread``)
    of ``1 + Poisson(particles)`` particles each, and ``pileup`` lone soft
    tracksters on average. ``capacity`` is
    the node capacity the pipeline allocates for this shape (the largest events fit),
    ``edges_per_node`` the edge capacity per node of capacity."""

    jets: float
    particles: float
    pileup: float
    spread: tuple[float, float] = (0.75, 1.25)
    capacity: int = 512
    edges_per_node: int = 6

    @property
    def edge_capacity(self) -> int:
        """The edge capacity that goes with the node capacity."""
        return self.capacity * self.edges_per_node


#: event shapes by name: ``typical`` ~266 tracksters and ~900 edges per event, ``large``
#: about twice the tracksters, ``tiny`` a few dozen (tests)
SHAPES = {
    "tiny": EventShape(jets=1.5, particles=1.4, pileup=6.0, capacity=128, edges_per_node=8),
    "typical": EventShape(jets=10.0, particles=1.4, pileup=40.0, capacity=512),
    "large": EventShape(jets=20.0, particles=1.4, pileup=80.0, capacity=1024),
}


class Event(NamedTuple):
    """An event's tracksters: ``columns`` (29, N) float32, one row per feature of
    :data:`~examples.gnn.layouts.NODE_FEATURES` (the SoA's column order), and
    ``particle`` (N,) int32, the truth id of the particle each came from."""

    columns: np.ndarray
    particle: np.ndarray

    @property
    def n_nodes(self) -> int:
        """The number of tracksters."""
        return int(self.particle.size)

    @property
    def features(self) -> np.ndarray:
        """The features as an (N, 29) array (a view)."""
        return self.columns.T

    def feature(self, name: str) -> np.ndarray:
        """One feature's column, e.g. ``event.feature("raw_energy")``."""
        return self.columns[feature_index(name)]


def _particles(rng: np.random.Generator, shape: EventShape) -> dict[str, np.ndarray]:
    """Every particle's endcap ``sign``, ``eta`` (|eta|), ``phi``, ``energy`` (GeV),
    ``kind`` (0-5), ``time`` (ns) and number of ``fragments``, pileup included."""
    busy = rng.uniform(*shape.spread)
    n_jets = rng.binomial(round(2 * shape.jets * busy), 0.5, 2)
    n_pileup = rng.poisson(shape.pileup * busy, 2)
    jet_sign = np.repeat([1.0, -1.0], n_jets)
    per_jet = 1 + rng.poisson(shape.particles, jet_sign.size)
    jet = np.repeat(np.arange(jet_sign.size), per_jet)
    n_hard = jet.size
    jet_eta = rng.uniform(*ETA_RANGE, jet_sign.size)
    jet_phi = rng.uniform(-np.pi, np.pi, jet_sign.size)
    jet_time = rng.normal(0.0, 0.03, jet_sign.size)
    hard_energy = np.exp(rng.uniform(np.log(3.0), np.log(200.0), n_hard))
    n_soft = int(n_pileup.sum())
    return {
        "sign": np.concatenate([jet_sign[jet], np.repeat([1.0, -1.0], n_pileup)]),
        "eta": np.concatenate([np.clip(jet_eta[jet] + rng.normal(0.0, 0.06, n_hard),
                                       *ETA_RANGE), rng.uniform(*ETA_RANGE, n_soft)]),
        "phi": np.concatenate([jet_phi[jet] + rng.normal(0.0, 0.06, n_hard),
                               rng.uniform(-np.pi, np.pi, n_soft)]),
        "energy": np.concatenate([hard_energy, rng.exponential(2.0, n_soft) + 0.3]),
        "kind": rng.integers(0, 6, n_hard + n_soft),
        "time": np.concatenate([jet_time[jet] + rng.normal(0.0, 0.02, n_hard),
                                rng.normal(0.0, 0.18, n_soft)]),
        "fragments": np.concatenate([1 + rng.poisson(0.9 * np.log(hard_energy)),
                                     np.ones(n_soft, np.int64)]),
    }


def generate(event: int, shape: str | EventShape = "typical", seed: int = 2024) -> Event:
    """The tracksters of event number ``event`` of the given shape (a name of
    :data:`SHAPES` or an :class:`EventShape`), drawn from ``(seed, event)``, in a
    random order.

    Example::

        >>> e = generate(0)
        >>> 100 < e.n_nodes < 500, bool((e.feature("raw_energy") > 0).all())
        (True, True)
    """
    shape = SHAPES[shape] if isinstance(shape, str) else shape
    rng = np.random.default_rng([seed, event])
    p = _particles(rng, shape)
    pid = np.repeat(np.arange(p["sign"].size), p["fragments"])
    n = pid.size
    # each particle's energy shared over its fragments (gamma draws: a Dirichlet(2))
    draws = rng.gamma(2.0, 1.0, n)
    shares = draws / np.bincount(pid, draws)[pid] * p["energy"][pid] * \
        rng.uniform(0.8, 1.0, p["sign"].size)[pid]
    depth = rng.uniform(0.0, Z_BACK - Z_FRONT - 30.0, n)
    features = _tracksters(rng, {k: v[pid] for k, v in p.items()}, shares, depth)
    _trackster_density(features)
    order = rng.permutation(n)
    columns = np.ascontiguousarray(features[order].T, dtype=np.float32)
    return Event(columns, pid.astype(np.int32)[order])


def _tracksters(rng: np.random.Generator, p: dict[str, np.ndarray], energy: np.ndarray,
                depth: np.ndarray) -> np.ndarray:
    """The (N, 29) features of tracksters of particles ``p`` (one row each) with raw
    ``energy`` and ``depth`` behind the front face (trackster density left at 0)."""
    n = energy.size
    sign = p["sign"]
    eta = np.clip(p["eta"] + rng.normal(0.0, 0.012, n), 1.5, 3.0)
    phi = (p["phi"] + rng.normal(0.0, 0.012, n) + np.pi) % (2 * np.pi) - np.pi
    z = sign * (Z_FRONT + depth + rng.uniform(5.0, 15.0, n))
    radius = np.abs(z) / np.sinh(eta)
    # the principal axis follows the particle's direction, not the trackster's position
    axis_eta, axis_phi = p["eta"], p["phi"]
    direction = np.stack([np.cos(axis_phi) / np.cosh(axis_eta),
                          np.sin(axis_phi) / np.cosh(axis_eta), sign * np.tanh(axis_eta)],
                         axis=1) + rng.normal(0.0, 0.003, (n, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    length = 4.0 + 6.0 * np.log1p(energy) * rng.uniform(0.7, 1.3, n)
    eigen = np.stack([length ** 2 / 12.0, (0.4 + 0.1 * energy ** 0.3) ** 2,
                      (0.3 + 0.05 * energy ** 0.3) ** 2], axis=1) * rng.uniform(0.9, 1.1, (n, 3))
    sigma = np.sqrt(eigen) * rng.uniform(0.95, 1.05, (n, 3))
    n_lc = np.maximum(1, rng.poisson(2.0 + 3.0 * np.sqrt(energy)))
    n_hits = n_lc * (3 + rng.poisson(5.0, n))
    low, high = np.array(EM_FRACTION).T
    em = energy * rng.uniform(low[p["kind"]], high[p["kind"]])
    logits = rng.normal(0.0, 1.0, (n, 6))
    logits[np.arange(n), p["kind"]] += 2.5
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    time = p["time"] + rng.normal(0.0, 0.01, n)
    return np.column_stack([
        radius * np.cos(phi), radius * np.sin(phi), z, sign * eta, phi, direction, eigen,
        sigma, n_lc, n_hits, energy, em, probabilities, z - length / 2, z + length / 2,
        n_lc / length, np.zeros(n), time])


def _trackster_density(features: np.ndarray) -> None:
    """Fill the trackster density: the number of other tracksters of the same endcap
    within 0.2 in (eta, phi)."""
    eta = features[:, feature_index("barycenter_eta")]
    phi = features[:, feature_index("barycenter_phi")]
    d_phi = np.abs(phi[:, None] - phi[None, :])
    d_phi = np.minimum(d_phi, 2 * np.pi - d_phi)
    near = (np.hypot(eta[:, None] - eta[None, :], d_phi) < 0.2) & \
        (np.sign(eta[:, None]) == np.sign(eta[None, :]))
    features[:, feature_index("trackster_density")] = near.sum(axis=1) - 1
