"""PortableCollections on every backend: byte-exact copies, kernels that fill
and read every kind of member through views, zero-copy columns, adopted
buffers, multi-collections, files, and the errors of each."""
import numpy as np
import pytest

import portable as pt
from portable.layout import block_offsets, numpy_views
from portable.testing import every_backend, host_copy, is_simulated, test_sizes

from collection_helpers import HOST, aligned_buffer, capacities, to_host

SIZES = (0, 1, 31, 1000)


# -- layouts ---------------------------------------------------------------------------
class Every(pt.Layout):
    """Every member kind, the item types kernels can use on every backend."""
    flag = pt.column(np.bool_)
    i8 = pt.column(np.int8)
    u16 = pt.column(np.uint16)
    i32 = pt.column(np.int32)
    i64 = pt.column(np.int64)
    f32 = pt.column(np.float32)
    f64 = pt.column(np.float64)
    mom = pt.vector(np.float64, 3)
    cov = pt.matrix(np.float32, 2, 3)
    event = pt.scalar(np.int64)
    weight = pt.scalar(np.float32)
    tag = pt.scalar(np.int8)


class Mixed(pt.Layout):
    """For byte-level tests: also float16 and complex members, another alignment."""
    flag = pt.column(np.bool_)
    half = pt.column(np.float16)
    z = pt.column(np.complex128)
    u64 = pt.column(np.uint64)
    p = pt.vector(np.int16, 2)
    m = pt.matrix(np.float64, 3, 2)
    s = pt.scalar(np.uint32)
    alignment = 64


class Derived(pt.Layout):
    total = pt.column(np.float64)
    trace = pt.column(np.float32)
    code = pt.column(np.int64)
    event = pt.scalar(np.int64)
    alignment = 64


class Small(pt.Layout):
    x = pt.column(np.float32)
    idx = pt.column(np.int32)
    count = pt.scalar(np.int64)


class Wide(pt.Layout):
    e = pt.column(np.float64)
    tot = pt.scalar(np.float64)
    alignment = 256


# -- helpers ---------------------------------------------------------------------------



def poisoned(queue, layout, size, capacity=None):
    c = pt.PortableCollection(layout, size, queue.device, capacity=capacity)
    pt.memset(queue, c.buffer, 0xFF)
    return c


def occupied(layout, size, capacity):
    """A mask of the bytes that hold element values (or a scalar's item)."""
    mask = np.zeros(layout.byte_size(capacity), bool)
    for g in layout.geometry(capacity).values():
        if g.kind == "scalar":
            mask[g.offset:g.offset + g.itemsize] = True
            continue
        for col in range(g.cols):
            for row in range(g.rows):
                start = g.component_offset(row, col)
                mask[start:start + size * g.itemsize] = True
    return mask


def random_bytes(layout, capacity, seed):
    """Random bytes for a buffer, with only 0/1 in the bool members."""
    rng = np.random.default_rng(seed)
    raw = rng.integers(0, 256, layout.byte_size(capacity), dtype=np.uint8)
    for g in layout.geometry(capacity).values():
        if g.dtype == np.bool_:
            raw[g.offset:g.end] &= 1
    return raw


def wd(queue, n):
    return pt.make_workdiv(queue.device, n)


def cuda_available():
    return any(b.name == "cuda" for b in pt.available_backends())


# -- kernels ---------------------------------------------------------------------------
@pt.kernel
def fill_every(acc, c, scale):
    for i in acc.uniform_elements(c.size):
        c.flag[i] = i % 3 == 0
        c.i8[i] = i % 256 - 128
        c.u16[i] = (i * 77) % 65536
        c.i32[i] = i * 3 - 1000
        c.i64[i] = i * 1000000007
        c.f32[i] = scale * i
        c.f64[i] = scale * i + 0.25
        for r in range(3):
            c.mom[i, r] = i + 0.5 * r
        for r in range(2):
            for k in range(3):
                c.cov[i, r, k] = 10 * i + 3 * r + k
    if acc.once_per_grid():
        c.event = 42
        c.weight = 1.5
        c.tag = -7


def expected_every(n, scale):
    i = np.arange(n)
    mom = i[:, None] + 0.5 * np.arange(3)[None, :]
    cov = 10 * i[:, None, None] + 3 * np.arange(2)[None, :, None] + np.arange(3)[None, None, :]
    return {
        "flag": i % 3 == 0, "i8": (i % 256 - 128).astype(np.int8),
        "u16": ((i * 77) % 65536).astype(np.uint16), "i32": (i * 3 - 1000).astype(np.int32),
        "i64": i * 1000000007, "f32": (scale * i).astype(np.float32),
        "f64": scale * i + 0.25, "mom": mom, "cov": cov.astype(np.float32),
        "event": np.int64(42), "weight": np.float32(1.5), "tag": np.int8(-7),
    }


@pt.kernel
def derive(acc, src, dst):
    for i in acc.uniform_elements(src.size):
        dst.total[i] = src.f64[i] + src.mom[i, 0] + src.mom[i, 1] + src.mom[i, 2]
        dst.trace[i] = src.cov[i, 0, 0] + src.cov[i, 1, 1] + src.cov[i, 0, 2]
        code = src.i32[i] + src.i8[i] + src.u16[i]
        if src.flag[i]:
            code += src.i64[i]
        dst.code[i] = code
    if acc.once_per_grid():
        dst.event = src.event + src.tag


