"""Models run in place on SoA collections, on the data's own device and stream.

:class:`Model` wraps an eager ``nn.Module``, a TorchScript file, a
``torch.export`` program (``.pt2``) or an AOTInductor package (``.pt2``).
``model.to(queue)`` deploys it to the queue's device lazily, once per device;
``model(meta)`` reads the input blocks in place, runs under
``torch.inference_mode`` on the queue's stream, and writes each output into
its output block with one device-side copy.

Example::

    >>> import numpy as np, torch, portable as pt, ml
    >>> class Hits(pt.Layout):
    ...     x = pt.column(np.float32)
    ...     y = pt.column(np.float32)
    ...     score = pt.column(np.float32)
    >>> hits = pt.PortableCollection(Hits, 4, pt.get_device("cpu_serial"), zero=True)
    >>> hits.column("x")[:] = [1, 2, 3, 4]
    >>> inputs, outputs = ml.SoAMetadata(hits), ml.SoAMetadata(hits)
    >>> inputs.append_block("features", "x", "y")
    >>> outputs.append_block("score", "score")
    >>> net = torch.nn.Linear(2, 1, bias=False)
    >>> _ = torch.nn.init.constant_(net.weight, 2.0)
    >>> model = ml.Model(net).to(pt.Queue(hits.device))
    >>> model(ml.ModelMetadata(inputs, outputs))
    >>> hits.column("score").tolist()
    [2.0, 4.0, 6.0, 8.0]
"""
from __future__ import annotations

import contextlib
import copy
import difflib
import functools
import os
import shutil
import threading
import weakref
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from portable.checks import describe, expect_count, expect_flag, expect_queue
from portable.errors import ArgumentError
from portable.queue import Queue

from .metadata import MetadataError, ModelMetadata, check_rows
from .tensors import torch_device

#: how far ``Model(cast=...)`` lets an output's dtype change when it is written
CAST_RULES = ("safe", "same_kind")


class ModelFileError(MetadataError):
    """A file given as a model is missing, unreadable, cut short, corrupt, or
    holds something other than a model (weights alone, arrays)."""


