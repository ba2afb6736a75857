"""A fallback server that a client starts itself, for models no server has.

``LocalServer(repository)`` serves models already exported there;
``LocalServer.exporting(source, name, meta, max_batch_size=...)`` exports the
model into a temporary repository first. The server starts at the first need
(:meth:`LocalServer.start`), on free loopback ports, and stops with the client
(:meth:`LocalServer.stop`), or when the interpreter exits.

Example::

    >>> LocalServer("/nonexistent")
    Traceback (most recent call last):
    ...
    portable.errors.ArgumentError: LocalServer: argument 'repository': no folder /nonexistent; export models into it with ml.service.export_model
"""
from __future__ import annotations

import os
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from portable.errors import ArgumentError

from .server import TritonServer


class LocalServer:
    """A Triton server over ``repository``, started when first needed."""

    def __init__(self, repository: str | os.PathLike[str] | None, *,
                 env: str | os.PathLike[str] | None = None) -> None:
        if repository is not None and not Path(repository).is_dir():
            raise ArgumentError(f"LocalServer: argument 'repository': no folder {repository}; "
                                f"export models into it with ml.service.export_model")
        self.repository = Path(repository) if repository is not None else None
        self.env = env
        self.server: TritonServer | None = None
        self._export: tuple[Any, str, Any, dict[str, Any]] | None = None
        self._made: Path | None = None
        self._lock = threading.Lock()

    @classmethod
    def exporting(cls, source: Any, name: str, inputs: Any, outputs: Any = None, *,
                  env: str | os.PathLike[str] | None = None, **options: Any) -> LocalServer:
        """A local server for ``source``, exported as model ``name`` (with
        :func:`~ml.service.repository.export_model`'s arguments) when first started."""
        local = cls(None, env=env)
        local._export = (source, name, (inputs, outputs), options)
        return local

    def __repr__(self) -> str:
        where = self.server.address if self.server and self.server.running() else "not started"
        return f"<LocalServer {where}>"

    def start(self, model: str) -> str:
        """Start the server (if not running) serving ``model``; its gRPC address."""
        from .repository import export_model
        with self._lock:
            if self.server is not None and self.server.running():
                return self.server.address
            repository = self.repository
            if repository is None:
                assert self._export is not None
                source, name, (inputs, outputs), options = self._export
                self._made = Path(tempfile.mkdtemp(prefix="mlsvc-repo-"))
                export_model(source, self._made, name, inputs, outputs, **options)
                repository = self._made
            self.server = TritonServer(repository, [model], env=self.env).start()
            return self.server.address

    def stop(self) -> None:
        """Stop the server and remove a repository made for it."""
        with self._lock:
            if self.server is not None:
                self.server.stop()
                self.server = None
            if self._made is not None:
                shutil.rmtree(self._made, ignore_errors=True)
                self._made = None
