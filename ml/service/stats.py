"""Counters of a service client: requests, retries, failovers, fallbacks, latency.

Example::

    >>> s = Statistics()
    >>> for ms in (1.0, 2.0, 3.0, 4.0): s.request("127.0.0.1:8001", 10, ms)
    >>> s.retry(); s.failover()
    >>> snap = s.snapshot()
    >>> snap["requests"], snap["rows"], snap["retries"], snap["failovers"], snap["latency_ms"]["p50"]
    (4, 40, 1, 1, 2.5)
"""
from __future__ import annotations

import collections
import threading
from typing import Any

import numpy as np


class Statistics:
    """Thread-safe counters; latencies of the last ``keep`` requests."""

    def __init__(self, keep: int = 20000) -> None:
        self._lock = threading.Lock()
        self._latencies: collections.deque[float] = collections.deque(maxlen=keep)
        self.requests = self.rows = self.retries = self.failovers = 0
        self.fallbacks = self.failures = 0
        self.per_server: collections.Counter[str] = collections.Counter()

    def request(self, address: str, rows: int, ms: float) -> None:
        """One answered request of ``rows`` rows from ``address``, ``ms`` round trip."""
        with self._lock:
            self.requests += 1
            self.rows += rows
            self.per_server[address] += 1
            self._latencies.append(ms)

    def retry(self) -> None:
        """A request sent again to the same server."""
        with self._lock:
            self.retries += 1

    def failover(self) -> None:
        """A request moved to another server."""
        with self._lock:
            self.failovers += 1

    def fallback(self) -> None:
        """A call (or part of one) served by the local fallback."""
        with self._lock:
            self.fallbacks += 1

    def failure(self) -> None:
        """A call that failed."""
        with self._lock:
            self.failures += 1

    def snapshot(self) -> dict[str, Any]:
        """The counters and the latency percentiles (ms) as a dict."""
        with self._lock:
            latencies = np.array(self._latencies)
            counts = dict(requests=self.requests, rows=self.rows, retries=self.retries,
                          failovers=self.failovers, fallbacks=self.fallbacks,
                          failures=self.failures, per_server=dict(self.per_server))
        counts["latency_ms"] = ({f"p{q}": float(np.percentile(latencies, q))
                                 for q in (50, 90, 99)} if latencies.size else {})
        return counts