class Model:
    """A model to run on collections in place (see the module's docstring).

    ``source`` is an ``nn.Module``, an ``ExportedProgram``, or the path of a
    TorchScript file, a ``torch.export`` program or an AOTInductor package. With
    ``deploy=False`` the model is never moved: running it on another device
    than the queue's is an error. AOTInductor packages come from
    :func:`aot_compile`; see there which C++ compiler to build them with.

    An output is written into its block only if no value can change: with
    ``cast="safe"`` (the default) float32 may widen to float64 but an int64
    output never goes into an int32 block, nor a float64 one into float32;
    ``cast="same_kind"`` allows narrowing within a kind (float64 to float32,
    int64 to int32), never float to int.

    Example::

        >>> import torch, ml
        >>> ml.Model(torch.nn.Linear(2, 1), cast="same_kind").kind
        'eager'
    """

    def __init__(self, source: Any, *, deploy: bool = True, cast: str = "safe") -> None:
        self.deploy = expect_flag(deploy, "deploy", "ml.Model")
        if cast not in CAST_RULES:
            raise ArgumentError(f"ml.Model: argument 'cast' must be one of {CAST_RULES}, got "
                                f"{describe(cast)}")
        self.cast = cast
        self.kind, self._source = _load(source)
        self.queue: Queue | None = None
        self._deployed: dict[Any, Any] = {}
        self._deploying = threading.Lock()
        #: how many times the weights were deployed to a device (once per device)
        self.deployments = 0

    def to(self, queue: Queue) -> Model:
        """Run on ``queue`` from now on; the model moves to its device at first use.

        Example::

            >>> import torch, portable as pt, ml
            >>> ml.Model(torch.nn.Linear(2, 1)).to("cpu_serial")
            Traceback (most recent call last):
            ...
            portable.errors.ArgumentError: Model.to: argument 'queue' must be a pt.Queue, got the str 'cpu_serial'; make one with pt.Queue(pt.get_device('cpu_serial'))
        """
        self.queue = expect_queue(queue, "queue", "Model.to")
        return self

    def __call__(self, meta: ModelMetadata, start: int = 0, stop: int | None = None, *,
                 queue: Queue | None = None) -> None:
        self.forward(meta, start, stop, queue=queue)

    def forward(self, meta: ModelMetadata, start: int = 0, stop: int | None = None, *,
                queue: Queue | None = None) -> None:
        """Run on rows ``start:stop`` of the input blocks, in place, and write each
        output into its output block, ordered on ``queue`` (default: the queue given
        to :meth:`to`). Nothing is written unless every output fits. On a
        non-blocking CPU queue the model runs on the queue's worker, and its errors
        reach the host at the next ``queue.synchronize()``.

        One model serves any number of queues and devices at once, from any number
        of host threads: the weights are deployed once per device, at the first call
        that runs there, and each call runs on its own queue's stream::

            model(meta_of_event_1, queue=q1)   # on a slot's queue
            model(meta_of_event_2, queue=q2)   # another slot, same weights

        Example::

            >>> import numpy as np, torch, portable as pt, ml
            >>> L = pt.Layout.define("L", [("a", pt.column(np.float32))])
            >>> meta = ml.SoAMetadata(pt.PortableCollection(L, 4, pt.get_device("cpu_serial")))
            >>> meta.append_block("a", "a")
            >>> model = ml.Model(torch.nn.Identity()).to(pt.Queue(pt.get_device("cpu_serial")))
            >>> model(meta)
            Traceback (most recent call last):
            ...
            portable.errors.ArgumentError: Model.forward: argument 'meta' must be an ml.ModelMetadata, got the SoAMetadata <SoAMetadata of L, 4 rows: blocks a>; pair input and output blocks with ml.ModelMetadata(inputs, outputs)
        """
        import torch
        where = "Model.forward"
        if not isinstance(meta, ModelMetadata):
            raise ArgumentError(f"{where}: argument 'meta' must be an ml.ModelMetadata, got "
                                f"{describe(meta)}; pair input and output blocks with "
                                f"ml.ModelMetadata(inputs, outputs)")
        rows = meta.rows()
        if type(start) is int and start == 0 and stop is None:
            stop = rows
        else:
            start, stop = check_rows(where, rows, start, stop)
        if queue is None:
            if self.queue is None:
                raise MetadataError("the model has no queue; call model.to(queue) first, or "
                                    "pass queue= to the call")
            queue = self.queue
        elif type(queue) is not Queue:
            queue = expect_queue(queue, "queue", where)
        call = _prepared_call(meta, queue, start, stop)
        module = self._on(call.device)
        inputs = call.inputs if call.inputs is not None else meta.inputs.tensors(start, stop)
        targets, cast = call.targets, self.cast

        def run() -> None:
            _apply_threads(torch)
            restore = _enter_stream(queue)
            try:
                with _inference_mode(torch):
                    try:
                        result = module(*inputs)
                    except Exception as err:
                        shapes = ", ".join(f"{name} {tuple(t.shape)} {t.dtype}"
                                           for name, t in zip(meta.inputs.order, inputs))
                        first = (str(err).splitlines() or [type(err).__name__])[0]
                        raise MetadataError(f"the model rejected its inputs ({shapes}): "
                                            f"{first}") from err
                    for target, value in _pair_outputs(result, meta.outputs.order, targets,
                                                       cast, call.shared):
                        target.copy_(value)
            finally:
                if restore is not None:
                    _leave_stream(torch, restore)

        if queue.backend.device_streams:
            run()  # torch enqueues on the queue's stream
        else:
            queue.backend.enqueue_host_function(queue, run)  # in order with the queue's work
        queue._done()

    def _on(self, device: Any) -> Any:
        found = self._deployed.get(device)
        if found is None:
            with self._deploying:  # two threads' first calls on one device deploy once
                found = self._deployed.get(device)
                if found is None:
                    found = _deploy(self.kind, self._source, device, self.deploy)
                    self._deployed[device] = found
                    self.deployments += 1
        return found


