"""A model served by Triton servers, run on SoA blocks like :class:`ml.Model`.

``ServiceModel(name, servers)`` mirrors ``ml.Model``: ``.to(queue)``, then
``model(meta, start, stop)`` reads the input blocks and writes every output
block of the ``ml.ModelMetadata``; ``model.submit(...)`` returns a future
instead. Block names are the server's tensor names; at first use the blocks are
checked against each server's model metadata (names, dtypes, row shapes), and
rows go out in chunks of at most the model's ``max_batch_size``, all at once, so
the server's dynamic batcher can merge them.

Each chunk is copied once into its request (``tobytes`` of the strided block),
or into a shared-memory region when the server is on this machine; each
output is copied once, from the response into its block, after every chunk has
come back and every output has been checked to fit.

When a request fails: a lost connection or a timeout is retried on the same
server (``retries`` times), then the chunk moves to the next server (which is
marked down for ``down_seconds`` and checked with a small request before it
gets work again); a dead python-backend stub counts as a failed server; bad
arguments and unknown models fail at once. When no server is left, the
``fallback`` runs: an :class:`ml.Model` in process, or a
:class:`~ml.service.local.LocalServer` the library starts itself. Every step is
logged (logger ``ml.service``) and counted in :attr:`ServiceModel.statistics`.

Example (with a server serving ``scorer``)::

    model = ServiceModel("scorer", ["127.0.0.1:8001"], fallback=ml.Model(net)).to(queue)
    model(ml.ModelMetadata(inputs, outputs))      # like ml.Model
    future = model.submit(meta, queue=queue)      # or asynchronously
    future.result()
"""
from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import itertools
import logging
import math
import random
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from portable.checks import describe, expect_count, expect_queue
from portable.errors import ArgumentError
from portable.queue import Queue

from ..metadata import MetadataError, ModelMetadata, check_rows
from ..model import Model
from .link import Link, classify, parse_address
from .local import LocalServer
from .shm import Region
from .spec import ServedModel, ServiceError, TensorSpec, block_specs, check_blocks
from .stats import Statistics

log = logging.getLogger("ml.service")

BALANCING = ("least", "round_robin")
SHARED_MEMORY = ("auto", True, False)


@dataclass(eq=False)
class _Chunk:
    """Rows ``first:last`` of a call (relative to its start), on their way."""

    first: int
    last: int
    tries: int = 0
    failed: set[Link] = field(default_factory=set)
    on_fallback: bool = False
    done: bool = False
    outputs: list[np.ndarray] = field(default_factory=list)
    region: Region | None = None


@dataclass(eq=False)
class _Call:
    """One ``model(meta, start, stop)``: its blocks, chunks and future."""

    meta: ModelMetadata
    start: int
    stop: int
    served: ServedModel
    inputs: dict[str, np.ndarray] = field(default_factory=dict)
    #: the output blocks over the call's rows, as arrays over the collection
    targets: list[np.ndarray] = field(default_factory=list)
    chunks: list[_Chunk] = field(default_factory=list)
    remaining: int = 0
    stranded: list[_Chunk] = field(default_factory=list)
    error: BaseException | None = None
    #: the caller waits for the outcome in this thread: a lone chunk goes out as a
    #: blocking request, with no hand-over to gRPC's threads
    waits: bool = False
    future: concurrent.futures.Future[None] = field(default_factory=concurrent.futures.Future)
    lock: threading.Lock = field(default_factory=threading.Lock)