@pt.kernel
def fill_small(acc, c, base):
    for i in acc.uniform_elements(c.size):
        c.x[i] = base + i
        c.idx[i] = i
    if acc.once_per_grid():
        c.count = c.size


@pt.kernel
def fill_wide(acc, c, step):
    for i in acc.uniform_elements(c.size):
        c.e[i] = step * i
    if acc.once_per_grid():
        c.tot = step * c.size


@pt.kernel
def write_const_element(acc, c):
    for i in acc.uniform_elements(c.size):
        c.x[i] = 1.0


@pt.kernel
def write_const_scalar(acc, c):
    if acc.once_per_grid():
        c.count = 3


@pt.kernel
def update_const_element(acc, c):
    for i in acc.uniform_elements(c.size):
        c.idx[i] += 1


@pt.kernel
def unknown_member(acc, c):
    for i in acc.uniform_elements(c.size):
        c.xx[i] = 1.0


@pt.device_function
def first_x(c):
    return c.x[0]


@pt.kernel
def whole_view_to_device_function(acc, c, out):
    if acc.once_per_grid():
        out[0] = first_x(c)


@pt.kernel
def assigns_size(acc, c):
    if acc.once_per_grid():
        c.size = 3


@pt.kernel
def assigns_array(acc, c):
    if acc.once_per_grid():
        c.x = 3.0


# -- 1. byte-exact round trips ---------------------------------------------------------
@every_backend
@pytest.mark.parametrize("layout", [Mixed, Every])
def test_round_trip_preserves_every_byte(queue, layout):
    for n in SIZES:
        for capacity in capacities(n):
            raw = random_bytes(layout, capacity, seed=n + capacity)
            host = pt.PortableCollection(layout, n, HOST, capacity=capacity)
            host.buffer[:] = raw
            dev = host.to(queue, queue.device)
            again = dev.to(queue)                     # device to device
            back = again.to(queue, HOST)
            queue.synchronize()
            assert dev.device is queue.device and back.device is HOST
            for c in (dev, again, back):
                assert (c.layout, c.size, c.capacity, c.nbytes) == \
                    (layout, n, capacity, layout.byte_size(capacity))
            assert back.buffer.dtype == np.uint8 and back.buffer.shape == raw.shape
            np.testing.assert_array_equal(back.buffer, raw)
            np.testing.assert_array_equal(host.buffer, raw)   # the source is untouched
            if queue.backend.host_memory:
                assert not np.shares_memory(dev.buffer, host.buffer)
                assert not np.shares_memory(again.buffer, dev.buffer)


@every_backend
def test_zeroed_collection_is_all_zero(queue):
    for n in (0, 31):
        c = pt.PortableCollection(Mixed, n, queue.device, capacity=n + 3, zero=True, queue=queue)
        assert not host_copy(queue, c.buffer).any()


def test_host_values_round_trip_through_columns():
    n = 31
    c = pt.PortableCollection(Mixed, n, HOST, capacity=40, zero=True)
    rng = np.random.default_rng(5)
    values = {"flag": rng.integers(0, 2, n).astype(bool),
              "half": rng.standard_normal(n).astype(np.float16),
              "z": rng.standard_normal(n) + 1j * rng.standard_normal(n),
              "u64": rng.integers(0, 2**63, n, dtype=np.uint64),
              "p": rng.integers(-2**15, 2**15, (n, 2)).astype(np.int16),
              "m": rng.standard_normal((n, 3, 2)), "s": np.uint32(4000000000)}
    for name, value in values.items():
        c.column(name)[...] = value
    back = c.to(pt.Queue(HOST), HOST)
    for name, value in values.items():
        np.testing.assert_array_equal(back.column(name), value)
    # the bytes are where the layout says: Eigen's column-major sub-columns
    g = Mixed.geometry(40)["m"]
    for row in range(3):
        for col in range(2):
            start = g.component_offset(row, col)
            sub = c.buffer[start:start + n * 8].view(np.float64)
            np.testing.assert_array_equal(sub, values["m"][:, row, col])


# -- 2. a kernel writes every member, and nothing else ---------------------------------
@every_backend
def test_kernel_fills_every_member_and_no_padding(queue):
    scale = 2.0
    for n in test_sizes(queue, SIZES):
        for capacity in capacities(n):
            c = poisoned(queue, Every, n, capacity)
            pt.launch(queue, wd(queue, n), fill_every, c.view(), scale)
            host = to_host(queue, c)
            expected = expected_every(n, scale)
            for member in Every.members():
                got = host.column(member.name)
                want = expected[member.name]
                assert got.dtype == member.dtype, member.name
                assert got.shape == np.shape(want), member.name
                np.testing.assert_array_equal(got, want, err_msg=f"{member.name}, n={n}")
            untouched = host.buffer[~occupied(Every, n, capacity)]
            assert untouched.size > 0 and (untouched == 0xFF).all(), \
                f"padding written (n={n}, capacity={capacity})"