@dataclass(frozen=True)
class _Call:
    """What a call over rows ``start:stop`` of a metadata needs once its checks pass:
    the torch device, the block tensors (inputs ``None`` when a block is a copy,
    gathered anew at each call) and the storages of the output blocks."""

    device: Any
    inputs: list[Any] | None
    targets: list[Any]
    shared: frozenset[int]


#: per metadata, the calls prepared for it (the metadata's block order, rows and
#: device are part of the key: a change of any is a new call)
_calls: weakref.WeakKeyDictionary[ModelMetadata, dict[tuple[Any, ...], _Call]] = \
    weakref.WeakKeyDictionary()


def _prepared_call(meta: ModelMetadata, queue: Queue, start: int, stop: int) -> _Call:
    """The checked :class:`_Call` for ``meta`` on ``queue``, made at the first call and
    kept while nothing it depends on changes."""
    inputs, outputs = meta.inputs, meta.outputs
    key = (inputs, outputs, tuple(inputs.order), tuple(outputs.order), start, stop,
           queue.device)
    known = _calls.get(meta)
    if known is None:
        known = _calls[meta] = {}
    found = known.get(key)
    if found is None:
        _check_devices(meta, queue)
        _check_output_blocks(meta)
        device = torch_device(inputs.collection)
        gathered = any(inputs.blocks[name].copy for name in inputs.order)
        tensors = inputs.tensors(start, stop)  # checks the rows' alignment
        targets = outputs.tensors(start, stop)
        if len(known) > 256:  # many row ranges: keep it small
            known.clear()
        found = known[key] = _Call(device, None if gathered else tensors, targets,
                                   frozenset(t.untyped_storage().data_ptr() for t in targets))
    return found


def _check_devices(meta: ModelMetadata, queue: Queue) -> None:
    """Both collections on the queue's device (any CPU device serves a CPU queue)."""
    for side in ("inputs", "outputs"):
        home = getattr(meta, side).collection.device
        both_host = home.backend.host_memory and queue.backend.host_memory
        if home is not queue.device and not both_host:
            raise MetadataError(
                f"Model.forward: the {side} (meta.{side}) live on {home}, but the model's "
                f"queue runs on {queue.device}; copy the collection with "
                f"collection.to(queue), or give the model a queue on {home} with "
                f"model.to(pt.Queue(pt.get_device({home.backend.name!r}, {home.index})))")


def _check_output_blocks(meta: ModelMetadata) -> None:
    """Output blocks that can take one value per row, each member written once."""
    outputs = meta.outputs
    if not meta.inputs.order or not outputs.order:
        side = "inputs" if not meta.inputs.order else "outputs"
        raise MetadataError(f"Model.forward: meta.{side} declares no blocks; declare them "
                            f"with {side}.append_block(name, *members)")
    copied = [name for name in outputs.order if outputs.blocks[name].copy]
    if copied:
        raise MetadataError(f"output block(s) {copied} were declared with copy=True: a "
                            f"copy cannot carry results back; declare output members "
                            f"adjacent in the layout")
    scalars = [name for name in outputs.order if outputs.blocks[name].geometry.kind == "scalar"]
    if scalars:
        raise MetadataError(f"output block(s) {scalars} hold a scalar, one value for every "
                            f"row, which cannot take the model's value per row; declare a "
                            f"column for the output")
    owner: dict[str, str] = {}
    for name in outputs.order:
        for member in outputs.blocks[name].members:
            if member in owner:
                raise MetadataError(f"output blocks {owner[member]!r} and {name!r} both "
                                    f"cover member {member!r}, so one would overwrite the "
                                    f"other; give each output its own members")
            owner[member] = name


