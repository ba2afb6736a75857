"""The rocm backend's launch side. Without an AMD GPU: it reports itself unavailable
with the reason, and ``python -m portable`` says separately that AMD code
generation works here. With one (``pytest -m rocm``): kernels run through HIP and
match NumPy, memory, queues and events work, and torch sees the buffers."""
from __future__ import annotations

import numba
import numpy as np
import pytest

import kernels
import portable as pt
from portable.__main__ import report
from portable.backends.rocm import codegen, hip
from portable.testing import host_copy, poisoned

ROCM = pt.all_backends()[[b.name for b in pt.all_backends()].index("rocm")]
on_amd_gpu = pytest.mark.skipif(not ROCM.available, reason=f"rocm: {ROCM.reason}")


@pytest.mark.skipif(ROCM.available, reason="a HIP device answers here")
def test_without_a_hip_device_rocm_says_why():
    assert ROCM.reason == hip.problem() or ROCM.reason == codegen.available_problem()
    with pytest.raises(pt.BackendError, match=r"backend 'rocm' was asked for but cannot run "
                                              r"here: .*(HIP|ld\.lld|AMDGPU|simulator)"):
        pt.get_backend("rocm")


@pytest.mark.skipif(bool(numba.config.ENABLE_CUDASIM) or codegen.available_problem() is not None,
                    reason="AMD code generation unavailable here")
def test_info_reports_amd_code_generation_separately():
    text, _ = report()
    rocm_line = next(line for line in text.splitlines() if line.strip().startswith("rocm "))
    following = text.splitlines()[text.splitlines().index(rocm_line) + 1]
    assert following.strip() == "AMD code generation: works here (code objects for gfx90a, gfx942)"


@pytest.fixture
def queue() -> pt.Queue:
    return pt.Queue(pt.get_device("rocm"))


@pytest.mark.rocm
@on_amd_gpu
def test_device_reports_its_arch_and_wavefront(queue):
    assert ROCM.arch(queue.device).startswith("gfx")
    assert queue.device.limits.warp_size in (32, 64)


@pytest.mark.rocm
@on_amd_gpu
@pytest.mark.parametrize("n", [1, 1000, 100_003])
def test_library_kernels_match_numpy(queue, n):
    rng = np.random.default_rng()
    host = rng.random(n)
    x = pt.alloc_buffer(queue.device, n, np.float64)
    pt.memcpy(queue, x, host)
    out = poisoned(queue, n, np.float64)
    kernels.axpy(queue, 3.0, x, x, out)
    np.testing.assert_allclose(host_copy(queue, out), 4.0 * host, rtol=1e-15)
    counts = poisoned(queue, 16, np.int64)
    kernels.histogram(queue, x, 0.0, 1.0, counts)
    np.testing.assert_array_equal(host_copy(queue, counts),
                                  np.histogram(host, 16, (0.0, 1.0))[0])
    total = poisoned(queue, 1, np.float64)
    kernels.reduce_sum(queue, x, total)
    np.testing.assert_allclose(host_copy(queue, total)[0], host.sum(), rtol=1e-12)


@pytest.mark.rocm
@on_amd_gpu
def test_events_order_two_queues(queue):
    other = pt.Queue(queue.device, blocking=False)
    buffer = pt.alloc_buffer(queue.device, 1 << 20, np.uint8)
    pt.memset(queue, buffer, 7)
    done = pt.Event(queue.device)
    done.record(queue)
    other.wait_for(done)
    result = np.empty(1 << 20, np.uint8)
    pt.memcpy(other, result, buffer)
    other.synchronize()
    assert (result == 7).all()


@pytest.mark.rocm
@on_amd_gpu
def test_torch_sees_rocm_buffers(queue):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available() or torch.version.hip is None:
        pytest.skip("torch is not a ROCm build")
    x = pt.alloc_buffer(queue.device, 10, np.float32)
    pt.memcpy(queue, x, np.arange(10, dtype=np.float32))
    queue.synchronize()
    tensor = torch.as_tensor(x, device="cuda")
    assert tensor.sum().item() == 45.0