# -- 3. read a const view, write another collection ------------------------------------
def random_every(n, capacity, seed):
    rng = np.random.default_rng(seed)
    host = pt.PortableCollection(Every, n, HOST, capacity=capacity, zero=True)
    host.column("flag")[:] = rng.integers(0, 2, n).astype(bool)
    for name, dtype in (("i8", np.int8), ("u16", np.uint16), ("i32", np.int32),
                        ("i64", np.int64)):
        info = np.iinfo(dtype)
        host.column(name)[:] = rng.integers(max(info.min, -2**40), min(info.max, 2**40), n,
                                            dtype=dtype)
    host.column("f32")[:] = rng.standard_normal(n)
    host.column("f64")[:] = rng.standard_normal(n)
    host.column("mom")[...] = rng.standard_normal((n, 3))
    host.column("cov")[...] = rng.standard_normal((n, 2, 3))
    host.column("event")[...] = 1234
    host.column("tag")[...] = -34
    return host


@every_backend
def test_kernel_reads_const_view_into_another_collection(queue):
    for n in test_sizes(queue, SIZES):
        for capacity in capacities(n):
            host = random_every(n, capacity, seed=n)
            src = host.to(queue)
            dst = poisoned(queue, Derived, n, capacity + 7)
            before = host_copy(queue, src.buffer)
            pt.launch(queue, wd(queue, n), derive, src.const_view(), dst.view())
            out = to_host(queue, dst)
            v = {m.name: host.column(m.name) for m in Every.members()}
            mom, cov = v["mom"], v["cov"]
            total = v["f64"] + mom[:, 0] + mom[:, 1] + mom[:, 2]
            trace = cov[:, 0, 0] + cov[:, 1, 1] + cov[:, 0, 2]
            code = (v["i32"].astype(np.int64) + v["i8"] + v["u16"]
                    + np.where(v["flag"], v["i64"], 0))
            np.testing.assert_allclose(out.column("total"), total, rtol=1e-15)
            np.testing.assert_allclose(out.column("trace"), trace, rtol=1e-6)
            np.testing.assert_array_equal(out.column("code"), code)
            assert int(out.column("event")) == 1234 - 34
            np.testing.assert_array_equal(host_copy(queue, src.buffer), before)
            untouched = out.buffer[~occupied(Derived, n, capacity + 7)]
            assert (untouched == 0xFF).all()


def test_const_view_is_read_only_on_the_host():
    c = pt.PortableCollection(Small, 4, HOST, zero=True)
    view, const = c.view(), c.const_view()
    assert (view.readonly, const.readonly) == (False, True)
    assert (const.size, const.capacity, const.layout) == (4, 4, Small)
    buffer, size, capacity = const.kernel_args()
    assert not buffer.flags.writeable and np.shares_memory(buffer, c.buffer)
    assert (size, capacity) == (4, 4)
    assert view.kernel_args()[0] is c.buffer and c.buffer.flags.writeable
    assert "read-only" in repr(const) and "read-write" in repr(view)


# -- 4. columns are arrays sharing the collection's memory -----------------------------
@every_backend
def test_columns_share_memory_with_the_buffer(queue):
    n, capacity = 31, 40
    c = pt.PortableCollection(Every, n, queue.device, capacity=capacity, zero=True, queue=queue)
    geometry = Every.geometry(capacity)
    if queue.backend.host_memory:
        base = c.buffer.ctypes.data
        for member in Every.members():
            col = c.column(member.name)
            assert isinstance(col, np.ndarray) and np.shares_memory(col, c.buffer)
            assert col.__array_interface__["data"][0] == base + geometry[member.name].offset
        c.column("f32")[:] = np.arange(n)
        c.column("mom")[:, 2] = -np.arange(n)
        c.column("event")[()] = 99
        view = c.view()
        assert view.f32 is not None and np.shares_memory(view.f32, c.buffer)
        g = geometry["f32"]
        np.testing.assert_array_equal(c.buffer[g.offset:g.offset + 4 * n].view(np.float32),
                                      np.arange(n))
        start = geometry["mom"].component_offset(2)
        np.testing.assert_array_equal(c.buffer[start:start + 8 * n].view(np.float64),
                                      -np.arange(n))
        g = geometry["event"]
        assert c.buffer[g.offset:g.offset + 8].view(np.int64)[0] == 99
        return
    if is_simulated(queue.backend.name):
        pytest.skip("the simulator's arrays are host arrays: no device pointers to compare")
    base = c.buffer.__cuda_array_interface__["data"][0]
    for member in Every.members():
        col = c.column(member.name)
        iface = col.__cuda_array_interface__
        assert iface["data"][0] == base + geometry[member.name].offset, member.name
    cov = c.column("cov").__cuda_array_interface__
    g = geometry["cov"]
    assert cov["shape"] == (n, 2, 3) and cov["strides"] == (4, g.pitch_bytes, 2 * g.pitch_bytes)