def _pair_outputs(result: Any, order: list[str], targets: list[Any], cast: str,
                  shared: frozenset[int]) -> list[tuple[Any, Any]]:
    """(output block tensor, model output) pairs, every one checked before any write;
    an output that shares memory with a block is copied first, so that no write
    changes a value still to be written."""
    import torch
    if result is None:
        raise MetadataError("the model returned None; its forward must return a tensor, a "
                            "tuple of tensors or a dict of tensors by output block name")
    if isinstance(result, dict):
        missing = [name for name in order if name not in result]
        extra = [name for name in result if name not in order]
        if missing or extra:
            close = {n: difflib.get_close_matches(str(n), missing, n=1) for n in extra}
            hints = "".join(f"; is {n!r} meant to be {c[0]!r}?" for n, c in close.items() if c)
            raise MetadataError(f"the model returned outputs {list(result)} for the output "
                                f"blocks {order}: missing block(s) {missing}, no block for "
                                f"{extra}{hints}")
        values = [result[name] for name in order]
    else:
        values = list(result) if isinstance(result, (tuple, list)) else [result]
        if len(values) != len(order):
            raise MetadataError(f"the model returned {len(values)} output(s) for "
                                f"{len(order)} output block(s) {order}")
    for name, target, value in zip(order, targets, values):
        if not isinstance(value, torch.Tensor):
            raise MetadataError(f"output {name!r}: the model gives {_summary(value)}, not a "
                                f"torch tensor; return tensors (torch.from_numpy turns an "
                                f"array into one)")
        if value.shape != target.shape:
            raise MetadataError(f"output {name!r}: the model gives shape {tuple(value.shape)}, "
                                f"the block holds {tuple(target.shape)} (rows, members...); "
                                f"make the model's output that shape")
        if value.device != target.device:
            raise MetadataError(f"output {name!r}: the model gives a tensor on "
                                f"{value.device}, the block lives on {target.device}; return "
                                f"outputs on the inputs' device")
        if value.dtype is not target.dtype and not _castable(value.dtype, target.dtype, cast):
            opt_in = " or pass cast='same_kind' to ml.Model," if cast == "safe" and \
                _castable(value.dtype, target.dtype, "same_kind") else ""
            raise MetadataError(f"output {name!r}: the model gives {value.dtype}, the block "
                                f"holds {target.dtype}, and writing one into the other may "
                                f"change values (cast={cast!r}); cast in the model "
                                f"(.to({target.dtype})),{opt_in} or declare the member "
                                f"with the model's dtype")
    return [(target, value.clone() if value.untyped_storage().data_ptr() in shared else value)
            for target, value in zip(targets, values)]


def _summary(value: Any) -> str:
    """A short description of what a model returned (arrays and lists can be long)."""
    if isinstance(value, (list, tuple)):
        return f"a {type(value).__name__} of {len(value)} item(s)"
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return f"a {type(value).__name__} of shape {tuple(value.shape)}, {value.dtype}"
    return describe(value)


@functools.lru_cache(maxsize=None)  # a pure function of dtypes, asked on every call
def _castable(source: Any, target: Any, rule: str) -> bool:
    """Whether torch dtype ``source`` casts to ``target`` under NumPy's ``rule``.
    bfloat16 stands in as float16, which casts like it but to and from each other
    (each holds values the other cannot)."""
    import torch
    if source == target:
        return True
    pair = {source, target}
    if torch.bfloat16 in pair:
        if rule == "safe" and torch.float16 in pair:
            return False
        source, target = (torch.float16 if d == torch.bfloat16 else d for d in (source, target))
    try:
        numpy_types = [torch.empty(0, dtype=d).numpy().dtype for d in (source, target)]
    except TypeError:  # a dtype NumPy lacks (float8 ...): only the same dtype fits
        return False
    return bool(np.can_cast(numpy_types[0], numpy_types[1], rule))


