"""The cluster scorer: a small MLP reading the cluster features in place.

:class:`ClusterScorer` maps the 5 float features (energy, x, y, sigma_x,
sigma_y) and the 2 integer ones (n_hits, layer) of each cluster, scaled to
order one, through two hidden layers of 32 to a score in (0, 1). Its weights
are drawn from a seeded generator: the same seed gives the same model
everywhere, no training involved. :func:`score` runs it with :mod:`ml` on the
clusters collection's own memory: the features are read as an ``(N, 5)``
float32 and an ``(N, 2)`` int32 tensor over their columns, the scores written
straight into the ``score`` column.

Example::

    >>> import torch
    >>> scorer = ClusterScorer(seed=1)
    >>> out = scorer(torch.ones(3, 5), torch.ones(3, 2, dtype=torch.int32))
    >>> tuple(out.shape), bool(((out > 0) & (out < 1)).all())
    ((3, 1), True)
"""
from __future__ import annotations

import torch

import ml
import portable as pt

from .layouts import FLOAT_FEATURES, INT_FEATURES

HIDDEN = 32


class ClusterScorer(torch.nn.Module):
    """features -> 32 -> 32 -> 1, ReLU between, sigmoid at the end; weights from ``seed``.

    The inputs are first shifted and scaled by fixed constants to about [-1, 1]
    for typical clusters: energy (E - 5 GeV) / 5 GeV, positions over a layer of
    side ``extent`` cm, widths (sigma - 1 cm) / 0.5 cm, sizes (n - 30) / 30 and
    layers (layer - 4) / 4. Weights and biases are uniform in
    ``±2 sqrt(3 / fan_in)``, wide enough that scores spread over (0, 1).
    """

    def __init__(self, seed: int = 1, extent: float = 128.0) -> None:
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        sizes = (len(FLOAT_FEATURES) + len(INT_FEATURES), HIDDEN, HIDDEN, 1)
        layers = []
        for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
            linear = torch.nn.Linear(fan_in, fan_out)
            bound = 2.0 * (3.0 / fan_in) ** 0.5
            with torch.no_grad():
                linear.weight.uniform_(-bound, bound, generator=generator)
                linear.bias.uniform_(-bound, bound, generator=generator)
            layers += [linear, torch.nn.ReLU()]
        self.mlp = torch.nn.Sequential(*layers[:-1], torch.nn.Sigmoid())
        half = extent / 2
        self.register_buffer("shift", torch.tensor([5.0, half, half, 1.0, 1.0, 30.0, 4.0]))
        self.register_buffer("scale", torch.tensor([0.2, 1 / half, 1 / half, 2.0, 2.0, 1 / 30,
                                                    0.25]))

    def forward(self, floats: torch.Tensor, ints: torch.Tensor) -> torch.Tensor:
        """Scores ``(N, 1)`` of ``N`` clusters from ``floats (N, 5)`` and ``ints (N, 2)``."""
        features = torch.cat([floats, ints.to(floats.dtype)], dim=1)
        return self.mlp((features - self.shift) * self.scale)


def score_metadata(clusters: pt.PortableCollection) -> ml.ModelMetadata:
    """The model's view of ``clusters``: inputs ``floats`` (the 5 float feature
    columns) and ``ints`` (``n_hits``, ``layer``), output ``score``, all in place.

    Example::

        >>> import portable as pt
        >>> from examples.calo.layouts import Clusters
        >>> c = pt.PortableCollection(Clusters, 10, pt.get_device("cpu_serial"), zero=True)
        >>> [tuple(t.shape) for t in score_metadata(c).inputs.tensors()]
        [(10, 5), (10, 2)]
    """
    inputs, outputs = ml.SoAMetadata(clusters), ml.SoAMetadata(clusters)
    inputs.append_block("floats", *FLOAT_FEATURES)
    inputs.append_block("ints", *INT_FEATURES)
    outputs.append_block("score", "score")
    return ml.ModelMetadata(inputs, outputs)


def score(queue: pt.Queue, scorer: ml.Model, clusters: pt.PortableCollection) -> None:
    """Enqueue ``scorer`` (an :class:`ml.Model` of a :class:`ClusterScorer`) on
    ``queue`` over ``clusters``, writing their ``score`` column in place. Any
    number of queues may share one ``scorer``.

    In Numba's CUDA simulator, whose memory torch cannot reach, the features are
    scored on a host copy instead and the scores copied back (synchronizing the
    queue): the same results, for testing the rest of a job there.

    Example::

        >>> import ml, portable as pt
        >>> from examples.calo.layouts import Clusters
        >>> q = pt.Queue(pt.get_device("cpu_serial"))
        >>> c = pt.PortableCollection(Clusters, 2, q.device, zero=True)
        >>> score(q, ml.Model(ClusterScorer()), c)
        >>> bool((c.column("score") > 0).all())
        True
    """
    if not clusters.size:
        return
    if not torch_reaches(clusters.device):
        host_queue = pt.Queue(pt.get_device("cpu_serial"))
        host = clusters.to(queue, host_queue.device)
        queue.synchronize()
        scorer(score_metadata(host), queue=host_queue)
        pt.memcpy(queue, clusters.column("score"), host.column("score"))
        queue.synchronize()
        return
    scorer(score_metadata(clusters), queue=queue)


def torch_reaches(device: pt.Device) -> bool:
    """Whether torch can use ``device``'s memory in place (not in a simulator's).

    Example::

        >>> import portable as pt
        >>> torch_reaches(pt.get_device("cpu_serial"))
        True
    """
    return device.backend.torch_device_type is not None