def test_columns_share_memory_with_torch_on_the_cpu():
    torch = pytest.importorskip("torch")
    c = pt.PortableCollection(Small, 10, HOST, zero=True)
    t = torch.as_tensor(c.column("x"))
    assert t.data_ptr() == c.buffer.ctypes.data + Small.offset("x", 10)
    t += 2.5
    np.testing.assert_array_equal(c.column("x"), np.full(10, 2.5, np.float32))


@every_backend
def test_columns_share_memory_with_torch_on_the_gpu(queue):
    if queue.backend.host_memory or is_simulated(queue.backend.name):
        pytest.skip("needs a real GPU")
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")
    n = 100
    c = pt.PortableCollection(Small, n, queue.device, capacity=130, zero=True, queue=queue)
    col = c.column("x")
    t = torch.as_tensor(col, device="cuda")
    assert t.data_ptr() == col.__cuda_array_interface__["data"][0]
    assert t.data_ptr() == (c.buffer.__cuda_array_interface__["data"][0]
                            + Small.offset("x", 130))
    t += 3.0
    torch.cuda.synchronize()
    np.testing.assert_array_equal(to_host(queue, c).column("x"), np.full(n, 3.0, np.float32))


# -- 5. collections around an existing buffer ------------------------------------------
@every_backend
def test_collection_adopts_an_existing_buffer(queue):
    n, capacity = 31, 33
    need = Small.byte_size(capacity)
    raw = aligned_buffer(queue.device, need + 100, Small.alignment)
    pt.memset(queue, raw, 0xFF)
    c = pt.PortableCollection(Small, n, queue.device, capacity=capacity, buffer=raw)
    assert c.nbytes == need and c.buffer.shape == (need,)
    if queue.backend.host_memory:
        assert np.shares_memory(c.buffer, raw) and c.buffer.ctypes.data == raw.ctypes.data
    pt.launch(queue, wd(queue, n), fill_small, c.view(), 0.5)
    got = host_copy(queue, raw)          # read back through the original buffer
    v = numpy_views(Small, got, capacity)
    np.testing.assert_array_equal(v["x"][:n], 0.5 + np.arange(n, dtype=np.float32))
    np.testing.assert_array_equal(v["idx"][:n], np.arange(n))
    assert int(v["count"]) == n
    assert (got[need:] == 0xFF).all()       # nothing past the collection's bytes
    assert (got[:need][~occupied(Small, n, capacity)] == 0xFF).all()


@every_backend
def test_adopted_buffer_errors(queue):
    need = Small.byte_size(10)
    small = pt.alloc_buffer(queue.device, need - 1, np.uint8)
    pt.memset(queue, small, 0xAB)
    with pytest.raises(pt.PortableError, match=f"has {need - 1} bytes but Small needs {need}"):
        pt.PortableCollection(Small, 10, queue.device, buffer=small)
    assert (host_copy(queue, small) == 0xAB).all()
    floats = pt.alloc_buffer(queue.device, need, np.float32)
    with pytest.raises(pt.PortableError, match="1-D uint8 array, got float32"):
        pt.PortableCollection(Small, 10, queue.device, buffer=floats)
    square = pt.alloc_buffer(queue.device, (need, 2), np.uint8)
    with pytest.raises(pt.PortableError, match=r"1-D uint8 array, got uint8 of shape"):
        pt.PortableCollection(Small, 10, queue.device, buffer=square)
    if not queue.backend.host_memory:
        with pytest.raises(pt.PortableError, match="does not live on"):
            pt.PortableCollection(Small, 10, queue.device, buffer=np.zeros(need, np.uint8))
    with pytest.raises(pt.PortableError, match="does not live on"):
        pt.PortableCollection(Small, 10, queue.device, buffer=[0] * need)


# -- 6. several layouts in one buffer --------------------------------------------------
@every_backend
def test_multicollection_blocks(queue):
    sizes = [n for n in test_sizes(queue, (31, 7, 1000, 0))]
    pairs = [(Small, sizes[0]), (Wide, sizes[1]), (Small, sizes[2]), (Wide, sizes[3])]
    placed = block_offsets(pairs)
    m = pt.MultiCollection(pairs, queue.device)
    assert len(m) == 4 and m.nbytes == placed.total
    assert placed.offsets[1] % Wide.alignment == 0 and placed.offsets[2] % Small.alignment == 0
    if queue.backend.host_memory:  # the buffer starts on the largest alignment (GPUs: 256 B)
        assert m.buffer.ctypes.data % max(Small.alignment, Wide.alignment) == 0
    pt.memset(queue, m.buffer, 0xFF)
    for k, ((layout, n), block) in enumerate(zip(pairs, m.blocks)):
        assert m[k] is block and (block.layout, block.size, block.capacity) == (layout, n, n)
        assert block.nbytes == layout.byte_size(n) and block.device is queue.device
        if queue.backend.host_memory:
            assert block.buffer.ctypes.data == m.buffer.ctypes.data + placed.offsets[k]
            assert np.shares_memory(block.buffer, m.buffer)
        if layout is Small:
            pt.launch(queue, wd(queue, n), fill_small, block.view(), 100.0 * k)
        else:
            pt.launch(queue, wd(queue, n), fill_wide, block.view(), 0.5 + k)
    got = host_copy(queue, m.buffer)
    written = np.zeros(m.nbytes, bool)
    for k, (layout, n) in enumerate(pairs):
        start = placed.offsets[k]
        v = numpy_views(layout, got[start:], n)
        if layout is Small:
            np.testing.assert_array_equal(v["x"], 100.0 * k + np.arange(n, dtype=np.float32))
            np.testing.assert_array_equal(v["idx"], np.arange(n))
            assert int(v["count"]) == n
        else:
            np.testing.assert_array_equal(v["e"], (0.5 + k) * np.arange(n))
            assert float(v["tot"]) == (0.5 + k) * n
        written[start:start + layout.byte_size(n)] = occupied(layout, n, n)
    assert (got[~written] == 0xFF).all()


