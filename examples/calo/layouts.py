"""SoA layouts of the calorimeter example.

Example::

    >>> import portable as pt
    >>> from examples.calo.layouts import Clusters, Hits
    >>> hits = pt.PortableCollection(Hits, 4, pt.get_device("cpu_serial"), zero=True)
    >>> hits.column("cluster_id").tolist()
    [0, 0, 0, 0]
    >>> [m.name for m in Clusters.members()][:5]
    ['energy', 'x', 'y', 'sigma_x', 'sigma_y']
"""
from __future__ import annotations

import numpy as np

import portable as pt


class Hits(pt.Layout):
    """Calorimeter hits (one per cell with energy) and what clustering finds for each.

    Inputs: ``layer`` (0-based), ``x``, ``y`` (cm, the cell centre), ``energy``
    (GeV). Results of :func:`examples.calo.clue.cluster`: ``rho`` (local
    density), ``delta`` (distance to the nearest denser hit, ``inf`` if none
    within the outlier distance), ``nearest_higher`` (that hit's index or -1),
    ``is_seed`` (1 for seeds, else 0) and ``cluster_id`` (0.. for clustered
    hits, -1 for outliers and their followers).
    """

    layer = pt.column(np.int32)
    x = pt.column(np.float32)
    y = pt.column(np.float32)
    energy = pt.column(np.float32)
    rho = pt.column(np.float32)
    delta = pt.column(np.float32)
    nearest_higher = pt.column(np.int32)
    cluster_id = pt.column(np.int32)
    is_seed = pt.column(np.int32)


class Clusters(pt.Layout):
    """One row per cluster, in the order of the seeds' hit indices.

    The five float features are adjacent (one ``(N, 5)`` tensor for the model),
    then ``n_hits`` (the cluster's size; ``size`` is the collection's own
    length in kernels) and ``layer`` (one ``(N, 2)`` int32 tensor), then the
    model's output ``score``.
    """

    energy = pt.column(np.float32)
    x = pt.column(np.float32)
    y = pt.column(np.float32)
    sigma_x = pt.column(np.float32)
    sigma_y = pt.column(np.float32)
    n_hits = pt.column(np.int32)
    layer = pt.column(np.int32)
    score = pt.column(np.float32)


#: the float feature columns, in the order the model reads them
FLOAT_FEATURES = ("energy", "x", "y", "sigma_x", "sigma_y")
#: the integer feature columns, in the order the model reads them
INT_FEATURES = ("n_hits", "layer")


def head(collection: pt.PortableCollection, n: int) -> pt.PortableCollection:
    """The first ``n`` rows of ``collection`` (``n <= capacity``), sharing its memory:
    an event's hits or clusters in a collection allocated at a capacity.

    Example::

        >>> c = pt.PortableCollection(Clusters, 8, pt.get_device("cpu_serial"), zero=True)
        >>> head(c, 3).column("energy").shape
        (3,)
    """
    return pt.PortableCollection(collection.layout, n, collection.device,
                                 capacity=collection.capacity, buffer=collection.buffer)
