"""Deterministic synthetic calorimeter events: showers plus noise on a layered grid.

The detector is ``n_layers`` layers of ``cells x cells`` square cells of side
``cell_size`` cm; a hit sits at its cell's centre. A shower deposits, in each
layer, an energy falling with depth, spread over the cells with a Gaussian
lateral profile that widens with depth; noise adds small energies in random
cells. Deposits in one cell add up to one hit, energies are rounded to the
readout's least significant bit :data:`ENERGY_LSB` (so every sum the
clustering makes of them is exact in float32: see :mod:`examples.calo.clue`),
and cells under :data:`THRESHOLD` are dropped. The hits come out in a random
order. Everything is drawn from a generator seeded by ``(seed, event)``: the
same event number gives the same event on every machine.

Example::

    >>> from examples.calo.generator import generate
    >>> event = generate(7, "tiny")
    >>> event.n_hits == generate(7, "tiny").n_hits, event.layer.dtype.name
    (True, 'int32')
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

import portable as pt

from .layouts import Hits

#: energy resolution of the readout (GeV): every hit energy is a multiple of it
ENERGY_LSB = 2.0**-8
#: a cell's energy at most (GeV), so that local densities stay exact in float32
MAX_CELL_ENERGY = 127.0
#: cells with less energy (GeV) give no hit
THRESHOLD = 0.02
#: a shower deposits energy in the cells within this many lateral widths of its axis
WINDOW = 6.0


@dataclass(frozen=True)
class Geometry:
    """The calorimeter: ``n_layers`` layers of ``cells x cells`` cells of ``cell_size`` cm."""

    n_layers: int = 10
    cells: int = 128
    cell_size: float = 1.0

    @property
    def extent(self) -> float:
        """The side of a layer in cm: hits have ``0 <= x, y < extent``."""
        return self.cells * self.cell_size


@dataclass(frozen=True)
class EventShape:
    """What an event holds: ``showers`` showers of ``energy`` GeV each (a range),
    plus ``noise`` noisy cells, on ``geometry``."""

    geometry: Geometry
    showers: int
    noise: int
    energy: tuple[float, float] = (10.0, 60.0)


#: event shapes by name: about 100, 1k and 10k hits per event
SHAPES = {
    "tiny": EventShape(Geometry(n_layers=3, cells=32), showers=2, noise=30),
    "small": EventShape(Geometry(), showers=3, noise=300),
    "large": EventShape(Geometry(), showers=30, noise=3000),
}


class Event(NamedTuple):
    """An event's hits as host arrays of one length."""

    layer: np.ndarray   # int32
    x: np.ndarray       # float32, cm
    y: np.ndarray       # float32, cm
    energy: np.ndarray  # float32, GeV, multiples of ENERGY_LSB

    @property
    def n_hits(self) -> int:
        """The number of hits."""
        return int(self.layer.size)


def _shower(rng: np.random.Generator, grid: np.ndarray, geometry: Geometry,
            energy: tuple[float, float]) -> None:
    """Add one shower's deposits to ``grid`` (layers x cells x cells, GeV)."""
    size = geometry.cell_size
    total = rng.uniform(*energy)
    centre = rng.uniform(0.15, 0.85, 2) * geometry.extent
    tilt = rng.normal(0.0, 0.15, 2) * size
    depth = np.arange(geometry.n_layers)
    fractions = np.exp(-depth / 3.5)
    fractions /= fractions.sum()
    for layer in depth:
        sigma = (0.8 + 0.25 * layer) * size
        cx, cy = centre + tilt * layer
        xs, gx = _profile(cx, sigma, geometry)
        ys, gy = _profile(cy, sigma, geometry)
        profile = np.outer(gx, gy) * (size * size / (2.0 * np.pi * sigma * sigma))
        fluctuation = rng.gamma(20.0, 1.0 / 20.0, profile.shape)
        grid[layer, xs, ys] += total * fractions[layer] * profile * fluctuation


