"""Plain NumPy versions of every operation, the specification the tests check.

Each returns a new host array (or a Python number) instead of writing into a
buffer.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np


def axpy_ref(a: float, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """``a * x + y`` in the dtype of ``x``."""
    return (x.dtype.type(a) * x + y).astype(x.dtype)


def elementwise_map_ref(fn: Callable[[Any], Any], x: np.ndarray, dtype: Any) -> np.ndarray:
    """``fn`` applied to each element of ``x`` (as a Python number), stored as ``dtype``."""
    return np.array([fn(v) for v in x.tolist()]).astype(dtype)


def reduce_sum_ref(x: np.ndarray) -> Any:
    """The sum of ``x`` as a scalar of its dtype: exact modulo 2**bits for
    integers, accumulated in float64 for floats."""
    wide = np.float64 if x.dtype.kind == "f" else x.dtype
    return x.dtype.type(np.sum(x, dtype=wide))


def reduce_min_ref(x: np.ndarray) -> Any:
    """The smallest element of ``x``; ``x`` must not be empty."""
    return np.min(x)


def reduce_max_ref(x: np.ndarray) -> Any:
    """The largest element of ``x``; ``x`` must not be empty."""
    return np.max(x)


def histogram_ref(x: np.ndarray, lo: float, hi: float, nbins: int, dtype: Any) -> np.ndarray:
    """``np.histogram`` of the values below ``hi``, as counts of ``dtype``."""
    lo, hi = float(lo), float(hi)
    counts, _ = np.histogram(x[x < hi], bins=nbins, range=(lo, hi))
    return counts.astype(dtype)


def exclusive_scan_ref(x: np.ndarray) -> np.ndarray:
    """``out[i] = x[0] + ... + x[i - 1]`` in the dtype of ``x`` (floats summed in float64)."""
    wide = np.float64 if x.dtype.kind == "f" else x.dtype
    out = np.zeros(x.size, wide)
    np.cumsum(x[:-1], dtype=wide, out=out[1:])
    return out.astype(x.dtype)


def select_indices_ref(mask: np.ndarray) -> np.ndarray:
    """The indices of the nonzero entries of ``mask``, in increasing order."""
    return np.flatnonzero(mask)


def compact_where_ref(fn: Callable[[Any], bool], x: np.ndarray) -> np.ndarray:
    """The indices ``i`` with ``fn(x[i])`` true, in increasing order."""
    return np.flatnonzero(np.array([bool(fn(v)) for v in x.tolist()], dtype=bool))