class ServiceModel:
    """Model ``name`` served by ``servers`` (``host:port`` gRPC addresses, in order of
    preference), run on SoA blocks (see the module's docstring).

    ``timeout`` is each request's limit in seconds; ``retries`` how often a
    request that lost its connection or timed out is sent again to the same
    server; ``shared_memory`` ``"auto"`` uses system shared memory for servers on
    this machine; ``balance`` spreads chunks over the servers by ``"least"``
    outstanding requests (ties: the client's own home server, drawn at random) or
    ``"round_robin"``; ``fallback`` is ``None``, an
    :class:`ml.Model` or a :class:`~ml.service.local.LocalServer`.

    Example::

        >>> ServiceModel("scorer", "127.0.0.1", timeout=1.0)
        Traceback (most recent call last):
        ...
        portable.errors.ArgumentError: ml.service: server address '127.0.0.1' must be host:port, e.g. 127.0.0.1:8001 (Triton's gRPC port)
    """

    def __init__(self, name: str, servers: str | Sequence[str] = (), *, timeout: float = 10.0,
                 retries: int = 1, shared_memory: bool | str = "auto", balance: str = "least",
                 fallback: Model | LocalServer | None = None,
                 down_seconds: float = 1.0) -> None:
        where = "ml.service.ServiceModel"
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"{where}: argument 'name' must be the served model's name, "
                                f"got {describe(name)}")
        addresses = [servers] if isinstance(servers, str) else list(servers)
        for address in addresses:
            parse_address(address)
        if not addresses and fallback is None:
            raise ArgumentError(f"{where}: give at least one server address (host:port) or "
                                f"a fallback (ml.Model or ml.service.LocalServer)")
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ArgumentError(f"{where}: argument 'timeout' must be a number of seconds > 0, "
                                f"got {describe(timeout)}")
        if shared_memory not in SHARED_MEMORY:
            raise ArgumentError(f"{where}: argument 'shared_memory' must be 'auto', True or "
                                f"False, got {describe(shared_memory)}")
        if balance not in BALANCING:
            raise ArgumentError(f"{where}: argument 'balance' must be one of {BALANCING}, got "
                                f"{describe(balance)}")
        if fallback is not None and not isinstance(fallback, (Model, LocalServer)):
            raise ArgumentError(f"{where}: argument 'fallback' must be None, an ml.Model or "
                                f"an ml.service.LocalServer, got {describe(fallback)}")
        self.name = name
        self.timeout = float(timeout)
        self.retries = expect_count(retries, "retries", where)
        self.shared_memory = shared_memory
        self.balance = balance
        self.fallback = fallback
        self.down_seconds = float(down_seconds)
        self.links = [Link(address) for address in dict.fromkeys(addresses)]
        self.queue: Queue | None = None
        self.statistics = Statistics()
        self._served: ServedModel | None = None
        self._in_process = False
        self._checked: set[tuple[Link, Any]] = set()
        self._lock = threading.RLock()
        self._turn = itertools.count()
        #: where "least" balancing sends a request when no server is busier than
        #: another: one server per client, drawn at random, so that many clients spread
        #: over the servers while each keeps its connection and server warm
        self._home = random.randrange(1 << 16)
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._host_queue: Queue | None = None
        self._probing: set[Link] = set()
        _OPEN.add(self)

    def __repr__(self) -> str:
        return f"<ServiceModel {self.name!r} on {', '.join(l.address for l in self.links)}>"

    def __enter__(self) -> ServiceModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def to(self, queue: Queue) -> ServiceModel:
        """Run on ``queue`` from now on (a CPU queue: the blocks must be in host memory).

        Example::

            >>> ServiceModel("scorer", ["127.0.0.1:8001"]).to("cpu_serial")
            Traceback (most recent call last):
            ...
            portable.errors.ArgumentError: ServiceModel.to: argument 'queue' must be a pt.Queue, got the str 'cpu_serial'; make one with pt.Queue(pt.get_device('cpu_serial'))
        """
        self.queue = expect_queue(queue, "queue", "ServiceModel.to")
        return self

    def __call__(self, meta: ModelMetadata, start: int = 0, stop: int | None = None, *,
                 queue: Queue | None = None) -> None:
        """Rows ``start:stop`` through the served model, in order on the queue: on a
        blocking queue this returns when the outputs are written; on a non-blocking one
        the request runs on the queue's worker, and errors reach the host at
        ``queue.synchronize()``."""
        future = self._submit(meta, start, stop, queue, "ServiceModel.__call__", waits=True)
        if self._resolve_queue(queue, "ServiceModel.__call__").blocking:
            future.result()

    def submit(self, meta: ModelMetadata, start: int = 0, stop: int | None = None, *,
               queue: Queue | None = None) -> concurrent.futures.Future[None]:
        """Like calling the model, but return at once a future that completes when
        every output block is written (or fails with the call's error). The blocks are
        checked against the servers now; the inputs are read once the queue's earlier
        work is done.

        Example (with a server)::

            futures = [model.submit(meta, queue=q) for meta, q in zip(metas, queues)]
            for future in futures:
                future.result()             # raises the call's error, if any
        """
        return self._submit(meta, start, stop, queue, "ServiceModel.submit", waits=False)

    def _submit(self, meta: ModelMetadata, start: int, stop: int | None, queue: Queue | None,
                where: str, waits: bool) -> concurrent.futures.Future[None]:
        if not isinstance(meta, ModelMetadata):
            raise ArgumentError(f"{where}: argument 'meta' must be an ml.ModelMetadata, got "
                                f"{describe(meta)}; pair input and output blocks with "
                                f"ml.ModelMetadata(inputs, outputs)")
        start, stop = check_rows(where, meta.rows(), start, stop)
        queue = self._resolve_queue(queue, where)
        _check_blocks_writable(meta)
        served = self._prepare(meta)
        call = _Call(meta, start, stop, served)
        if stop == start:
            call.future.set_result(None)
            return call.future
        if queue.blocking:
            call.waits = waits
            self._start(call)
        else:
            def task() -> None:
                call.waits = True  # the queue's worker waits for the answer
                self._start(call)
                call.future.result()
            queue.native.submit(task)
        return call.future

    def served(self) -> ServedModel | None:
        """The model as the servers serve it (None before first use)."""
        return self._served

    def close(self) -> None:
        """Free the channels and shared-memory regions; stop a fallback server that the
        client started. The model serves no call after this; models still open when
        the interpreter exits are closed then.

        Example::

            >>> with ServiceModel("scorer", ["127.0.0.1:8001"]) as model:
            ...     pass                      # closed when the block ends
        """
        _OPEN.discard(self)
        for link in self.links:
            link.close()
        if isinstance(self.fallback, LocalServer):
            self.fallback.stop()
        self.links = [link for link in self.links if not link.fallback]
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None

    # -- first use and checks -------------------------------------------------------
    def _resolve_queue(self, queue: Queue | None, where: str) -> Queue:
        if queue is None:
            if self.queue is None:
                raise MetadataError("the model has no queue; call model.to(queue) first, or "
                                    "pass queue= to the call")
            return self.queue
        return expect_queue(queue, "queue", where)

    def _prepare(self, meta: ModelMetadata) -> ServedModel:
        """Ask the servers about the model (first use), start the fallback when none
        has it, and check ``meta``'s blocks against every server that serves it."""
        for side in (meta.inputs, meta.outputs):
            device = side.collection.device
            if not device.backend.host_memory:
                raise ServiceError(f"the blocks live on {device}, but the service client "
                                   f"sends host memory; copy the collection to the host "
                                   f"with collection.to(queue, pt.get_device('cpu_serial'))")
        with self._lock:
            if self._served is None and not self._in_process:
                self._first_use()
            self._refresh()
            if self._in_process:
                inputs, outputs = block_specs(meta)
                return ServedModel(self.name, tuple(inputs), tuple(outputs), 1 << 30)
            views = _views_of(meta)
            for link in self.links:
                served = link.models.get(self.name)
                if served is not None and (link, views.key) not in self._checked:
                    check_blocks(meta, served, link.address)
                    self._checked.add((link, views.key))
            assert self._served is not None
            return self._served

    def _first_use(self) -> None:
        problems = []
        for link in self.links:
            try:
                if link.served(self.name, self.timeout) is None:
                    problems.append(f"{link.address} does not serve it")
            except Exception as err:
                link.mark_down(self.down_seconds, _message(err))
                problems.append(f"{link.address} is unreachable ({_message(err)})")
        serving = [l for l in self.links if l.models.get(self.name) is not None]
        if not serving:
            if self.fallback is None:
                raise ServiceError(f"no server runs model {self.name!r}: "
                                   f"{'; '.join(problems)}; start one (python -m ml.service "
                                   f"serve ...) or give the client a fallback")
            log.warning("model %r: %s; using the fallback %s", self.name,
                        "; ".join(problems) or "no servers given", self.fallback)
            if isinstance(self.fallback, Model):
                self._in_process = True
                return
            serving = [self._fallback_link()]
        batch = {l.models[self.name].max_batch_size for l in serving}  # type: ignore[union-attr]
        if len(batch) > 1:
            raise ServiceError(f"the servers of model {self.name!r} differ in max_batch_size "
                               f"({', '.join(f'{l.address}: {l.models[self.name].max_batch_size}' for l in serving)}); "  # type: ignore[union-attr]
                               f"configure them alike")
        self._served = serving[0].models[self.name]

    def _fallback_link(self) -> Link:
        """The fallback server's link, starting the server first if needed."""
        assert isinstance(self.fallback, LocalServer)
        with self._lock:
            found = next((l for l in self.links if l.fallback), None)
            if found is not None:
                return found
            address = self.fallback.start(self.name)
            link = Link(address, fallback=True)
            served = link.served(self.name, max(self.timeout, 30.0))
            if served is None:
                raise ServiceError(f"the fallback server at {address} does not serve "
                                   f"{self.name!r}")
            if self._served is not None and served.max_batch_size != self._served.max_batch_size:
                raise ServiceError(f"the fallback's model {self.name!r} has max_batch_size "
                                   f"{served.max_batch_size}, the servers' "
                                   f"{self._served.max_batch_size}; export it alike")
            self.links.append(link)
            log.warning("model %r: started the fallback server at %s", self.name, address)
            return link

    def _refresh(self) -> None:
        """Check again, in the background, the servers that were down or unreachable and
        whose rest is over."""
        now = time.monotonic()
        for link in self.links:
            if link.down_until and now >= link.down_until and link not in self._probing:
                self._probing.add(link)
                link.down_until = float("inf")  # no work until the probe has answered
                self._executor().submit(self._probe, link)

    def _probe(self, link: Link) -> None:
        """A small request to ``link``; it gets work again only if it answers."""
        try:
            served = link.served(self.name, self.timeout)
            if served is not None and self._served is not None:
                inputs = [_zeros_input(spec) for spec in served.inputs]
                link.client.infer(self.name, inputs, client_timeout=self.timeout)
            link.down_until = 0.0
            log.warning("model %r: server %s answers again", self.name, link.address)
        except Exception as err:
            link.mark_down(self.down_seconds, _message(err))
        finally:
            with self._lock:
                self._probing.discard(link)

    def _executor(self) -> concurrent.futures.ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = concurrent.futures.ThreadPoolExecutor(4, "ml-service")
            return self._pool

    # -- requests -------------------------------------------------------------------
    def _start(self, call: _Call) -> None:
        """Read the inputs and send every chunk (or run the in-process fallback); a
        fault here fails the call's future (nobody waits for it in vain)."""
        try:
            self._send_all(call)
        except BaseException as err:
            if not call.future.done():
                self._release(call)
                call.future.set_exception(err)
            raise

    def _send_all(self, call: _Call) -> None:
        if self._in_process:
            self._run_in_process(call)
            return
        views = _views_of(call.meta)
        call.inputs = {name: view[call.start:call.stop] for name, view in views.inputs.items()}
        call.targets = [view[call.start:call.stop] for view in views.outputs]
        rows, step = call.stop - call.start, call.served.max_batch_size
        call.chunks = [_Chunk(first, min(first + step, rows)) for first in range(0, rows, step)]
        call.remaining = len(call.chunks)
        for chunk in call.chunks:
            self._send(call, chunk)

    def _pick(self, chunk: _Chunk, prefer: Link | None) -> Link | None:
        now = time.monotonic()
        with self._lock:
            links = list(self.links)
        for fallback in (False, True):
            candidates = [l for l in links if l.fallback == fallback and l.usable(now)
                          and l not in chunk.failed and l.models.get(self.name) is not None]
            if not candidates:
                continue
            if prefer in candidates:
                return prefer
            if self.balance == "least":  # ties go to this client's home server, kept warm
                turn = self._home % len(candidates)
                candidates = candidates[turn:] + candidates[:turn]
                return min(candidates, key=lambda l: l.outstanding)
            return candidates[next(self._turn) % len(candidates)]
        return None

    def _send(self, call: _Call, chunk: _Chunk, prefer: Link | None = None) -> None:
        import tritonclient.grpc as grpcclient
        link = self._pick(chunk, prefer)
        if link is None:
            self._strand(call, chunk)
            return
        served = link.models[self.name]
        assert served is not None
        rows = chunk.last - chunk.first
        use_shm = self.shared_memory is True or (self.shared_memory == "auto" and link.local)
        region = None
        try:
            inputs, outputs = [], None
            if use_shm:
                sizes = [rows * math.prod(s.dims) * s.dtype.itemsize
                         for s in (*served.inputs, *served.outputs)]
                region = link.shm().take(sum(sizes))
                offset, outputs = 0, []
                for spec, size in zip(served.inputs, sizes):
                    data = call.inputs[spec.name][chunk.first:chunk.last]
                    np.copyto(region.array(offset, spec.dtype, data.shape), data)
                    item = grpcclient.InferInput(spec.name, data.shape, spec.triton_type)
                    item.set_shared_memory(region.name, size, offset)
                    inputs.append(item)
                    offset += size
                for spec, size in zip(served.outputs, sizes[len(served.inputs):]):
                    wanted = grpcclient.InferRequestedOutput(spec.name)
                    wanted.set_shared_memory(region.name, size, offset)
                    outputs.append(wanted)
                    offset += size
            else:
                for spec in served.inputs:
                    data = call.inputs[spec.name][chunk.first:chunk.last]
                    item = grpcclient.InferInput(spec.name, data.shape, spec.triton_type)
                    item.set_data_from_numpy(data)  # tobytes of the strided block: one copy
                    inputs.append(item)
        except Exception as err:
            if region is not None:
                region.release()
            self._failed(call, chunk, link, err)
            return
        began = time.perf_counter()
        link.infer(self.name, inputs, outputs, self.timeout,
                   lambda result, error: self._received(call, chunk, link, region, began,
                                                        result, error),
                   wait=call.waits and len(call.chunks) == 1)

    def _received(self, call: _Call, chunk: _Chunk, link: Link, region: Region | None,
                  began: float, result: Any, error: Any) -> None:
        try:
            if error is None:
                try:
                    chunk.outputs = _outputs(call, chunk, link, region, result)
                except ServiceError as err:
                    if region is not None:
                        region.release()
                    self._finish_chunk(call, chunk, err)
                    return
                chunk.region = region
                self.statistics.request(link.address, chunk.last - chunk.first,
                                        (time.perf_counter() - began) * 1e3)
                self._finish_chunk(call, chunk)
                return
            if region is not None:
                region.release()
            self._failed(call, chunk, link, error)
        except BaseException as err:  # on gRPC's thread: never leave the call waiting
            self._finish_chunk(call, chunk, err)

    def _failed(self, call: _Call, chunk: _Chunk, link: Link, error: BaseException) -> None:
        kind = classify(error)
        message = _message(error)
        if getattr(error, "status", lambda: None)() == "StatusCode.CANCELLED":
            message = f"cancelled after the server failed: {link.last_error}"
        if kind == "fatal":
            self._finish_chunk(call, chunk, ServiceError(
                f"model {self.name!r} at {link.address} refused rows "
                f"{call.start + chunk.first}:{call.start + chunk.last}: {message}"))
            return
        if kind == "retry" and chunk.tries < self.retries:
            chunk.tries += 1
            self.statistics.retry()
            log.warning("model %r: retrying rows %d:%d on %s (%s)", self.name,
                        call.start + chunk.first, call.start + chunk.last, link.address, message)
            self._send(call, chunk, prefer=link)
            return
        link.mark_down(self.down_seconds, message, cancel=True)
        chunk.failed.add(link)
        chunk.tries = 0
        self.statistics.failover()
        log.warning("model %r: server %s failed (%s); rows %d:%d go to the next server",
                    self.name, link.address, message, call.start + chunk.first,
                    call.start + chunk.last)
        self._send(call, chunk)

    def _strand(self, call: _Call, chunk: _Chunk) -> None:
        """No server is left for ``chunk``: the fallback takes it once the call's other
        chunks are done."""
        with call.lock:
            call.stranded.append(chunk)
        self._finish_chunk(call, chunk)

    def _finish_chunk(self, call: _Call, chunk: _Chunk,
                      error: BaseException | None = None) -> None:
        """``chunk`` has its outcome (once: a later report of it is ignored); the
        last chunk of the call completes it."""
        with call.lock:
            if chunk.done:
                return
            chunk.done = True
            if error is not None and call.error is None:
                call.error = error
            call.remaining -= 1
            if call.remaining:
                return
            stranded, call.stranded = call.stranded, []
        if call.error is None and stranded:
            self._executor().submit(self._rescue, call, stranded)
        else:
            self._complete(call)

    def _rescue(self, call: _Call, stranded: list[_Chunk]) -> None:
        """Run the chunks no server could take on the fallback."""
        try:
            if self.fallback is None or any(c.on_fallback for c in stranded):
                tried = "; ".join(f"{l.address}: {l.last_error or 'down'}" for l in self.links)
                raise ServiceError(f"no server could run model {self.name!r} on rows "
                                   f"{call.start}:{call.stop} ({tried}), and "
                                   f"{'the fallback failed too' if self.fallback else 'there is no fallback'}")
            if isinstance(self.fallback, Model):
                log.warning("model %r: no server left; rows %d:%d run in process",
                            self.name, call.start, call.stop)
                self._run_in_process(call)
                return
            self._fallback_link()
            self.statistics.fallback()
            log.warning("model %r: no server left; %d chunk(s) go to the fallback server",
                        self.name, len(stranded))
        except BaseException as err:
            with call.lock:
                call.error = call.error or err
            self._complete(call)
            return
        with call.lock:
            call.remaining += len(stranded)
        for chunk in stranded:
            chunk.on_fallback, chunk.tries, chunk.done = True, 0, False
            self._send(call, chunk)

    def _run_in_process(self, call: _Call) -> None:
        assert isinstance(self.fallback, Model)
        if self._host_queue is None:
            import portable as pt
            self._host_queue = pt.Queue(pt.get_device("cpu_serial"))
        self.statistics.fallback()
        try:
            self.fallback(call.meta, call.start, call.stop, queue=self._host_queue)
        except BaseException as err:
            self._release(call)
            self.statistics.failure()
            call.future.set_exception(err)
            return
        self._release(call)
        call.future.set_result(None)

    def _complete(self, call: _Call) -> None:
        """Write every output (each checked to fit when it came), or fail the call."""
        if call.error is not None:
            self._release(call)
            self.statistics.failure()
            call.future.set_exception(call.error)
            return
        try:
            for index, target in enumerate(call.targets):
                for chunk in call.chunks:
                    np.copyto(target[chunk.first:chunk.last], chunk.outputs[index])
        except BaseException as err:
            self._release(call)
            call.future.set_exception(err)
            return
        self._release(call)
        call.future.set_result(None)

    def _release(self, call: _Call) -> None:
        for chunk in call.chunks:
            if chunk.region is not None:
                chunk.region.release()
                chunk.region = None
            chunk.outputs = []


