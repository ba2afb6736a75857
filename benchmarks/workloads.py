"""Kernels shared by the benchmarks: the portable ones and their raw Numba twins."""
from __future__ import annotations

import math

import numba

import portable as pt


@pt.kernel
def saxpy(acc, a, x, y, out):
    for i in acc.uniform_elements(x.size):
        out[i] = a * x[i] + y[i]


@pt.kernel
def soa_norm(acc, x, y, z, r):
    for i in acc.uniform_elements(x.size):
        r[i] = math.sqrt(x[i] * x[i] + y[i] * y[i] + z[i] * z[i])


@numba.njit(nogil=True)
def njit_saxpy(a, x, y, out):
    for i in range(x.size):
        out[i] = a * x[i] + y[i]


@numba.njit(parallel=True, nogil=True)
def njit_saxpy_parallel(a, x, y, out):
    for i in numba.prange(x.size):
        out[i] = a * x[i] + y[i]


@numba.njit(nogil=True)
def njit_norm(x, y, z, r):
    for i in range(x.size):
        r[i] = math.sqrt(x[i] * x[i] + y[i] * y[i] + z[i] * z[i])


@numba.njit(parallel=True, nogil=True)
def njit_norm_parallel(x, y, z, r):
    for i in numba.prange(x.size):
        r[i] = math.sqrt(x[i] * x[i] + y[i] * y[i] + z[i] * z[i])
