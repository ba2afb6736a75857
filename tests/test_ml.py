"""The ml bridge on every backend: zero-copy tensors for every case of the
shapes/strides table, the blocks that cannot form one tensor, models of every
kind (eager, TorchScript, torch.export, AOTInductor) run in place, lazy
deployment, bad inputs that leave the collection untouched, one stream shared
by kernels and a model, threads and batching."""
import os
import re
import subprocess
import sys
import time
import warnings
from typing import Dict

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ml  # noqa: E402
import portable as pt  # noqa: E402
from portable.testing import every_backend, host_copy, is_simulated, test_sizes  # noqa: E402

from collection_helpers import HOST, capacities, to_host  # noqa: E402

SIZES = (0, 1, 31, 1000)
RTOL, ATOL = 1e-5, 1e-6
# TorchScript is deprecated in torch 2.13 but still a supported input
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.:DeprecationWarning")


# -- layouts ---------------------------------------------------------------------------
class Rich(pt.Layout):
    """Every case of the table: adjacent columns, another dtype, vectors, matrices,
    a scalar, and a column (t) that is not adjacent to x."""
    x = pt.column(np.float32)
    y = pt.column(np.float32)
    z = pt.column(np.float32)
    w = pt.column(np.float64)
    t = pt.column(np.float32)
    p = pt.vector(np.float32, 3)
    q = pt.vector(np.float32, 3)
    u = pt.vector(np.float32, 2)
    m = pt.matrix(np.float32, 2, 3)
    k = pt.matrix(np.float32, 2, 3)
    e = pt.scalar(np.float32)
    idx = pt.column(np.int32)


class Hits(pt.Layout):
    """Model inputs x, y, z; outputs score = (s0, s1), total, dbl; an int column."""
    x = pt.column(np.float32)
    y = pt.column(np.float32)
    z = pt.column(np.float32)
    s0 = pt.column(np.float32)
    s1 = pt.column(np.float32)
    tot = pt.column(np.float32)
    dbl = pt.column(np.float32)
    lab = pt.column(np.int32)
    run = pt.scalar(np.int64)


INPUTS = ("x", "y", "z")
OUTPUT_MEMBERS = {"score": ("s0", "s1"), "total": ("tot",)}


# -- helpers ---------------------------------------------------------------------------



def buffer_ptr(collection):
    if not collection.device.backend.host_memory:
        return collection.buffer.__cuda_array_interface__["data"][0]
    return collection.buffer.ctypes.data


def tensor_ptr(t):
    """The address of element 0 (also for empty tensors, whose data_ptr() is 0)."""
    return t.untyped_storage().data_ptr() + t.storage_offset() * t.element_size()


def sync_torch(queue):
    if not queue.backend.host_memory:
        torch.cuda.synchronize()


def needs_torch_device(queue):
    """Skip where torch cannot reach the backend's memory."""
    if is_simulated(queue.backend.name):
        pytest.skip("no torch CUDA in Numba's CUDA simulator")
    if not queue.backend.host_memory and not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")


def needs_real_gpu(queue):
    if queue.backend.host_memory or is_simulated(queue.backend.name):
        pytest.skip("needs a real GPU")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")


def random_rich(n, capacity, seed):
    rng = np.random.default_rng(seed)
    host = pt.PortableCollection(Rich, n, HOST, capacity=capacity, zero=True)
    for member in Rich.members():
        col = host.column(member.name)
        if member.kind == "scalar":
            col[()] = rng.standard_normal()
        elif member.dtype == np.int32:
            col[...] = rng.integers(-1000, 1000, col.shape)
        else:
            col[...] = rng.standard_normal(col.shape)
    return host


def random_hits(n, capacity, seed):
    """Random inputs, outputs poisoned with NaN (and -1) so that a missed write shows."""
    rng = np.random.default_rng(seed)
    host = pt.PortableCollection(Hits, n, HOST, capacity=capacity, zero=True)
    for name in INPUTS:
        host.column(name)[:] = rng.standard_normal(n)
    for name in ("s0", "s1", "tot", "dbl"):
        host.column(name)[:] = np.nan
    host.column("lab")[:] = -1
    host.column("run")[()] = 77
    return host


def hits_meta(collection, outputs=("score",)):
    inputs = ml.SoAMetadata(collection)
    inputs.append_block("features", *INPUTS)
    out = ml.SoAMetadata(collection)
    for name in outputs:
        out.append_block(name, *OUTPUT_MEMBERS[name])
    return ml.ModelMetadata(inputs, out)


def reference_input(host):
    """The inputs as a plain contiguous CPU tensor."""
    return torch.stack([torch.from_numpy(host.column(name).copy()) for name in INPUTS], dim=1)


def output_columns(host, block):
    return np.stack([host.column(name) for name in OUTPUT_MEMBERS[block]], axis=1)


def value_mask(layout, size, capacity, members):
    """The bytes that hold the values of ``members``' first ``size`` elements."""
    mask = np.zeros(layout.byte_size(capacity), bool)
    geometry = layout.geometry(capacity)
    for name in members:
        g = geometry[name]
        for col in range(g.cols):
            for row in range(g.rows):
                start = g.component_offset(row, col)
                mask[start:start + size * g.itemsize] = True
    return mask


