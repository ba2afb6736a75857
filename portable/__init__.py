"""portable: write a kernel once, run it on CUDA, ROCm or the CPU.

Example::

    >>> import numpy as np, portable as pt
    >>> @pt.kernel
    ... def axpy(acc, a, x, y, out):
    ...     for i in acc.uniform_elements(x.size):
    ...         out[i] = a * x[i] + y[i]
    >>> q = pt.Queue(pt.get_device("cpu_serial"))
    >>> x, y, out = np.arange(3.0), np.ones(3), np.empty(3)
    >>> pt.launch(q, pt.make_workdiv(q.device, 3), axpy, 2.0, x, y, out)
    >>> out.tolist()
    [1.0, 3.0, 5.0]
"""
from . import numba_env  # noqa: F401  (checks Numba's settings before Numba reads them)
from .backend import (Backend, all_backends, available_backends, get_backend, selected_backend,
                      use_backend)
from .backends import cpu as _cpu  # noqa: F401  (registers cpu_serial, cpu_threads)
from .backends import cuda as _cuda  # noqa: F401  (registers cuda)
from .backends import rocm as _rocm  # noqa: F401  (registers rocm)
from .collection import (CollectionAttributeError, CollectionFileError, CollectionFileMissing,
                         MultiCollection, PortableCollection, View)
from .device import Device, DeviceLimits, devices, get_device
from .errors import (ArgumentError, BackendError, KernelError, LaunchArgumentError, LaunchError,
                     PortableError, RangeError)
from .event import Event
from .layout import Layout, LayoutError, column, matrix, scalar, vector
from .kernel import Acc, DeviceFunction, Kernel, device_function, kernel, launch
from .memory import alloc_buffer, alloc_host_buffer, as_view, device_of, memcpy, memset
from .queue import Queue
from .workdiv import WorkDiv, make_workdiv
from .allocator import CachingAllocator, caching_allocator

__version__ = "0.1.0"

__all__ = [
    "Acc", "ArgumentError", "Backend", "BackendError", "CollectionAttributeError",
    "CollectionFileError", "CollectionFileMissing", "Device", "DeviceFunction", "DeviceLimits",
    "Event",
    "Kernel", "KernelError", "LaunchArgumentError", "LaunchError", "MultiCollection", "PortableCollection",
    "Layout", "LayoutError", "PortableError", "Queue", "RangeError", "View", "WorkDiv",
    "alloc_buffer", "alloc_host_buffer", "all_backends", "as_view", "available_backends",
    "device_function", "device_of", "devices", "get_backend", "get_device", "kernel",
    "column", "launch", "make_workdiv", "matrix", "memcpy", "memset", "scalar",
    "selected_backend", "use_backend", "vector",
    "CachingAllocator", "caching_allocator",
]
