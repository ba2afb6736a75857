"""Every kernel of the library, of the calorimeter example and of the kernel-API
tests compiles to AMD GPU code objects for gfx90a and gfx942, and each code object
is what the launcher expects: an AMDGPU ELF for that architecture, no undefined
symbols, LDS as declared, no scratch, the argument layout the launcher packs, and
barrier, LDS and atomic instructions wherever the kernel uses them.

No AMD GPU is needed: the kernels' arguments are recorded from real runs on a
CPU backend (which records each launch before running it), and only their types
and layouts matter for compiling. Running the code objects needs an AMD GPU
(``pytest -m rocm``)."""
from __future__ import annotations

import importlib
import pkgutil
import re
import struct
import sys
from pathlib import Path
from typing import Any, Sequence

import numba
import numpy as np
import pytest

import kernels
import portable as pt
from portable.backends.cpu import CpuSerial
from portable.backends.rocm import codegen, kernargs
from portable.backends.rocm.backend import RocmBackend
from portable.backends.rocm.codeobject import EM_AMDGPU, MACHINES, inspect, mnemonics

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

pytestmark = pytest.mark.skipif(
    bool(numba.config.ENABLE_CUDASIM) or codegen.available_problem() is not None,
    reason=f"AMD code generation unavailable: "
           f"{'the CUDA simulator is on' if numba.config.ENABLE_CUDASIM else codegen.available_problem()}")

ARCHS = codegen.ARCHITECTURES
_ATOMIC = re.compile(r"^(global|flat|buffer)_atomic_|^ds_(add|sub|rsub|min|max|inc|dec|and|or|"
                     r"xor|wrxchg|cmpst|cmpstore|cmpswap|pk_add)")


class RecordingBackend(CpuSerial):
    """``cpu_serial`` that notes every launch (kernel, dimensions, arguments)
    before running it."""

    def __init__(self) -> None:
        super().__init__()
        self.launches: list[tuple[pt.Kernel, int, list[Any]]] = []

    def launch(self, queue: Any, workdiv: Any, kernel: Any, args: Any, views: Any = ()) -> None:
        self.launches.append((kernel, workdiv.ndim, list(args)))
        super().launch(queue, workdiv, kernel, args, views)


def _library_run(queue: pt.Queue) -> None:
    """One call of each public function of ``kernels`` (every kernel they launch)."""
    rng = np.random.default_rng(7)
    x = rng.random(1000)
    out = np.empty_like(x)
    kernels.axpy(queue, 2.0, x, x.copy(), out)
    kernels.elementwise_map(queue, square, x, out)
    kernels.histogram(queue, x, 0.0, 1.0, np.zeros(16, np.int32))
    kernels.histogram(queue, x.astype(np.float32), 0.0, 1.0, np.zeros(16, np.int64))
    for dtype in (np.float64, np.int32):
        values = (x * 100).astype(dtype)
        for reduce in (kernels.reduce_sum, kernels.reduce_min, kernels.reduce_max):
            reduce(queue, values, np.zeros(1, dtype))
    kernels.exclusive_scan(queue, (x * 10).astype(np.int64), np.zeros(x.size, np.int64))
    kernels.select_indices(queue, x > 0.5, np.zeros(x.size, np.int64))
    kernels.compact_where(queue, square, x - 0.5, np.zeros(x.size, np.int64))
    queue.synchronize()


@pt.device_function
def square(v):
    return v * v


def _calo_run(queue: pt.Queue) -> None:
    """The calorimeter example's clustering and features on one small event."""
    from examples.calo.clue import ClueParams, cluster
    from examples.calo.features import cluster_features, select
    from examples.calo.generator import SHAPES, generate, upload
    from examples.calo.layouts import Clusters
    shape = SHAPES["tiny"]
    event = generate(0, shape)
    hits = upload(queue, event)
    n_clusters = cluster(queue, hits, ClueParams.for_geometry(shape.geometry))
    clusters = pt.PortableCollection(Clusters, n_clusters, queue.device)
    cluster_features(queue, hits, clusters)
    select(queue, clusters, 0.5, np.zeros(clusters.size, np.int64))
    queue.synchronize()


def _gnn_run(queue: pt.Queue) -> None:
    """The GNN example's graph building, edge features and merge on one small event
    (the edges unscored: only the launches matter)."""
    from examples.gnn.features import edge_features
    from examples.gnn.generator import EventShape, generate
    from examples.gnn.graph import build_graph, upload
    from examples.gnn.layouts import Edges, Particles
    from examples.gnn.merge import merge
    shape = EventShape(jets=1.0, particles=1.0, pileup=3.0, capacity=64, edges_per_node=8)
    nodes, n_nodes = upload(queue, generate(0, shape), shape.capacity)
    edges = pt.PortableCollection(Edges, shape.edge_capacity, queue.device, zero=True)
    n_edges = build_graph(queue, nodes, n_nodes, edges)
    edge_features(queue, nodes, edges, n_edges)
    merge(queue, nodes, n_nodes, edges, n_edges,
          pt.PortableCollection(Particles, nodes.size, queue.device))
    queue.synchronize()