#: models not closed yet: closed at exit, so that no shared-memory region outlives them
_OPEN: weakref.WeakSet[ServiceModel] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    for model in list(_OPEN):
        with contextlib.suppress(Exception):
            model.close()


@dataclass(frozen=True)
class _Views:
    """A metadata's blocks over all rows as arrays sharing the collection's memory,
    and what its blocks are (to check them once per server)."""

    key: Any
    order: Any
    inputs: dict[str, np.ndarray]
    outputs: list[np.ndarray]


_views: weakref.WeakKeyDictionary[ModelMetadata, _Views] = weakref.WeakKeyDictionary()


def _views_of(meta: ModelMetadata) -> _Views:
    """``meta``'s views, made again when its blocks changed."""
    order = (tuple(meta.inputs.order), tuple(meta.outputs.order))  # blocks are only added
    found = _views.get(meta)
    if found is None or found.order != order:
        found = _Views(tuple(map(tuple, block_specs(meta))), order,
                       {name: meta.inputs.tensor(name).numpy() for name in meta.inputs.order},
                       [meta.outputs.tensor(name).numpy() for name in meta.outputs.order])
        _views[meta] = found
    return found


def _outputs(call: _Call, chunk: _Chunk, link: Link, region: Region | None,
             result: Any) -> list[np.ndarray]:
    """The chunk's outputs in the order of the output blocks, each checked to fit its
    block (shape and dtype)."""
    served = link.models[call.served.name]
    assert served is not None
    rows = chunk.last - chunk.first
    by_name: dict[str, np.ndarray] = {}
    offset = sum(rows * math.prod(s.dims) * s.dtype.itemsize for s in served.inputs)
    for spec in served.outputs:
        size = rows * math.prod(spec.dims) * spec.dtype.itemsize
        if region is not None:
            shape = tuple(int(d) for d in result.get_output(spec.name).shape)
            by_name[spec.name] = region.array(offset, spec.dtype, shape)
            offset += size
        else:
            value = result.as_numpy(spec.name)
            if value is None:
                raise ServiceError(f"model {served.name!r} at {link.address} gave no output "
                                   f"{spec.name!r}")
            by_name[spec.name] = value
    found = []
    for name, target in zip(call.meta.outputs.order, call.targets):
        want = (rows, *target.shape[1:])
        value = by_name[name]
        if value.shape != want or value.dtype != target.dtype:
            raise ServiceError(f"output block {name!r}: model {served.name!r} at "
                               f"{link.address} gave {value.dtype} {list(value.shape)} for "
                               f"{rows} rows, the block holds {target.dtype} "
                               f"{list(want)}; nothing was written")
        found.append(value)
    return found


