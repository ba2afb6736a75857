"""Histograms with uniform bins, counted with atomics.

Bin ``k`` of ``n`` holds the values ``v`` with ``edges[k] <= v < edges[k + 1]``,
where ``edges = np.linspace(lo, hi, n + 1)`` in the type ``np.histogram``
compares in (x's float type; float64 for integer x), so interior values land in
exactly the bins NumPy puts them in. Unlike ``np.histogram``, the last bin is
half-open too: values equal to ``hi``, like those outside ``[lo, hi)`` and NaNs,
are ignored.

With at most :data:`PRIVATE_BINS` bins, each block counts into its own copy of
the histogram in block-shared memory, then adds it to ``counts`` once per bin;
with more, every value goes straight to ``counts`` with one atomic addition.
"""
from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np

import portable as pt

from . import _checks as check
from ._grid import grid

#: largest bin count that blocks first count privately, in block-shared memory
PRIVATE_BINS = 1024


@pt.device_function
def _find_bin(v, edges, lo, scale, nbins):
    """The bin ``b`` with ``edges[b] <= v < edges[b + 1]``: a guess from the bin
    width, then moved until its edges hold ``v``. ``v`` lies in
    ``[edges[0], edges[nbins])``, so both searches stop in range."""
    guess = (v - lo) * scale
    b = 0
    if guess >= nbins:
        b = nbins - 1
    elif guess > 0:
        b = int(guess)
    while v < edges[b]:
        b -= 1
    while v >= edges[b + 1]:
        b += 1
    return b


@functools.lru_cache(maxsize=None)
def _histogram_kernel(count_dtype: np.dtype) -> pt.Kernel:
    """The histogram kernel for counts of ``count_dtype``."""
    count = count_dtype.type

    @pt.kernel
    def histogram_kernel(acc, x, edges, lo, scale, counts):
        nbins = counts.size
        one = count(1)
        private = acc.shared_array(PRIVATE_BINS, count)
        use_private = nbins <= PRIVATE_BINS
        if use_private:
            for j in acc.independent_group_elements(nbins):
                private[j] = 0
            acc.sync_block()
        first = edges[0]
        last = edges[nbins]
        for i in acc.uniform_elements(x.size):
            v = x[i]
            if v >= first and v < last:
                b = _find_bin(v, edges, lo, scale, nbins)
                if use_private:
                    acc.atomic_add(private, b, one)
                else:
                    acc.atomic_add(counts, b, one)
        if use_private:
            acc.sync_block()
            for j in acc.independent_group_elements(nbins):
                if private[j] != 0:
                    acc.atomic_add(counts, j, private[j])
    return histogram_kernel


def bin_edges(lo: float, hi: float, nbins: int, x_dtype: Any) -> np.ndarray:
    """The ``nbins + 1`` edges that :func:`histogram` and ``np.histogram`` compare
    values of ``x_dtype`` with."""
    edge_type = np.result_type(lo, hi, np.empty(0, x_dtype))
    if np.issubdtype(edge_type, np.integer):
        edge_type = np.result_type(edge_type, float)
    with np.errstate(over="ignore"):  # an edge beyond edge_type is refused by the caller
        return np.linspace(lo, hi, nbins + 1, endpoint=True, dtype=edge_type)


