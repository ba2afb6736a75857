"""One server as a client sees it: a gRPC channel, the models it serves, the
requests in flight, whether it is down, and its shared-memory regions.

Errors are sorted three ways (:func:`classify`): a lost connection or a timeout
is worth a retry; a dead python-backend stub (the model stays READY but every
request fails) makes the server unusable, like a crash, and so does a request the
client cancelled because its server failed (:meth:`Link.mark_down` cancels what
is still in flight there), and so does a server that has forgotten the client's
shared-memory regions (it restarted); anything else (bad arguments, an unknown model) is
the request's own fault and fails at once.

Example::

    >>> from tritonclient.utils import InferenceServerException
    >>> classify(InferenceServerException("Deadline Exceeded", "StatusCode.DEADLINE_EXCEEDED"))
    'retry'
    >>> classify(InferenceServerException("Stub process 'm_0_0' is not healthy.", "StatusCode.INTERNAL"))
    'server'
    >>> classify(InferenceServerException("unexpected shape for input 'x'", "StatusCode.INVALID_ARGUMENT"))
    'fatal'
"""
from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import Any, Callable

from portable.errors import ArgumentError

from .shm import ShmPool
from .spec import ServedModel

#: gRPC reconnects after a server comes back within this many ms (gRPC's default
#: backoff left clients waiting 5-8 s after a restart)
RECONNECT_BACKOFF_MS = 100
MAX_RECONNECT_BACKOFF_MS = 250

RETRY_CODES = ("StatusCode.UNAVAILABLE", "StatusCode.DEADLINE_EXCEEDED")
DEAD_STUB_SIGNS = ("Stub process", "is not healthy", "Failed to initialize stub")
#: a server that answers but has forgotten the client's shared memory: it restarted
FORGOT_SIGNS = ("Unable to find shared memory region",)


def classify(error: BaseException) -> str:
    """``"retry"``, ``"server"`` or ``"fatal"`` (see the module's docstring)."""
    status = getattr(error, "status", lambda: None)()
    message = str(getattr(error, "message", lambda: error)())
    if status in RETRY_CODES:
        return "retry"
    if status == "StatusCode.CANCELLED" or any(sign in message
                                               for sign in DEAD_STUB_SIGNS + FORGOT_SIGNS):
        return "server"
    return "fatal"


def parse_address(address: Any) -> tuple[str, int]:
    """``(host, port)`` of a ``host:port`` address, or an ``ArgumentError``.

    Example::

        >>> parse_address("127.0.0.1:8001"), parse_address("[::1]:9")
        (('127.0.0.1', 8001), ('::1', 9))
        >>> parse_address("localhost")
        Traceback (most recent call last):
        ...
        portable.errors.ArgumentError: ml.service: server address 'localhost' must be host:port, e.g. 127.0.0.1:8001 (Triton's gRPC port)
    """
    if isinstance(address, str) and ":" in address:
        host, _, port = address.rpartition(":")
        host = host.strip("[]")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return host, int(port)
    raise ArgumentError(f"ml.service: server address {address!r} must be host:port, e.g. "
                        f"127.0.0.1:8001 (Triton's gRPC port)")


def is_local(host: str) -> bool:
    """Whether ``host`` is this machine (loopback), where shared memory reaches the server.

    Example::

        >>> is_local("127.0.0.1"), is_local("localhost"), is_local("10.0.0.1")
        (True, True, False)
    """
    try:
        return ipaddress.ip_address(socket.gethostbyname(host)).is_loopback
    except (OSError, ValueError):
        return False


def channel_args() -> list[tuple[str, Any]]:
    """tritonclient's own channel settings (message sizes, keepalive) with a short
    reconnect backoff."""
    from tritonclient.grpc import MAX_GRPC_MESSAGE_SIZE, KeepAliveOptions
    keep = KeepAliveOptions()
    return [("grpc.max_send_message_length", MAX_GRPC_MESSAGE_SIZE),
            ("grpc.max_receive_message_length", MAX_GRPC_MESSAGE_SIZE),
            ("grpc.keepalive_time_ms", keep.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", keep.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", keep.keepalive_permit_without_calls),
            ("grpc.http2.max_pings_without_data", keep.http2_max_pings_without_data),
            ("grpc.initial_reconnect_backoff_ms", RECONNECT_BACKOFF_MS),
            ("grpc.min_reconnect_backoff_ms", RECONNECT_BACKOFF_MS),
            ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS)]


