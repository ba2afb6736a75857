"""A real Triton server (the one bundled in ``nvidia-pytriton``), started and
stopped by the library on free loopback ports.

The server runs in its own virtual environment (``.venv-triton`` beside the
project, made by ``make .venv-triton``; or ``ML_SERVICE_TRITON_ENV``), because the
python backend needs NumPy < 2 there. :class:`TritonServer` copies the python
backend and the stub for the environment's Python into a private folder, starts
``tritonserver`` in its own process group with the environment's libraries,
waits until every model answers, and on :meth:`~TritonServer.stop` ends the
group (SIGTERM, then SIGKILL) and removes its shared-memory regions.

Example (needs the server environment)::

    with TritonServer(repository, ["scorer"]) as server:
        model = ml.service.ServiceModel("scorer", server.address)
"""
from __future__ import annotations

import atexit
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import weakref
from pathlib import Path
from typing import Sequence

from portable.checks import describe
from portable.errors import ArgumentError

from .spec import ServiceError

#: the project's root: the server environment lives beside it by default
PROJECT_ROOT = Path(__file__).resolve().parents[2]
ENV_VARIABLE = "ML_SERVICE_TRITON_ENV"
MAKE_HINT = "create it with `make .venv-triton` (pip install --no-deps nvidia-pytriton==0.7.0 'numpy<2')"


def server_env() -> Path:
    """The server's virtual environment: ``$ML_SERVICE_TRITON_ENV``, else
    ``.venv-triton`` in the project's root.

    Example::

        >>> server_env().name in (".venv-triton", Path(os.environ.get(ENV_VARIABLE, "x")).name)
        True
    """
    return Path(os.environ.get(ENV_VARIABLE) or PROJECT_ROOT / ".venv-triton")


def server_env_problem(env: Path | None = None) -> str | None:
    """Why no server can start from ``env`` (default :func:`server_env`), or None.

    Example::

        >>> print(server_env_problem(Path("/nonexistent")))
        no server environment at /nonexistent: create it with `make .venv-triton` (pip install --no-deps nvidia-pytriton==0.7.0 'numpy<2')
    """
    env = server_env() if env is None else env
    python = env / "bin" / "python"
    if not python.exists():
        return f"no server environment at {env}: {MAKE_HINT}"
    if _site(env) is None or not (_site(env) / "pytriton" / "tritonserver" / "bin" /
                                  "tritonserver").exists():
        return f"{env} has no nvidia-pytriton (tritonserver): {MAKE_HINT}"
    return None


