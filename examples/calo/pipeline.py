"""The steps of the example one after another on one queue, for one event.

Example::

    >>> import ml, portable as pt
    >>> from examples.calo.clue import ClueParams
    >>> from examples.calo.generator import SHAPES, generate
    >>> from examples.calo.model import ClusterScorer
    >>> q = pt.Queue(pt.get_device("cpu_serial"))
    >>> params = ClueParams.for_geometry(SHAPES["tiny"].geometry)
    >>> out = process_event(q, generate(0, "tiny"), params, ml.Model(ClusterScorer()), 0.5)
    >>> out.clusters.size > 0, 0 <= out.n_selected <= out.clusters.size
    (True, True)
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

import ml
import portable as pt

from .clue import Allocator, ClueParams, cluster, default_alloc
from .features import cluster_features, select
from .generator import Event, upload
from .layouts import Clusters
from .model import score


@dataclass(frozen=True)
class EventOutputs:
    """What the steps leave on the device for one event: the clustered ``hits``,
    the scored ``clusters`` (one row per cluster), and the ``n_selected``
    indices of clusters above the threshold at the front of ``selected``."""

    hits: pt.PortableCollection
    clusters: pt.PortableCollection
    n_selected: int
    selected: Any


def process_event(queue: pt.Queue, event: Event, params: ClueParams, scorer: ml.Model,
                  threshold: float, alloc: Allocator | None = None) -> EventOutputs:
    """Upload ``event``, cluster it, compute and score the cluster features,
    select the clusters scoring above ``threshold``; synchronizes the queue
    twice (for the cluster count and the selected count)."""
    alloc = alloc or default_alloc(queue)
    hits = upload(queue, event)
    n_clusters = cluster(queue, hits, params, alloc)
    clusters = pt.PortableCollection(Clusters, n_clusters, queue.device)
    cluster_features(queue, hits, clusters, alloc)
    score(queue, scorer, clusters)
    selected = alloc(n_clusters, np.int32)
    n_selected = select(queue, clusters, threshold, selected, alloc)
    return EventOutputs(hits, clusters, n_selected, selected)
