"""The ``rocm`` backend: AMD GPUs through HIP, kernels compiled to AMDGPU code
objects by retargeting numba-cuda's LLVM IR (see :mod:`.codegen`)."""
from . import backend as _backend  # noqa: F401  (registers rocm)
