"""The rocm backend's DLPack export, checked on host memory (device type kDLCPU)
where NumPy and torch can read it back: the same structures carry kDLROCM for AMD
GPU memory."""
from __future__ import annotations

import gc

import numpy as np
import pytest
import torch

from portable.backends.rocm.backend import RocmBackend
from portable.backends.rocm.dlpack import _ALIVE, DLPackExport

KDLCPU = 1


@pytest.mark.parametrize("dtype", [np.int8, np.int32, np.uint16, np.uint64, np.float32,
                                   np.float64, np.bool_])
@pytest.mark.parametrize("view", ["whole", "strided", "column", "empty"])
def test_consumers_read_the_exported_values_in_place(dtype, view):
    rng = np.random.default_rng()
    base = (rng.random((6, 5)) * 100).astype(dtype)
    array = {"whole": base, "strided": base[::2, 1::2], "column": base[:, 3],
             "empty": base[:0]}[view]
    got = np.from_dlpack(DLPackExport(array, KDLCPU, 0))
    np.testing.assert_array_equal(got, array)
    assert got.strides == array.strides
    if dtype is not np.bool_:
        tensor = torch.from_dlpack(DLPackExport(array, KDLCPU, 0))
        np.testing.assert_array_equal(tensor.numpy(), array)
        if array.size:
            array.flat[0] = 1
            assert tensor.flatten()[0].item() == 1  # no copy


def test_exports_free_what_they_keep_once_consumed_or_dropped():
    gc.collect()
    before = len(_ALIVE)
    tensor = torch.from_dlpack(DLPackExport(np.zeros(3), KDLCPU, 0))
    unused = DLPackExport(np.zeros(3), KDLCPU, 0).__dlpack__()
    assert len(_ALIVE) == before + 2
    del tensor, unused
    gc.collect()
    assert len(_ALIVE) == before


def test_amd_gpu_memory_is_exported_as_kdlrocm():
    assert RocmBackend.dlpack_device_type == 10
    export = DLPackExport(np.zeros(2), RocmBackend.dlpack_device_type, 3)
    assert export.__dlpack_device__() == (10, 3)