def _enter_stream(queue: Queue) -> tuple[tuple[int, int, int], ...] | None:
    """Make ``queue``'s CUDA stream torch's current one; what to restore with
    :func:`_leave_stream` (``None``: nothing to do, on the CPU). Switches through
    the stream ids torch keeps (``torch.cuda.stream(...)`` costs several times more)."""
    if not queue.backend.device_streams:
        return None
    import torch
    ids = queue.backend_cache.get("torch_stream_ids")
    if ids is None:  # made once per queue, not per call
        stream = torch.cuda.ExternalStream(queue.backend.torch_stream(queue), device=torch.device(
            queue.backend.torch_device_type, queue.device.index))
        ids = queue.backend_cache["torch_stream_ids"] = (
            stream.stream_id, stream.device_index, stream.device_type)
        queue.backend_cache["torch_stream"] = stream  # keeps the id valid
    api = torch._C
    here = api._cuda_getDevice()
    previous = api._cuda_getCurrentStream(here)
    if previous == ids:
        return ()  # already current
    restore = (previous,)
    if here != ids[1]:  # the stream's device becomes current: restore its stream first
        restore = (api._cuda_getCurrentStream(ids[1]),) + restore
    api._cuda_setStream(stream_id=ids[0], device_index=ids[1], device_type=ids[2])
    return restore


def _leave_stream(torch: Any, restore: tuple[tuple[int, int, int], ...]) -> None:
    """Undo :func:`_enter_stream`: each device's stream as it was, the device too."""
    for stream_id, device_index, device_type in restore:
        torch._C._cuda_setStream(stream_id=stream_id, device_index=device_index,
                                 device_type=device_type)


def _inference_mode(torch: Any) -> Any:
    """``torch.inference_mode()``, through the guard it enters (a fraction of its cost)."""
    guard = getattr(torch._C, "_InferenceMode", None)
    return guard(True) if guard is not None else torch.inference_mode()


def _load(source: Any) -> tuple[str, Any]:
    import torch
    if isinstance(source, torch.nn.Module):
        return "eager", source
    if isinstance(source, torch.export.ExportedProgram):
        return "export", source
    if not isinstance(source, (str, os.PathLike)):
        raise ArgumentError(f"ml.Model: argument 'source' must be a torch.nn.Module, a "
                            f"torch.export.ExportedProgram or the path of a saved model, got "
                            f"{describe(source)}; {_source_fix(source)}")
    path = Path(source)
    kind = _file_kind(path)
    if kind == "aoti":
        return kind, str(path)  # loaded on the device it runs on
    try:
        if kind == "torchscript":
            return kind, torch.jit.load(str(path), map_location="cpu")
        return kind, torch.export.load(str(path))
    except Exception as err:
        raise ModelFileError(f"{path}: this {_KIND_NAMES[kind]} cannot be loaded "
                             f"({type(err).__name__}); it may be corrupt or from another "
                             f"torch version: save the model again") from err


_KIND_NAMES = {"torchscript": "TorchScript file", "export": "torch.export program",
               "aoti": "AOTInductor package"}


def _source_fix(source: Any) -> str:
    import torch
    if isinstance(source, type) and issubclass(source, torch.nn.Module):
        return f"make an instance, e.g. ml.Model({source.__name__}())"
    if isinstance(source, dict):
        return ("a state_dict holds the weights without the module: build the module, "
                "call module.load_state_dict(state_dict) and pass the module")
    if callable(source):
        return ("a plain function is not a model: wrap it in a torch.nn.Module whose "
                "forward calls it")
    return "save the model with torch.jit.save or torch.export.save and pass the path"


