"""System shared-memory regions registered with one server, reused across requests.

A request to a server on the same machine can carry its tensors in a region of
``/dev/shm`` instead of the message: the client copies the inputs into the region
(the one copy), the server reads them there and writes the outputs there.
Regions are sized in powers of two, registered once, and unregistered and
unlinked by :meth:`ShmPool.close`. A server that fails loses its pool: if it comes
back (a restart forgets every registration), new regions are registered.
"""
from __future__ import annotations

import contextlib
import itertools
import math
import threading
import uuid
from multiprocessing import shared_memory
from typing import Any

import numpy as np


class Region:
    """One registered region: its name on the server and its memory."""

    def __init__(self, name: str, size: int, pool: ShmPool) -> None:
        self.name = name
        self.size = size
        self.pool = pool
        self.memory = shared_memory.SharedMemory(name=name, create=True, size=size)

    def release(self) -> None:
        """Hand the region back to its pool (closed if the pool is closed)."""
        self.pool.give(self)

    def array(self, offset: int, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
        """A view of the region as an array of ``shape`` at byte ``offset``."""
        count = math.prod(shape)
        return np.frombuffer(self.memory.buf, dtype, count, offset).reshape(shape)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.memory.close()
        with contextlib.suppress(FileNotFoundError):
            self.memory.unlink()


class ShmPool:
    """Free regions by size for the server behind ``client`` (a tritonclient gRPC
    client); ``prefix`` starts every region's name."""

    def __init__(self, client: Any, prefix: str) -> None:
        self.client = client
        self.prefix = f"{prefix}{uuid.uuid4().hex[:8]}"
        self._free: dict[int, list[Region]] = {}
        self._all: list[Region] = []
        self._lock = threading.Lock()
        self._names = itertools.count()
        self.closed = False

    def take(self, nbytes: int) -> Region:
        """A region of at least ``nbytes`` bytes, registered with the server."""
        size = 1 << max(12, (max(nbytes, 1) - 1).bit_length())
        with self._lock:
            free = self._free.get(size)
            if free:
                return free.pop()
            region = Region(f"{self.prefix}_{next(self._names)}", size, self)
            self._all.append(region)
        try:
            self.client.register_system_shared_memory(region.name, f"/{region.name}", size)
        except Exception:
            with self._lock:  # unless close() (the server failed meanwhile) took it
                if region in self._all:
                    self._all.remove(region)
            region.close()
            raise
        return region

    def give(self, region: Region) -> None:
        """Return ``region`` for reuse (closed if the pool is closed)."""
        with self._lock:
            if not self.closed:
                self._free.setdefault(region.size, []).append(region)
                return
        region.close()

    def close(self, unregister: bool = True) -> None:
        """Unlink every region, unregistering it from the server first if
        ``unregister`` (a failed server is not asked: it may not answer)."""
        with self._lock:
            self.closed = True
            regions, self._all, self._free = self._all, [], {}
        for region in regions:
            if unregister:
                with contextlib.suppress(Exception):
                    self.client.unregister_system_shared_memory(region.name,
                                                                client_timeout=1.0)
            region.close()
