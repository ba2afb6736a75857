"""Inference as a service: SoA blocks sent to Triton servers (CMS's SONIC).

* :class:`ServiceModel`: a served model run on an ``ml.ModelMetadata`` like
  ``ml.Model`` (``.to(queue)``, ``model(meta, start, stop)``, ``submit`` for a
  future), with chunking, shared memory, retries, failover, load balancing and a
  local fallback;
* :func:`export_model`: a model into a Triton model repository (python backend);
* :class:`TritonServer`, :class:`LocalServer`: real servers started on this machine;
* :class:`ServiceInference`: an ExternalWork module for ``portable.pipeline``;
* ``python -m ml.service``: export, serve, check the server environment.

Example::

    >>> import ml.service
    >>> ml.service.ServiceModel("scorer", ["127.0.0.1:8001"]).name
    'scorer'
"""
from .client import ServiceModel
from .local import LocalServer
from .pipeline import ServiceInference, add_arguments, inference_model, inference_module
from .repository import export_model
from .server import TritonServer, server_env, server_env_problem
from .spec import ServedModel, ServiceError, TensorSpec

__all__ = ["LocalServer", "ServedModel", "ServiceError", "ServiceInference", "ServiceModel",
           "TensorSpec", "TritonServer", "add_arguments", "export_model", "inference_model",
           "inference_module", "server_env", "server_env_problem"]
