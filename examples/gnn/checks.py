"""Argument checks of the GNN example's steps: a clear error that names the
argument, what it got and the fix, raised before anything is enqueued.

Example::

    >>> import numpy as np, portable as pt
    >>> from examples.gnn.layouts import Edges
    >>> q = pt.Queue(pt.get_device("cpu_serial"))
    >>> expect_counter(np.zeros(1, np.int64), "n_nodes", "build_graph", q)
    Traceback (most recent call last):
    ...
    portable.errors.ArgumentError: build_graph: argument 'n_nodes' must be a one-element int32 buffer on the queue's device (the count, as upload and build_graph return it), got an array of shape (1,) and dtype int64
"""
from __future__ import annotations

from typing import Any

import numpy as np

import portable as pt
from portable.checks import describe


def _same_memory(device: pt.Device | None, queue: pt.Queue) -> bool:
    """Whether memory on ``device`` is what ``queue``'s work reads (any host memory
    serves a queue on a host backend)."""
    if device is None:
        return False
    if queue.backend.host_memory:
        return device.backend.host_memory
    return device is queue.device


def expect_collection(value: Any, layout: type[pt.Layout], arg: str, where: str,
                      queue: pt.Queue) -> pt.PortableCollection:
    """``value`` if it is a collection of ``layout`` that ``queue`` can use."""
    if not isinstance(value, pt.PortableCollection) or value.layout is not layout:
        got = (f"a collection of {value.layout.__name__}"
               if isinstance(value, pt.PortableCollection) else describe(value))
        raise pt.ArgumentError(f"{where}: argument {arg!r} must be a {layout.__name__} "
                               f"collection, got {got}; make one with "
                               f"pt.PortableCollection({layout.__name__}, capacity, device)")
    if not _same_memory(value.device, queue):
        raise pt.ArgumentError(f"{where}: argument {arg!r} lives on {value.device}, but the "
                               f"queue runs on {queue.device}; copy it with "
                               f"{arg}.to(queue)")
    return value


def expect_counter(value: Any, arg: str, where: str, queue: pt.Queue) -> Any:
    """``value`` if it is a one-element int32 buffer that ``queue`` can use."""
    shape, dtype = getattr(value, "shape", None), getattr(value, "dtype", None)
    if shape != (1,) or dtype != np.int32 or not _same_memory(pt.device_of(value), queue):
        got = (f"an array of shape {shape} and dtype {dtype}" if shape is not None
               else describe(value))
        if shape == (1,) and dtype == np.int32:
            got = f"one on {pt.device_of(value)}"
        raise pt.ArgumentError(f"{where}: argument {arg!r} must be a one-element int32 buffer "
                               f"on the queue's device (the count, as upload and build_graph "
                               f"return it), got {got}")
    return value
