"""Kernels and modules shared by the pipeline tests (no tests here)."""
from __future__ import annotations

import threading

import numpy as np

import portable as pt
import portable.pipeline as pp


class Hits(pt.Layout):
    x = pt.column(np.float32)
    y = pt.column(np.int32)


@pt.kernel
def fill_hits(acc, hits, n, number):
    for i in acc.uniform_elements(n):
        hits.x[i] = (i + number) * 0.5
        hits.y[i] = (i * 7 + number) % 11


@pt.kernel
def scale_x(acc, hits, n, factor, out):
    for i in acc.uniform_elements(n):
        out[i] = hits.x[i] * factor


@pt.kernel
def count_above(acc, hits, n, cut, count):
    for i in acc.uniform_elements(n):
        if hits.y[i] > cut:
            acc.atomic_add(count, 0, 1)


@pt.kernel
def zero_int(acc, out):
    for i in acc.uniform_elements(out.size):
        out[i] = 0


@pt.kernel
def slow_sum(acc, rounds, out):
    for i in acc.uniform_elements(1):
        s = 0
        for k in range(rounds):
            s = (s + k * k) % 1000003
        out[i] = s


@pt.kernel
def wait_for_flag(acc, flag, limit, seen):
    for i in acc.uniform_elements(1):
        k = 0
        while acc.atomic_add(flag, 0, 0) == 0 and k < limit:
            k += 1
        seen[i] = acc.atomic_add(flag, 0, 0)


def hit_count(number: int) -> int:
    return 5 + number % 4


class Make(pp.Producer):
    def register(self, reg):
        self.out = reg.produces(Hits)

    def produce(self, event, ctx):
        n = hit_count(event.number)
        hits = ctx.collection(Hits, n, capacity=n + 3)
        ctx.launch(fill_hits, n, hits.view(), n, event.number)
        event.put(self.out, hits)


class Scale(pp.Producer):
    def __init__(self, factor=3.0):
        self.factor = factor

    def register(self, reg):
        self.hits = reg.consumes(Hits)
        self.out = reg.produces(np.ndarray, "scaled")

    def produce(self, event, ctx):
        hits = event.get(self.hits)
        out = ctx.alloc(hits.size, np.float32)
        ctx.launch(scale_x, hits.size, hits.view(), hits.size, np.float32(self.factor), out)
        event.put(self.out, out)


class Count(pp.ExternalWork):
    def register(self, reg):
        self.hits = reg.consumes(Hits)
        self.out = reg.produces(int, "above")

    def acquire(self, event, ctx):
        hits = event.get(self.hits)
        count = ctx.alloc(1, np.int32)
        ctx.launch(zero_int, 1, count)
        ctx.launch(count_above, hits.size, hits.view(), hits.size, 5, count)
        self.host = ctx.host_alloc(1, np.int32)
        ctx.copy(self.host, count)

    def produce(self, event, ctx):
        event.put(self.out, int(self.host[0]))


class Total(pp.Producer):
    def register(self, reg):
        self.scaled = reg.consumes(np.ndarray, "scaled", host=True)
        self.out = reg.produces(float, "total")

    def produce(self, event, ctx):
        event.put(self.out, float(np.asarray(event.get(self.scaled)).sum()))


class Results:
    """What analyzers saw, by event number (shared by every slot)."""

    def __init__(self):
        self.lock = threading.Lock()
        self.by_event = {}

    def add(self, number, **values):
        with self.lock:
            self.by_event.setdefault(number, {}).update(values)


def collector(results, host_hits=True):
    class Collect(pp.Analyzer):
        def register(self, reg):
            self.above = reg.consumes(int, "above")
            self.total = reg.consumes(float, "total")
            if host_hits:
                self.hits = reg.consumes(Hits, host=True)

        def analyze(self, event, ctx):
            values = {"above": event.get(self.above), "total": event.get(self.total)}
            if host_hits:
                hits = event.get(self.hits)
                values["y"] = hits.column("y").tolist()
                values["x"] = hits.column("x").tolist()
            results.add(event.number, **values)
    return Collect


def reference(number):
    n = hit_count(number)
    x = (np.arange(n, dtype=np.float32) + number) * np.float32(0.5)
    y = (np.arange(n) * 7 + number) % 11
    return {"above": int((y > 5).sum()), "total": float((x * np.float32(3.0)).sum()),
            "y": y.tolist(), "x": x.tolist()}