def _site(env: Path) -> Path | None:
    found = sorted(env.glob("lib/python3*/site-packages"))
    return found[0] if found else None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TritonServer:
    """One ``tritonserver`` process serving ``models`` from ``repository``.

    ``address`` is its gRPC address (``127.0.0.1:PORT``) once started, on free
    ports unless ``ports`` (http, grpc) names them. ``threads`` limits the BLAS
    threads of each model instance (1 by default: scale with instances). The server is stopped at :meth:`stop`, when the object is
    collected, or when the interpreter exits."""

    def __init__(self, repository: str | os.PathLike[str], models: Sequence[str], *,
                 env: str | os.PathLike[str] | None = None, ready_timeout: float = 120.0,
                 threads: int = 1, ports: tuple[int, int] | None = None) -> None:
        where = "TritonServer"
        self.repository = Path(repository).resolve()
        if not self.repository.is_dir():
            raise ArgumentError(f"{where}: argument 'repository': no folder {self.repository}; "
                                f"write models into it with ml.service.export_model")
        if isinstance(models, str) or not models or not all(isinstance(m, str) for m in models):
            raise ArgumentError(f"{where}: argument 'models' must be a non-empty list of model "
                                f"names, got {describe(models)}")
        missing = [m for m in models if not (self.repository / m / "config.pbtxt").exists()]
        if missing:
            raise ArgumentError(f"{where}: no model {', '.join(map(repr, missing))} in "
                                f"{self.repository}; export it with ml.service.export_model")
        self.models = list(models)
        self.env = Path(env) if env is not None else server_env()
        self.ready_timeout = ready_timeout
        self.threads = threads
        #: (http, grpc) ports to take (to restart a server where it was), else free ones
        self.ports = ports
        self.process: subprocess.Popen[bytes] | None = None
        self.address = ""
        self.http_port = self.grpc_port = 0
        self.prefix = f"mlsvc{uuid.uuid4().hex[:10]}"
        self._workdir: Path | None = None
        self._lock = threading.Lock()
        self._finalizer = weakref.finalize(self, _stop_group, None, "", None)

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"at {self.address}" if self.running() else "stopped"
        return f"<TritonServer {state}: {', '.join(self.models)}>"

    def running(self) -> bool:
        """Whether the server process is alive."""
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        """What the server printed so far."""
        if self._workdir is None or not (self._workdir / "server.log").exists():
            return ""
        return (self._workdir / "server.log").read_text(errors="replace")

    def start(self) -> TritonServer:
        """Start the server and wait until every model answers a request for its
        metadata (a ``ServiceError`` with the server's log if it does not)."""
        with self._lock:
            if self.running():
                return self
            problem = server_env_problem(self.env)
            if problem is not None:
                raise ServiceError(problem)
            self._workdir = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
            backends = _backends(self.env, self._workdir)
            for attempt in range(5):  # another process may take a port between probe and bind
                self.http_port, self.grpc_port = self.ports or (free_port(), free_port())
                self._launch(backends)
                status = self._wait_started()
                if status == "started":
                    break
                self._kill()
                if status != "port taken" or attempt == 4 or self.ports:
                    tail = "\n".join(self.log().splitlines()[-15:])
                    raise ServiceError(f"the Triton server for {self.models} did not start "
                                       f"({status}); its log ends:\n{tail}")
            self.address = f"127.0.0.1:{self.grpc_port}"
            self._finalizer.detach()
            self._finalizer = weakref.finalize(self, _stop_group, self.process, self.prefix,
                                               self._workdir)
            _RUNNING.add(self)
        self._wait_models()
        return self

    def _launch(self, backends: Path) -> None:
        site = _site(self.env)
        assert site is not None
        binary = site / "pytriton" / "tritonserver" / "bin" / "tritonserver"
        import sysconfig
        libdir = subprocess.run([str(self.env / "bin" / "python"), "-c",
                                 "import sysconfig; print(sysconfig.get_config_var('LIBDIR'))"],
                                capture_output=True, text=True, check=True).stdout.strip() \
            if not _same_python(self.env) else sysconfig.get_config_var("LIBDIR")
        env = dict(os.environ)
        env.update(LD_LIBRARY_PATH=f"{libdir}:{site / 'nvidia_pytriton.libs'}",
                   PATH=f"{self.env / 'bin'}:{env.get('PATH', '')}",
                   OMP_NUM_THREADS=str(self.threads), OPENBLAS_NUM_THREADS=str(self.threads),
                   MKL_NUM_THREADS=str(self.threads))
        env.pop("PYTHONPATH", None)
        env.pop("PYTHONHOME", None)
        torch_path = _torch_path()
        if torch_path:
            env["ML_SERVICE_TORCH_PATH"] = torch_path
        command = [str(binary), f"--model-repository={self.repository}",
                   f"--backend-directory={backends}", "--http-address=127.0.0.1",
                   f"--http-port={self.http_port}", "--grpc-address=127.0.0.1",
                   f"--grpc-port={self.grpc_port}", "--model-control-mode=explicit",
                   *[f"--load-model={m}" for m in self.models],
                   "--disable-auto-complete-config", "--exit-timeout-secs=5",
                   "--allow-metrics=false",
                   f"--backend-config=python,shm-region-prefix-name={self.prefix}_"]
        assert self._workdir is not None
        with (self._workdir / "server.log").open("wb") as log:
            self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                            stdin=subprocess.DEVNULL, env=env,
                                            start_new_session=True)

    def _wait_started(self) -> str:
        deadline = time.monotonic() + self.ready_timeout
        while time.monotonic() < deadline:
            log = self.log()
            if "Started GRPCInferenceService" in log:
                return "started"
            if "Address already in use" in log:
                return "port taken"
            if not self.running():
                assert self.process is not None
                return f"exited with status {self.process.returncode}"
            time.sleep(0.05)
        return f"not ready after {self.ready_timeout:.0f} s"

    def _wait_models(self) -> None:
        import tritonclient.grpc as grpcclient
        from tritonclient.utils import InferenceServerException
        client = grpcclient.InferenceServerClient(self.address)
        deadline = time.monotonic() + self.ready_timeout
        try:
            while True:  # the port may take a moment to accept after the log says started
                try:
                    client.is_server_live(client_timeout=5.0)
                    break
                except InferenceServerException:
                    if time.monotonic() > deadline or not self.running():
                        raise
                    time.sleep(0.02)
            for name in self.models:
                if not client.is_model_ready(name):
                    self.stop()
                    raise ServiceError(f"the Triton server started, but model {name!r} is not "
                                       f"ready; its log ends:\n"
                                       f"{chr(10).join(self.log().splitlines()[-15:])}")
        finally:
            client.close()

    def pids(self) -> list[int]:
        """The processes of the server's group still alive (the server and the
        python backend's stubs)."""
        if self.process is None:
            return []
        return _group_pids(self.process.pid)

    def stub_pids(self) -> list[int]:
        """The python backend's stub processes (one per model instance)."""
        return [pid for pid in self.pids() if pid != self.process.pid and  # type: ignore[union-attr]
                "triton_python_backend_stub" in _cmdline(pid)]

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the server process alone (for fault drills: SIGKILL,
        SIGSTOP, SIGCONT)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signum)

    def stop(self) -> None:
        """End the server's process group (SIGTERM, SIGKILL after 10 s) and remove its
        shared-memory regions and working folder."""
        with self._lock:
            self._kill()
            self.address = ""
            _RUNNING.discard(self)

    def _kill(self) -> None:
        _stop_group(self.process, self.prefix, None)
        if self._workdir is not None and self.process is None:
            shutil.rmtree(self._workdir, ignore_errors=True)

    def shm_regions(self) -> list[str]:
        """The shared-memory regions of this server's stubs now in ``/dev/shm``."""
        return sorted(p.name for p in Path("/dev/shm").glob(f"{self.prefix}*"))


