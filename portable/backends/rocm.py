"""The ``rocm`` backend: registered so it can be listed and asked for, but it
reports itself unavailable, with the reason, until its kernels exist."""
from __future__ import annotations

from typing import Any, NoReturn

from ..backend import Backend, register
from ..device import Device
from ..errors import BackendError


class RocmBackend(Backend):
    """AMD GPUs through numba-hip (not available yet)."""

    name = "rocm"
    is_gpu = True

    def _probe(self) -> str | None:
        try:
            import numba_hip  # noqa: F401
        except ImportError:
            return ("numba-hip is not installed (it needs numba<0.64 and cannot share an "
                    "environment with numba-cuda), and the rocm backend's kernel support "
                    "is not implemented yet")
        return "the rocm backend's kernel support is not implemented yet"

    def devices(self) -> list[Device]:
        return []

    def _unavailable(self, *args: Any) -> NoReturn:
        raise BackendError(f"backend 'rocm' cannot run here: {self.reason}")

    make_stream = synchronize = record_event = wait_event = _unavailable
    alloc = memcpy = memset = prepare_arg = compile_device_function = launch = _unavailable
    strided_view = _unavailable

    def device_of(self, array: Any) -> None:
        return None

    def as_array(self, obj: Any) -> None:
        return None


register(RocmBackend())