def test_multicollection_zero_and_errors():
    q = pt.Queue(HOST)
    m = pt.MultiCollection([(Small, 3), (Wide, 5)], HOST, zero=True, queue=q)
    assert not m.buffer.any() and m[1].column("e").tolist() == [0.0] * 5
    with pytest.raises(pt.ArgumentError, match="'blocks' is empty"):
        pt.MultiCollection([], HOST)
    with pytest.raises(pt.ArgumentError, match=r"'blocks\[0\]\[1\]' must be an integer >= 0"):
        pt.MultiCollection([(Small, -1)], HOST)
    with pytest.raises(pt.ArgumentError, match=r"'blocks\[0\]\[0\]' must be a Layout class"):
        pt.MultiCollection([(np.float32, 3)], HOST)


# -- 7. files ---------------------------------------------------------------------------
def test_save_load_round_trip(tmp_path):
    for layout in (Mixed, Every):
        for n, capacity in ((0, 0), (31, 31), (31, 77)):
            c = pt.PortableCollection(layout, n, HOST, capacity=capacity)
            c.buffer[:] = random_bytes(layout, capacity, seed=capacity)
            path = tmp_path / f"{layout.__name__}-{n}-{capacity}.npz"
            c.save(path)
            back = pt.PortableCollection.load(path, layout)
            assert (back.layout, back.size, back.capacity, back.device) == \
                (layout, n, capacity, HOST)
            np.testing.assert_array_equal(back.buffer, c.buffer)
            assert not np.shares_memory(back.buffer, c.buffer)


def test_load_checks_the_layout(tmp_path):
    c = pt.PortableCollection(Small, 5, HOST, zero=True)
    path = tmp_path / "small.npz"
    c.save(path)
    with pytest.raises(pt.LayoutError, match="holds layout Small .* differs from Wide"):
        pt.PortableCollection.load(path, Wide)
    Realigned = pt.Layout.define("Realigned", [(m.name, m.spec) for m in Small.members()],
                                 alignment=256)
    with pytest.raises(pt.LayoutError, match="differs from Realigned"):
        pt.PortableCollection.load(path, Realigned)
    Retyped = pt.Layout.define("Retyped", [("x", pt.column(np.float64)),
                                           ("idx", pt.column(np.int32)),
                                           ("count", pt.scalar(np.int64))])
    with pytest.raises(pt.LayoutError, match="differs from Retyped"):
        pt.PortableCollection.load(path, Retyped)
    # the same members under another name is the same byte layout
    Renamed = pt.Layout.define("Renamed", [(m.name, m.spec) for m in Small.members()])
    assert pt.PortableCollection.load(path, Renamed).layout is Renamed


@every_backend
def test_save_needs_a_host_collection(queue, tmp_path):
    c = pt.PortableCollection(Small, 3, queue.device, zero=True, queue=queue)
    path = tmp_path / "c.npz"
    if not queue.backend.host_memory:
        with pytest.raises(pt.PortableError, match=r"host collections; copy it to the host"):
            c.save(path)
        assert not path.exists()
    else:
        c.save(path)
        assert pt.PortableCollection.load(path, Small).column("x").tolist() == [0.0] * 3


# -- 8. bad input ------------------------------------------------------------------------
@pytest.mark.parametrize("size", [-1, 2.0, "3", None, True, np.float32(1)])
def test_bad_sizes(size):
    with pytest.raises(pt.ArgumentError, match="argument 'size' must be an integer >= 0"):
        pt.PortableCollection(Small, size, HOST)
    if size is not None:    # capacity=None is the default: the size
        with pytest.raises(pt.ArgumentError, match="argument 'capacity' must be an integer"):
            pt.PortableCollection(Small, 0, HOST, capacity=size)


def test_numpy_integer_sizes_are_accepted():
    c = pt.PortableCollection(Small, np.int32(5), HOST, capacity=np.uint64(9))
    assert (c.size, c.capacity) == (5, 9) and type(c.size) is int


def test_capacity_smaller_than_size():
    with pytest.raises(pt.ArgumentError, match=r"'capacity' \(3\) is smaller than 'size' \(4\)"):
        pt.PortableCollection(Small, 4, HOST, capacity=3)


def test_not_a_layout():
    with pytest.raises(pt.ArgumentError, match=r"pass Small itself.* not Small\(\)"):
        pt.PortableCollection(Small(), 4, HOST)
    with pytest.raises(pt.ArgumentError, match="argument 'layout' must be a Layout class"):
        pt.PortableCollection("Small", 4, HOST)


