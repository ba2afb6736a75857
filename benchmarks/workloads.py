"""What several benchmarks share: the kernels (portable, raw numba-cuda, njit and
CUDA C twins of each), their NumPy references, and the GPU copy ceiling."""
from __future__ import annotations

import math
import warnings
from typing import Any

import numba
import numpy as np

import common
import portable as pt

warnings.filterwarnings("ignore", message=r".*Grid size .* will likely result in GPU "
                                          r"under-utilization.*")
SAXPY_A = np.float32(2.5)
XYZR = pt.Layout.define("XYZR", [(name, pt.column(np.float32)) for name in "xyzr"])
WIDE = pt.Layout.define("Wide16", [(f"c{i}", pt.column(np.float32)) for i in range(16)])


# ----------------------------------------------------------------------------- portable
@pt.kernel
def add_first(acc, a, b, c, n):
    for i in acc.uniform_elements(n):
        c[i] = a[i] + b[i]


@pt.kernel
def saxpy(acc, a, x, y, out):
    for i in acc.uniform_elements(x.size):
        out[i] = a * x[i] + y[i]


@pt.kernel
def soa_norm(acc, x, y, z, r):
    for i in acc.uniform_elements(x.size):
        r[i] = math.sqrt(x[i] * x[i] + y[i] * y[i] + z[i] * z[i])


@pt.kernel
def view_norm(acc, v):
    for i in acc.uniform_elements(v.size):
        v.r[i] = math.sqrt(v.x[i] * v.x[i] + v.y[i] * v.y[i] + v.z[i] * v.z[i])


@pt.kernel
def view16_first(acc, v):
    if acc.once_per_grid():
        v.c0[0] = 1.0


@pt.kernel
def arrays16_first(acc, c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14,
                   c15):
    if acc.once_per_grid():
        c0[0] = 1.0


# ----------------------------------------------------------------------------- njit
@numba.njit(nogil=True)
def njit_add_first(a, b, c, n):
    for i in range(n):
        c[i] = a[i] + b[i]


@numba.njit(parallel=True, nogil=True)
def njit_add_first_parallel(a, b, c, n):
    for i in numba.prange(n):
        c[i] = a[i] + b[i]


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


# ----------------------------------------------------------------------------- raw numba-cuda
# at module level with the global name ``cuda``: the CUDA simulator swaps module
# globals that are numba.cuda, not closure variables
try:
    from numba import cuda
    HAVE_CUDA = hasattr(cuda, "jit")
except Exception:  # noqa: BLE001 - numba-cuda missing or broken: no GPU section
    HAVE_CUDA = False

if HAVE_CUDA:
    @cuda.jit
    def raw_add_first(a, b, c, n):
        i = cuda.grid(1)
        if i < n:
            c[i] = a[i] + b[i]

    @cuda.jit
    def raw_arrays16_first(c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11, c12, c13, c14,
                           c15):
        if cuda.grid(1) == 0:
            c0[0] = 1.0

    @cuda.jit
    def raw_saxpy(a, x, y, out):
        i = cuda.grid(1)
        if i < x.size:
            out[i] = a * x[i] + y[i]

    @cuda.jit
    def raw_saxpy_grid_stride(a, x, y, out):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            out[i] = a * x[i] + y[i]

    @cuda.jit
    def raw_norm(x, y, z, r):
        i = cuda.grid(1)
        if i < x.size:
            r[i] = math.sqrt(x[i] * x[i] + y[i] * y[i] + z[i] * z[i])

    @cuda.jit
    def raw_norm_grid_stride(x, y, z, r):
        for i in range(cuda.grid(1), x.size, cuda.gridsize(1)):
            r[i] = math.sqrt(x[i] * x[i] + y[i] * y[i] + z[i] * z[i])
else:
    raw_add_first = raw_arrays16_first = raw_saxpy = raw_saxpy_grid_stride = None
    raw_norm = raw_norm_grid_stride = None

CUDA_C = r"""
extern "C" __global__ void add_first(const float* a, const float* b, float* c, long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) c[i] = a[i] + b[i];
}
extern "C" __global__ void saxpy(const float a, const float* __restrict__ x,
                                 const float* __restrict__ y, float* __restrict__ out,
                                 const long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = a * x[i] + y[i];
}
extern "C" __global__ void soa_norm(const float* __restrict__ x, const float* __restrict__ y,
                                    const float* __restrict__ z, float* __restrict__ r,
                                    const long long n) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) r[i] = sqrtf(x[i] * x[i] + y[i] * y[i] + z[i] * z[i]);
}
"""


# ----------------------------------------------------------------------------- references
def saxpy_reference(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return SAXPY_A * x + y


def norm_reference(x: np.ndarray, y: np.ndarray, z: np.ndarray) -> np.ndarray:
    x64, y64, z64 = (c.astype(np.float64) for c in (x, y, z))
    return np.sqrt(x64 * x64 + y64 * y64 + z64 * z64).astype(np.float32)


def matches(got: np.ndarray, want: np.ndarray) -> bool:
    """Every element within float32 rounding of the reference (an unwritten NaN fails)."""
    return bool(np.isclose(got, want, rtol=2e-6, atol=1e-6).all())


def to_device(q: pt.Queue, host: np.ndarray) -> Any:
    """A new buffer on ``q``'s device holding a copy of ``host``."""
    buffer = pt.alloc_buffer(q.device, host.shape, host.dtype)
    pt.memcpy(q, buffer, host)
    return buffer


# ----------------------------------------------------------------------------- the ceiling
def copy_ceiling(q: pt.Queue, n: int, *, repeat: int, warmup: int) -> dict[str, Any]:
    """The bandwidth ceiling: device-to-device copies of ``n`` float32 (bytes read and
    written) with numba, torch and CuPy where they work; the best median is the
    ceiling (numba's copy has host overhead enough to read low)."""
    stream, rng = q.native, np.random.default_rng(7)
    src, dst = to_device(q, rng.random(n, dtype=np.float32)), pt.alloc_buffer(q.device, n,
                                                                              np.float32)
    q.synchronize()
    times = common.time_events({"numba copy_to_device":
                                lambda k: dst.copy_to_device(src, stream=stream)},
                               common.Events("numba", q.backend.cuda, stream),
                               repeat=repeat, warmup=warmup)
    torch, _ = common.gpu_library("torch")
    if torch is not None:
        ts, td = torch.as_tensor(src, device="cuda"), torch.as_tensor(dst, device="cuda")
        times.update(common.time_events({"torch copy_": lambda k: td.copy_(ts)},
                                        common.Events("torch", torch), repeat=repeat,
                                        warmup=warmup))
    if not np.array_equal(dst.copy_to_host(), src.copy_to_host()):
        raise RuntimeError("the device-to-device copy is wrong")
    copies = {name: {"time": t, "TB/s": common.rate(t, 8 * n, 1e12, "TB/s")}
              for name, t in times.items()}
    best = max(copies, key=lambda name: copies[name]["TB/s"]["median"] or 0.0)
    return {"bytes_per_copy": 8 * n, "variants": copies, "ceiling": best,
            "ceiling_TB/s": copies[best]["TB/s"]["median"]}