def _zeros_input(spec: TensorSpec) -> Any:
    import tritonclient.grpc as grpcclient
    data = np.zeros((1, *[max(d, 1) for d in spec.dims]), spec.dtype)
    item = grpcclient.InferInput(spec.name, data.shape, spec.triton_type)
    item.set_data_from_numpy(data)
    return item


def _message(error: BaseException) -> str:
    text = getattr(error, "message", None)
    text = text() if callable(text) else str(error)
    return (str(text).strip().splitlines() or [type(error).__name__])[0]


def _check_blocks_writable(meta: ModelMetadata) -> None:
    """Output blocks that take one value per row, each member written once."""
    outputs = meta.outputs
    if not meta.inputs.order or not outputs.order:
        side = "inputs" if not meta.inputs.order else "outputs"
        raise MetadataError(f"ServiceModel: meta.{side} declares no blocks; declare them "
                            f"with {side}.append_block(name, *members)")
    owner: dict[str, str] = {}
    for name in outputs.order:
        block = outputs.blocks[name]
        if block.copy or block.geometry.kind == "scalar":
            what = "was declared with copy=True" if block.copy else "holds a scalar"
            raise MetadataError(f"output block {name!r} {what}, so it cannot take one value "
                                f"per row; declare adjacent column members for it")
        for member in block.members:
            if member in owner:
                raise MetadataError(f"output blocks {owner[member]!r} and {name!r} both "
                                    f"cover member {member!r}; give each output its own "
                                    f"members")
            owner[member] = name
