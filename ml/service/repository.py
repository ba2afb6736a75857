"""Models exported into a Triton model repository, served by the python backend.

``export_model(source, repository, name, inputs, outputs, max_batch_size=...)``
writes ``<repository>/<name>/config.pbtxt`` (the tensors, ``max_batch_size``,
dynamic batching, the instance count) and ``<name>/1/``: the python-backend
``model.py`` (:mod:`ml.service.served`) and the model, in one of three formats:

==============  ==========================================  ==================
format          what is written                             server needs torch
==============  ==========================================  ==================
``numpy``       an eager module as a NumPy program          no
``torchscript`` a TorchScript file (scripted if eager)      yes
``export``      a ``torch.export`` program (``.pt2``)       yes
==============  ==========================================  ==================

``format="auto"`` (the default) takes ``numpy`` for eager modules whose
operations the NumPy program knows, else the file's own format. The tensors are
given as :class:`~ml.service.spec.TensorSpec` lists or taken from the blocks of
an :class:`ml.ModelMetadata` (block names become tensor names).

Example::

    >>> import tempfile, numpy as np, torch
    >>> from ml.service.spec import TensorSpec
    >>> f32 = np.dtype(np.float32)
    >>> with tempfile.TemporaryDirectory() as repo:
    ...     path = export_model(torch.nn.Linear(3, 1), repo, "lin", [TensorSpec("x", f32, (3,))],
    ...                         [TensorSpec("y", f32, (1,))], max_batch_size=64)
    ...     print(sorted(p.name for p in path.rglob("*") if p.is_file()))
    ['config.pbtxt', 'model.py', 'program.json', 'weights.npz']
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from portable.checks import describe, expect_count
from portable.errors import ArgumentError

from ..metadata import ModelMetadata
from .spec import ServiceError, TensorSpec, block_specs

FORMATS = ("auto", "numpy", "torchscript", "export")
SERVED_FILE = Path(__file__).with_name("served.py")


def export_model(source: Any, repository: str | os.PathLike[str], name: str,
                 inputs: Sequence[TensorSpec] | ModelMetadata,
                 outputs: Sequence[TensorSpec] | None = None, *, max_batch_size: int,
                 instances: int = 1, dynamic_batching: bool = True,
                 max_queue_delay_us: int = 0, format: str = "auto") -> Path:
    """Write model ``name`` into ``repository`` (see the module's docstring) and
    return its folder. ``source`` is an ``nn.Module``, an ``ExportedProgram``, or
    the path of a TorchScript file or a ``torch.export`` program. The model is run
    once on zeros before anything is written, to check its outputs' dtypes and
    shapes against ``outputs``."""
    import torch
    where = "ml.service.export_model"
    if not isinstance(name, str) or not name or "/" in name:
        raise ArgumentError(f"{where}: argument 'name' must be a non-empty str without '/', "
                            f"got {describe(name)}")
    if format not in FORMATS:
        raise ArgumentError(f"{where}: argument 'format' must be one of {FORMATS}, got "
                            f"{describe(format)}")
    max_batch_size = expect_count(max_batch_size, "max_batch_size", where, least=1)
    instances = expect_count(instances, "instances", where, least=1)
    max_queue_delay_us = expect_count(max_queue_delay_us, "max_queue_delay_us", where)
    if isinstance(inputs, ModelMetadata):
        if outputs is not None:
            raise ArgumentError(f"{where}: give either an ml.ModelMetadata as 'inputs' or two "
                                f"lists of TensorSpec, not both")
        inputs, outputs = block_specs(inputs)
    if outputs is None or not all(isinstance(s, TensorSpec) for s in [*inputs, *outputs]):
        raise ArgumentError(f"{where}: arguments 'inputs' and 'outputs' must be lists of "
                            f"ml.service.TensorSpec, or 'inputs' an ml.ModelMetadata")
    kind, module = _module_of(source)
    example = tuple(torch.zeros((2, *[max(d, 1) for d in s.dims]),
                                dtype=torch.from_numpy(np.empty(0, s.dtype)).dtype)
                    for s in inputs)
    _check_outputs(module, example, outputs)
    if format == "auto":
        format = "numpy" if kind == "eager" and _numpy_exportable(module, example) else \
            ("export" if kind == "export" else "torchscript")
    folder = Path(repository) / name
    version = folder / "1"
    if folder.exists():
        shutil.rmtree(folder)
    version.mkdir(parents=True)
    if format == "numpy":
        from .program import to_program
        program, weights = to_program(_eager(module, kind), example)
        (version / "program.json").write_text(json.dumps(program))
        np.savez(version / "weights.npz", **weights)
    elif format == "torchscript":
        scripted = source if kind == "torchscript" else _script(module, example)
        torch.jit.save(scripted, str(version / "model.pt"))
    else:
        program = source if kind == "export" and not isinstance(source, (str, os.PathLike)) \
            else _export(module, example)
        torch.export.save(program, str(version / "model.pt2"))
    shutil.copyfile(SERVED_FILE, version / "model.py")
    (folder / "config.pbtxt").write_text(
        config_text(name, inputs, outputs, max_batch_size, instances, dynamic_batching,
                    max_queue_delay_us, format))
    return folder


def config_text(name: str, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec],
                max_batch_size: int, instances: int, dynamic_batching: bool,
                max_queue_delay_us: int, format: str) -> str:
    """The ``config.pbtxt`` of a python-backend model.

    Example::

        >>> f32 = np.dtype(np.float32)
        >>> print(config_text("m", [TensorSpec("x", f32, (3,))], [TensorSpec("y", f32, (1,))],
        ...                   8, 2, True, 100, "numpy"))
        name: "m"
        backend: "python"
        max_batch_size: 8
        input [ { name: "x" data_type: TYPE_FP32 dims: [ 3 ] } ]
        output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]
        instance_group [ { count: 2 kind: KIND_CPU } ]
        dynamic_batching { max_queue_delay_microseconds: 100 }
        parameters { key: "format" value: { string_value: "numpy" } }
        <BLANKLINE>
    """
    def tensors(specs: Sequence[TensorSpec]) -> str:
        return ", ".join(f'{{ name: "{s.name}" data_type: TYPE_{s.triton_type} dims: '
                         f'[ {", ".join(map(str, s.dims))} ] }}' for s in specs)
    lines = [f'name: "{name}"', 'backend: "python"', f"max_batch_size: {max_batch_size}",
             f"input [ {tensors(inputs)} ]", f"output [ {tensors(outputs)} ]",
             f"instance_group [ {{ count: {instances} kind: KIND_CPU }} ]"]
    if dynamic_batching:
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {max_queue_delay_us} }}")
    lines.append(f'parameters {{ key: "format" value: {{ string_value: "{format}" }} }}')
    return "\n".join(lines) + "\n"


def _module_of(source: Any) -> tuple[str, Any]:
    """``(kind, callable module)`` of a model source."""
    import torch
    if isinstance(source, torch.jit.ScriptModule):
        return "torchscript", source
    if isinstance(source, torch.nn.Module):
        return "eager", source.eval()
    if isinstance(source, torch.export.ExportedProgram):
        return "export", source.module()
    if isinstance(source, (str, os.PathLike)):
        from ..model import Model
        model = Model(source)
        if model.kind == "aoti":
            raise ServiceError(f"{source} is an AOTInductor package, which the python "
                               f"backend does not load; export the module itself")
        return model.kind, model._source.module() if model.kind == "export" else model._source
    raise ArgumentError(f"ml.service.export_model: argument 'source' must be an nn.Module, "
                        f"an ExportedProgram or a model file path, got {describe(source)}")


def _check_outputs(module: Any, example: tuple[Any, ...], outputs: Sequence[TensorSpec]) -> None:
    import torch
    with torch.inference_mode():
        result = module(*example)
    values = list(result) if isinstance(result, (tuple, list)) else [result]
    if len(values) != len(outputs):
        raise ServiceError(f"the model returns {len(values)} output(s), but "
                           f"{len(outputs)} were declared: "
                           f"{', '.join(s.describe() for s in outputs)}")
    for spec, value in zip(outputs, values):
        got = np.dtype(torch.empty(0, dtype=value.dtype).numpy().dtype)
        if got != spec.dtype or tuple(value.shape[1:]) != spec.dims:
            raise ServiceError(f"output {spec.describe()}: the model gives {got} "
                               f"[rows, {', '.join(map(str, value.shape[1:]))}]; declare "
                               f"the output as the model gives it, or cast in the model")


def _numpy_exportable(module: Any, example: tuple[Any, ...]) -> bool:
    from .program import to_program
    try:
        to_program(module, example)
    except ServiceError:
        return False
    return True


def _eager(module: Any, kind: str) -> Any:
    if kind != "eager":
        raise ServiceError("format='numpy' takes an eager nn.Module; a TorchScript file or "
                           "export program is served with format='auto'")
    return module


def _script(module: Any, example: tuple[Any, ...]) -> Any:
    import torch
    try:
        return torch.jit.script(module)
    except Exception:
        return torch.jit.trace(module, example)


def _export(module: Any, example: tuple[Any, ...]) -> Any:
    import torch
    batch = torch.export.Dim("batch", min=1)
    return torch.export.export(module, example,
                               dynamic_shapes=tuple({0: batch} for _ in example))
