"""The trackster-linking GNN: an edge classifier over the trackster graph.

:class:`TracksterLinker` embeds the 29 node features (MLP 29 -> h -> h) and the 5
edge features (MLP 5 -> e -> e), weighs each edge by a sigmoid attention from its
embedding, runs a few EdgeConv blocks (for the edge ``j -> i``: the message
``MLP([x_i, x_j - x_i])`` times the attention, summed at ``i`` (:func:`scatter_sum`),
plus a skip ``Linear(x_i)``, then ReLU), and classifies every edge from
``[x_src, x_dst, edge embedding, edge features]`` into a score in (0, 1): the
probability that its two tracksters come from one particle.

It runs on capacity-sized inputs: the edge count is a one-element device tensor,
and edges past it (padding) take no part (their attention is zero, their indices
point at trackster 0, their features are masked), so one set of shapes serves every
event, as CUDA graphs need. The weights are trained on the generator's truth at first
use (:func:`trained`, a few seconds on a CPU, seeded), and kept in the disk cache.

Example::

    >>> import torch
    >>> model = TracksterLinker(hidden=8, edge_hidden=4, iterations=1)
    >>> nodes, index = torch.randn(5, 29), torch.tensor([[0, 1], [1, 2], [0, 0]], dtype=torch.int32)
    >>> scores = model(nodes, index, torch.randn(3, 5), torch.tensor([2], dtype=torch.int32))
    >>> tuple(scores.shape), bool(((scores > 0) & (scores < 1)).all())
    ((3, 1), True)
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import numpy as np
import torch

import ml
from portable.kernel_cache import cache_dir

from . import reference
from .generator import generate
from .layouts import EDGE_FEATURES, NODE_FEATURES

#: the reference configuration: EdgeConv iterations, node and edge embedding widths
ITERATIONS, HIDDEN, EDGE_HIDDEN = 4, 64, 32
#: training: steps (one event each), events drawn from, learning rate, seeds
STEPS, TRAINING_EVENTS, LEARNING_RATE, SEED = 400, 32, 3e-3, 12345
#: training events come from this generator seed, not the jobs' (2024)
TRAINING_GENERATOR_SEED = 77


def mlp(*sizes: int) -> torch.nn.Sequential:
    """Linear layers of ``sizes`` with a ReLU after each."""
    layers: list[torch.nn.Module] = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        layers += [torch.nn.Linear(fan_in, fan_out), torch.nn.ReLU()]
    return torch.nn.Sequential(*layers)


class EdgeConv(torch.nn.Module):
    """One message-passing block: ``relu(sum_j att_ji MLP([x_i, x_j - x_i]) + W x_i)``."""

    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.message = torch.nn.Sequential(torch.nn.Linear(2 * hidden, hidden), torch.nn.ReLU(),
                                           torch.nn.Linear(hidden, hidden))
        self.skip = torch.nn.Linear(hidden, hidden)

    def forward(self, x: torch.Tensor, src: torch.Tensor, dst: torch.Tensor,
                attention: torch.Tensor) -> torch.Tensor:
        x_i, x_j = x[dst], x[src]
        messages = self.message(torch.cat([x_i, x_j - x_i], dim=1)) * attention
        return torch.relu(scatter_sum(messages, dst, x.shape[0]) + self.skip(x))


def scatter_sum(values: torch.Tensor, index: torch.Tensor, rows: int) -> torch.Tensor:
    """``rows`` sums: row ``r`` adds the ``values`` rows whose ``index`` is ``r``, in
    the same order on every run. On the CPU ``index_add_`` adds them in index order;
    on a GPU it adds them with float atomics, whose order (and so the last bits of
    every score) changes from run to run, so there the sum is a product with the
    one-hot matrix of ``index`` (a fixed order, and a few microseconds at these sizes).

    Example::

        >>> v = torch.tensor([[1.0], [2.0], [4.0]])
        >>> scatter_sum(v, torch.tensor([1, 0, 1]), 3).flatten().tolist()
        [2.0, 5.0, 0.0]
    """
    if values.device.type == "cpu":
        return torch.zeros(rows, values.shape[1], dtype=values.dtype).index_add_(0, index, values)
    one_hot = torch.arange(rows, device=values.device)[:, None] == index[None, :]
    return one_hot.to(values.dtype) @ values


class TracksterLinker(torch.nn.Module):
    """The GNN (see the module's docstring). Inputs are standardised with the
    ``*_shift`` and ``*_scale`` buffers, set from the training data."""

    node_shift: torch.Tensor
    node_scale: torch.Tensor
    edge_shift: torch.Tensor
    edge_scale: torch.Tensor

    def __init__(self, hidden: int = HIDDEN, edge_hidden: int = EDGE_HIDDEN,
                 iterations: int = ITERATIONS) -> None:
        super().__init__()
        n_node, n_edge = len(NODE_FEATURES), len(EDGE_FEATURES)
        self.node_mlp = mlp(n_node, hidden, hidden)
        self.edge_mlp = mlp(n_edge, edge_hidden, edge_hidden)
        self.attention = torch.nn.Linear(edge_hidden, 1)
        self.convs = torch.nn.ModuleList(EdgeConv(hidden) for _ in range(iterations))
        self.classifier = torch.nn.Sequential(
            torch.nn.Linear(2 * hidden + edge_hidden + n_edge, hidden), torch.nn.ReLU(),
            torch.nn.Linear(hidden, 1))
        self.register_buffer("node_shift", torch.zeros(n_node))
        self.register_buffer("node_scale", torch.ones(n_node))
        self.register_buffer("edge_shift", torch.zeros(n_edge))
        self.register_buffer("edge_scale", torch.ones(n_edge))

    def forward(self, nodes: torch.Tensor, index: torch.Tensor, edge_features: torch.Tensor,
                n_edges: torch.Tensor) -> torch.Tensor:
        """Scores ``(E, 1)`` of the edges ``index (E, 2)`` (src, dst) between ``nodes
        (N, 29)`` with ``edge_features (E, 5)``; only the first ``n_edges[0]`` edges
        are real."""
        valid = (torch.arange(index.shape[0], device=index.device) < n_edges.long())[:, None]
        src = torch.where(valid[:, 0], index[:, 0].long(), 0)
        dst = torch.where(valid[:, 0], index[:, 1].long(), 0)
        raw = torch.where(valid, (edge_features - self.edge_shift) * self.edge_scale, 0.0)
        x = self.node_mlp((nodes - self.node_shift) * self.node_scale)
        embedded = self.edge_mlp(raw)
        attention = torch.sigmoid(self.attention(embedded)) * valid
        for conv in self.convs:
            x = conv(x, src, dst, attention)
        return torch.sigmoid(self.classifier(torch.cat([x[src], x[dst], embedded, raw], dim=1)))


# -- training -------------------------------------------------------------------------

def training_data(events: int = TRAINING_EVENTS) -> list[tuple[torch.Tensor, ...]]:
    """``(nodes, index, edge features, n_edges, labels)`` of ``events`` typical events
    (from the training generator seed), the graph and features from
    :mod:`~examples.gnn.reference`, the label 1 for edges within one particle."""
    data: list[tuple[torch.Tensor, ...]] = []
    for number in range(events):
        event = generate(number, "typical", seed=TRAINING_GENERATOR_SEED)
        src, dst = reference.build_edges(event.columns)
        features = reference.edge_features(event.columns, src, dst).astype(np.float32)
        labels = (event.particle[src] == event.particle[dst]).astype(np.float32)
        data.append((torch.from_numpy(event.features.copy()),
                     torch.from_numpy(np.stack([src, dst], axis=1)),
                     torch.from_numpy(features), torch.tensor([src.size], dtype=torch.int32),
                     torch.from_numpy(labels)[:, None]))
    return data


def train(steps: int = STEPS, seed: int = SEED, events: int = TRAINING_EVENTS) -> TracksterLinker:
    """A :class:`TracksterLinker` trained for ``steps`` Adam steps, one event each,
    on the truth of ``events`` generated events; the same on every run (seeded,
    one CPU thread)."""
    data = training_data(events)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        torch.manual_seed(seed)
        model = TracksterLinker()
        nodes = torch.cat([d[0] for d in data])
        edges = torch.cat([d[2] for d in data])
        with torch.no_grad():
            model.node_shift.copy_(nodes.mean(0))
            model.node_scale.copy_(1.0 / nodes.std(0).clamp_min(1e-6))
            model.edge_shift.copy_(edges.mean(0))
            model.edge_scale.copy_(1.0 / edges.std(0).clamp_min(1e-6))
        optimizer = torch.optim.Adam(model.parameters(), lr=LEARNING_RATE)
        order = torch.randint(len(data), (steps,), generator=torch.Generator().manual_seed(seed))
        loss_fn = torch.nn.BCELoss()
        for step in order.tolist():
            x, index, features, n_edges, labels = data[step]
            optimizer.zero_grad()
            loss = loss_fn(model(x, index, features, n_edges), labels)
            loss.backward()
            optimizer.step()
    finally:
        torch.set_num_threads(threads)
    return model.eval()


def weights_path() -> Path | None:
    """Where the trained weights are cached: a file in the disk cache
    (:func:`portable.kernel_cache.cache_dir`) named by a hash of this file's and the
    generator's source; ``None`` when the cache is switched off (``PORTABLE_CACHE=0``).

    Example::

        >>> weights_path().name.startswith("gnn-linker-")
        True
    """
    folder = cache_dir()
    if folder is None:
        return None
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in ("model.py", "generator.py", "reference.py", "layouts.py"):
        digest.update((here / name).read_bytes())
    digest.update(torch.__version__.encode())
    return Path(folder) / f"gnn-linker-{digest.hexdigest()[:16]}.pt"


def trained(weights: str | os.PathLike[str] | None = None, verbose: bool = False
            ) -> TracksterLinker:
    """The trained model: from ``weights`` (a state_dict saved with ``torch.save``) if
    given, else from the disk cache, else trained now (:func:`train`) and cached.

    Example::

        model = trained()                  # trains at the first call, then loads
        model = trained("weights.pt")      # torch.save(model.state_dict(), "weights.pt")
    """
    model = TracksterLinker()
    path = Path(weights) if weights is not None else weights_path()
    if path is not None and path.exists():
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state)
            return model.eval()
        except Exception as err:
            if weights is not None:
                raise ml.ModelFileError(f"--weights {path}: not the weights of this model "
                                        f"({type(err).__name__}: {err}); give a file written "
                                        f"by torch.save(model.state_dict(), path)") from err
    elif weights is not None:
        raise ml.ModelFileError(f"--weights {path}: no such file")
    start = time.perf_counter()
    model = train()
    if verbose:
        print(f"trained the GNN for {STEPS} steps in {time.perf_counter() - start:.1f} s"
              + (f", cached in {path}" if path is not None else ""))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        torch.save(model.state_dict(), partial)
        os.replace(partial, path)  # whole or not at all, for concurrent runs
    return model
