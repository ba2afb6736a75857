"""Capturing a queue's work into CUDA graphs with torch's graph machinery, so that
numba launches, copies, memsets and torch operations (``ml.Model``) all land in one
graph, and torch's allocations during the capture come from a private pool.

Each :class:`GraphCapture` owns a non-blocking stream (a queue wraps it) and a
private memory pool; captures use ``capture_error_mode="thread_local"``, so other
host threads keep working (and allocating) while one thread captures. torch is
imported here only, when a capture is asked for.

On a CUDA machine::

    capture = pt.get_backend("cuda").graph_capture(pt.get_device("cuda"))
    graph = capture.capture(lambda: pt.memset(capture.queue, buffer, 0))
    graph.launch()            # enqueues the memset on capture.queue again
"""
from __future__ import annotations

import contextlib
import gc
import importlib.util
import threading
from typing import Any, Callable, Iterator

from ..device import Device
from ..errors import PortableError
from ..queue import Queue


def torch_problem() -> str | None:
    """Why torch's CUDA graphs cannot be used here, or ``None`` (imports torch when
    it is installed: a job on a GPU that can capture uses it anyway)."""
    if importlib.util.find_spec("torch") is None:
        return "graph capture uses torch's CUDA graphs, and torch is not installed"
    import torch
    if not torch.cuda.is_available():
        return (f"graph capture uses torch's CUDA graphs, and torch {torch.__version__} "
                f"cannot reach a GPU here (a CPU-only build, or another CUDA than the driver's)")
    return None


class GraphCapture:
    """Captures work on its own queue of ``device`` into graphs sharing one memory pool
    (graphs of one capture object must run one at a time, in any order)."""

    def __init__(self, device: Device) -> None:
        import torch
        if not torch.cuda.is_available():
            raise PortableError(f"graph capture on {device} needs torch built with CUDA; "
                                f"torch {torch.__version__} has none")
        self._torch = torch
        self.stream = torch.cuda.Stream(device=torch.device("cuda", device.index))
        self.queue = Queue.wrap(device, self.stream)
        self.pool = torch.cuda.graph_pool_handle()
        self.device = device

    def capture(self, work: Callable[[], None]) -> CapturedGraph:
        """Run ``work()`` while capturing ``self.queue``; the graph of what it enqueued.
        An error inside ``work`` (or a capture CUDA invalidated, e.g. by a host
        synchronisation) ends the capture and is raised."""
        torch = self._torch
        from numba import cuda
        graph = torch.cuda.CUDAGraph()
        with _collector_paused(), cuda.defer_cleanup(), torch.cuda.stream(self.stream):
            graph.capture_begin(pool=self.pool, capture_error_mode="thread_local")
            try:
                work()
            except BaseException:
                self._abandon(graph)
                raise
            graph.capture_end()
        return CapturedGraph(graph, self.stream)

    def _abandon(self, graph: Any) -> None:
        """End a capture that failed (CUDA may have invalidated it already)."""
        try:
            graph.capture_end()
        except Exception:  # an invalidated capture: end its use of the memory pool too
            end = getattr(self._torch._C, "_cuda_endAllocateToPool", None)
            if end is not None:
                try:
                    end(self.device.index, self.pool)
                except Exception:
                    pass


_PAUSED = [0]
_PAUSE_LOCK = threading.Lock()


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while any thread captures: a collection in the
    capturing thread could destroy an old graph (a CUDA call that a capture forbids,
    which invalidates it)."""
    with _PAUSE_LOCK:
        _PAUSED[0] += 1
        if _PAUSED[0] == 1:
            _PAUSED.append(gc.isenabled())
            gc.disable()
    try:
        yield
    finally:
        with _PAUSE_LOCK:
            _PAUSED[0] -= 1
            if _PAUSED[0] == 0 and _PAUSED.pop():
                gc.enable()


class CapturedGraph:
    """A captured graph, launched on the stream it was captured on."""

    def __init__(self, graph: Any, stream: Any) -> None:
        self.graph, self.stream = graph, stream
        self._driver_launch = _driver_launcher(graph, stream)

    def launch(self) -> None:
        """Enqueue the graph's work on its stream (the host does not wait)."""
        if self._driver_launch is not None:
            self._driver_launch()
            return
        import torch
        previous = torch.cuda.current_stream(self.stream.device)
        torch.cuda.set_stream(self.stream)
        try:
            self.graph.replay()
        finally:
            torch.cuda.set_stream(previous)


def _driver_launcher(graph: Any, stream: Any) -> Callable[[], None] | None:
    """``cuGraphLaunch`` of the graph's executable on ``stream`` (no torch call per
    launch), where torch hands out the executable's handle."""
    raw = getattr(graph, "raw_cuda_graph_exec", None)
    if raw is None:
        return None
    try:
        from cuda.bindings import driver
        handle = driver.CUgraphExec(int(raw()))
    except Exception:
        return None
    target = driver.CUstream(int(stream.cuda_stream))
    launch, success = driver.cuGraphLaunch, driver.CUresult.CUDA_SUCCESS

    def run() -> None:
        err, = launch(handle, target)
        if err != success:
            raise PortableError(f"cuGraphLaunch failed: {err!r}")
    return run
