"""AMD GPU code objects from portable kernels, without an AMD GPU or ROCm.

A kernel, rewritten in the CUDA dialect (the same Python function the ``cuda``
backend compiles), is lowered to LLVM IR by numba-cuda for a fixed compute
capability; :mod:`.retarget`'s rules turn that IR into AMDGPU IR, which is
linked with :mod:`.prelude`, optimised and emitted by llvmlite's AMDGPU target,
and linked into a code object (an ELF shared object, what ``hipModuleLoadData``
loads) by ``ld.lld`` from the ``ziglang`` package (or an ``ld.lld`` on ``PATH``).
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Iterator, Sequence

from ...errors import KernelError
from ...frontend import compiler_error
from ...kernel import Kernel
from .prelude import prelude_ir
from .retarget import drop_target, mark_kernel, private_allocas, rename_intrinsics

#: the architectures code objects are built for when no device says otherwise
ARCHITECTURES = ("gfx90a", "gfx942")
TRIPLE = "amdgcn-amd-amdhsa"
#: the compute capability numba-cuda lowers for: it decides only which NVIDIA
#: intrinsics appear (8.0 gives the float atomic adds that AMDGPU has too)
LOWERING_CAPABILITY = (8, 0)


@dataclass(frozen=True)
class CodeObject:
    """One kernel compiled for one AMD GPU architecture.

    ``image`` is the ELF code object that ``hipModuleLoadData`` loads,
    ``symbol`` the kernel's name in it, ``assembly`` the AMDGPU assembly emitted
    from the same optimised module (for inspection), ``uses`` what the lowered
    kernel asked for (``barrier``, ``shared``, ``atomic``) and ``shared_bytes``
    the size of the shared (LDS) arrays it declares.
    """

    arch: str
    symbol: str
    image: bytes
    assembly: str
    uses: frozenset[str]
    shared_bytes: int


_SHARED_ARRAY = re.compile(r"^(@\S+) = (?:internal )?addrspace\(3\) global "
                           r"\[(\d+) x (i8|i16|i32|i64|float|double)\]", re.MULTILINE)
_SCALAR_BYTES = {"i8": 1, "i16": 2, "i32": 4, "i64": 8, "float": 4, "double": 8}
_USES = {"barrier": re.compile(r"llvm\.nvvm\.barrier0"),
         "shared": re.compile(r"addrspace\(3\)"),
         "atomic": re.compile(r"\b(atomicrmw|cmpxchg)\b|llvm\.nvvm\.atomic|___numba_atomic")}


def uses(texts: Sequence[str]) -> frozenset[str]:
    """What numba-cuda's IR of a kernel (``texts``) asks of the GPU: ``barrier``,
    ``shared`` memory, ``atomic`` operations.

    Example::

        >>> sorted(uses(['call void @"llvm.nvvm.barrier0"()', '%x = atomicrmw add ptr %p']))
        ['atomic', 'barrier']
    """
    return frozenset(name for name, pattern in _USES.items()
                     if any(pattern.search(text) for text in texts))


def shared_bytes(texts: Sequence[str]) -> int:
    """The bytes of the shared arrays declared in ``texts``, each aligned to its
    element size."""
    total = 0
    arrays = {m.group(1): m.groups()[1:] for text in texts for m in _SHARED_ARRAY.finditer(text)}
    for count, scalar in arrays.values():
        size = _SCALAR_BYTES[scalar]
        total = -(-total // size) * size + int(count) * size
    return total


def available_problem() -> str | None:
    """Why AMD code generation cannot work here, or ``None`` when it can.

    Example::

        >>> available_problem() is None or "rocm" in available_problem()
        True
    """
    try:
        _target()
    except Exception as err:  # llvmlite without the AMDGPU target
        return f"llvmlite has no AMDGPU target ({err})"
    if _linker() is None:
        return ("no ld.lld to link AMD code objects: install the 'rocm' extra "
                "(pip install 'hep-portable-kernels[rocm]', which brings ziglang's ld.lld)")
    import numba
    if numba.config.ENABLE_CUDASIM:  # type: ignore[attr-defined]
        return ("Numba's CUDA simulator is on (NUMBA_ENABLE_CUDASIM=1): numba-cuda's "
                "compiler, which lowers the kernels, is replaced by the simulator")
    try:
        from numba.cuda.compiler import compile_cuda  # noqa: F401
    except ImportError as err:
        return f"numba-cuda is not installed ({err}); install the 'rocm' extra"
    return None


@functools.cache
def _target() -> Any:
    import llvmlite.binding as llvm
    llvm.initialize_all_targets()
    llvm.initialize_all_asmprinters()
    return llvm.Target.from_triple(TRIPLE)


@functools.cache
def _target_machine(arch: str) -> Any:
    try:
        return _target().create_target_machine(cpu=arch, opt=3, reloc="pic", codemodel="default")
    except RuntimeError as err:
        raise KernelError(f"llvmlite cannot target the AMD GPU architecture {arch!r}: {err}") \
            from None


def _linker() -> list[str] | None:
    """The command that runs ld.lld, or ``None`` where there is none."""
    if importlib.util.find_spec("ziglang") is not None:
        return [sys.executable, "-m", "ziglang", "ld.lld"]
    found = shutil.which("ld.lld")
    return [found] if found else None


@contextlib.contextmanager
def fixed_capability() -> Iterator[None]:
    """numba-cuda compiles device functions for the current CUDA device's compute
    capability, asking the driver for it; while this block runs it answers
    :data:`LOWERING_CAPABILITY` instead, so lowering needs no NVIDIA GPU. numba's
    compiler lock is held, so no CUDA compilation runs with the fixed answer."""
    from numba.cuda import dispatcher
    from numba.cuda.core.compiler_lock import global_compiler_lock
    device = SimpleNamespace(compute_capability=LOWERING_CAPABILITY)
    with global_compiler_lock:
        asked = dispatcher.get_current_device
        dispatcher.get_current_device = lambda: device
        try:
            yield
        finally:
            dispatcher.get_current_device = asked


def lower(function: Callable[..., Any], arg_types: Sequence[Any]) -> tuple[list[str], str]:
    """numba-cuda's LLVM IR for the kernel ``function`` taking ``arg_types``:
    the kernel's module and the modules of the device functions it calls, and the
    kernel's symbol. Numba's errors propagate (the caller names the kernel)."""
    from numba.cuda import types
    from numba.cuda.compiler import compile_cuda, kernel_fixup  # type: ignore[attr-defined]
    with fixed_capability():
        result = compile_cuda(function, types.void,  # type: ignore[attr-defined]
                              tuple(arg_types), cc=LOWERING_CAPABILITY)
    library = result.library
    symbol = result.fndesc.llvm_func_name
    kernel_fixup(library.get_function(symbol), debug=False)
    return [str(module) for module in library.modules], symbol


def amdgpu_module(texts: Sequence[str], symbol: str, kernel: str, arch: str) -> Any:
    """One verified llvmlite module for ``arch``: the kernel's and its device
    functions' modules retargeted (see :mod:`.retarget`), linked with the prelude."""
    import llvmlite.binding as llvm
    machine = _target_machine(arch)
    header = f'target triple = "{TRIPLE}"\ntarget datalayout = "{machine.target_data}"\n'
    linked = None
    for text in texts:
        generic = llvm.parse_assembly(drop_target(rename_intrinsics(text, kernel)))
        amdgpu = header + private_allocas(drop_target(str(generic)))
        if linked is None:
            amdgpu = mark_kernel(amdgpu, symbol)
        module = llvm.parse_assembly(amdgpu)
        if linked is None:
            linked = module
        else:
            linked.link_in(module)
    assert linked is not None, "a kernel has at least its own module"
    linked.link_in(llvm.parse_assembly(header + prelude_ir()))
    linked.verify()
    return linked


