"""``python -m ml.service``: the server side as a command.

    python -m ml.service check
    python -m ml.service export --module examples.calo.model:ClusterScorer \\
        --input floats:float32:5 --input ints:int32:2 --output score:float32:1 \\
        --repository models --name scorer --max-batch-size 1024 [--instances 2] \\
        [--format auto|numpy|torchscript|export]
    python -m ml.service export --file model.pt ...      # a TorchScript or .pt2 file
    python -m ml.service serve --repository models --model scorer [--model ...]
    python -m ml.service stats 127.0.0.1:8001 scorer

``serve`` starts a Triton server on free loopback ports, prints its gRPC
address, and stops it (process group, shared memory) on Ctrl-C or SIGTERM.
"""
from __future__ import annotations

import argparse
import importlib
import json
import signal
import sys
import threading
from typing import Sequence

import numpy as np

from .spec import TensorSpec


def _tensor(text: str) -> TensorSpec:
    """``name:dtype:d1xd2`` as a :class:`TensorSpec`.

    Example::

        >>> _tensor("floats:float32:5")
        TensorSpec(name='floats', dtype=dtype('float32'), dims=(5,))
    """
    try:
        name, dtype, dims = text.split(":")
        return TensorSpec(name, np.dtype(dtype), tuple(int(d) for d in dims.split("x")))
    except (ValueError, TypeError):
        raise argparse.ArgumentTypeError(f"{text!r} is not name:dtype:dims (e.g. x:float32:5 "
                                         f"or m:float32:3x3)") from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m ml.service", description=__doc__.splitlines()[0])
    commands = p.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="is the server environment ready?")
    export = commands.add_parser("export", help="write a model into a model repository")
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument("--module", help="package.module:factory returning an nn.Module")
    source.add_argument("--file", help="a TorchScript file or torch.export program")
    export.add_argument("--input", type=_tensor, action="append", required=True)
    export.add_argument("--output", type=_tensor, action="append", required=True)
    export.add_argument("--repository", required=True)
    export.add_argument("--name", required=True)
    export.add_argument("--max-batch-size", type=int, required=True)
    export.add_argument("--instances", type=int, default=1)
    export.add_argument("--format", default="auto",
                        choices=("auto", "numpy", "torchscript", "export"))
    serve = commands.add_parser("serve", help="run a Triton server until interrupted")
    serve.add_argument("--repository", required=True)
    serve.add_argument("--model", action="append", required=True)
    stats = commands.add_parser("stats", help="a served model's inference statistics")
    stats.add_argument("address")
    stats.add_argument("model")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status."""
    options = _parser().parse_args(argv)
    if options.command == "check":
        from .server import server_env, server_env_problem
        problem = server_env_problem()
        print(problem or f"server environment ready: {server_env()}")
        return 1 if problem else 0
    if options.command == "export":
        from .repository import export_model
        if options.module:
            module_name, _, factory = options.module.partition(":")
            sys.path.insert(0, ".")
            source = getattr(importlib.import_module(module_name), factory)()
        else:
            source = options.file
        folder = export_model(source, options.repository, options.name, options.input,
                              options.output, max_batch_size=options.max_batch_size,
                              instances=options.instances, format=options.format)
        print(f"exported {options.name} into {folder}")
        return 0
    if options.command == "serve":
        from .server import TritonServer
        done = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: done.set())
        with TritonServer(options.repository, options.model) as server:
            print(f"serving {', '.join(options.model)} at {server.address} (gRPC); "
                  f"Ctrl-C stops it", flush=True)
            while not done.wait(0.5):
                if not server.running():
                    print("the server exited; its log ends:\n" +
                          "\n".join(server.log().splitlines()[-10:]), file=sys.stderr)
                    return 1
        return 0
    import tritonclient.grpc as grpcclient
    client = grpcclient.InferenceServerClient(options.address)
    print(json.dumps(client.get_inference_statistics(options.model, as_json=True), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