def _profile(mean: float, sigma: float, geometry: Geometry) -> tuple[slice, np.ndarray]:
    """The cells within ``WINDOW`` sigmas of ``mean`` along one axis (beyond them a
    shower deposits far less than ``ENERGY_LSB``), and the Gaussian at their centres."""
    size = geometry.cell_size
    first = min(max(int((mean - WINDOW * sigma) // size), 0), geometry.cells)
    last = min(max(int((mean + WINDOW * sigma) // size) + 1, first), geometry.cells)
    centres = (np.arange(first, last) + 0.5) * size
    return slice(first, last), np.exp(-0.5 * ((centres - mean) / sigma) ** 2)


def generate(event: int, shape: str | EventShape = "small", seed: int = 2020) -> Event:
    """The hits of event number ``event`` of the given shape (a name of
    :data:`SHAPES` or an :class:`EventShape`), drawn from ``(seed, event)``.

    Example::

        >>> event = generate(0, "small")
        >>> 700 < event.n_hits < 1300
        True
        >>> bool((event.energy / ENERGY_LSB % 1 == 0).all())
        True
    """
    shape = SHAPES[shape] if isinstance(shape, str) else shape
    geometry = shape.geometry
    rng = np.random.default_rng([seed, event])
    grid = np.zeros((geometry.n_layers, geometry.cells, geometry.cells))
    for _ in range(shape.showers):
        _shower(rng, grid, geometry, shape.energy)
    noisy = rng.integers(0, grid.size, shape.noise)
    np.add.at(grid.reshape(-1), noisy, THRESHOLD + rng.exponential(0.05, shape.noise))
    grid = np.minimum(np.round(grid / ENERGY_LSB) * ENERGY_LSB, MAX_CELL_ENERGY)
    layer, ix, iy = np.nonzero(grid >= THRESHOLD)
    order = rng.permutation(layer.size)
    layer, ix, iy = layer[order], ix[order], iy[order]
    return Event(layer=layer.astype(np.int32),
                 x=((ix + 0.5) * geometry.cell_size).astype(np.float32),
                 y=((iy + 0.5) * geometry.cell_size).astype(np.float32),
                 energy=grid[layer, ix, iy].astype(np.float32))


class Capacity(NamedTuple):
    """How many hits and clusters the buffers of one event are allocated for."""

    hits: int
    clusters: int


#: the events whose largest hit count sets a shape's default capacity
CAPACITY_SAMPLE = 16
#: the default capacity's room above that largest hit count
CAPACITY_HEADROOM = 1.25
#: clusters per hit that a default capacity allows (events have about 1-3 per 100)
CLUSTERS_PER_HIT = 1 / 16


@functools.lru_cache(maxsize=None)
def capacity_for(shape: str | EventShape, hits: int = 0, clusters: int = 0) -> Capacity:
    """The capacity of buffers for events of ``shape``: ``hits`` (0: the most hits
    among the first :data:`CAPACITY_SAMPLE` events times :data:`CAPACITY_HEADROOM`,
    rounded up to a multiple of 64) and ``clusters`` (0: :data:`CLUSTERS_PER_HIT`
    of the hits, 32 at least, the hits at most).

    Example::

        >>> capacity_for("small")
        Capacity(hits=1600, clusters=100)
        >>> capacity_for("small", hits=2000, clusters=10)
        Capacity(hits=2000, clusters=10)
    """
    if hits < 0 or clusters < 0:
        raise ValueError(f"capacity_for: hits={hits} and clusters={clusters} must be >= 0 "
                         f"(0: the shape's default)")
    if not hits:
        most = max(generate(n, shape).n_hits for n in range(CAPACITY_SAMPLE))
        hits = -(-math.ceil(most * CAPACITY_HEADROOM) // 64) * 64
    if not clusters:
        clusters = min(hits, max(32, round(hits * CLUSTERS_PER_HIT)))
    return Capacity(hits, clusters)


def upload(queue: pt.Queue, event: Event) -> pt.PortableCollection:
    """A :class:`~examples.calo.layouts.Hits` collection on ``queue.device`` holding
    ``event``'s inputs (the result columns are zero until clustering fills them).

    Example::

        >>> import portable as pt
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> hits = upload(q, generate(3, "tiny"))
        >>> hits.size == generate(3, "tiny").n_hits
        True
    """
    host = pt.PortableCollection(Hits, event.n_hits, pt.get_device("cpu_serial"), zero=True)
    for name in ("layer", "x", "y", "energy"):
        host.column(name)[:] = getattr(event, name)
    if queue.device is host.device:
        return host
    return host.to(queue)