def test_unknown_column_suggests_near_names():
    c = pt.PortableCollection(Every, 4, HOST, zero=True)
    with pytest.raises(pt.LayoutError, match=r"no member 'f33'; did you mean 'f32'"):
        c.column("f33")
    with pytest.raises(AttributeError, match=r"no member 'mom_'; did you mean 'mom'"):
        c.view().mom_
    with pytest.raises(pt.LayoutError, match=r"\(members: flag, i8, "):
        c.column("zzz")


@every_backend
def test_unknown_member_in_kernel(queue):
    c = poisoned(queue, Small, 5)
    with pytest.raises(pt.KernelError, match=r"no member 'xx'; did you mean x"):
        pt.launch(queue, wd(queue, 5), unknown_member, c.view())
    assert (host_copy(queue, c.buffer) == 0xFF).all()


@every_backend
@pytest.mark.parametrize("kernel,member", [(write_const_element, "x"),
                                           (write_const_scalar, "count"),
                                           (update_const_element, "idx")])
def test_writing_through_a_const_view_is_refused(queue, kernel, member):
    c = poisoned(queue, Small, 5)
    with pytest.raises(pt.KernelError, match=rf"c\.{member} is written, but c is a read-only "
                                             rf"view; pass collection.view\(\)"):
        pt.launch(queue, wd(queue, 5), kernel, c.const_view())
    queue.synchronize()
    assert (host_copy(queue, c.buffer) == 0xFF).all()


@every_backend
def test_view_misuse_in_kernels(queue):
    c = poisoned(queue, Small, 5)
    out = pt.alloc_buffer(queue.device, 1, np.float32)
    with pytest.raises(pt.KernelError, match=r"can only be used as c\.<member>; pass columns"):
        pt.launch(queue, wd(queue, 5), whole_view_to_device_function, c.view(), out)
    with pytest.raises(pt.KernelError, match=r"c\.size cannot be assigned"):
        pt.launch(queue, wd(queue, 5), assigns_size, c.view())
    with pytest.raises(pt.KernelError, match=r"c\.x is an array: assign its elements"):
        pt.launch(queue, wd(queue, 5), assigns_array, c.view())
    assert (host_copy(queue, c.buffer) == 0xFF).all()


@every_backend
def test_copy_between_mismatched_collections(queue):
    dst = poisoned(queue, Small, 5)
    for source, message in [
            (pt.PortableCollection(Wide, 5, queue.device), "between layouts Wide and Small"),
            (pt.PortableCollection(Small, 6, queue.device), "size 6 .* into one of size 5"),
            (pt.PortableCollection(Small, 5, queue.device, capacity=64), r"capacity 64\)"),
            (pt.PortableCollection(Small, 4, queue.device, capacity=5), "size 4")]:
        with pytest.raises(pt.LayoutError, match=message):
            dst.copy_from(queue, source)
    with pytest.raises(pt.ArgumentError, match="argument 'source' must be a PortableCollection"):
        dst.copy_from(queue, np.zeros(dst.nbytes, np.uint8))
    same = pt.PortableCollection(Small, 5, queue.device, zero=True, queue=queue)
    assert (host_copy(queue, dst.buffer) == 0xFF).all()
    dst.copy_from(queue, same)
    assert not host_copy(queue, dst.buffer).any()


@every_backend
def test_view_of_a_collection_on_another_backend(queue):
    """A view must live in memory the queue's device reaches: the two CPU
    backends share host memory; a GPU and the host do not."""
    name = queue.backend.name
    if queue.backend.host_memory:
        other = {"cpu_serial": "cpu_threads", "cpu_threads": "cpu_serial"}[name]
        shared = pt.PortableCollection(Small, 5, pt.get_device(other), zero=True)
        pt.launch(queue, wd(queue, 5), fill_small, shared.view(), 1.0)
        assert to_host(queue, shared).column("idx").tolist() == list(range(5))
    others = ["cpu_serial", "cpu_threads"] if not queue.backend.host_memory else (
        ["cuda"] if cuda_available() else [])
    for other in others:
        device = pt.get_device(other)
        oq = pt.Queue(device)
        c = pt.PortableCollection(Small, 5, device)
        pt.memset(oq, c.buffer, 0xFF)
        with pytest.raises(pt.LaunchError, match=rf"view of a collection on {other}:0, but the "
                                                 rf"queue runs on {name}:0; move it"):
            pt.launch(queue, wd(queue, 5), fill_small, c.view(), 1.0)
        queue.synchronize()
        assert (host_copy(oq, c.buffer) == 0xFF).all()
        # the advertised fix: a copy on a queue of the GPU involved
        gpu_queue = oq if not device.backend.host_memory else queue
        moved = c.to(gpu_queue, queue.device)
        gpu_queue.synchronize()
        pt.launch(queue, wd(queue, 5), fill_small, moved.view(), 1.0)
        assert to_host(queue, moved).column("idx").tolist() == list(range(5))


