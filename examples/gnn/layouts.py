"""SoA layouts of the GNN example: tracksters (nodes), the edges between them and
the merged particles.

The 29 node features are adjacent float32 columns, so they form one ``(N, 29)``
tensor block; the two edge indices are adjacent int32 columns (one ``(E, 2)``
block), the five edge features adjacent float32 columns (one ``(E, 5)`` block),
then the model's ``score``.

Example::

    >>> import portable as pt
    >>> nodes = pt.PortableCollection(Nodes, 4, pt.get_device("cpu_serial"), zero=True)
    >>> len(NODE_FEATURES), NODE_FEATURES[16], feature_index("time")
    (29, 'raw_energy', 28)
    >>> [m.name for m in Edges.members()]
    ['src', 'dst', 'delta_energy', 'delta_z', 'transverse', 'angle', 'delta_time', 'score']
"""
from __future__ import annotations

import numpy as np

import portable as pt

#: the node features, in the order of the ``(N, 29)`` block the model reads
NODE_FEATURES = (
    "barycenter_x", "barycenter_y", "barycenter_z", "barycenter_eta", "barycenter_phi",
    "eigenvector_x", "eigenvector_y", "eigenvector_z",
    "eigenvalue_1", "eigenvalue_2", "eigenvalue_3",
    "sigma_pca_1", "sigma_pca_2", "sigma_pca_3",
    "n_layer_clusters", "n_hits", "raw_energy", "raw_em_energy",
    "prob_photon", "prob_electron", "prob_muon", "prob_neutral_hadron",
    "prob_charged_hadron", "prob_unknown",
    "z_min", "z_max", "layer_cluster_density", "trackster_density", "time",
)
#: the edge features, in the order of the ``(E, 5)`` block the model reads
EDGE_FEATURES = ("delta_energy", "delta_z", "transverse", "angle", "delta_time")


def feature_index(name: str) -> int:
    """The column of node feature ``name`` in the ``(N, 29)`` block."""
    return NODE_FEATURES.index(name)


Nodes = pt.Layout.define(
    "Nodes", [(name, pt.column(np.float32)) for name in NODE_FEATURES]
    + [("label", pt.column(np.int32))])
Nodes.__doc__ = """Tracksters: the 29 features (see :data:`NODE_FEATURES`), then ``label``, the
merged particle's root (the smallest trackster index of its component), which the
merge fills."""

Edges = pt.Layout.define(
    "Edges", [("src", pt.column(np.int32)), ("dst", pt.column(np.int32))]
    + [(name, pt.column(np.float32)) for name in EDGE_FEATURES]
    + [("score", pt.column(np.float32))])
Edges.__doc__ = """Directed edges ``src -> dst`` (``dst`` at the larger ``|z|``), their five
features (see :data:`EDGE_FEATURES`) and the model's ``score``."""


class Particles(pt.Layout):
    """Merged particles, in the order of their roots: the summed raw energy, the
    energy-weighted barycentre, the number of tracksters and the root trackster."""

    energy = pt.column(np.float32)
    x = pt.column(np.float32)
    y = pt.column(np.float32)
    z = pt.column(np.float32)
    n_tracksters = pt.column(np.int32)
    root = pt.column(np.int32)
