"""Inference as a pipeline module, direct or through a service, chosen on the
command line.

:class:`ServiceInference` is an ExternalWork module that runs a model over a
collection product in place and puts it again under another label. With a
:class:`~ml.service.ServiceModel` its ``acquire`` enqueues the request on the
slot's queue (the queue's worker waits for the answer, no pipeline thread
does) and ``produce`` only collects the outcome; with an :class:`ml.Model` it runs
the model in place on the slot's queue. A collection in device memory is copied
to the host in ``acquire`` (on the slot's queue); ``produce`` then sends it, waits
for the answer on its host thread, and copies the collection back (on the queue).

:func:`add_arguments` adds ``--inference direct|service``, ``--servers``,
``--service-timeout`` and ``--service-fallback`` to a program's flags;
:func:`inference_model` builds the model they ask for and
:func:`inference_module` the module::

    parser = cli.parser(); add_arguments(parser)
    options = parser.parse_args(["--inference", "service", "--servers", "127.0.0.1:8001"])
    spec = inference_module(options, net, "scorer", Clusters, score_metadata,
                            consumes="features", produces="scored", name="Score")
"""
from __future__ import annotations

import argparse
from typing import Any, Callable

import portable as pt
import portable.pipeline as pp
from portable.checks import describe

from ..metadata import ModelMetadata
from ..model import Model
from .client import ServiceModel
from .local import LocalServer
from .spec import block_specs

FALLBACKS = ("local", "inprocess", "none")


