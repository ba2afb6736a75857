"""The Triton python-backend model that serves an exported model (copied into the
model repository as ``<name>/1/model.py``; runs in the server's environment).

It reads ``format`` from the model's config parameters:

* ``numpy``: ``program.json`` and ``weights.npz`` (see :mod:`ml.service.program`),
  interpreted with NumPy alone, so the server's environment needs no torch;
* ``torchscript`` (``model.pt``) or ``export`` (``model.pt2``): run with torch,
  which the server process finds on ``ML_SERVICE_TORCH_PATH`` when its own
  environment has none.

Nothing here imports the project: the server's environment does not have it.

Example (the NumPy interpreter, as the server runs it)::

    >>> import numpy as np
    >>> steps = [{"name": "y", "op": "relu", "args": [{"ref": "x"}], "kwargs": {}}]
    >>> run_program(steps, ["x"], [{"ref": "y"}], {}, [np.array([[-1.0, 2.0]])])
    [array([[0., 2.]])]
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import numpy as np

_DTYPES = {"bool": np.bool_, "uint8": np.uint8, "int8": np.int8, "int16": np.int16,
           "int32": np.int32, "int64": np.int64, "float16": np.float16,
           "float32": np.float32, "float64": np.float64}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return (1 / (1 + np.exp(-x))).astype(x.dtype, copy=False)


def _softmax(x: np.ndarray, dim: int, *_: Any) -> np.ndarray:
    e = np.exp(x - x.max(axis=dim, keepdims=True))
    return e / e.sum(axis=dim, keepdims=True)


def _to(x: Any, dtype: Any = None, **_: Any) -> Any:
    return np.asarray(x).astype(_DTYPES[dtype]) if dtype else np.array(x, copy=True)


def _linear(x: np.ndarray, w: np.ndarray, b: np.ndarray | None = None) -> np.ndarray:
    y = x @ w.T
    return y if b is None else y + b


def _binary(fn: Callable[[Any, Any], Any]) -> Callable[..., Any]:
    def apply(a: Any, b: Any, alpha: Any = 1) -> Any:
        return fn(a, b if alpha == 1 else b * alpha)
    return apply


def _dims(shape: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in shape)


#: the ATen operations the interpreter knows, as NumPy
OPS: dict[str, Callable[..., Any]] = {
    "linear": _linear,
    "addmm": lambda b, x, w, beta=1, alpha=1: beta * b + alpha * (x @ w),
    "mm": np.matmul, "matmul": np.matmul, "bmm": np.matmul,
    "t": lambda x: x.T,
    "permute": lambda x, dims: np.transpose(x, dims),
    "transpose": lambda x, a, b: np.swapaxes(x, a, b),
    "view": lambda x, shape: np.reshape(x, _dims(shape)),
    "reshape": lambda x, shape: np.reshape(x, _dims(shape)),
    "_unsafe_view": lambda x, shape: np.reshape(x, _dims(shape)),
    "flatten": lambda x, start=0, end=-1: np.reshape(
        x, x.shape[:start] + (-1,) + (x.shape[end + 1:] if end != -1 else ())),
    "unsqueeze": np.expand_dims,
    "squeeze": lambda x, dim=None: np.squeeze(x, dim),
    "relu": lambda x: np.maximum(x, np.zeros((), x.dtype)),
    "leaky_relu": lambda x, slope=0.01: np.where(x > 0, x, x * np.asarray(slope, x.dtype)),
    "sigmoid": _sigmoid,
    "tanh": np.tanh, "exp": np.exp, "log": np.log, "sqrt": np.sqrt, "abs": np.abs,
    "neg": np.negative,
    "_softmax": _softmax, "softmax": _softmax,
    "add": _binary(np.add), "sub": _binary(np.subtract), "rsub": _binary(
        lambda a, b: np.subtract(b, a)),
    "mul": np.multiply, "div": np.true_divide,
    "cat": lambda tensors, dim=0: np.concatenate(tensors, axis=dim),
    "_to_copy": _to, "to": _to,
    "clone": lambda x, **_: np.array(x, copy=True),
    "detach": lambda x: x, "alias": lambda x: x, "contiguous": lambda x, **_: x,
    "sum": lambda x, dim=None, keepdim=False, **_: np.sum(
        x, axis=None if dim is None else tuple(dim), keepdims=keepdim),
    "mean": lambda x, dim=None, keepdim=False, **_: np.mean(
        x, axis=None if dim is None else tuple(dim), keepdims=keepdim),
    "clamp": lambda x, lo=None, hi=None: np.clip(x, lo, hi),
    "sym_size": lambda x, dim: x.shape[dim],
    "getitem": lambda x, i: x[i],
}


def run_program(steps: list[dict[str, Any]], inputs: list[str], outputs: list[Any],
                weights: dict[str, np.ndarray], arrays: list[np.ndarray]) -> list[np.ndarray]:
    """Run an exported program: ``inputs`` bound to ``arrays`` in order, each step
    applied to references and literals, the ``outputs`` returned."""
    values: dict[str, Any] = dict(weights)
    values.update(zip(inputs, arrays))

    def value(arg: Any) -> Any:
        if isinstance(arg, dict) and "ref" in arg:
            return values[arg["ref"]]
        if isinstance(arg, list):
            return [value(a) for a in arg]
        return arg

    for step in steps:
        args = [value(a) for a in step["args"]]
        kwargs = {k: value(v) for k, v in step["kwargs"].items()}
        values[step["name"]] = OPS[step["op"]](*args, **kwargs)
    return [np.asarray(value(o)) for o in outputs]


def _load_torch() -> Any:
    """torch, from the server's environment or else from ``ML_SERVICE_TORCH_PATH``
    (appended: the environment's own NumPy stays first)."""
    extra = os.environ.get("ML_SERVICE_TORCH_PATH")
    if extra and extra not in sys.path:
        sys.path.append(extra)
    import torch
    torch.set_num_threads(1)
    return torch


class TritonPythonModel:
    """Triton's python-backend entry points: ``initialize``, ``execute``."""

    def initialize(self, args: dict[str, str]) -> None:
        config = json.loads(args["model_config"])
        here = Path(args["model_repository"]) / args["model_version"]
        parameters = {k: v["string_value"] for k, v in config.get("parameters", {}).items()}
        self.format = parameters["format"]
        self.inputs = [t["name"] for t in config["input"]]
        self.outputs = [(t["name"], _DTYPES[t["data_type"][5:].lower().replace("fp", "float")
                                             if t["data_type"] != "TYPE_BOOL" else "bool"])
                        for t in config["output"]]
        if self.format == "numpy":
            program = json.loads((here / "program.json").read_text())
            with np.load(here / "weights.npz") as saved:
                weights = {k: saved[k] for k in saved.files}
            self.run = lambda arrays: run_program(program["steps"], program["inputs"],
                                                  program["outputs"], weights, arrays)
        else:
            torch = _load_torch()
            if self.format == "torchscript":
                module = torch.jit.load(str(here / "model.pt"), map_location="cpu").eval()
            else:
                module = torch.export.load(str(here / "model.pt2")).module()

            def run(arrays: list[np.ndarray]) -> list[np.ndarray]:
                with torch.inference_mode():
                    result = module(*(torch.from_numpy(a) for a in arrays))
                values = list(result) if isinstance(result, (tuple, list)) else [result]
                return [v.numpy() for v in values]
            self.run = run

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils
        arrays = [[pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs]
                  for r in requests]
        sizes = [a[0].shape[0] for a in arrays]
        # the dynamic batcher hands several requests at once: run them as one batch
        merged = [np.concatenate([a[i] for a in arrays]) if len(arrays) > 1 else arrays[0][i]
                  for i in range(len(self.inputs))]
        results = self.run(merged)
        responses, first = [], 0
        for size in sizes:
            tensors = [pb_utils.Tensor(name, np.ascontiguousarray(
                           value[first:first + size], dtype=dtype))
                       for (name, dtype), value in zip(self.outputs, results)]
            responses.append(pb_utils.InferenceResponse(tensors))
            first += size
        return responses
