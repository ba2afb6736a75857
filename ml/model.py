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
import shutil
import zipfile
from pathlib import Path
from typing import Any, Iterator

from portable.queue import Queue

from .metadata import MetadataError, ModelMetadata
from .tensors import torch_device


class Model:
    """A model to run on collections in place (see the module's docstring).

    ``source`` is an ``nn.Module``, or the path of a TorchScript file, a
    ``torch.export`` program or an AOTInductor package. With
    ``deploy=False`` the model is never moved: running it on another device
    than the queue's is an error. AOTInductor packages come from
    :func:`aot_compile`; see there which C++ compiler to build them with.
    """

    def __init__(self, source: Any, *, deploy: bool = True) -> None:
        self.kind, self._source = _load(source)
        self.deploy = deploy
        self.queue: Queue | None = None
        self._deployed: dict[Any, Any] = {}

    def to(self, queue: Queue) -> Model:
        """Run on ``queue`` from now on; the model moves to its device at first use."""
        self.queue = queue
        return self

    def __call__(self, meta: ModelMetadata, start: int = 0, stop: int | None = None) -> None:
        self.forward(meta, start, stop)

    def forward(self, meta: ModelMetadata, start: int = 0, stop: int | None = None) -> None:
        """Run on rows ``start:stop`` of the input blocks, in place, and write each
        output into its output block, ordered on the model's queue. Nothing is
        written unless every output fits. On a non-blocking CPU queue the model
        runs on the queue's worker, and its errors reach the host at the next
        ``queue.synchronize()``."""
        import torch
        if self.queue is None:
            raise MetadataError("the model has no queue; call model.to(queue) first")
        collection = meta.inputs.collection
        if collection.device is not self.queue.device and (
                collection.device.backend.is_gpu or self.queue.backend.is_gpu):
            raise MetadataError(f"the inputs live on {collection.device}, the model's queue "
                                f"on {self.queue.device}")
        copied = [name for name in meta.outputs.order if meta.outputs.blocks[name].copy]
        if copied:
            raise MetadataError(f"output block(s) {copied} were declared with copy=True: a "
                                f"copy cannot carry results back; declare output members "
                                f"adjacent in the layout")
        device = torch_device(collection)
        module = self._on(device)
        inputs = meta.inputs.tensors(start, stop)
        queue = self.queue

        def run() -> None:
            with _on_stream(queue), torch.inference_mode():
                try:
                    result = module(*inputs)
                except (RuntimeError, TypeError, ValueError) as err:
                    shapes = ", ".join(f"{name} {tuple(t.shape)} {t.dtype}"
                                       for name, t in zip(meta.inputs.order, inputs))
                    raise MetadataError(f"the model rejected its inputs ({shapes}): "
                                        f"{str(err).splitlines()[0]}") from err
                for target, value in _pair_outputs(result, meta, start, stop):
                    target.copy_(value)

        if queue.backend.is_gpu:
            run()  # torch enqueues on the queue's stream
        else:
            queue.native.submit(run)  # in order with the queue's other work
        queue._done()

    def _on(self, device: Any) -> Any:
        found = self._deployed.get(device)
        if found is None:
            found = self._deployed[device] = _deploy(self.kind, self._source, device,
                                                     self.deploy)
        return found


def _pair_outputs(result: Any, meta: ModelMetadata, start: int,
                  stop: int | None) -> list[tuple[Any, Any]]:
    """(output block tensor, model output) pairs, every one checked before any write."""
    order = meta.outputs.order
    if isinstance(result, dict):
        missing = [name for name in order if name not in result]
        if missing:
            raise MetadataError(f"the model returned {sorted(result)}, missing output "
                                f"block(s) {missing}")
        values = [result[name] for name in order]
    else:
        values = list(result) if isinstance(result, (tuple, list)) else [result]
        if len(values) != len(order):
            raise MetadataError(f"the model returned {len(values)} output(s) for "
                                f"{len(order)} output block(s) {order}")
    pairs = []
    for name, value in zip(order, values):
        target = meta.outputs.tensor(name, start, stop)
        if tuple(value.shape) != tuple(target.shape):
            raise MetadataError(f"output {name!r}: the model gives shape {tuple(value.shape)}, "
                                f"the block holds {tuple(target.shape)}")
        if value.dtype.is_floating_point != target.dtype.is_floating_point:
            raise MetadataError(f"output {name!r}: the model gives {value.dtype}, the block "
                                f"holds {target.dtype}")
        pairs.append((target, value))
    return pairs


@contextlib.contextmanager
def _on_stream(queue: Queue) -> Iterator[None]:
    """Torch work inside runs on ``queue``'s CUDA stream (nothing to do on the CPU)."""
    if not queue.backend.is_gpu:
        yield
        return
    import torch
    stream = queue.backend_cache.get("torch_stream")
    if stream is None:  # made once per queue, not per call
        stream = queue.backend_cache["torch_stream"] = torch.cuda.ExternalStream(
            int(queue.native), device=torch.device("cuda", queue.device.index))
    with torch.cuda.stream(stream):
        yield


def _load(source: Any) -> tuple[str, Any]:
    import torch
    if isinstance(source, torch.nn.Module):
        return "eager", source
    if isinstance(source, torch.export.ExportedProgram):
        return "export", source
    path = Path(source)
    if not path.exists():
        raise MetadataError(f"no model file at {path}")
    if path.suffix != ".pt2":
        return "torchscript", torch.jit.load(str(path), map_location="cpu")
    with zipfile.ZipFile(path) as archive:  # AOTInductor packages hold compiled code
        compiled = any("/aotinductor/" in name for name in archive.namelist())
    return ("aoti", str(path)) if compiled else ("export", torch.export.load(str(path)))


def _deploy(kind: str, source: Any, device: Any, deploy: bool) -> Any:
    """The model ready to run on ``device`` (moved as a copy: the caller's
    module stays where it is)."""
    import torch
    if kind == "aoti":
        package = torch._inductor.aoti_load_package(source)
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
    options = {}
    if compiler is not None:
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


def set_threads(intra: int = 1, inter: int = 1) -> None:
    """Limit torch's intra-op and inter-op threads (one each by default), so the
    host framework owns the cores. Inter-op threads can only be set before torch
    runs parallel work; a later call leaves them as they are."""
    import torch
    torch.set_num_threads(intra)
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(inter)
