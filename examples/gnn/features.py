"""The five edge features, computed on the device for every edge.

For the edge ``src -> dst``: the absolute differences of raw energy, of barycentre
z and of time, the transverse separation ``hypot(dx, dy)`` of the barycentres, and
the angle between the principal eigenvectors (``atan2(|a x b|, a . b)``, accurate
for nearly parallel axes too). Padding rows (past the number of edges) get zeros.

Example::

    >>> import portable as pt
    >>> from examples.gnn.generator import generate
    >>> from examples.gnn.graph import build_graph, upload
    >>> from examples.gnn.layouts import Edges
    >>> from examples.gnn import reference
    >>> q = pt.Queue(pt.get_device("cpu_serial"))
    >>> event = generate(0, "tiny")
    >>> nodes, n_nodes = upload(q, event, 128)
    >>> edges = pt.PortableCollection(Edges, 1536, q.device)
    >>> n_edges = build_graph(q, nodes, n_nodes, edges)
    >>> edge_features(q, nodes, edges, n_edges); q.synchronize()
    >>> n = int(n_edges[0])
    >>> src, dst = edges.column("src")[:n], edges.column("dst")[:n]
    >>> want = reference.edge_features(event.columns, src, dst)
    >>> bool(np.allclose(edges.column("delta_z")[:n], want[:, 1], rtol=1e-6))
    True
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

import portable as pt

from .checks import expect_collection, expect_counter
from .layouts import Edges, Nodes


@pt.kernel
def compute_edge_features(acc, nodes, edges, n_edges):
    """The features of the first ``n_edges[0]`` edges; zeros for the rest."""
    zero = np.float32(0.0)
    for e in acc.uniform_elements(edges.size):
        if e < n_edges[0]:
            s = edges.src[e]
            d = edges.dst[e]
            edges.delta_energy[e] = abs(nodes.raw_energy[d] - nodes.raw_energy[s])
            edges.delta_z[e] = abs(nodes.barycenter_z[d] - nodes.barycenter_z[s])
            edges.transverse[e] = math.hypot(nodes.barycenter_x[d] - nodes.barycenter_x[s],
                                             nodes.barycenter_y[d] - nodes.barycenter_y[s])
            ax = nodes.eigenvector_x[s]
            ay = nodes.eigenvector_y[s]
            az = nodes.eigenvector_z[s]
            bx = nodes.eigenvector_x[d]
            by = nodes.eigenvector_y[d]
            bz = nodes.eigenvector_z[d]
            cx = ay * bz - az * by
            cy = az * bx - ax * bz
            cz = ax * by - ay * bx
            edges.angle[e] = math.atan2(math.sqrt(cx * cx + cy * cy + cz * cz),
                                        ax * bx + ay * by + az * bz)
            edges.delta_time[e] = abs(nodes.time[d] - nodes.time[s])
        else:
            edges.delta_energy[e] = zero
            edges.delta_z[e] = zero
            edges.transverse[e] = zero
            edges.angle[e] = zero
            edges.delta_time[e] = zero


def edge_features(queue: pt.Queue, nodes: pt.PortableCollection, edges: pt.PortableCollection,
                  n_edges: Any) -> None:
    """Enqueue the features of the first ``n_edges[0]`` edges of ``edges`` (a
    one-element int32 device buffer, as :func:`~examples.gnn.graph.build_graph`
    returns) from the tracksters ``nodes``; the padding rows get zeros."""
    expect_collection(nodes, Nodes, "nodes", "edge_features", queue)
    expect_collection(edges, Edges, "edges", "edge_features", queue)
    expect_counter(n_edges, "n_edges", "edge_features", queue)
    pt.launch(queue, pt.make_workdiv(queue.device, edges.size), compute_edge_features,
              nodes.const_view(), edges.view(), n_edges)
