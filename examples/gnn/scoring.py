"""Running the GNN on the event's SoA collections: in place, and the two copy paths
it is compared with.

**In place** (:meth:`Linker.score`): the node features are one ``(N, 29)`` tensor
over the 29 adjacent columns of the :class:`~examples.gnn.layouts.Nodes`
collection, the edge indices an ``(E, 2)`` int32 tensor and the edge features an
``(E, 5)`` tensor over the :class:`~examples.gnn.layouts.Edges` columns (all from
:class:`ml.SoAMetadata`, no copies), the edge count the one-element device buffer
itself; the model runs on the queue's stream and its scores go into the ``score``
column with one device-side copy. On a GPU it runs on the whole capacity (the
padding takes no part) and nothing depends on the event on the host, so the call
can be captured into a CUDA graph; on a CPU, where queue work runs on the host, it
reads the edge count when its turn comes and skips the padding rows.

:class:`ml.Model` is not used: its :class:`ml.ModelMetadata` takes the input blocks
of one collection, paired row for row with the outputs, while this model reads two
collections of different lengths (nodes and edges) and a device count.

**Copy paths** (baselines): ``elementwise`` is the producer CMS compared against --
copy the collections to the host, fill the input tensors element by element
(through their NumPy views, the cheapest element access Python has), move them to
the device, run the model on the event's rows only, read each edge's score with
one ``.item()``, copy the scores back; ``bulk`` copies the collections to the host, stacks the
columns into tensors, moves them to the device in one copy each and the scores
back in one copy.

Example::

    >>> import portable as pt
    >>> from examples.gnn.generator import generate
    >>> from examples.gnn.graph import build_graph, upload
    >>> from examples.gnn.features import edge_features
    >>> from examples.gnn.layouts import Edges
    >>> from examples.gnn.model import TracksterLinker
    >>> q = pt.Queue(pt.get_device("cpu_serial"))
    >>> nodes, n_nodes = upload(q, generate(0, "tiny"), 128)
    >>> edges = pt.PortableCollection(Edges, 1536, q.device)
    >>> n_edges = build_graph(q, nodes, n_nodes, edges)
    >>> edge_features(q, nodes, edges, n_edges)
    >>> linker = Linker(TracksterLinker())
    >>> linker.score(q, nodes, edges, n_edges)
    >>> in_place = edges.column("score")[:int(n_edges[0])].copy()
    >>> score_copied(q, linker, nodes, n_nodes, edges, n_edges, "elementwise")
    >>> bool(np.allclose(edges.column("score")[:in_place.size], in_place, atol=1e-5))
    True
"""
from __future__ import annotations

import contextlib
import copy
import threading
from typing import Any, Iterator

import numpy as np
import torch

import ml
import portable as pt

from .checks import expect_collection, expect_counter
from .layouts import EDGE_FEATURES, NODE_FEATURES, Edges, Nodes
from .model import TracksterLinker

#: the copy paths, by ``--copyPath`` name
COPY_PATHS = ("elementwise", "bulk")


def torch_reaches(device: pt.Device) -> bool:
    """Whether torch can use ``device``'s memory in place (not in a simulator's).

    Example::

        >>> torch_reaches(pt.get_device("cpu_serial"))
        True
    """
    return device.backend.torch_device_type is not None


def torch_device(device: pt.Device) -> torch.device:
    """The torch device of ``device``'s memory (see :func:`torch_reaches`)."""
    kind = device.backend.torch_device_type
    if device.backend.host_memory or kind is None:
        return torch.device("cpu")
    return torch.device(kind, device.index)


def as_tensor(array: Any, device: pt.Device) -> torch.Tensor:
    """A buffer on ``device`` as a torch tensor sharing its memory."""
    if isinstance(array, np.ndarray):
        return torch.from_numpy(array)
    return torch.as_tensor(array, device=torch_device(device))


