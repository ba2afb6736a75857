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