def _file_kind(path: Path) -> str:
    """What the file at ``path`` holds, from its contents: "torchscript", "export" or
    "aoti"; anything else is a :class:`ModelFileError` that says what it is."""
    if not path.exists():
        raise ModelFileError(f"no model file at {path}")
    if path.is_dir():
        raise ModelFileError(f"{path} is a directory, not a model file; give the path of "
                             f"the saved model inside it")
    try:
        with path.open("rb") as file:
            head = file.read(6)
    except OSError as err:
        raise ModelFileError(f"{path} cannot be read ({err.strerror})") from None
    saved_as = "save models with torch.jit.save, torch.export.save or ml.aot_compile"
    if not head:
        raise ModelFileError(f"{path} is empty (0 bytes): the model was never written "
                             f"completely; save it again")
    if head == b"\x93NUMPY":
        raise ModelFileError(f"{path} is a NumPy .npy array, not a model; {saved_as}")
    if not head.startswith(b"PK"):
        what = "a pickle (pickle.dump, or torch.save's legacy format)" \
            if head[0] == 0x80 else "not a saved model"
        raise ModelFileError(f"{path} is {what}: saved models are zip archives; {saved_as}")
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            broken = archive.testzip()
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, NotImplementedError):
        raise ModelFileError(f"{path} is cut short or corrupt: it starts as a saved model "
                             f"(a zip archive) but its index, at the end, is missing or "
                             f"damaged; save the model again") from None
    if broken is not None:
        raise ModelFileError(f"{path} is corrupt: its member {broken} fails its checksum; "
                             f"save the model again")
    if any("/aotinductor/" in name for name in names):
        return "aoti"
    if any(name.endswith("/archive_format") for name in names):
        return "export"
    if any("/code/" in name for name in names) and \
            any(name.endswith("/constants.pkl") for name in names):
        return "torchscript"
    if any(name.endswith("/data.pkl") for name in names):
        raise ModelFileError(f"{path} {_pickled(path)}")
    if names and all(name.endswith(".npy") for name in names):
        arrays = ", ".join(name[:-4] for name in names[:5])
        raise ModelFileError(f"{path} is a NumPy .npz archive (arrays {arrays}), not a "
                             f"model; {saved_as}")
    raise ModelFileError(f"{path} is a zip archive but not a saved model; {saved_as}")


def _pickled(path: Path) -> str:
    """What a ``torch.save`` archive holds, for an error message."""
    import torch
    how = ("save the model itself with torch.jit.save or torch.export.save, or build the "
           "module and pass it")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return (f"was saved with torch.save and holds a pickled object (a whole module?), "
                f"not a model file ml loads: if you trust it, load it with "
                f"torch.load(path, weights_only=False) and pass the module, or {how}")
    if isinstance(content, dict):
        keys = ", ".join(map(str, list(content)[:4])) + (", ..." if len(content) > 4 else "")
        return (f"holds a state_dict ({len(content)} entries: {keys}) saved with "
                f"torch.save: weights without the module that uses them; build the module, "
                f"call module.load_state_dict(torch.load(path)) and pass the module to "
                f"ml.Model")
    return f"holds {describe(content)} saved with torch.save, not a model; {how}"


def _deploy(kind: str, source: Any, device: Any, deploy: bool) -> Any:
    """The model ready to run on ``device`` (moved as a copy: the caller's
    module stays where it is)."""
    import torch
    if kind == "aoti":
        try:
            package = torch._inductor.aoti_load_package(source)
        except Exception as err:
            raise ModelFileError(f"{source}: this AOTInductor package cannot be loaded "
                                 f"({type(err).__name__}); it may be corrupt, built for "
                                 f"another device or torch version: build it again with "
                                 f"ml.aot_compile") from err
        # compiled for contiguous inputs: hand it contiguous ones
        return lambda *inputs: package(*(t.contiguous() for t in inputs))
    module = source.module() if kind == "export" else source
    current = next((p.device for p in module.parameters()), None)
    if current is not None and current != device:
        if not deploy:
            raise MetadataError(f"the model's parameters are on {current} but the data on "
                                f"{device}, and deployment is switched off (deploy=False)")
        module = copy.deepcopy(module).to(device)
    if kind == "eager":
        module.eval()
    return module


