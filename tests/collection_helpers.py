"""Helpers shared by the collection and ML tests."""
import numpy as np

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


def device_bytes(queue, buffer):
    """The bytes of a device or host buffer, as a new host array."""
    host = np.empty(buffer.shape, np.uint8)
    pt.memcpy(queue, host, buffer)
    queue.synchronize()
    return host