def assert_only_outputs_written(before, after, members):
    """Every byte outside the outputs' values is as it was (inputs, padding, scalars)."""
    keep = ~value_mask(Hits, before.size, before.capacity, members)
    np.testing.assert_array_equal(after.buffer[keep], before.buffer[keep])


# -- models ----------------------------------------------------------------------------
def mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(3, 16), torch.nn.ReLU(),
                               torch.nn.Linear(16, 2)).eval()


class TupleHeads(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = mlp()

    def forward(self, x):
        return self.mlp(x), x.sum(dim=1, keepdim=True)


class DictHeads(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.mlp = mlp()

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        # not in the output blocks' order: outputs are matched by name
        return {"total": x.sum(dim=1, keepdim=True), "score": self.mlp(x)}


HEADS = {"single": (mlp, ("score",)), "tuple": (lambda: TupleHeads().eval(), ("score", "total")),
         "dict": (lambda: DictHeads().eval(), ("score", "total"))}


def reference_outputs(net, x):
    with torch.no_grad():
        result = net(x)
    if isinstance(result, dict):
        return {name: value.numpy() for name, value in result.items()}
    if isinstance(result, tuple):
        return dict(zip(("score", "total"), (v.numpy() for v in result)))
    return {"score": result.numpy()}


def make_source(kind, net, tmp_path):
    """The model as ml.Model takes it: a module or the path of a saved file."""
    example = torch.randn(8, 3)
    if kind == "eager":
        return net
    if kind == "script":
        path = tmp_path / "model.ts"
        torch.jit.save(torch.jit.script(net), str(path))
        return path
    if kind == "trace":
        path = tmp_path / "model.pt"
        torch.jit.save(torch.jit.trace(net, example, strict=False), str(path))
        return path
    if kind == "export":
        program = torch.export.export(net, (example,),
                                      dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
        path = tmp_path / "model.pt2"
        torch.export.save(program, str(path))
        return path
    raise AssertionError(kind)


AOTI_EXAMPLE_ROWS = 31
_aoti_packages = {}


def aoti_package(device, tmp_path_factory, heads="tuple"):
    """The ``heads`` model compiled with ml.aot_compile for ``device`` from an
    example of AOTI_EXAMPLE_ROWS rows, once per session."""
    key = (device, heads)
    if key not in _aoti_packages:
        path = tmp_path_factory.mktemp(f"aoti_{device}_{heads}") / "m.pt2"
        start = time.perf_counter()
        ml.aot_compile(HEADS[heads][0](), (torch.randn(AOTI_EXAMPLE_ROWS, 3),), path,
                       device=device, compiler=os.environ.get("CXX"))
        _aoti_packages[key] = (path, time.perf_counter() - start)
        print(f"\naot_compile of {heads} for {device}: {_aoti_packages[key][1]:.1f} s")
        assert_loads_in_another_process(path)
    return _aoti_packages[key][0]


def assert_loads_in_another_process(package):
    """A package that crashes the process when it loads fails this test with
    the cure, instead of killing the whole test run."""
    probe = subprocess.run([sys.executable, "-c", "import sys, torch; "
                            "torch._inductor.aoti_load_package(sys.argv[1])", str(package)],
                           capture_output=True, text=True)
    if probe.returncode < 0:
        pytest.fail(f"the AOTInductor package crashes the process when it loads (signal "
                    f"{-probe.returncode}); build it with another C++ compiler, e.g. "
                    f"CXX=g++-12 (see ml.aot_compile)")
    assert probe.returncode == 0, probe.stderr[-2000:]


def run_and_check(queue, model, net, outputs, n, capacity, seed, allow_refusal=False):
    """Run ``model`` in place on a fresh collection of ``n`` rows and compare each
    output block with ``net`` on a plain contiguous tensor; nothing but the output
    blocks changes. With ``allow_refusal``, a MetadataError (with nothing written)
    also passes: the model may refuse rows it was not compiled for, but never
    give wrong values."""
    host = random_hits(n, capacity, seed)
    dev = host.to(queue)
    queue.synchronize()
    meta = hits_meta(dev, outputs)
    try:
        model(meta)
    except ml.MetadataError:
        if not allow_refusal:
            raise
        np.testing.assert_array_equal(host_copy(queue, dev.buffer), host.buffer)
        return False
    out = to_host(queue, dev)
    expected = reference_outputs(net, reference_input(host))
    for block in outputs:
        got = output_columns(out, block)
        assert got.shape == expected[block].shape, (block, n)
        np.testing.assert_allclose(got, expected[block], rtol=RTOL, atol=ATOL,
                                   err_msg=f"output {block}, n={n}, capacity={capacity}")
    members = [m for block in outputs for m in OUTPUT_MEMBERS[block]]
    assert_only_outputs_written(host, out, members)
    return True


# -- kernels (streams) -----------------------------------------------------------------
@pt.kernel
def fill_inputs(acc, h, scale):
    for i in acc.uniform_elements(h.size):
        h.x[i] = scale * (i % 101) - 1.0
        h.y[i] = 1.0 - scale * (i % 37)
        h.z[i] = scale * (i % 13) * (i % 3)


@pt.kernel
def double_score(acc, h):
    for i in acc.uniform_elements(h.size):
        h.dbl[i] = 2.0 * h.s0[i] + h.s1[i]


def expected_inputs(n, scale):
    i = np.arange(n)
    return np.stack([(scale * (i % 101) - 1.0), 1.0 - scale * (i % 37),
                     scale * (i % 13) * (i % 3)], axis=1).astype(np.float32)


# -- 1. every case of the table: shape, strides, values, zero copy, writes ------------
def pitch(name, capacity):
    return Rich.geometry(capacity)[name].pitch


# block name -> (members, shape, strides, expected values from a host collection)
TABLE = {
    "columns": (("x", "y", "z"), lambda n, c: (n, 3), lambda c: (1, pitch("x", c)),
                lambda h: np.stack([h.column(a) for a in "xyz"], axis=1)),
    "column": (("y",), lambda n, c: (n, 1), lambda c: (1, pitch("y", c)),
               lambda h: h.column("y")[:, None]),
    "double": (("w",), lambda n, c: (n, 1), lambda c: (1, pitch("w", c)),
               lambda h: h.column("w")[:, None]),
    "ints": (("idx",), lambda n, c: (n, 1), lambda c: (1, pitch("idx", c)),
             lambda h: h.column("idx")[:, None]),
    "vectors": (("p", "q"), lambda n, c: (n, 2, 3),
                lambda c: (1, 3 * pitch("p", c), pitch("p", c)),
                lambda h: np.stack([h.column("p"), h.column("q")], axis=1)),
    "vector": (("u",), lambda n, c: (n, 1, 2), lambda c: (1, 2 * pitch("u", c), pitch("u", c)),
               lambda h: h.column("u")[:, None, :]),
    "matrix": (("m",), lambda n, c: (n, 2, 3), lambda c: (1, pitch("m", c), 2 * pitch("m", c)),
               lambda h: h.column("m")),
    "scalar": (("e",), lambda n, c: (n, 1), lambda c: (0, 1),
               lambda h: np.full((h.size, 1), h.column("e"), np.float32)),
}


@every_backend
@pytest.mark.parametrize("case", list(TABLE))
def test_block_tensor_shape_strides_values_and_zero_copy(queue, case):
    needs_torch_device(queue)
    members, shape, strides, values = TABLE[case]
    dtype = Rich.member(members[0]).dtype
    for n in test_sizes(queue, SIZES):
        for capacity in capacities(n):
            host = random_rich(n, capacity, seed=n + capacity)
            dev = host.to(queue)
            queue.synchronize()
            meta = ml.SoAMetadata(dev)
            meta.append_block(case, *members)
            t = meta.tensor(case)
            where = f"{case}, n={n}, capacity={capacity}"
            assert tuple(t.shape) == shape(n, capacity), where
            assert t.stride() == strides(capacity), where
            assert t.dtype == torch.from_numpy(np.empty(0, dtype)).dtype, where
            assert t.device.type == ("cuda" if not queue.backend.host_memory else "cpu"), where
            # zero copy: the tensor starts at the member's offset in the buffer
            offset = Rich.geometry(capacity)[members[0]].offset
            assert tensor_ptr(t) == buffer_ptr(dev) + offset, where
            if t.numel():
                assert t.data_ptr() == buffer_ptr(dev) + offset, where
            np.testing.assert_array_equal(t.cpu().numpy(), values(host), err_msg=where)
            if n == 0:
                continue
            # a write through the tensor lands in the collection
            written = torch.arange(n, dtype=t.dtype, device=t.device) + 3
            if case == "scalar":
                t[0, 0] = 5
            elif t.dim() == 2:
                t[:, -1] = written
            else:
                t[:, -1, 1] = written
            sync_torch(queue)
            out = to_host(queue, dev)
            if case == "scalar":
                assert out.column("e") == 5
                continue
            target = out.column(members[-1])
            if t.dim() == 2:
                got = target                   # the last column
            elif case == "matrix":
                got = target[:, 1, 1]          # row -1 = 1, column 1
            else:
                got = target[:, 1]             # the last vector's component 1
            np.testing.assert_array_equal(got, written.cpu().numpy(), err_msg=where)
            # and nothing else moved
            others = [mm.name for mm in Rich.members() if mm.name != members[-1]]
            for name in others:
                np.testing.assert_array_equal(out.column(name), host.column(name),
                                              err_msg=f"{where}: {name}")


@every_backend
def test_tensors_of_a_batch_are_views_of_its_rows(queue):
    needs_torch_device(queue)
    n, capacity = 1000, 1045
    host = random_rich(n, capacity, seed=3)
    dev = host.to(queue)
    queue.synchronize()
    meta = ml.SoAMetadata(dev)
    meta.append_block("columns", "x", "y", "z")
    meta.append_block("matrix", "m")
    meta.append_block("scalar", "e")
    columns, matrix, scalar = meta.tensors(64, 100)
    assert tuple(columns.shape) == (36, 3) and tuple(matrix.shape) == (36, 2, 3)
    assert tuple(scalar.shape) == (36, 1)
    np.testing.assert_array_equal(columns.cpu().numpy(),
                                  np.stack([host.column(a)[64:100] for a in "xyz"], axis=1))
    np.testing.assert_array_equal(matrix.cpu().numpy(), host.column("m")[64:100])
    np.testing.assert_array_equal(scalar.cpu().numpy(), np.full((36, 1), host.column("e")))
    offset = Rich.geometry(capacity)["x"].offset + 64 * 4
    assert columns.data_ptr() == buffer_ptr(dev) + offset


# -- 2. blocks that cannot form one tensor ---------------------------------------------
# (members, words the message must hold, the fix it must suggest)
UNFIT_BLOCKS = {
    "not adjacent": (("x", "t"), ["x", "t", "not adjacent", "x, y, z, w, t"], r"copy=True"),
    "out of order": (("y", "x"), ["y", "x", "not adjacent"], r"copy=True"),
    "mixed dtypes": (("x", "w"), ["x", "w", "float32", "float64"], r"separate blocks"),
    "column and vector": (("z", "p"), ["z", "p", "column", "vector"], r"declare|separate"),
    "vectors of other sizes": (("p", "u"), ["p", "u"], r"declare|separate"),
    "two matrices": (("m", "k"), ["matrix"], r"one block per matrix"),
    "matrix and a column": (("m", "x"), ["m", "x", "matrix"], r"declare|separate|one block"),
    "vectors and a matrix": (("p", "q", "m"), ["p", "m", "vector", "matrix"],
                             r"declare|separate"),
    "scalar and a column": (("e", "x"), ["e", "x", "scalar"], r"declare|separate|one block"),
}


@every_backend
@pytest.mark.parametrize("case", list(UNFIT_BLOCKS))
def test_blocks_that_cannot_form_one_tensor(queue, case):
    members, words, fix = UNFIT_BLOCKS[case]
    c = pt.PortableCollection(Rich, 31, queue.device, capacity=40, zero=True, queue=queue)
    meta = ml.SoAMetadata(c)
    with pytest.raises(ml.MetadataError) as info:
        meta.append_block("bad", *members)
    message = str(info.value)
    assert "'bad'" in message, message
    for word in words:
        assert word in message, f"{members}: {word!r} not in {message!r}"
    assert re.search(fix, message), f"{members}: the message says no fix ({fix}): {message!r}"
    assert meta.order == [] and meta.blocks == {}      # nothing half-declared


@every_backend
def test_unknown_members_and_blocks_are_errors(queue):
    c = pt.PortableCollection(Rich, 31, queue.device, capacity=40, zero=True, queue=queue)
    meta = ml.SoAMetadata(c)
    with pytest.raises(ml.MetadataError, match=r"no member 'yy'; did you mean y\?"):
        meta.append_block("bad", "x", "yy")
    with pytest.raises(ml.MetadataError, match="names no members"):
        meta.append_block("bad")
    meta.append_block("ok", "x")
    with pytest.raises(ml.MetadataError, match="already declared"):
        meta.append_block("ok", "y")
    with pytest.raises(ml.MetadataError, match=r"no block 'nope'; declared: ok"):
        meta.tensor("nope")
    with pytest.raises(pt.ArgumentError, match="'collection' must be a pt.PortableCollection"):
        ml.SoAMetadata(np.zeros(3))


@every_backend
def test_copy_block_gathers_non_adjacent_columns_with_a_warning(queue):
    needs_torch_device(queue)
    n, capacity = 31, 40
    host = random_rich(n, capacity, seed=11)
    dev = host.to(queue)
    queue.synchronize()
    meta = ml.SoAMetadata(dev)
    with pytest.warns(UserWarning, match="not adjacent.*copy"):
        meta.append_block("xt", "x", "t", copy=True)
    t = meta.tensor("xt")
    assert tuple(t.shape) == (n, 2)
    np.testing.assert_array_equal(t.cpu().numpy(),
                                  np.stack([host.column("x"), host.column("t")], axis=1))
    np.testing.assert_array_equal(meta.tensor("xt", 0, 10).cpu().numpy()[:, 1],
                                  host.column("t")[:10])
    t += 1.0                      # a copy: the collection keeps its values
    sync_torch(queue)
    np.testing.assert_array_equal(to_host(queue, dev).buffer, host.buffer)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        meta.append_block("xyz", "x", "y", "z", copy=True)   # adjacent: no copy, no warning
    assert meta.tensor("xyz").data_ptr() == buffer_ptr(dev) + Rich.offset("x", capacity)


@every_backend
def test_misaligned_or_out_of_range_rows_are_errors(queue):
    needs_torch_device(queue)
    c = pt.PortableCollection(Rich, 100, queue.device, capacity=130, zero=True, queue=queue)
    meta = ml.SoAMetadata(c)
    meta.append_block("columns", "x", "y", "z")
    meta.append_block("double", "w")
    with pytest.raises(pt.PortableError, match="multiple of 32 rows"):
        meta.tensor("columns", start=5)
    with pytest.raises(pt.PortableError, match="multiple of 16 rows"):
        meta.tensor("double", start=8)
    assert tuple(meta.tensor("double", start=16).shape) == (84, 1)
    with pytest.raises(pt.ArgumentError, match=r"'stop' must lie in start..size = 0..100"):
        meta.tensor("columns", 0, 101)
    with pytest.raises(pt.ArgumentError, match=r"'stop' must lie in start..size = 64..100"):
        meta.tensor("columns", 64, 32)


@every_backend
@pytest.mark.parametrize("blocks", [[("x", "y", "z")], [("w",)], [("x",), ("w",), ("idx",)],
                                    [("e",)]])
def test_batches_are_aligned_and_cover_every_row(queue, blocks):
    for n in (0, 1, 31, 100, 1000):
        c = pt.PortableCollection(Rich, n, queue.device, capacity=n + 45)
        meta = ml.SoAMetadata(c)
        for i, members in enumerate(blocks):
            meta.append_block(f"b{i}", *members)
        quantum = max(Rich.alignment // Rich.member(m[0]).dtype.itemsize for m in blocks)
        assert meta.row_quantum() == quantum
        for size in (1, 40, 64, 100, 5000):
            batches = list(meta.batches(size))
            if n == 0:
                assert batches == []
                continue
            assert batches[0][0] == 0 and batches[-1][1] == n
            for (_, stop), (start, _) in zip(batches, batches[1:]):
                assert stop == start                             # contiguous, no overlap
            lengths = [stop - start for start, stop in batches]
            assert all(length == lengths[0] for length in lengths[:-1])
            assert 0 < lengths[-1] <= lengths[0]                 # the last one shorter
            if len(batches) > 1:
                assert lengths[0] % quantum == 0 and size <= lengths[0] < size + quantum
            for start, _ in batches:
                assert start % quantum == 0
                if not is_simulated(queue.backend.name) and (
                        queue.backend.host_memory or torch.cuda.is_available()):
                    for name in meta.order:
                        meta.tensor(name, start)                 # aligned: no error


# -- 3. models of every kind, in place -------------------------------------------------
@every_backend
@pytest.mark.parametrize("heads", list(HEADS))
@pytest.mark.parametrize("kind", ["eager", "script", "trace", "export"])
def test_model_runs_in_place(queue, kind, heads, tmp_path):
    needs_torch_device(queue)
    build, outputs = HEADS[heads]
    net = build()
    model = ml.Model(make_source(kind, build(), tmp_path))
    assert model.kind == {"script": "torchscript", "trace": "torchscript"}.get(kind, kind)
    assert model.to(queue) is model
    for n in test_sizes(queue, SIZES):
        for capacity in capacities(n):
            run_and_check(queue, model, net, outputs, n, capacity, seed=n * 7 + capacity)


@every_backend
def test_exported_program_object_runs_in_place(queue):
    needs_torch_device(queue)
    net = mlp()
    program = torch.export.export(net, (torch.randn(8, 3),),
                                  dynamic_shapes=({0: torch.export.Dim.DYNAMIC},))
    model = ml.Model(program).to(queue)
    assert model.kind == "export"
    for n in (1, 31, 1000):
        run_and_check(queue, model, net, ("score",), n, n + 45, seed=n)


@pytest.mark.slow
@every_backend
def test_aoti_package_runs_in_place(queue, tmp_path_factory):
    needs_torch_device(queue)
    device = "cuda" if not queue.backend.host_memory else "cpu"
    start = time.perf_counter()
    path = aoti_package(device, tmp_path_factory)
    model = ml.Model(path).to(queue)
    assert model.kind == "aoti"
    net = TupleHeads().eval()
    n = AOTI_EXAMPLE_ROWS
    for capacity in capacities(n):          # the example's rows: strided inputs, two outputs
        run_and_check(queue, model, net, ("score", "total"), n, capacity, seed=capacity)
    print(f"\nAOTI test on {queue.backend.name}: {time.perf_counter() - start:.1f} s")


def test_aot_compile_names_a_missing_compiler(tmp_path):
    with pytest.raises(ml.MetadataError, match="compiler='no-such-c\\+\\+': no such C\\+\\+ "
                                               "compiler on PATH"):
        ml.aot_compile(mlp(), (torch.randn(4, 16),), tmp_path / "m.pt2", compiler="no-such-c++")
    assert not (tmp_path / "m.pt2").exists()


@pytest.mark.slow
@every_backend
def test_aoti_package_at_other_row_counts(queue, tmp_path_factory):
    """Rows other than the example's: right values or a clear refusal, never
    wrong values written in place."""
    needs_torch_device(queue)
    device = "cuda" if not queue.backend.host_memory else "cpu"
    model = ml.Model(aoti_package(device, tmp_path_factory, "single")).to(queue)
    for n in (1, 1000):
        run_and_check(queue, model, mlp(), ("score",), n, n + 45, seed=n, allow_refusal=True)


@every_backend
def test_scalar_input_and_block_order(queue):
    """Inputs in any order of blocks (change_order), a scalar block as an input."""
    needs_torch_device(queue)

    class TwoInputs(torch.nn.Module):
        def forward(self, run, features):
            return features[:, :1] * 2 + run.to(features.dtype)

    n, capacity = 31, 76
    host = random_hits(n, capacity, seed=5)
    dev = host.to(queue)
    queue.synchronize()
    inputs, outputs = ml.SoAMetadata(dev), ml.SoAMetadata(dev)
    inputs.append_block("features", *INPUTS)
    inputs.append_block("run", "run")
    inputs.change_order(["run", "features"])
    with pytest.raises(ml.MetadataError, match="every block exactly once"):
        inputs.change_order(["run"])
    outputs.append_block("total", "tot")
    ml.Model(TwoInputs()).to(queue)(ml.ModelMetadata(inputs, outputs))
    out = to_host(queue, dev)
    np.testing.assert_allclose(out.column("tot"), host.column("x") * 2 + 77, rtol=RTOL)
    assert_only_outputs_written(host, out, ["tot"])


@every_backend
def test_copy_output_block_does_not_drop_results(queue):
    """An output block declared with copy=True must not silently lose the model's
    results: it is refused, or the values reach the columns."""
    needs_torch_device(queue)
    n, capacity = 31, 76
    host = random_hits(n, capacity, seed=9)
    dev = host.to(queue)
    queue.synchronize()
    inputs, outputs = ml.SoAMetadata(dev), ml.SoAMetadata(dev)
    inputs.append_block("features", *INPUTS)
    with pytest.warns(UserWarning):
        outputs.append_block("score", "s0", "tot", copy=True)
    net = mlp()
    try:
        ml.Model(net).to(queue)(ml.ModelMetadata(inputs, outputs))
    except ml.MetadataError:
        np.testing.assert_array_equal(to_host(queue, dev).buffer, host.buffer)
        return
    out = to_host(queue, dev)
    expected = reference_outputs(net, reference_input(host))["score"]
    got = np.stack([out.column("s0"), out.column("tot")], axis=1)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL,
                               err_msg="the model's results were written into a copy and lost")


# -- 4. deployment ---------------------------------------------------------------------
@every_backend
def test_model_deploys_lazily_once_per_device(queue):
    needs_torch_device(queue)
    net = mlp()
    model = ml.Model(mlp())
    assert model.queue is None
    assert model.to(queue) is model and model.queue is queue
    assert model._deployed == {}                      # lazy: nothing moved yet
    run_and_check(queue, model, net, ("score",), 31, 40, seed=1)
    assert len(model._deployed) == 1
    (device, deployed), = model._deployed.items()
    expected = torch.device("cuda", queue.device.index) if not queue.backend.host_memory else \
        torch.device("cpu")
    assert device == expected
    assert all(p.device == expected for p in deployed.parameters())
    run_and_check(queue, model, net, ("score",), 1000, 1045, seed=2)
    assert len(model._deployed) == 1 and model._deployed[device] is deployed   # once


@every_backend
def test_model_moves_between_host_and_gpu(queue):
    """One model used on the host and on a GPU, alternately: each device keeps its
    own deployed copy."""
    needs_real_gpu(queue)
    net = mlp()
    model = ml.Model(mlp())
    host_queue = pt.Queue(HOST)
    for q in (queue, host_queue, queue, host_queue):
        model.to(q)
        run_and_check(q, model, net, ("score",), 1000, 1045, seed=4)
    cuda = torch.device("cuda", queue.device.index)
    assert all(p.device == cuda for p in model._deployed[cuda].parameters())
    assert all(p.device.type == "cpu" for p in model._deployed[torch.device("cpu")].parameters())


@every_backend
def test_no_deploy_refuses_another_device(queue):
    needs_real_gpu(queue)
    dev = random_hits(31, 40, seed=1).to(queue)
    queue.synchronize()
    before = host_copy(queue, dev.buffer)
    model = ml.Model(mlp(), deploy=False).to(queue)
    with pytest.raises(ml.MetadataError, match="deploy=False"):
        model(hits_meta(dev))
    np.testing.assert_array_equal(host_copy(queue, dev.buffer), before)


# -- 5. bad inputs: a clear error, the collection untouched ----------------------------
class WideOut(torch.nn.Module):
    def forward(self, x):
        return torch.cat([x, x], dim=1)           # (N, 6) for a 2-column block


class TupleOfOne(torch.nn.Module):
    def forward(self, x):
        return (x[:, :2],)


class TupleOfThree(torch.nn.Module):
    def forward(self, x):
        return x[:, :2], x[:, :1], x[:, :1]


class DictWithoutTotal(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        return {"score": x[:, :2], "totl": x[:, :1]}


class SecondDoesNotFit(torch.nn.Module):
    def forward(self, x):
        return x[:, :2] + 1, x[:, :2]             # score fits, total does not


def float64_mlp():
    return mlp().double()


BAD_MODELS = {
    "input width": (lambda: torch.nn.Linear(4, 2), ("score",), r"features \(\d+, 3\)"),
    "input dtype": (float64_mlp, ("score",), "float32"),
    "output shape": (WideOut, ("score",), r"output 'score'.*\(\d+, 6\).*\(\d+, 2\)"),
    "tuple too short": (TupleOfOne, ("score", "total"), "1 output.*2 output block"),
    "tuple too long": (TupleOfThree, ("score", "total"), "3 output.*2 output block"),
    "dict without a block": (DictWithoutTotal, ("score", "total"), r"missing.*'total'"),
    "second output does not fit": (SecondDoesNotFit, ("score", "total"), "output 'total'"),
}


@every_backend
@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_bad_model_is_a_clear_error_and_writes_nothing(queue, case):
    needs_torch_device(queue)
    build, outputs, match = BAD_MODELS[case]
    model = ml.Model(build()).to(queue)
    for n, capacity in ((31, 76), (1000, 1000)):
        dev = random_hits(n, capacity, seed=n).to(queue)
        queue.synchronize()
        before = host_copy(queue, dev.buffer)
        with pytest.raises(ml.MetadataError, match=match):
            model(hits_meta(dev, outputs))
        np.testing.assert_array_equal(host_copy(queue, dev.buffer), before, err_msg=case)


@every_backend
def test_float_output_into_int_block_is_an_error(queue):
    needs_torch_device(queue)
    dev = random_hits(31, 40, seed=1).to(queue)
    queue.synchronize()
    before = host_copy(queue, dev.buffer)
    inputs, outputs = ml.SoAMetadata(dev), ml.SoAMetadata(dev)
    inputs.append_block("features", *INPUTS)
    outputs.append_block("lab", "lab")
    model = ml.Model(torch.nn.Linear(3, 1)).to(queue)
    with pytest.raises(ml.MetadataError, match=r"output 'lab'.*float32.*int32"):
        model(ml.ModelMetadata(inputs, outputs))
    np.testing.assert_array_equal(host_copy(queue, dev.buffer), before)


@every_backend
def test_missing_column_and_missing_queue_are_errors(queue):
    needs_torch_device(queue)
    dev = random_hits(31, 40, seed=1).to(queue)
    queue.synchronize()
    before = host_copy(queue, dev.buffer)
    outputs = ml.SoAMetadata(dev)
    with pytest.raises(ml.MetadataError,
                       match=r"Hits has no member 'tott'; did you mean tot\?"):
        outputs.append_block("score", "tott")
    with pytest.raises(ml.MetadataError, match=r"model\.to\(queue\)"):
        ml.Model(mlp())(hits_meta(dev))
    with pytest.raises(ml.MetadataError, match="no model file"):
        ml.Model("/nonexistent/model.pt2")
    np.testing.assert_array_equal(host_copy(queue, dev.buffer), before)


# -- 6. one non-blocking queue for kernels and the model -----------------------------
@every_backend
def test_kernels_and_model_share_one_queue(queue):
    """Kernel, model, kernel on one non-blocking queue, one synchronize at the end:
    a CUDA stream on a GPU, the queue's worker thread on the CPU."""
    needs_torch_device(queue)
    q = pt.Queue(queue.device, blocking=False)
    n, scale = (2**20 + 3 if not queue.backend.host_memory else 100_003), 0.01
    dev = pt.PortableCollection(Hits, n, q.device, capacity=n + 45, zero=True, queue=q)
    model = ml.Model(mlp()).to(q)
    meta = hits_meta(dev)
    workdiv = pt.make_workdiv(q.device, n)
    pt.launch(q, workdiv, fill_inputs, dev.view(), scale)
    model(meta)
    pt.launch(q, workdiv, double_score, dev.view())
    q.synchronize()
    out = to_host(q, dev)
    x = expected_inputs(n, scale)
    np.testing.assert_allclose(np.stack([out.column(a) for a in INPUTS], axis=1), x,
                               rtol=1e-6, atol=1e-6)  # the GPU's sin/cos differ in the last bits
    with torch.no_grad():
        score = mlp()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(output_columns(out, "score"), score, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out.column("dbl"), 2 * score[:, 0] + score[:, 1],
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("backend", ["cpu_serial", "cpu_threads"])
@pytest.mark.parametrize("then_more_work", [False, True])
def test_model_error_on_a_non_blocking_cpu_queue_reaches_synchronize(backend,
                                                                      then_more_work):
    """On a non-blocking CPU queue the model runs on the worker: its error must
    reach the host at the next synchronize, also when more work follows it."""
    q = pt.Queue(pt.get_device(backend), blocking=False)
    dev = random_hits(31, 40, seed=1).to(q)
    q.synchronize()
    before = dev.buffer.copy()
    ml.Model(torch.nn.Linear(4, 2)).to(q)(hits_meta(dev))
    if then_more_work:
        pt.memset(q, pt.alloc_buffer(q.device, 8, np.uint8), 0)
    with pytest.raises(ml.MetadataError, match=r"features \(31, 3\)"):
        q.synchronize()
    np.testing.assert_array_equal(dev.buffer, before)


# -- 7. threads ------------------------------------------------------------------------
def test_set_threads_limits_torch():
    before = torch.get_num_threads()
    try:
        ml.set_threads(1, 1)
        assert torch.get_num_threads() == 1
        ml.set_threads(2)          # inter-op threads cannot change any more: no error
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


# -- 8. batches ------------------------------------------------------------------------
class Mixed(pt.Layout):
    """Inputs with 8-byte items, outputs with 2-byte items: different row multiples."""
    a = pt.column(np.float64)
    b = pt.column(np.float64)
    out = pt.column(np.float16)


@every_backend
def test_model_batches_align_inputs_and_outputs(queue):
    needs_torch_device(queue)
    n = 1000
    c = pt.PortableCollection(Mixed, n, queue.device, capacity=n + 45)
    host = pt.PortableCollection(Mixed, n, pt.get_device("cpu_serial"), capacity=n + 45)
    rng = np.random.default_rng(9)
    host.column("a")[:] = rng.standard_normal(n)
    host.column("b")[:] = rng.standard_normal(n)
    host.column("out")[:] = np.float16(np.nan)                     # poisoned
    c.copy_from(queue, host)
    inputs, outputs = ml.SoAMetadata(c), ml.SoAMetadata(c)
    inputs.append_block("ab", "a", "b")
    outputs.append_block("out", "out")
    meta = ml.ModelMetadata(inputs, outputs)
    quantum = Mixed.alignment // 2                                   # the float16 block's
    assert inputs.row_quantum() < quantum == outputs.row_quantum()
    batches = list(meta.batches(10))
    assert batches[0] == (0, quantum) and batches[-1][1] == n
    assert all(start % quantum == 0 for start, _ in batches)
    misaligned = [start for start, _ in inputs.batches(10) if start % quantum]
    with pytest.raises(pt.PortableError, match="multiple of"):      # inputs' batches alone
        meta.outputs.tensor("out", misaligned[0])
    class Difference(torch.nn.Module):
        def forward(self, ab):
            return (ab[:, :1] - ab[:, 1:]).half()

    model = ml.Model(Difference()).to(queue)
    for start, stop in batches:
        model(meta, start, stop)
    out = to_host(queue, c)
    np.testing.assert_allclose(out.column("out"), (host.column("a") - host.column("b"))
                               .astype(np.float16), rtol=1e-3)
    with pytest.raises(pt.ArgumentError, match="'batch_size' must be an integer >= 1, got 0"):
        list(meta.batches(0))
    other = ml.SoAMetadata(pt.PortableCollection(Mixed, n - 1, queue.device))
    other.append_block("out", "out")
    with pytest.raises(ml.MetadataError, match="1000 rows and the outputs 999"):
        ml.ModelMetadata(inputs, other).batches(64)


@every_backend
@pytest.mark.parametrize("heads", ["single", "dict"])
def test_batched_runs_equal_one_full_run(queue, heads):
    needs_torch_device(queue)
    build, outputs = HEADS[heads]
    model = ml.Model(build()).to(queue)
    n, capacity = 1000, 1045
    host = random_hits(n, capacity, seed=8)
    full = host.to(queue)
    model(hits_meta(full, outputs))
    full_out = to_host(queue, full)
    for size in (1, 40, 100, 500):
        dev = host.to(queue)
        meta = hits_meta(dev, outputs)
        batches = list(meta.batches(size))
        assert len(batches) > 1
        for start, stop in batches:
            model(meta, start, stop)
        out = to_host(queue, dev)
        for block in outputs:
            np.testing.assert_allclose(output_columns(out, block),
                                       output_columns(full_out, block), rtol=RTOL, atol=ATOL,
                                       err_msg=f"batches of {size}")
    # a misaligned batch is refused and writes nothing
    dev = host.to(queue)
    before = host_copy(queue, dev.buffer)
    with pytest.raises(pt.PortableError, match="multiple of"):
        model(hits_meta(dev, outputs), 5, 100)
    np.testing.assert_array_equal(host_copy(queue, dev.buffer), before)


# -- one model, many queues ------------------------------------------------------------
class Doubler(torch.nn.Module):
    def forward(self, x):
        return 2.0 * x[:, :1]


@every_backend
def test_one_model_serves_many_queues_from_many_threads_deployed_once(queue):
    import threading
    needs_torch_device(queue)
    model = ml.Model(Doubler())
    n, slots = 300, 6
    failures = []

    def event(seed):
        q = pt.Queue(queue.device, blocking=False)
        rng = np.random.default_rng(seed)
        host = pt.PortableCollection(Hits, n, HOST, zero=True)
        host.column("x")[:] = rng.random(n, dtype=np.float32)
        host.column("tot")[:] = np.nan  # poisoned: a row the model misses shows
        hits = host.to(q)
        inputs, outputs = ml.SoAMetadata(hits), ml.SoAMetadata(hits)
        inputs.append_block("x", "x")
        outputs.append_block("tot", "tot")
        for _ in range(3):
            model(ml.ModelMetadata(inputs, outputs), queue=q)
        q.synchronize()
        got = to_host(q, hits).column("tot")
        if not np.array_equal(got, 2.0 * host.column("x")):
            failures.append(seed)

    threads = [threading.Thread(target=event, args=(seed,)) for seed in range(slots)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    assert model.deployments == 1
    assert model.queue is None  # no default queue was needed


def test_set_threads_holds_in_the_threads_that_run_models(monkeypatch):
    """torch keeps its intra-op thread count per thread (an OpenMP setting): a count
    set in the main thread leaves a worker thread's matmuls on every core. Each
    thread that runs a model must set it itself."""
    import threading
    ml.set_threads(1, 1)
    calls = []
    real = torch.set_num_threads
    monkeypatch.setattr(torch, "set_num_threads",
                        lambda n: (calls.append((threading.get_ident(), n)), real(n)))
    collection = pt.PortableCollection(Hits, 8, HOST, zero=True)
    inputs, outputs = ml.SoAMetadata(collection), ml.SoAMetadata(collection)
    inputs.append_block("x", "x")
    outputs.append_block("tot", "tot")
    model = ml.Model(Doubler())
    workers = []

    def work():
        workers.append(threading.get_ident())
        queue = pt.Queue(HOST)
        for _ in range(3):
            model(ml.ModelMetadata(inputs, outputs), queue=queue)

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert calls == [(workers[0], 1)]  # once in the worker, not again on later calls
