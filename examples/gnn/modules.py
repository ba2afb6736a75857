"""The GNN example's pipeline modules. Every device step works on collections of a
fixed capacity per event shape with the counts on the device, follows the rules of
graph mode (``capturable = True``) and takes its host inputs from ``stage``:

* :class:`Upload` -- stages the event's tracksters in pinned memory (padded to the
  capacity) and copies them into a :class:`~examples.gnn.layouts.Nodes` collection;
* :class:`BuildGraph` -- the edges (:func:`examples.gnn.graph.build_graph`);
* :class:`EdgeFeatures` -- their five features;
* :class:`Score` -- the GNN's score of every edge, in place (:class:`ScoreCopied`:
  through a copy path instead, for comparison; not capturable);
* :class:`Merge` -- union-find over the passing edges and the merged particles; its
  host step reads the counts and puts them.

An event with more tracksters than the capacity runs eagerly (``stage`` raises
:class:`portable.pipeline.OverCapacity`), with collections sized to it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import portable as pt
import portable.pipeline as pp

from .features import edge_features
from .generator import EventShape
from .graph import build_graph, feature_bytes, feature_pitch, stage_columns
from .layouts import NODE_FEATURES, Edges, Nodes, Particles
from .merge import merge
from .scoring import Linker, score_copied


class Upload(pp.Producer):
    """The event's tracksters as a ``Nodes`` collection of the shape's capacity, and
    their number as a one-element device buffer (``n_nodes``)."""

    capturable = True

    def __init__(self, shape: EventShape) -> None:
        self.capacity = shape.capacity
        self.rows = self.capacity

    def register(self, reg: pp.Registration) -> None:
        self.nodes = reg.produces(Nodes, "tracksters")
        self.n_nodes = reg.produces(np.ndarray, "n_nodes")

    def stage(self, event: pp.Event, ctx: pp.Context) -> None:
        n = event.input.n_nodes
        self.rows = max(n, self.capacity)
        if n > self.capacity:
            raise pp.OverCapacity(f"{n} tracksters > capacity {self.capacity}")
        self._stage(event, ctx.staging("columns", self.shape(), np.float32),
                    ctx.staging("count", 1, np.int32))

    def shape(self) -> tuple[int, int]:
        """The staging array's shape for this event: (29, padded rows)."""
        return len(NODE_FEATURES), feature_pitch(self.rows)

    @staticmethod
    def _stage(event: pp.Event, columns: np.ndarray, count: np.ndarray) -> None:
        stage_columns(event.input, columns)
        count[0] = event.input.n_nodes

    def produce(self, event: pp.Event, ctx: pp.Context) -> None:
        if self.rows > self.capacity:  # over capacity: this event runs eagerly
            columns, count = ctx.host_alloc(self.shape(), np.float32), ctx.host_alloc(1, np.int32)
            self._stage(event, columns, count)
        else:
            columns = ctx.staging("columns", self.shape(), np.float32)
            count = ctx.staging("count", 1, np.int32)
        nodes = ctx.collection(Nodes, self.rows)
        n_nodes = ctx.alloc(1, np.int32)
        ctx.copy(nodes.buffer[:feature_bytes(self.rows)], columns.view(np.uint8).reshape(-1))
        ctx.copy(n_nodes, count)
        event.put(self.nodes, nodes)
        event.put(self.n_nodes, n_nodes)


class BuildGraph(pp.Producer):
    """The directed edges between neighbouring tracksters (an ``Edges`` collection of
    ``edges_per_node`` rows per node row) and their number (``n_edges``)."""

    capturable = True

    def __init__(self, shape: EventShape) -> None:
        self.edges_per_node = shape.edges_per_node

    def register(self, reg: pp.Registration) -> None:
        self.nodes = reg.consumes(Nodes, "tracksters")
        self.n_nodes = reg.consumes(np.ndarray, "n_nodes")
        self.edges = reg.produces(Edges, "graph")
        self.n_edges = reg.produces(np.ndarray, "n_edges")

    def produce(self, event: pp.Event, ctx: pp.Context) -> None:
        nodes = event.get(self.nodes)
        edges = ctx.collection(Edges, nodes.size * self.edges_per_node)
        n_edges = build_graph(ctx.queue, nodes, event.get(self.n_nodes), edges, ctx.alloc)
        event.put(self.edges, edges)
        event.put(self.n_edges, n_edges)


class EdgeFeatures(pp.Producer):
    """The five features of every edge, written into the graph's columns (which no
    module reads before), put again as ``features``."""

    capturable = True

    def register(self, reg: pp.Registration) -> None:
        self.nodes = reg.consumes(Nodes, "tracksters")
        self.edges = reg.consumes(Edges, "graph")
        self.n_edges = reg.consumes(np.ndarray, "n_edges")
        self.out = reg.produces(Edges, "features")

    def produce(self, event: pp.Event, ctx: pp.Context) -> None:
        edges = event.get(self.edges)
        edge_features(ctx.queue, event.get(self.nodes), edges, event.get(self.n_edges))
        event.put(self.out, edges)