def test_pinned_host_collection_errors_without_cuda():
    if cuda_available():
        pytest.skip("cuda can pin memory here")
    with pytest.raises(pt.BackendError):
        pt.PortableCollection(Small, 5, HOST, pinned=True)


# -- 9. range-checked mode ---------------------------------------------------------------
@pytest.mark.parametrize("backend", ["cpu_serial", "cpu_threads"])
def test_boundscheck_catches_one_past_the_end(queue, monkeypatch):
    @pt.kernel
    def read_past(acc, c, out):
        if acc.once_per_grid():
            out[0] = c.x[c.size]

    @pt.kernel
    def read_past_component(acc, c, out):
        if acc.once_per_grid():
            out[0] = c.cov[0, 2, 0]

    n, capacity = 31, 64        # one past the end is padding, inside the buffer
    small = pt.PortableCollection(Small, n, queue.device, capacity=capacity, zero=True)
    every = pt.PortableCollection(Every, 2, queue.device, zero=True)
    out = np.full(1, -1.0, np.float32)
    monkeypatch.setenv("PORTABLE_BOUNDSCHECK", "1")
    for kernel, view in ((read_past, small.view()), (read_past_component, every.view())):
        with pytest.raises(pt.RangeError, match=rf"kernel {kernel.__name__}: an element index "
                                                rf"is out of range .*PORTABLE_BOUNDSCHECK=1"):
            pt.launch(queue, wd(queue, n), kernel, view, out)
    with pytest.raises(IndexError):        # a RangeError is an IndexError too
        pt.launch(queue, wd(queue, n), read_past, small.const_view(), out)
    assert out[0] == -1.0


@pytest.mark.parametrize("backend", ["cpu_serial", "cpu_threads"])
def test_boundscheck_off_or_in_range(queue, monkeypatch):
    @pt.kernel
    def read_at(acc, c, out, k):
        if acc.once_per_grid():
            out[0] = c.x[c.size + k]

    n, capacity = 31, 64
    small = pt.PortableCollection(Small, n, queue.device, capacity=capacity, zero=True)
    small.column("x")[:] = np.arange(n)
    out = np.full(1, -1.0, np.float32)
    monkeypatch.setenv("PORTABLE_BOUNDSCHECK", "1")
    pt.launch(queue, wd(queue, n), read_at, small.view(), out, -1)     # the last element
    assert out[0] == n - 1
    for unchecked in (None, "0", ""):
        if unchecked is None:
            monkeypatch.delenv("PORTABLE_BOUNDSCHECK")
        else:
            monkeypatch.setenv("PORTABLE_BOUNDSCHECK", unchecked)
        pt.launch(queue, wd(queue, n), read_at, small.view(), out, 0)  # padding: no check


# -- 10. the collection's geometry is the layout's ---------------------------------------
@pytest.mark.parametrize("layout", [Every, Mixed, Derived, Small, Wide])
def test_collection_geometry_matches_the_layout(layout):
    for n in SIZES:
        for capacity in capacities(n):
            c = pt.PortableCollection(layout, n, HOST, capacity=capacity)
            assert c.nbytes == layout.byte_size(capacity) == c.buffer.nbytes
            assert c.table() == layout.table(capacity)
            assert f"n = {capacity}," in c.table()
            for member in layout.members():
                g = layout.geometry(capacity)[member.name]
                col = c.column(member.name)
                if g.kind == "scalar":
                    assert col.shape == ()
                    continue
                assert col.shape == (n, g.rows, g.cols)[:{"column": 1, "vector": 2,
                                                            "matrix": 3}[g.kind]]
                if n:
                    assert col.__array_interface__["data"][0] == \
                        c.buffer.ctypes.data + g.offset
                    assert col.strides == (g.itemsize, g.pitch_bytes,
                                           g.rows * g.pitch_bytes)[:col.ndim]
    assert "size=3 capacity=5 on cpu_serial:0" in repr(pt.PortableCollection(layout, 3, HOST,
                                                                               capacity=5))


def test_numpy_views_agree_with_columns():
    n, capacity = 31, 50
    c = pt.PortableCollection(Mixed, n, HOST, capacity=capacity)
    c.buffer[:] = random_bytes(Mixed, capacity, seed=3)
    views = numpy_views(Mixed, c.buffer, capacity)
    for member in Mixed.members():
        col, whole = c.column(member.name), views[member.name]
        if member.kind == "scalar":
            assert col == whole
        elif member.kind == "column":
            np.testing.assert_array_equal(col, whole[:n])
        else:
            np.testing.assert_array_equal(col.reshape(n, member.rows, member.cols), whole[:n])


# -- edge cases ----------------------------------------------------------------------------
class Half(pt.Layout):
    x = pt.column(np.float32)
    h = pt.column(np.float16)


@pt.kernel
def fill_x_of_half(acc, c):
    for i in acc.uniform_elements(c.size):
        c.x[i] = i


@pt.kernel
def fill_h_of_half(acc, c):
    for i in acc.uniform_elements(c.size):
        c.h[i] = i