def aot_compile(module: Any, example_inputs: tuple[Any, ...], path: str | Path,
                device: str = "cpu", compiler: str | None = None) -> str:
    """Export ``module`` and compile it ahead of time into an AOTInductor
    package at ``path`` for ``device`` ("cpu" or "cuda"); load it with
    ``ml.Model(path)``. Any number of rows is accepted.

    Needs a C++ compiler: ``compiler`` (a name on PATH or a path), else
    ``$CXX``, else ``g++``. If packages from the default compiler crash the
    process when they load, build with another: torch 2.11's CUDA 13 wheels
    (built with RHEL's gcc-toolset-13) on Ubuntu 24.04 crash on packages from
    Ubuntu's GCC 13.3 (a stack overflow in ``std::regex`` inside the package),
    while packages from its GCC 12 load and run.

    Example::

        ml.aot_compile(net, (torch.randn(64, 16),), "net.pt2", device="cuda",
                       compiler="g++-12")
    """
    import torch
    where = "ml.aot_compile"
    if not isinstance(module, torch.nn.Module):
        raise ArgumentError(f"{where}: argument 'module' must be a torch.nn.Module, got "
                            f"{describe(module)}; {_source_fix(module)}")
    if isinstance(example_inputs, torch.Tensor):
        raise ArgumentError(f"{where}: argument 'example_inputs' must be a tuple of "
                            f"tensors, got one tensor; write (tensor,)")
    if not isinstance(example_inputs, (tuple, list)) or not example_inputs or \
            not all(isinstance(t, torch.Tensor) for t in example_inputs):
        raise ArgumentError(f"{where}: argument 'example_inputs' must be a non-empty tuple "
                            f"of tensors, one per model input, got {describe(example_inputs)}")
    if not isinstance(path, (str, os.PathLike)):
        raise ArgumentError(f"{where}: argument 'path' must be a file path, got "
                            f"{describe(path)}")
    if not Path(path).parent.is_dir():
        raise ArgumentError(f"{where}: argument 'path': the folder {Path(path).parent} does "
                            f"not exist; create it first")
    if device not in ("cpu", "cuda"):
        raise ArgumentError(f"{where}: argument 'device' must be 'cpu' or 'cuda', got "
                            f"{describe(device)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ArgumentError(f"{where}: argument 'device' is 'cuda', but this torch "
                            f"({torch.__version__}) sees no CUDA GPU; compile on a machine "
                            f"with one, or for device='cpu'")
    options = {}
    if compiler is not None:
        if not isinstance(compiler, (str, os.PathLike)):
            raise ArgumentError(f"{where}: argument 'compiler' must be the name or path of a "
                                f"C++ compiler, got {describe(compiler)}")
        if shutil.which(compiler) is None:
            raise MetadataError(f"compiler={compiler!r}: no such C++ compiler on PATH; "
                                f"install it or name another (g++, g++-12, ...)")
        options["cpp.cxx"] = (compiler,)
    module = copy.deepcopy(module).to(device).eval()
    inputs = tuple(t.to(device) for t in example_inputs)
    rows = tuple({0: torch.export.Dim.AUTO} for _ in inputs)  # any number of rows
    program = torch.export.export(module, inputs, dynamic_shapes=rows)
    return torch._inductor.aoti_compile_and_package(program, package_path=str(path),
                                                    inductor_configs=options)


#: the intra-op thread count :func:`set_threads` asked for, applied in every thread that
#: runs a model (torch's count is a per-thread OpenMP setting: a count set in one thread
#: leaves the framework's worker threads with one thread per core each)
_intra_threads: int | None = None
_threads_applied = threading.local()


def _apply_threads(torch: Any) -> None:
    """Give the calling thread the intra-op thread count :func:`set_threads` chose."""
    if _intra_threads is not None and getattr(_threads_applied, "count", None) != _intra_threads:
        torch.set_num_threads(_intra_threads)
        _threads_applied.count = _intra_threads


def set_threads(intra: int = 1, inter: int = 1) -> None:
    """Limit torch's intra-op and inter-op threads (one each by default), so the
    host framework owns the cores. The intra-op count holds in every thread that runs
    an :class:`Model` (torch keeps it per thread). Inter-op threads can only be set
    before torch runs parallel work; a later call leaves them as they are.

    Example::

        >>> import ml
        >>> ml.set_threads(0)
        Traceback (most recent call last):
        ...
        portable.errors.ArgumentError: ml.set_threads: argument 'intra' must be an integer >= 1, got 0
    """
    import torch
    global _intra_threads
    intra = expect_count(intra, "intra", "ml.set_threads", least=1)
    inter = expect_count(inter, "inter", "ml.set_threads", least=1)
    _intra_threads = intra
    torch.set_num_threads(intra)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(inter)