class Score(pp.Producer):
    """The GNN's score of every edge, written in place into the ``score`` column,
    put again as ``scored``. ``linker`` is one :class:`~examples.gnn.scoring.Linker`
    that every slot shares."""

    capturable = True

    def __init__(self, linker: Linker) -> None:
        self.linker = linker

    def register(self, reg: pp.Registration) -> None:
        self.nodes = reg.consumes(Nodes, "tracksters")
        self.n_nodes = reg.consumes(np.ndarray, "n_nodes")
        self.edges = reg.consumes(Edges, "features")
        self.n_edges = reg.consumes(np.ndarray, "n_edges")
        self.scored = reg.produces(Edges, "scored")

    def produce(self, event: pp.Event, ctx: pp.Context) -> None:
        edges = event.get(self.edges)
        self.score(ctx.queue, event, edges)
        event.put(self.scored, edges)

    def score(self, queue: pt.Queue, event: pp.Event, edges: pt.PortableCollection) -> None:
        """Write the scores of ``edges``."""
        self.linker.score(queue, event.get(self.nodes), edges, event.get(self.n_edges))


class ScoreCopied(Score):
    """:class:`Score` through a copy path (``elementwise`` or ``bulk``, see
    :func:`~examples.gnn.scoring.score_copied`): host synchronisations, not capturable."""

    capturable = False

    def __init__(self, linker: Linker, path: str) -> None:
        super().__init__(linker)
        self.path = path

    def score(self, queue: pt.Queue, event: pp.Event, edges: pt.PortableCollection) -> None:
        score_copied(queue, self.linker, event.get(self.nodes), event.get(self.n_nodes), edges,
                     event.get(self.n_edges), self.path)


class MergeOverflow(Exception):
    """An event had more edges than the edge capacity."""


@dataclass(frozen=True)
class Merged:
    """What :class:`Merge` keeps from its device step for its host step: the nodes it
    labelled, the particles, the pinned counts (particles, edges), the edge capacity."""

    nodes: pt.PortableCollection
    particles: pt.PortableCollection
    counts: np.ndarray
    edge_capacity: int


class Merge(pp.ExternalWork):
    """Union-find over the edges that pass the cut (labels written into the nodes'
    ``label`` column, put again as ``merged``) and the merged particles; the host
    step puts the number of particles and of edges.

    In graph mode ``acquire`` runs for the captured event and for events over the
    capacity only; the host step reads the counts of the last ``acquire`` if the
    event's nodes are that call's, else (a replay, which puts the captured nodes
    again) those of the last call within the capacity: the captured one."""

    capturable = True

    def __init__(self, shape: EventShape) -> None:
        self.capacity = shape.capacity
        self.latest: Merged | None = None
        self.fitting: Merged | None = None

    def register(self, reg: pp.Registration) -> None:
        self.nodes = reg.consumes(Nodes, "tracksters")
        self.n_nodes = reg.consumes(np.ndarray, "n_nodes")
        self.edges = reg.consumes(Edges, "scored")
        self.n_edges = reg.consumes(np.ndarray, "n_edges")
        self.merged = reg.produces(Nodes, "merged")
        self.particles = reg.produces(Particles, "merged")
        self.n_particles_out = reg.produces(int, "particles")
        self.n_edges_out = reg.produces(int, "edges")

    def acquire(self, event: pp.Event, ctx: pp.Context) -> None:
        nodes, edges = event.get(self.nodes), event.get(self.edges)
        particles = ctx.collection(Particles, nodes.size)
        n_particles = merge(ctx.queue, nodes, event.get(self.n_nodes), edges,
                            event.get(self.n_edges), particles, ctx.alloc)
        counts = ctx.host_alloc(2, np.int32)  # kept by graph mode for the replays
        ctx.copy(counts[:1], n_particles)
        ctx.copy(counts[1:], event.get(self.n_edges))
        self.latest = Merged(nodes, particles, counts, edges.size)
        if nodes.size <= self.capacity:
            self.fitting = self.latest

    def produce(self, event: pp.Event, ctx: pp.Context) -> None:
        nodes = event.get(self.nodes)
        done = self.latest if self.latest is not None and self.latest.nodes is nodes \
            else self.fitting
        if done is None or done.nodes is not nodes:
            raise RuntimeError(f"Merge: event {event.number}: no acquire ran for its nodes")
        n_particles, n_edges = (int(c) for c in done.counts)
        if n_edges > done.edge_capacity:
            raise MergeOverflow(f"event {event.number}: {n_edges} edges > the edge capacity "
                                f"{done.edge_capacity}; raise the shape's edges_per_node")
        event.put(self.merged, done.nodes)
        event.put(self.particles, done.particles)
        event.put(self.n_particles_out, n_particles)
        event.put(self.n_edges_out, n_edges)