def optimise(module: Any, arch: str) -> None:
    """Run LLVM's O3 pipeline for ``arch`` on ``module`` in place."""
    import llvmlite.binding as llvm
    machine = _target_machine(arch)
    options = llvm.create_pipeline_tuning_options(speed_level=3)
    builder = llvm.create_pass_builder(machine, options)
    builder.getModulePassManager().run(module, builder)


def emit(module: Any, arch: str) -> tuple[bytes, str]:
    """The code object of the optimised ``module``, and its assembly. Each emission
    works on a clone: emitting twice from one module makes LLVM's AMDGPU
    instruction selection fail."""
    machine = _target_machine(arch)
    obj = machine.emit_object(module.clone())
    return link(obj), machine.emit_assembly(module.clone())


def link(obj: bytes) -> bytes:
    """``ld.lld -shared`` of one relocatable AMDGPU object: the code object."""
    command = _linker()
    if command is None:
        raise KernelError(available_problem() or "no ld.lld")
    with tempfile.TemporaryDirectory(prefix="portable-rocm-") as where:
        source, target = Path(where, "kernel.o"), Path(where, "kernel.hsaco")
        source.write_bytes(obj)
        done = subprocess.run([*command, "-shared", "--no-undefined", str(source), "-o",
                               str(target)], capture_output=True, text=True)
        if done.returncode != 0:
            raise KernelError(f"ld.lld could not link the AMD code object: "
                              f"{done.stderr.strip() or done.stdout.strip()}")
        return target.read_bytes()


def compile_kernel(function: Callable[..., Any], arg_types: Sequence[Any], kernel: Kernel,
                   archs: Sequence[str]) -> dict[str, CodeObject]:
    """Code objects of ``kernel`` from ``function``, its CUDA-dialect Python version,
    for each of ``archs``, lowered once."""
    from numba.core.errors import NumbaError
    try:
        texts, symbol = lower(function, arg_types)
    except NumbaError as err:
        raise compiler_error(f"kernel {kernel.__name__}", "rocm", err) from None
    asked, lds = uses(texts), shared_bytes(texts)
    found = {}
    for arch in archs:
        module = amdgpu_module(texts, symbol, kernel.__name__, arch)
        optimise(module, arch)
        image, assembly = emit(module, arch)
        found[arch] = CodeObject(arch, symbol, image, assembly, asked, lds)
    return found

