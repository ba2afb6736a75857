"""Helpers shared by the collection and ML tests."""

import portable as pt

HOST = pt.get_device("cpu_serial")


def capacities(n):
    """A capacity equal to the size and a larger one that moves every offset."""
    return (n, n + 45)


def to_host(queue, collection):
    """A host copy of ``collection`` (after everything on ``queue``)."""
    host = collection.to(queue, HOST)
    queue.synchronize()
    return host



def address(array):
    """The address of an array's first byte: host, GPU, or the CUDA simulator's."""
    interface = getattr(array, "__cuda_array_interface__", None)
    return interface["data"][0] if interface is not None else array.ctypes.data


def aligned_buffer(device, nbytes, alignment):
    """``nbytes`` new bytes on ``device`` whose first byte sits on ``alignment``."""
    raw = pt.alloc_buffer(device, nbytes + alignment, "uint8")
    start = -address(raw) % alignment
    return raw[start:start + nbytes]