class ServiceInference(pp.ExternalWork):
    """``model`` (a :class:`ServiceModel` or :class:`ml.Model`) over the ``layout``
    product labelled ``consumes``, with blocks from ``metadata(collection)``; the
    collection, written in place, is put again labelled ``produces``. An empty
    collection sends nothing.

    Example::

        >>> import numpy as np
        >>> L = pt.Layout.define("L", [("x", pt.column(np.float32))])
        >>> spec = pp.module(ServiceInference, model=None, layout=L, metadata=None,
        ...                  consumes="raw", produces="scored")
        >>> spec.build()
        Traceback (most recent call last):
        ...
        portable.errors.ArgumentError: ServiceInference: argument 'model' must be an ml.service.ServiceModel or an ml.Model, got the NoneType None
    """

    def __init__(self, model: ServiceModel | Model, layout: type[pt.Layout],
                 metadata: Callable[[pt.PortableCollection], ModelMetadata],
                 consumes: str = "", produces: str = "inferred") -> None:
        if not isinstance(model, (ServiceModel, Model)):
            raise pt.ArgumentError(f"ServiceInference: argument 'model' must be an "
                                   f"ml.service.ServiceModel or an ml.Model, got "
                                   f"{describe(model)}")
        self.model, self.layout, self.metadata = model, layout, metadata
        self.consumes, self.produces = consumes, produces
        self.collection: pt.PortableCollection | None = None
        self.future: Any = None
        #: a host copy of a device collection, for the servers (None on host memory)
        self.staged: pt.PortableCollection | None = None
        self.host_queue: pt.Queue | None = None

    def register(self, reg: pp.Registration) -> None:
        self.source = reg.consumes(self.layout, self.consumes)
        self.result = reg.produces(self.layout, self.produces)

    def acquire(self, event: pp.Event, ctx: pp.Context) -> None:
        self.collection = event.get(self.source)
        self.future = self.staged = None
        if not self.collection.size:
            return
        if not isinstance(self.model, ServiceModel):
            self.model(self.metadata(self.collection), queue=ctx.queue)
        elif self.collection.device.backend.host_memory:
            self.future = self.model.submit(self.metadata(self.collection), queue=ctx.queue)
        else:  # the servers read host memory: copy the collection out first
            self.staged = self.collection.to(ctx.queue, pt.get_device("cpu_serial"))

    def produce(self, event: pp.Event, ctx: pp.Context) -> None:
        if self.future is not None:
            self.future.result()  # done by now: the queue has passed the request
        elif self.staged is not None:  # the copy is there: one round trip, then back
            if self.host_queue is None:
                self.host_queue = pt.Queue(pt.get_device("cpu_serial"))
            self.model(self.metadata(self.staged), queue=self.host_queue)
            self.collection.copy_from(ctx.queue, self.staged)
        event.put(self.result, self.collection)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the inference flags to ``parser``.

    Example::

        >>> p = argparse.ArgumentParser(); add_arguments(p)
        >>> o = p.parse_args(["--inference", "service", "--servers", "127.0.0.1:8001,127.0.0.1:8002"])
        >>> o.inference, o.servers, o.service_fallback
        ('service', ['127.0.0.1:8001', '127.0.0.1:8002'], 'local')
    """
    group = parser.add_argument_group("inference")
    group.add_argument("--inference", choices=("direct", "service"), default="direct",
                       help="run the model in process (direct, default) or on Triton "
                            "servers (service)")
    group.add_argument("--servers", type=lambda text: [s for s in text.split(",") if s],
                       default=[], metavar="HOST:PORT[,HOST:PORT...]",
                       help="gRPC addresses of the Triton servers (--inference service)")
    group.add_argument("--service-timeout", type=float, default=10.0, metavar="SECONDS",
                       help="limit of each request (default 10)")
    group.add_argument("--service-fallback", choices=FALLBACKS, default="local",
                       help="when no server runs the model: start a local server (local, "
                            "default), run it in process (inprocess), or fail (none)")


def inference_model(options: argparse.Namespace, module: Any, name: str,
                    layout: type[pt.Layout],
                    metadata: Callable[[pt.PortableCollection], ModelMetadata],
                    max_batch_size: int = 1024) -> ServiceModel | Model:
    """The model the options ask for: ``ml.Model(module)`` (direct), or a
    :class:`ServiceModel` of ``name`` on ``--servers`` with the chosen fallback (a
    local server exports ``module`` with ``max_batch_size`` when first needed).

    Example::

        >>> import numpy as np, torch
        >>> L = pt.Layout.define("L", [("x", pt.column(np.float32)), ("y", pt.column(np.float32))])
        >>> def meta(c):
        ...     i, o = ml.SoAMetadata(c), ml.SoAMetadata(c)
        ...     i.append_block("x", "x"); o.append_block("y", "y")
        ...     return ml.ModelMetadata(i, o)
        >>> import ml
        >>> p = argparse.ArgumentParser(); add_arguments(p)
        >>> type(inference_model(p.parse_args([]), torch.nn.Linear(1, 1), "lin", L, meta)).__name__
        'Model'
        >>> m = inference_model(p.parse_args(["--inference", "service", "--servers", "127.0.0.1:9"]),
        ...                     torch.nn.Linear(1, 1), "lin", L, meta)
        >>> m.name, m.fallback
        ('lin', <LocalServer not started>)
    """
    if options.inference == "direct":
        return Model(module)
    fallback: Model | LocalServer | None = None
    if options.service_fallback == "inprocess":
        fallback = Model(module)
    elif options.service_fallback == "local":
        empty = pt.PortableCollection(layout, 0, pt.get_device("cpu_serial"))
        inputs, outputs = block_specs(metadata(empty))
        fallback = LocalServer.exporting(module, name, inputs, outputs,
                                         max_batch_size=max_batch_size)
    return ServiceModel(name, options.servers, timeout=options.service_timeout,
                        fallback=fallback)


def inference_module(options: argparse.Namespace, module: Any, model_name: str,
                     layout: type[pt.Layout],
                     metadata: Callable[[pt.PortableCollection], ModelMetadata], *,
                     consumes: str, produces: str, name: str = "Inference",
                     max_batch_size: int = 1024) -> pp.ModuleSpec:
    """A :class:`ServiceInference` module named ``name`` running the model the options
    ask for (see :func:`inference_model`); every slot shares the one model."""
    model = inference_model(options, module, model_name, layout, metadata, max_batch_size)
    return pp.module(ServiceInference, name=name, model=model, layout=layout,
                     metadata=metadata, consumes=consumes, produces=produces)