EXAMPLES = ("examples.calo.clue", "examples.calo.features", "examples.gnn.graph",
            "examples.gnn.features", "examples.gnn.merge")
#: the library's kernels made by factories (per dtype, operation or device function)
LIBRARY_FACTORY_KERNELS = {"chunk_totals", "flag_kernel", "histogram_kernel", "map_kernel",
                           "reduce_kernel", "scan_chunks", "scan_totals"}


@pytest.fixture(scope="module")
def recorded() -> list[tuple[pt.Kernel, int, list[Any]]]:
    backend = RecordingBackend()
    queue = pt.Queue(backend.devices()[0])
    _library_run(queue)
    _calo_run(queue)
    _gnn_run(queue)
    return backend.launches


@pytest.fixture(scope="module")
def compiled(recorded) -> list[tuple[str, list[Any], dict[str, codegen.CodeObject]]]:
    """Each recorded kernel compiled for every architecture (once per launch shape
    and argument types), with the kernel parameters its arguments become."""
    backend, seen, found = RocmBackend(), set(), []
    for kernel, ndim, args in recorded:
        ones = (1,) * ndim  # GPU launches run one element per thread per loop pass
        objects, params = backend.build(kernel, pt.WorkDiv(ones, ones, ones), args, ARCHS)
        if id(objects[ARCHS[0]]) not in seen:
            seen.add(id(objects[ARCHS[0]]))
            found.append((kernel.__name__, params, objects))
    return found


def _module_kernels(names: Sequence[str]) -> set[str]:
    return {value.__name__ for name in names
            for value in vars(importlib.import_module(name)).values()
            if isinstance(value, pt.Kernel)}


def test_every_library_and_example_kernel_was_compiled(compiled):
    library = [f"kernels.{m.name}" for m in pkgutil.iter_modules(kernels.__path__)]
    expected = _module_kernels(library) | LIBRARY_FACTORY_KERNELS | _module_kernels(EXAMPLES)
    names = {name for name, _, _ in compiled}
    assert expected <= names, f"kernels never launched, so never compiled: {expected - names}"


def test_code_objects_are_amdgpu_elf_for_each_arch(compiled):
    for name, _, objects in compiled:
        for arch, code in objects.items():
            info = inspect(code.image)
            assert info.machine == EM_AMDGPU, name
            assert info.arch == arch and MACHINES[info.flags & 0xFF] == arch, (name, arch)
            assert info.undefined_symbols == (), (name, arch, info.undefined_symbols)
            kernel = info.kernels[code.symbol]
            assert kernel.wavefront_size == 64, (name, arch)


def test_lds_as_declared_and_no_scratch(compiled):
    for name, _, objects in compiled:
        for arch, code in objects.items():
            kernel = inspect(code.image).kernels[code.symbol]
            assert kernel.lds_bytes == code.shared_bytes, (name, arch, kernel.lds_bytes,
                                                           code.shared_bytes)
            assert ("shared" in code.uses) == (code.shared_bytes > 0), (name, code.uses)
            assert kernel.scratch_bytes == 0, (name, arch, kernel.scratch_bytes)


def test_argument_layout_is_what_the_launcher_packs(compiled):
    for name, params, objects in compiled:
        for arch, code in objects.items():
            layout = inspect(code.image).kernels[code.symbol].explicit_args
            packed = kernargs.pack(layout, params, name)
            for arg, (fmt, value) in zip(layout, params):
                assert arg.offset % arg.size == 0, (name, arch, arg)
                assert struct.unpack_from("<" + fmt, packed, arg.offset)[0] == value, (name, arg)


def test_barrier_lds_and_atomic_instructions_where_used(compiled):
    for name, _, objects in compiled:
        for arch, code in objects.items():
            ops = mnemonics(code.assembly)
            if "barrier" in code.uses:
                assert ops["s_barrier"] > 0, (name, arch)
            if "shared" in code.uses:
                assert any(op.startswith("ds_") for op in ops), (name, arch)
            if "atomic" in code.uses:
                assert any(_ATOMIC.match(op) for op in ops), (name, arch, sorted(ops))
            else:
                assert not any(_ATOMIC.match(op) for op in ops), (name, arch)