@every_backend
def test_a_float16_member_only_matters_where_it_is_used(queue):
    """Kernels build arrays for the members they use: one that leaves a float16
    member alone runs everywhere; one that uses it is a clear error on the CPU
    backends (numba's CPU target cannot index float16) and runs on CUDA."""
    c = poisoned(queue, Half, 5)
    pt.launch(queue, wd(queue, 5), fill_x_of_half, c.view())
    np.testing.assert_array_equal(to_host(queue, c).column("x"), np.arange(5))
    if not queue.backend.host_memory:
        pt.launch(queue, wd(queue, 5), fill_h_of_half, c.view())
        np.testing.assert_array_equal(to_host(queue, c).column("h"), np.arange(5))
    else:
        with pytest.raises(pt.KernelError, match="member c.h is float16"):
            pt.launch(queue, wd(queue, 5), fill_h_of_half, c.view())


@pt.kernel
def write_const_pair(acc, c):
    for i in acc.uniform_elements(c.size):
        c.x[i], c.idx[i] = 1.0, 1


@pt.kernel
def write_const_atomic(acc, c):
    for i in acc.uniform_elements(c.size):
        acc.atomic_add(c.idx, i, 1)


@every_backend
@pytest.mark.parametrize("kernel", [write_const_pair, write_const_atomic])
def test_other_writes_through_a_const_view_are_refused(queue, kernel):
    c = poisoned(queue, Small, 5)
    with pytest.raises(pt.KernelError, match="read-only view"):
        pt.launch(queue, wd(queue, 5), kernel, c.const_view())
    assert (host_copy(queue, c.buffer) == 0xFF).all()


@pt.kernel
def write_const_alias(acc, c):
    alias = c.x
    for i in acc.uniform_elements(c.size):
        alias[i] = 1.0


@every_backend
def test_writes_through_an_alias_of_a_const_view_fail_to_compile(queue):
    """Aliases escape the source check; the read-only buffer type catches them
    wherever the compiler types arrays (not in the CUDA simulator)."""
    if is_simulated(queue.backend.name):
        pytest.skip("the simulator runs Python and types nothing")
    c = poisoned(queue, Small, 5)
    with pytest.raises(Exception, match="(?i)read.?only|readonly|Cannot modify"):
        pt.launch(queue, wd(queue, 5), write_const_alias, c.const_view())
    assert (host_copy(queue, c.buffer) == 0xFF).all()


def test_load_reads_the_path_that_save_was_given(tmp_path):
    c = pt.PortableCollection(Small, 3, HOST, zero=True)
    c.save(tmp_path / "hits")
    back = pt.PortableCollection.load(tmp_path / "hits", Small)
    np.testing.assert_array_equal(back.buffer, c.buffer)


@every_backend
def test_loaded_collection_moves_to_the_device(queue, tmp_path):
    c = pt.PortableCollection(Small, 3, HOST, zero=True)
    c.column("x")[:] = [1, 2, 3]
    c.save(tmp_path / "c.npz")
    back = pt.PortableCollection.load(tmp_path / "c.npz", Small)
    assert back.device.backend.name == "cpu_serial"
    moved = back.to(queue, queue.device)
    assert to_host(queue, moved).column("x").tolist() == [1, 2, 3]


def test_view_attribute_protocol():
    import copy
    c = pt.PortableCollection(Small, 3, HOST, zero=True)
    view = c.view()
    assert hasattr(view, "nope") is False
    with pytest.raises(AttributeError, match="no member 'xx'"):
        view.xx
    assert copy.copy(view).collection is c


def test_adopting_a_strided_or_readonly_buffer_is_refused():
    raw = np.zeros(2 * Small.byte_size(5), np.uint8)
    with pytest.raises(pt.ArgumentError, match="'buffer' must be contiguous"):
        pt.PortableCollection(Small, 5, HOST, buffer=raw[::2])
    frozen = aligned_buffer(HOST, Small.byte_size(5), Small.alignment)
    frozen.flags.writeable = False
    with pytest.raises(pt.ArgumentError, match="'buffer' is read-only"):
        pt.PortableCollection(Small, 5, HOST, buffer=frozen)


def test_host_buffers_are_aligned_to_the_layout():
    for n in (1, 5, 100, 1000, 100000):
        assert pt.PortableCollection(Small, n, HOST).buffer.ctypes.data % Small.alignment == 0
        assert pt.PortableCollection(Wide, n, HOST).buffer.ctypes.data % Wide.alignment == 0


@every_backend
def test_columns_export_dlpack_sharing_memory(queue):
    c = pt.PortableCollection(Small, 7, queue.device, zero=True)
    if queue.backend.host_memory:
        exported = np.from_dlpack(c.dlpack("x"))
        assert np.shares_memory(exported, c.buffer)
        return
    if is_simulated(queue.backend.name):
        with pytest.raises(pt.PortableError, match="needs a real GPU"):
            c.dlpack("x")
        return
    torch = pytest.importorskip("torch")
    tensor = torch.from_dlpack(c.dlpack("x"))
    assert tensor.device.type == "cuda" and tensor.shape == (7,)
    assert tensor.data_ptr() == c.column("x").__cuda_array_interface__["data"][0]
    tensor.fill_(2.5)
    torch.cuda.synchronize()
    assert to_host(queue, c).column("x").tolist() == [2.5] * 7
