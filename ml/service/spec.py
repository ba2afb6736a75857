"""What a served model takes and gives, and the check of SoA blocks against it.

A :class:`TensorSpec` is one named tensor of a served model: its dtype and its
shape per row (the server adds the batch dimension, up to ``max_batch_size``
rows). :class:`ServedModel` is what a server says about a model: its inputs,
outputs and ``max_batch_size``. :func:`check_blocks` holds an
:class:`ml.ModelMetadata` against it before any data moves.

Example::

    >>> import numpy as np, portable as pt, ml
    >>> L = pt.Layout.define("L", [("a", pt.column(np.float32)), ("b", pt.column(np.float32)),
    ...                            ("s", pt.column(np.float32))])
    >>> c = pt.PortableCollection(L, 4, pt.get_device("cpu_serial"))
    >>> inputs, outputs = ml.SoAMetadata(c), ml.SoAMetadata(c)
    >>> inputs.append_block("x", "a", "b"); outputs.append_block("y", "s")
    >>> block_specs(ml.ModelMetadata(inputs, outputs))
    ([TensorSpec(name='x', dtype=dtype('float32'), dims=(2,))], [TensorSpec(name='y', dtype=dtype('float32'), dims=(1,))])
"""
from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..metadata import MetadataError, ModelMetadata, SoAMetadata

#: NumPy dtypes and the names Triton gives them (model metadata; config.pbtxt adds TYPE_)
TRITON_TYPES = {np.dtype(np.bool_): "BOOL", np.dtype(np.int8): "INT8",
                np.dtype(np.int16): "INT16", np.dtype(np.int32): "INT32",
                np.dtype(np.int64): "INT64", np.dtype(np.uint8): "UINT8",
                np.dtype(np.uint16): "UINT16", np.dtype(np.uint32): "UINT32",
                np.dtype(np.uint64): "UINT64", np.dtype(np.float16): "FP16",
                np.dtype(np.float32): "FP32", np.dtype(np.float64): "FP64"}
NUMPY_TYPES = {name: dtype for dtype, name in TRITON_TYPES.items()}


class ServiceError(MetadataError):
    """A served model that does not match the blocks, or a service that cannot answer."""


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a served model: name, dtype, shape of one row (``-1``: any)."""

    name: str
    dtype: np.dtype
    dims: tuple[int, ...]

    @property
    def triton_type(self) -> str:
        """The dtype as Triton names it, e.g. ``"FP32"``.

        Example::

            >>> TensorSpec("x", np.dtype(np.int32), (2,)).triton_type
            'INT32'
        """
        if self.dtype not in TRITON_TYPES:
            raise ServiceError(f"tensor {self.name!r}: dtype {self.dtype} has no Triton "
                               f"type; use one of "
                               f"{', '.join(str(d) for d in TRITON_TYPES)}")
        return TRITON_TYPES[self.dtype]

    def describe(self) -> str:
        """``name dtype [rows, dims...]``, as in errors.

        Example::

            >>> TensorSpec("x", np.dtype(np.float32), (5,)).describe()
            "'x' float32 [rows, 5]"
        """
        return f"{self.name!r} {self.dtype} [rows, {', '.join(map(str, self.dims))}]"


@dataclass(frozen=True)
class ServedModel:
    """A model as one server serves it: inputs and outputs in the server's order,
    and the most rows one request may carry."""

    name: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    max_batch_size: int

    @classmethod
    def from_server(cls, name: str, metadata: dict[str, Any],
                    config: dict[str, Any]) -> ServedModel:
        """From the JSON of Triton's model metadata and model config.

        Example::

            >>> meta = {"inputs": [{"name": "x", "datatype": "FP32", "shape": ["-1", "3"]}],
            ...         "outputs": [{"name": "y", "datatype": "INT64", "shape": ["-1", "1"]}]}
            >>> m = ServedModel.from_server("m", meta, {"config": {"max_batch_size": 8}})
            >>> m.inputs[0].dims, m.outputs[0].dtype, m.max_batch_size
            ((3,), dtype('int64'), 8)
        """
        batch = int(config.get("config", config).get("max_batch_size", 0))
        if batch < 1:
            raise ServiceError(f"served model {name!r} has max_batch_size {batch}: the "
                               f"client sends rows as the batch dimension, so the model "
                               f"must be configured with max_batch_size >= 1")

        def specs(entries: list[dict[str, Any]]) -> tuple[TensorSpec, ...]:
            found = []
            for entry in entries:
                kind = entry["datatype"]
                if kind not in NUMPY_TYPES:
                    raise ServiceError(f"served model {name!r}: tensor {entry['name']!r} has "
                                       f"type {kind}, which this client does not send")
                shape = tuple(int(d) for d in entry["shape"])
                found.append(TensorSpec(entry["name"], NUMPY_TYPES[kind], shape[1:]))
            return tuple(found)

        return cls(name, specs(metadata.get("inputs", [])), specs(metadata.get("outputs", [])),
                   batch)


def block_specs(meta: ModelMetadata) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The input and output blocks of ``meta`` as tensor specs (name, dtype, row shape)."""
    def specs(side: SoAMetadata) -> list[TensorSpec]:
        found = []
        for name in side.order:
            g = side.blocks[name].geometry
            dims = {"column": (g.count,), "vector": (g.count, g.rows),
                    "matrix": (g.rows, g.cols), "scalar": (1,)}[g.kind]
            found.append(TensorSpec(name, np.dtype(g.dtype), dims))
        return found
    return specs(meta.inputs), specs(meta.outputs)