class Link:
    """The client's side of one server (thread safe)."""

    def __init__(self, address: str, *, fallback: bool = False) -> None:
        import tritonclient.grpc as grpcclient
        host, _ = parse_address(address)
        self.address = address
        self.local = is_local(host)
        self.fallback = fallback
        self.client = grpcclient.InferenceServerClient(address, channel_args=channel_args())
        self.outstanding = 0
        self.down_until = 0.0
        self.last_error = ""
        #: model name -> what the server serves (None: not this model)
        self.models: dict[str, ServedModel | None] = {}
        self._shm: ShmPool | None = None
        self._inflight: set[Any] = set()
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Link {self.address}{' (fallback)' if self.fallback else ''}>"

    def served(self, name: str, timeout: float) -> ServedModel | None:
        """What this server serves as ``name`` (None if it does not serve it), asked
        once; a connection error propagates (the server is unreachable)."""
        if name in self.models:
            return self.models[name]
        from tritonclient.utils import InferenceServerException
        try:
            if not self.client.is_model_ready(name, client_timeout=timeout):
                found = None
            else:
                metadata = self.client.get_model_metadata(name, as_json=True,
                                                          client_timeout=timeout)
                config = self.client.get_model_config(name, as_json=True, client_timeout=timeout)
                found = ServedModel.from_server(name, metadata, config)
        except InferenceServerException as err:
            if classify(err) != "fatal":
                raise
            found = None
        self.models[name] = found
        return found

    def usable(self, now: float) -> bool:
        return now >= self.down_until

    def mark_down(self, seconds: float, error: str, cancel: bool = False) -> None:
        """Keep requests away for ``seconds``; with ``cancel``, also cancel the requests
        still in flight here (their callbacks then move them elsewhere)."""
        self.down_until = time.monotonic() + seconds
        self.last_error = error
        with self._lock:  # back or restarted, it gets newly registered regions
            shm, self._shm = self._shm, None
        if shm is not None:
            shm.close(unregister=False)
        if cancel:
            with self._lock:
                pending = list(self._inflight)
            for context in pending:
                context.cancel()

    def shm(self) -> ShmPool:
        with self._lock:
            if self._shm is None or self._shm.closed:
                self._shm = ShmPool(self.client, "mlsvcc")
            return self._shm

    def infer(self, name: str, inputs: list[Any], outputs: list[Any] | None, timeout: float,
              callback: Callable[[Any, Any], None], wait: bool = False) -> None:
        """Send one request; ``callback(result, error)`` runs when it ends: in this
        thread with ``wait`` (gRPC's blocking call, the cheapest round trip), else on
        gRPC's (several requests in flight at once)."""
        if wait:
            with self._lock:
                self.outstanding += 1
            try:
                result = self.client.infer(name, inputs, outputs=outputs,
                                           client_timeout=timeout)
            except Exception as err:
                with self._lock:
                    self.outstanding -= 1
                callback(None, err)
                return
            with self._lock:
                self.outstanding -= 1
            callback(result, None)
            return
        state: dict[str, Any] = {"context": None, "done": False}
        with self._lock:
            self.outstanding += 1

        def done(result: Any, error: Any) -> None:
            with self._lock:
                self.outstanding -= 1
                state["done"] = True
                self._inflight.discard(state["context"])
            callback(result, error)

        try:
            context = self.client.async_infer(name, inputs, done, outputs=outputs,
                                              client_timeout=timeout)
        except Exception as err:
            done(None, err)
            return
        with self._lock:  # unless it has already ended, it can be cancelled from now on
            if not state["done"]:
                state["context"] = context
                self._inflight.add(context)

    def close(self) -> None:
        """Free the shared-memory regions and the channel."""
        with self._lock:
            shm, self._shm = self._shm, None
        if shm is not None:
            shm.close()
        try:
            self.client.close()
        except Exception:
            pass
