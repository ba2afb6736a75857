"""An eager ``nn.Module`` as a NumPy program, so a server without torch can run it.

:func:`to_program` exports the module with ``torch.export`` (batch dimension
dynamic) and writes each ATen call of its graph as a step of JSON that
:func:`ml.service.served.run_program` interprets with NumPy; parameters and
buffers become arrays. Only the operations in :data:`ml.service.served.OPS` are
known (linear layers, activations, elementwise arithmetic, concatenation, casts,
reshapes, reductions): anything else is an error that names the operation and
the other formats, which need torch on the server.

Example::

    >>> import numpy as np, torch
    >>> from ml.service.served import run_program
    >>> net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Sigmoid())
    >>> program, weights = to_program(net, (torch.zeros(4, 3),))
    >>> [step["op"] for step in program["steps"]]
    ['linear', 'sigmoid']
    >>> x = np.random.default_rng(0).random((5, 3), dtype=np.float32)
    >>> [y] = run_program(program["steps"], program["inputs"], program["outputs"], weights, [x])
    >>> bool(np.allclose(y, net(torch.from_numpy(x)).detach().numpy(), atol=1e-6))
    True
"""
from __future__ import annotations

import operator
from typing import Any

import numpy as np

from .served import OPS
from .spec import ServiceError

_SKIPPED = ("_assert_tensor_metadata", "_assert_scalar", "sym_constrain_range_for_size",
            "_assert_async")


def to_program(module: Any, example_inputs: tuple[Any, ...]) -> tuple[dict[str, Any],
                                                                     dict[str, np.ndarray]]:
    """``(program, weights)`` of ``module`` run on inputs like ``example_inputs``
    (any number of rows); see the module's docstring."""
    import torch
    batch = torch.export.Dim("batch", min=1)
    try:
        exported = torch.export.export(module.eval(), tuple(example_inputs),
                                       dynamic_shapes=tuple({0: batch} for _ in example_inputs))
    except Exception as err:
        first = (str(err).splitlines() or [type(err).__name__])[0]
        raise ServiceError(f"the model cannot be exported with torch.export for serving "
                           f"without torch ({first}); export it with format='torchscript' "
                           f"instead, which needs torch on the server") from err
    signature = exported.graph_signature
    state = dict(exported.state_dict)
    state.update(exported.constants)
    weights: dict[str, np.ndarray] = {}
    for node_name, target in {**signature.inputs_to_parameters, **signature.inputs_to_buffers,
                              **signature.inputs_to_lifted_tensor_constants}.items():
        weights[node_name] = state[target].detach().cpu().numpy()
    steps = []
    for node in exported.graph.nodes:
        if node.op != "call_function":
            continue
        op = _op_name(node.target)
        if op in _SKIPPED:
            continue
        if op not in OPS and op != "getitem":
            raise ServiceError(f"the model uses {node.target}, which the NumPy server model "
                               f"does not know (it knows {', '.join(sorted(OPS))}); export "
                               f"it with format='torchscript' or 'export' instead, which "
                               f"need torch on the server")
        steps.append({"name": node.name, "op": op, "args": _encode(node.args),
                      "kwargs": {k: _encode(v) for k, v in node.kwargs.items()
                                 if k not in ("device", "layout", "pin_memory",
                                              "memory_format")}})
    output = next(n for n in exported.graph.nodes if n.op == "output")
    outputs = _encode(list(output.args[0]))
    return {"inputs": list(signature.user_inputs), "steps": steps, "outputs": outputs}, weights


def _op_name(target: Any) -> str:
    if target is operator.getitem:
        return "getitem"
    return target.name().split("::")[-1].split(".")[0] if hasattr(target, "name") else \
        getattr(target, "__name__", str(target))


def _encode(value: Any) -> Any:
    """A graph argument as JSON: nodes as references, dtypes by name."""
    import torch
    import torch.fx
    if isinstance(value, torch.fx.Node):
        return {"ref": value.name}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    if isinstance(value, torch.dtype):
        return str(value).removeprefix("torch.")
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ServiceError(f"the model's graph holds an argument {value!r} the NumPy server "
                       f"model cannot carry; export it with format='torchscript' instead")