def check_blocks(meta: ModelMetadata, served: ServedModel, address: str) -> None:
    """An error naming the first block that does not match what ``address`` serves
    as ``served``: every input and output block by name, dtype and row shape.

    Example::

        >>> import numpy as np, portable as pt, ml
        >>> L = pt.Layout.define("L", [("a", pt.column(np.float64)), ("s", pt.column(np.float32))])
        >>> c = pt.PortableCollection(L, 4, pt.get_device("cpu_serial"))
        >>> i, o = ml.SoAMetadata(c), ml.SoAMetadata(c)
        >>> i.append_block("x", "a"); o.append_block("y", "s")
        >>> f32 = np.dtype(np.float32)
        >>> served = ServedModel("m", (TensorSpec("x", f32, (1,)),), (TensorSpec("y", f32, (1,)),), 8)
        >>> check_blocks(ml.ModelMetadata(i, o), served, "127.0.0.1:8001")
        Traceback (most recent call last):
        ...
        ml.service.spec.ServiceError: input block 'x' holds float64, but model 'm' at 127.0.0.1:8001 expects input 'x' float32 [rows, 1]; declare the block's members as float32, or serve a model that takes float64
    """
    inputs, outputs = block_specs(meta)
    where = f"model {served.name!r} at {address}"
    for side, blocks, expected in (("input", inputs, served.inputs),
                                   ("output", outputs, served.outputs)):
        by_name = {spec.name: spec for spec in expected}
        names = [spec.name for spec in blocks]
        for spec in blocks:
            want = by_name.get(spec.name)
            if want is None:
                close = difflib.get_close_matches(spec.name, list(by_name), n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                raise ServiceError(f"{side} block {spec.name!r}: {where} has no {side} of "
                                   f"that name (its {side}s: "
                                   f"{', '.join(s.describe() for s in expected)}){hint}; "
                                   f"blocks are named after the server's tensors")
            if spec.dtype != want.dtype:
                raise ServiceError(f"{side} block {spec.name!r} holds {spec.dtype}, but "
                                   f"{where} expects {side} {want.describe()}; declare the "
                                   f"block's members as {want.dtype}, or serve a model that "
                                   f"takes {spec.dtype}")
            if len(spec.dims) != len(want.dims) or any(
                    w not in (-1, d) for d, w in zip(spec.dims, want.dims)):
                raise ServiceError(f"{side} block {spec.name!r} has rows of shape "
                                   f"{list(spec.dims)}, but {where} expects {side} "
                                   f"{want.describe()}; declare the block with that many "
                                   f"members")
        missing = [s for s in expected if s.name not in names]
        if missing:
            raise ServiceError(f"{where} has {side}(s) "
                               f"{', '.join(s.describe() for s in missing)} that no "
                               f"{side} block provides; declare a block of that name "
                               f"(meta.{side}s.append_block(name, *members))")