@contextlib.contextmanager
def on_stream(queue: pt.Queue) -> Iterator[None]:
    """Torch work inside runs on ``queue``'s device stream (nothing to do where
    queues are no device streams)."""
    if not queue.backend.device_streams:
        yield
        return
    stream = queue.backend_cache.get("torch_stream")
    if stream is None:
        stream = queue.backend_cache["torch_stream"] = torch.cuda.ExternalStream(
            queue.backend.torch_stream(queue), device=torch_device(queue.device))
    with torch.cuda.stream(stream):
        yield


def block_tensors(nodes: pt.PortableCollection, edges: pt.PortableCollection
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(node features (N, 29), edge index (E, 2) int32, edge features (E, 5),
    score (E, 1))`` as tensors over the collections' memory.

    Example::

        >>> from examples.gnn.layouts import Edges, Nodes
        >>> cpu = pt.get_device("cpu_serial")
        >>> n = pt.PortableCollection(Nodes, 8, cpu); e = pt.PortableCollection(Edges, 16, cpu)
        >>> [tuple(t.shape) for t in block_tensors(n, e)]
        [(8, 29), (16, 2), (16, 5), (16, 1)]
    """
    node_meta, edge_meta = ml.SoAMetadata(nodes), ml.SoAMetadata(edges)
    node_meta.append_block("features", *NODE_FEATURES)
    edge_meta.append_block("index", "src", "dst")
    edge_meta.append_block("features", *EDGE_FEATURES)
    edge_meta.append_block("score", "score")
    return (node_meta.tensor("features"), edge_meta.tensor("index"),
            edge_meta.tensor("features"), edge_meta.tensor("score"))


class Linker:
    """A :class:`~examples.gnn.model.TracksterLinker` that scores edges on any number
    of queues and devices at once (the weights are copied once per device). With
    ``threads``, every host thread that runs it on a CPU uses that many torch threads
    (torch keeps the count per thread), so that the host framework owns the cores."""

    def __init__(self, module: TracksterLinker, threads: int | None = None) -> None:
        self.module = module.eval()
        self.threads = threads
        self._deployed: dict[torch.device, TracksterLinker] = {}
        self._lock = threading.Lock()

    def on(self, device: torch.device) -> TracksterLinker:
        """The model on torch ``device`` (copied there at the first call)."""
        found = self._deployed.get(device)
        if found is None:
            with self._lock:
                found = self._deployed.get(device)
                if found is None:
                    found = copy.deepcopy(self.module).to(device)
                    self._deployed[device] = found
        return found

    def score(self, queue: pt.Queue, nodes: pt.PortableCollection,
              edges: pt.PortableCollection, n_edges: Any) -> None:
        """Enqueue the scores of the first ``n_edges[0]`` edges (a one-element int32
        buffer on the device) into ``edges``' ``score`` column, reading both
        collections in place (see the module's docstring). In Numba's CUDA
        simulator, whose memory torch cannot reach, it scores host copies instead
        and copies the scores back (synchronizing the queue)."""
        expect_collection(nodes, Nodes, "nodes", "Linker.score", queue)
        expect_collection(edges, Edges, "edges", "Linker.score", queue)
        expect_counter(n_edges, "n_edges", "Linker.score", queue)
        if not torch_reaches(queue.device):
            self._score_host_copies(queue, nodes, edges, n_edges)
            return
        model = self.on(torch_device(queue.device))
        node_x, index, features, target = block_tensors(nodes, edges)
        count = as_tensor(n_edges, queue.device)

        def run() -> None:
            self.limit_threads()
            rows = index.shape[0]
            if queue.backend.host_memory:
                # queue work on a CPU runs on the host, after the work that counted
                # the edges: the count is there to read, and the padding is skipped
                rows = min(int(count[0]), rows)
            with on_stream(queue), torch.inference_mode():
                target[:rows].copy_(model(node_x, index[:rows], features[:rows], count))

        if queue.backend.device_streams:
            run()  # torch enqueues on the queue's stream
        else:
            queue.backend.enqueue_host_function(queue, run)  # in order with the queue's work
        if queue.blocking:
            queue.synchronize()

    def limit_threads(self) -> None:
        """Give the calling thread ``threads`` torch threads, if set."""
        if self.threads is not None and torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)

    def _score_host_copies(self, queue: pt.Queue, nodes: pt.PortableCollection,
                           edges: pt.PortableCollection, n_edges: Any) -> None:
        host = pt.get_device("cpu_serial")
        host_nodes, host_edges = nodes.to(queue, host), edges.to(queue, host)
        count = np.empty(1, np.int32)
        pt.memcpy(queue, count, n_edges)
        queue.synchronize()
        self.score(pt.Queue(host), host_nodes, host_edges, count)
        pt.memcpy(queue, edges.column("score"), host_edges.column("score"))
        queue.synchronize()


def score_copied(queue: pt.Queue, linker: Linker, nodes: pt.PortableCollection, n_nodes: Any,
                 edges: pt.PortableCollection, n_edges: Any, path: str) -> None:
    """Score the edges through the copy path ``path`` (one of :data:`COPY_PATHS`, see
    the module's docstring), writing ``edges``' ``score`` column; ``n_nodes`` and
    ``n_edges`` are the one-element device counts. Synchronizes the queue."""
    where = "score_copied"
    if path not in COPY_PATHS:
        raise pt.ArgumentError(f"{where}: argument 'path' must be one of {COPY_PATHS}, "
                               f"got {path!r}")
    expect_collection(nodes, Nodes, "nodes", where, queue)
    expect_counter(n_nodes, "n_nodes", where, queue)
    expect_collection(edges, Edges, "edges", where, queue)
    expect_counter(n_edges, "n_edges", where, queue)
    host = pt.get_device("cpu_serial")
    counts = np.empty(2, np.int32)
    pt.memcpy(queue, counts[:1], n_nodes)
    pt.memcpy(queue, counts[1:], n_edges)
    host_nodes, host_edges = nodes.to(queue, host), edges.to(queue, host)
    queue.synchronize()
    rows, n = int(counts[0]), min(int(counts[1]), edges.size)
    node_columns = [host_nodes.column(name) for name in NODE_FEATURES]
    edge_columns = [host_edges.column(name) for name in EDGE_FEATURES]
    src, dst = host_edges.column("src"), host_edges.column("dst")
    if path == "elementwise":
        node_x = torch.empty(rows, len(NODE_FEATURES))
        index = torch.empty(n, 2, dtype=torch.int32)
        features = torch.empty(n, len(EDGE_FEATURES))
        node_fill, index_fill, feature_fill = node_x.numpy(), index.numpy(), features.numpy()
        for i in range(rows):
            for f, column in enumerate(node_columns):
                node_fill[i, f] = column[i]
        for e in range(n):
            index_fill[e, 0] = src[e]
            index_fill[e, 1] = dst[e]
            for f, column in enumerate(edge_columns):
                feature_fill[e, f] = column[e]
    else:
        node_x = torch.from_numpy(np.stack([c[:rows] for c in node_columns], axis=1))
        index = torch.from_numpy(np.stack([src[:n], dst[:n]], axis=1))
        features = torch.from_numpy(np.stack([c[:n] for c in edge_columns], axis=1))
    device = torch_device(queue.device) if torch_reaches(queue.device) else torch.device("cpu")
    model = linker.on(device)
    linker.limit_threads()
    with torch.inference_mode():
        inputs = [t.to(device) for t in (node_x, index, features)]
        out = model(*inputs, torch.tensor([n], dtype=torch.int32, device=device))
        if path == "elementwise":
            scores = np.empty(n, np.float32)
            for e in range(n):
                scores[e] = out[e, 0].item()
        else:
            scores = out[:, 0].cpu().numpy()
    pt.memcpy(queue, edges.column("score")[:n], scores)
    queue.synchronize()
