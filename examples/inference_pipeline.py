"""Kernel -> model -> kernel on one queue, with the model reading and writing
the SoA collection in place (no copies) on the selected backend.

A kernel fills the hits' features, an MLP scores every hit reading the
feature columns in place and writing the score column, and a second kernel
flags the hits whose score passes a cut — all enqueued on one non-blocking
queue, with one synchronization at the end. The result is checked against
the same model run on a plain copy of the features.

    PORTABLE_BACKEND=cpu_threads python examples/inference_pipeline.py
"""
from __future__ import annotations

import math

import numpy as np
import torch

import ml
import portable as pt


class Hits(pt.Layout):
    x = pt.column(np.float32)
    y = pt.column(np.float32)
    z = pt.column(np.float32)
    score = pt.column(np.float32)
    passed = pt.column(np.int32)


@pt.kernel
def make_hits(acc, hits, seed):
    for i in acc.uniform_elements(hits.size):
        phase = (i * 0.618034 + seed) % 1.0
        hits.x[i] = math.cos(6.2831853 * phase) * (1.0 + i % 7)
        hits.y[i] = math.sin(6.2831853 * phase) * (1.0 + i % 5)
        hits.z[i] = (i % 11) - 5.0


@pt.kernel
def apply_cut(acc, hits, cut):
    for i in acc.uniform_elements(hits.size):
        hits.passed[i] = 1 if hits.score[i] > cut else 0


def main(n: int = 100_000) -> None:
    ml.set_threads(1, 1)
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(3, 32), torch.nn.ReLU(), torch.nn.Linear(32, 1))

    queue = pt.Queue(pt.get_device(), blocking=False)
    hits = pt.PortableCollection(Hits, n, queue.device, queue=queue, zero=True)
    inputs, outputs = ml.SoAMetadata(hits), ml.SoAMetadata(hits)
    inputs.append_block("features", "x", "y", "z")     # (n, 3), strides (1, pitch)
    outputs.append_block("score", "score")             # (n, 1)
    model = ml.Model(mlp).to(queue)

    workdiv = pt.make_workdiv(queue.device, n)
    pt.launch(queue, workdiv, make_hits, hits.view(), 0.25)
    model(ml.ModelMetadata(inputs, outputs))           # in place, on the queue's stream
    pt.launch(queue, workdiv, apply_cut, hits.view(), 0.0)
    host = hits.to(queue, pt.get_device("cpu_serial"))
    queue.synchronize()

    features = np.stack([host.column(c) for c in "xyz"], axis=1)
    with torch.inference_mode():
        expected = mlp(torch.from_numpy(features)).numpy()[:, 0]
    np.testing.assert_allclose(host.column("score"), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(host.column("passed"), (host.column("score") > 0.0))
    print(f"backend {queue.backend.name}: {n} hits scored in place, "
          f"{int(host.column('passed').sum())} pass the cut; equal to the model on a copy")


if __name__ == "__main__":
    main()