def _checked_edges(op: str, lo: Any, hi: Any, nbins: int, x_dtype: Any) -> np.ndarray:
    """The bin edges for ``[lo, hi)``, refused as ``np.histogram`` refuses them: a
    range that is not finite, or bins that are not all of nonzero width."""
    lo_f, hi_f = check.as_float(op, "lo", lo), check.as_float(op, "hi", hi)
    if not lo_f < hi_f:
        raise check.KernelArgumentError(
            f"{op}: the range [lo, hi) = [{lo!r}, {hi!r}) is empty; it needs lo < hi")
    if not math.isfinite(hi_f - lo_f):
        raise check.KernelArgumentError(
            f"{op}: the range [lo, hi) = [{lo!r}, {hi!r}) is too wide for {nbins} bins: "
            f"its width hi - lo overflows float64; narrow the range")
    edges = bin_edges(lo_f, hi_f, nbins, x_dtype)
    if not np.isfinite(edges).all():
        raise check.KernelArgumentError(
            f"{op}: lo={lo!r} and hi={hi!r} do not fit {edges.dtype}, the type the values "
            f"of x are compared in, for {nbins} bins; narrow the range")
    if not (edges[1:] > edges[:-1]).all():
        raise check.KernelArgumentError(
            f"{op}: too many bins for the range: {nbins} bins (the length of 'counts') "
            f"of nonzero width do not fit between lo={lo!r} and hi={hi!r} in {edges.dtype}, "
            f"the type the values are compared in; use fewer bins or a wider range")
    return edges


def histogram(queue: pt.Queue, x: Any, lo: float, hi: float, counts: Any, *,
              alloc: check.Alloc | None = None) -> None:
    """Enqueue a histogram of ``x`` into ``len(counts)`` uniform bins over ``[lo, hi)``.

    ``x`` is a 1-D buffer on ``queue.device`` (float32, float64, int32 or
    int64); ``counts`` a contiguous 1-D int32 or int64 buffer there with at
    least one bin, not sharing memory with ``x``, overwritten with the counts.
    Values in the interior get NumPy's bins; values equal to ``hi`` (which
    ``np.histogram`` puts in the last bin), outside ``[lo, hi)`` or NaN are
    ignored, so the result is ``np.histogram(x[x < hi], len(counts), (lo, hi))[0]``.

    Refused at once, as ``np.histogram`` refuses them: ``lo`` or ``hi`` not
    finite, ``lo >= hi``, a width ``hi - lo`` that overflows, and bins too
    narrow to have distinct edges in the type values are compared in. Counts
    never wrap: int32 ``counts`` are refused for more than 2**31 - 1 values.

    The bin edges go to a temporary buffer of ``len(counts) + 1`` floats from
    ``alloc(shape, dtype)`` (default: :func:`portable.alloc_buffer` on
    ``queue.device``), e.g. a caching allocator's (see :mod:`kernels`).

    Example::

        >>> import numpy as np, portable as pt, kernels
        >>> q = pt.Queue(pt.get_device("cpu_threads"))
        >>> counts = np.empty(4, np.int64)
        >>> x = np.array([0.0, 0.5, 1.0, 2.5, 3.99, 4.0, -1.0])
        >>> kernels.histogram(q, x, 0.0, 4.0, counts)
        >>> counts.tolist()
        [2, 1, 1, 1]
    """
    op = "histogram"
    check.check_queue(op, queue)
    alloc = check.allocator(op, queue, alloc)
    x = check.buffer(queue, op, "x", x, check.NUMERIC)
    counts = check.buffer(queue, op, "counts", counts, check.INDEX, output=True,
                          contiguous=True)
    check.no_overlap(op, "counts", counts, "x", x)
    nbins = counts.size
    if nbins == 0:
        raise check.KernelArgumentError(
            f"{op}: argument 'counts' is empty; it needs one element per bin, at least one")
    most = np.iinfo(counts.dtype).max
    if x.size > most:
        raise check.KernelArgumentError(
            f"{op}: argument 'counts' has dtype {np.dtype(counts.dtype)}, which cannot "
            f"count {x.size} values (at most {most}); use int64 counts")
    edges_host = _checked_edges(op, lo, hi, nbins, x.dtype)
    if x.size == 0:
        pt.memset(queue, counts, 0)
        return
    edges = check.temporary(queue, op, alloc, nbins + 1, edges_host.dtype)
    pt.memset(queue, counts, 0)
    pt.memcpy(queue, edges, edges_host)
    pt.launch(queue, grid(queue, x.size), _histogram_kernel(np.dtype(counts.dtype)),
              x, edges, float(lo), nbins / (float(hi) - float(lo)), counts)