#: servers to stop when the interpreter exits
_RUNNING: weakref.WeakSet[TritonServer] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for server in list(_RUNNING):
        with contextlib.suppress(Exception):
            server.stop()


def _stop_group(process: subprocess.Popen[bytes] | None, prefix: str,
                workdir: Path | None) -> None:
    """SIGTERM the group of ``process`` (and SIGCONT it, in case it was stopped), then
    SIGKILL what is left; remove ``/dev/shm/<prefix>*`` and ``workdir``."""
    if process is not None:
        group = process.pid
        for signum in (signal.SIGTERM, signal.SIGCONT):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signum)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            pass
        deadline = time.monotonic() + 5
        while _group_pids(group) and time.monotonic() < deadline:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, signal.SIGKILL)
            time.sleep(0.02)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)
    if prefix:
        for region in Path("/dev/shm").glob(f"{prefix}*"):
            with contextlib.suppress(OSError):
                region.unlink()
    if workdir is not None:
        shutil.rmtree(workdir, ignore_errors=True)


def _group_pids(group: int) -> list[int]:
    """Live (not zombie) processes whose process group is ``group``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            found.append(int(entry.name))
    return found


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _same_python(env: Path) -> bool:
    """Whether ``env``'s Python is the running one's version (then its LIBDIR is ours)."""
    site = _site(env)
    return site is not None and site.parent.name == f"python{sys.version_info[0]}." \
                                                    f"{sys.version_info[1]}"


def _backends(env: Path, workdir: Path) -> Path:
    """A private backend folder: the python backend with the stub for ``env``'s Python."""
    site = _site(env)
    assert site is not None
    version = re.fullmatch(r"python(\d+\.\d+)", site.parent.name)
    assert version is not None
    bundled = site / "pytriton" / "tritonserver"
    stub = bundled / "python_backend_stubs" / version.group(1) / "triton_python_backend_stub"
    if not stub.exists():
        raise ServiceError(f"nvidia-pytriton in {env} has no python-backend stub for Python "
                           f"{version.group(1)}; make the environment with Python 3.8-3.13")
    target = workdir / "backends"
    shutil.copytree(bundled / "backends", target)
    shutil.copy2(stub, target / "python" / "triton_python_backend_stub")
    return target


def _torch_path() -> str:
    """The folder holding the running Python's torch, for served models that need
    torch when the server's environment has none ("" if torch is not installed)."""
    import importlib.util
    found = importlib.util.find_spec("torch")
    if found is None or found.origin is None:
        return ""
    return str(Path(found.origin).parents[1])
