"""SoA layout declarations: CMSSW's byte layout rules, checked on random layouts."""
import keyword

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portable.errors import ArgumentError, PortableError
from portable.layout import (DEFAULT_ALIGNMENT, SUPPORTED_DTYPES, BlockOffsets, Layout,
                             LayoutError, Member, MemberGeometry, align_up, block_offsets,
                             column, matrix, numpy_views, scalar, vector)

PROPERTY = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------- strategies

RESERVED = {n for n in dir(Layout) if not n.startswith("_")} | {"mro"}
names = st.from_regex(r"[a-z][a-z0-9_]{0,7}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s) and s not in RESERVED)


@st.composite
def member_specs(draw):
    kind = draw(st.sampled_from(["column", "vector", "matrix", "scalar"]))
    dtype = draw(st.sampled_from(SUPPORTED_DTYPES))
    if kind == "column":
        return column(dtype)
    if kind == "scalar":
        return scalar(dtype)
    if kind == "vector":
        return vector(dtype, draw(st.integers(1, 4)))
    return matrix(dtype, draw(st.integers(1, 4)), draw(st.integers(1, 4)))


@st.composite
def layouts(draw, max_members=8):
    """A random layout built with ``Layout.define`` and its declared members."""
    member_names = draw(st.lists(names, min_size=0, max_size=max_members, unique=True))
    specs = [draw(member_specs()) for _ in member_names]
    widest = max((np.dtype(s.dtype).itemsize for s in specs), default=1)
    alignment = 2 ** draw(st.integers(widest.bit_length() - 1, 12))
    assert alignment >= widest
    layout = Layout.define("Random", list(zip(member_names, specs)), alignment=alignment)
    return layout, list(zip(member_names, specs))


sizes = st.integers(0, 10_000)


def cmssw_data_size(declared, n, alignment):
    """CMSSW's computeDataSize, written out independently of the library."""
    total = 0
    for _, spec in declared:
        item = np.dtype(spec.dtype).itemsize
        if spec.kind == "scalar":
            total += ((item + alignment - 1) // alignment) * alignment
        else:
            total += spec.rows * spec.cols * ((n * item + alignment - 1) // alignment) * alignment
    return total


# --------------------------------------------------------------------------- the worked example

class Example(Layout):
    x = column(np.float32)
    y = column(np.float32)
    energy = scalar(np.float64)
    charge = column(np.int16)
    alignment = 64


def test_worked_example_exactly():
    n = 32
    g = Example.geometry(n)
    assert [(m.name, m.offset, m.size) for m in g.values()] == [
        ("x", 0, 128), ("y", 128, 128), ("energy", 256, 64), ("charge", 320, 64)]
    assert Example.byte_size(n) == 384
    assert [Example.offset(m, n) for m in ("x", "y", "energy", "charge")] == [0, 128, 256, 320]
    assert Example.pitch("x", n) == 32 and Example.pitch_bytes("x", n) == 128
    assert Example.pitch("charge", n) == 32 and Example.pitch_bytes("charge", n) == 64
    assert Example.member_size("energy", n) == 64
    assert Example.table(n) == "\n".join([
        "Example: n = 32, alignment = 64, 4 members, 384 bytes",
        "member  kind    dtype    shape  offset  pitch B  size B",
        "------  ------  -------  -----  ------  -------  ------",
        "x       column  float32  1x1         0      128     128",
        "y       column  float32  1x1       128      128     128",
        "energy  scalar  float64  1x1       256       64      64",
        "charge  column  int16    1x1       320       64      64",
        "total                                               384",
    ])


def test_worked_example_bytes_through_views():
    n = 32
    buf = np.zeros(Example.byte_size(n), np.uint8)
    v = numpy_views(Example, buf, n)
    v["x"][:] = np.arange(n, dtype=np.float32)
    v["y"][:] = -np.arange(n, dtype=np.float32)
    v["energy"][()] = 6.5
    v["charge"][:] = np.arange(n, dtype=np.int16) - 16
    assert (buf[0:128].view(np.float32) == np.arange(n)).all()
    assert (buf[128:256].view(np.float32) == -np.arange(n)).all()
    assert buf[256:264].view(np.float64)[0] == 6.5 and not buf[264:320].any()
    assert (buf[320:384].view(np.int16) == np.arange(n) - 16).all()


def test_class_and_functional_forms_are_equivalent():
    Functional = Layout.define("Example", [("x", column(np.float32)), ("y", column("float32")),
                                           ("energy", scalar(float)),
                                           ("charge", column(np.dtype(np.int16)))],
                               alignment=64)
    for n in (0, 1, 31, 32, 33, 1000):
        assert Functional.geometry(n) == Example.geometry(n)
        assert Functional.table(n) == Example.table(n)
    assert Functional.members() == Example.members()
    mapping = Layout.define("M", {"a": column(np.int8), "b": scalar(np.int8)})
    assert [m.name for m in mapping.members()] == ["a", "b"]


def test_documented_hits_layout():
    class Hits(Layout):
        x = column(np.float32)
        y = column(np.float32)
        momentum = vector(np.float32, 3)
        cov = matrix(np.float64, 3, 3)
        event_id = scalar(np.int64)

    assert Hits.alignment == DEFAULT_ALIGNMENT == 128
    assert Hits.momentum == Member("momentum", "vector", np.dtype(np.float32), 3, 1)
    assert [(m.name, m.kind, m.dtype, m.shape) for m in Hits.members()] == [
        ("x", "column", np.float32, (1, 1)), ("y", "column", np.float32, (1, 1)),
        ("momentum", "vector", np.float32, (3, 1)), ("cov", "matrix", np.float64, (3, 3)),
        ("event_id", "scalar", np.int64, (1, 1))]
    g = Hits.geometry(100)["cov"]
    assert isinstance(g, MemberGeometry)
    assert (g.offset, g.pitch_bytes, g.pitch, g.size) == (2560, 896, 112, 9 * 896)
    assert g.component_offset(2, 1) == 2560 + (2 + 1 * 3) * 896


def test_n_zero_columns_empty_scalars_padded():
    assert Example.byte_size(0) == 64
    assert [g.size for g in Example.geometry(0).values()] == [0, 0, 64, 0]
    assert [g.offset for g in Example.geometry(0).values()] == [0, 0, 0, 64]
    v = numpy_views(Example, np.zeros(64, np.uint8), 0)
    assert v["x"].shape == (0,) and v["energy"].shape == ()


def test_extension_appends_members_and_inherits_alignment():
    class More(Example):
        z = vector(np.float32, 2)

    assert [m.name for m in More.members()] == ["x", "y", "energy", "charge", "z"]
    assert More.alignment == 64 and More.offset("z", 32) == 384
    assert More.byte_size(32) == 384 + 2 * 128
    Wider = Example.define("Wider", [("w", column(np.int8))], alignment=256)
    assert Wider.alignment == 256 and Wider.offset("w", 32) == 4 * 256


def test_layouts_and_geometry_are_immutable():
    for key in ("alignment", "x", "_members"):
        with pytest.raises(LayoutError, match=f"Example is immutable: '{key}' cannot change"):
            setattr(Example, key, 256)
    with pytest.raises(LayoutError, match="immutable"):
        del Example.energy
    Example.note = "other attributes stay free"
    del Example.note
    assert Example.byte_size(32) == 384
    g = Example.geometry(8)
    with pytest.raises(TypeError):
        g["x"] = None
    with pytest.raises(AttributeError):
        g["x"].offset = 3


# --------------------------------------------------------------------------- properties

@PROPERTY
@given(layouts(), sizes)
def test_offsets_aligned_ordered_contiguous_and_cmssw_size(layout_and_specs, n):
    layout, declared = layout_and_specs
    a = layout.alignment
    geometry = layout.geometry(n)
    assert list(geometry) == [name for name, _ in declared]
    end = 0
    for (name, spec), g in zip(declared, geometry.values()):
        item = np.dtype(spec.dtype).itemsize
        assert g.offset % a == 0 and g.pitch_bytes % a == 0 and g.size % a == 0
        assert g.offset == end          # declaration order, no gaps, no overlap
        assert (g.rows, g.cols) == (spec.rows, spec.cols) and g.dtype == np.dtype(spec.dtype)
        if spec.kind == "scalar":
            assert g.pitch_bytes == g.size and item <= g.size < item + a
        else:
            assert n * item <= g.pitch_bytes < n * item + a    # the least padding
            assert g.pitch * item == g.pitch_bytes
            assert g.size == spec.rows * spec.cols * g.pitch_bytes
        assert (layout.offset(name, n), layout.pitch(name, n), layout.pitch_bytes(name, n),
                layout.member_size(name, n)) == (g.offset, g.pitch, g.pitch_bytes, g.size)
        end = g.end
    assert layout.byte_size(n) == end == cmssw_data_size(declared, n, a)


@PROPERTY
@given(layouts(), sizes)
def test_table_lines_match_geometry(layout_and_specs, n):
    layout, _ = layout_and_specs
    geometry = layout.geometry(n)
    lines = layout.table(n).splitlines()
    total = layout.byte_size(n)
    assert lines[0].startswith(f"Random: n = {n}, alignment = {layout.alignment}, ")
    assert lines[0].endswith(f", {total} bytes")
    assert lines[1].split() == ["member", "kind", "dtype", "shape", "offset", "pitch", "B",
                                "size", "B"]
    body = lines[3:-1]
    assert len(body) == len(geometry)
    for line, g in zip(body, geometry.values()):
        assert line.split() == [g.name, g.kind, g.dtype.name, f"{g.rows}x{g.cols}",
                                str(g.offset), str(g.pitch_bytes), str(g.size)]
    assert lines[-1].split() == ["total", str(total)]


@PROPERTY
@given(layouts(max_members=5), st.integers(0, 2_000))
def test_views_write_bytes_at_computed_offsets(layout_and_specs, n):
    """Every component (r, c) of every member lies at offset + (r + c*R) * pitch_bytes,
    and writing every member through the views touches no padding byte."""
    layout, _ = layout_and_specs
    size = layout.byte_size(n)
    buf = np.full(size + 64, 0xAB, np.uint8)   # 64 guard bytes past the end
    views = numpy_views(layout, buf, n)
    data = np.zeros(buf.size, bool)
    expected = {}
    for k, g in enumerate(layout.geometry(n).values()):
        view = views[g.name]
        count = 1 if g.kind == "scalar" else n
        values = ((np.arange(count * g.rows * g.cols) * 7 + k) % 101 + 1).reshape(
            count, g.rows, g.cols)
        values = values.astype(g.dtype)
        if g.kind == "scalar":
            assert view.shape == () and view.dtype == g.dtype
            view[()] = values[0, 0, 0]
        elif g.kind == "column":
            assert view.shape == (n,) and view.strides == (g.itemsize,)
            view[:] = values[:, 0, 0]
        else:
            assert view.shape == (n, g.rows, g.cols)
            assert view.strides == (g.itemsize, g.pitch_bytes, g.rows * g.pitch_bytes)
            view[...] = values
        for r in range(g.rows):
            for c in range(g.cols):
                start = g.component_offset(r, c)
                assert start == g.offset + (r + c * g.rows) * g.pitch_bytes
                stop = start + count * g.itemsize
                assert stop <= g.end
                data[start:stop] = True
                expected[start] = (stop, values[:, r, c])
    for start, (stop, values) in expected.items():
        assert (buf[start:stop].view(values.dtype) == values).all()
    assert (buf[~data] == 0xAB).all()


@PROPERTY
@given(st.lists(st.tuples(layouts(max_members=4), sizes), max_size=5))
def test_block_offsets_follow_each_other_aligned(blocks):
    pairs = [(layout, n) for (layout, _), n in blocks]
    offsets, total = block_offsets(pairs)
    end = 0
    for (layout, n), start in zip(pairs, offsets):
        assert start % layout.alignment == 0 and end <= start < end + layout.alignment
        end = start + layout.byte_size(n)
    assert total == end and len(offsets) == len(pairs)


# --------------------------------------------------------------------------- helpers

def test_align_up():
    assert [align_up(s, 64) for s in (0, 1, 63, 64, 65, 128)] == [0, 64, 64, 64, 128, 128]


def test_block_offsets_equal_alignment_is_cmssw_running_sum():
    result = block_offsets([(Example, 32), (Example, 0), (Example, 5)])
    assert isinstance(result, BlockOffsets)
    assert result == BlockOffsets((0, 384, 448), 448 + 64 + 3 * 64)
    assert block_offsets([]) == BlockOffsets((), 0)


def test_block_offsets_mixed_alignments():
    Narrow = Layout.define("Narrow", [("a", column(np.int8))], alignment=16)
    Wide = Layout.define("Wide", [("b", column(np.int8))], alignment=256)
    assert block_offsets([(Narrow, 3), (Wide, 1), (Narrow, 1)]) == ((0, 256, 512), 528)


def test_every_supported_dtype():
    for dt in SUPPORTED_DTYPES:
        L = Layout.define("L", [("a", column(dt)), ("s", scalar(dt.type))], alignment=16)
        assert L.a.dtype == dt and L.byte_size(3) == align_up(3 * dt.itemsize, 16) + 16


def test_layout_repr():
    assert repr(Example) == "<layout Example: x, y, energy, charge; alignment 64>"


# --------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("n", [-1, -100])
def test_negative_size(n):
    with pytest.raises(LayoutError, match=f"non-negative integer.*got {n}"):
        Example.byte_size(n)


@pytest.mark.parametrize("n", [2.5, 3.0, "3", None, True, [3]])
def test_non_integer_size(n):
    with pytest.raises(LayoutError, match="non-negative integer number of elements"):
        Example.geometry(n)


def test_numpy_integer_sizes_are_fine():
    assert Example.byte_size(np.int64(32)) == Example.byte_size(np.uint16(32)) == 384


def test_unknown_member_suggests_near_names():
    with pytest.raises(LayoutError, match=r"no member 'enrgy'; did you mean 'energy'\?"):
        Example.offset("enrgy", 10)
    with pytest.raises(LayoutError, match=r"did you mean 'x'\?"):
        Example.pitch("X", 10)
    with pytest.raises(LayoutError, match=r"no member 'zzz' \(members: x, y, energy, charge\)"):
        Example.member_size("zzz", 10)
    with pytest.raises(ArgumentError, match="a member name must be a str, got the int 3"):
        Example.member(3)


@pytest.mark.parametrize("dtype, shown", [
    (object, "object"), ("U5", "<U5"), ("datetime64[s]", "datetime64"),
    ([("a", "f4"), ("b", "i4")], "'a'"), (np.longdouble, "float128"), ("S3", "S3"),
    (("f4", 3), "3"), (None, "no dtype given"), ("no such type", "not a NumPy dtype"),
])
def test_unsupported_dtype_names_member_and_supported_kinds(dtype, shown):
    with pytest.raises(LayoutError) as info:
        class Bad(Layout):
            fine = column(np.float32)
            broken = matrix(dtype, 2, 2)
    message = str(info.value)
    assert "Bad.broken" in message and shown in message
    assert "supported item types: bool, int8" in message and "float64" in message


def test_non_native_byte_order():
    with pytest.raises(LayoutError, match="Bad.b .*not in native byte order; use float32"):
        Layout.define("Bad", [("b", column(">f4"))])


@pytest.mark.parametrize("alignment", [0, -64, 3, 48, 100, 129])
def test_alignment_not_a_power_of_two(alignment):
    with pytest.raises(LayoutError, match=f"alignment {alignment} is not a power of two"):
        Layout.define("Bad", [("a", column(np.int8))], alignment=alignment)


@pytest.mark.parametrize("alignment", [64.0, "64", True, [64]])
def test_alignment_not_an_integer(alignment):
    with pytest.raises(LayoutError, match="Bad: alignment must be a power of two in bytes"):
        Layout.define("Bad", [("a", column(np.int8))], alignment=alignment)


def test_alignment_smaller_than_an_item():
    with pytest.raises(LayoutError, match=r"alignment 4 is smaller than the item of member "
                                          r"'cov' \(float64, 8 bytes\); use a power of two >= 8"):
        class Bad(Layout):
            q = column(np.int8)
            cov = matrix(np.float64, 2, 2)
            alignment = 4
    ok = Layout.define("Ok", [("q", column(np.int8)), ("c", column(np.complex128))], alignment=16)
    assert ok.byte_size(1) == 32
    with pytest.raises(LayoutError, match="smaller than the item"):
        Layout.define("Bad", [("c", column(np.complex128))], alignment=8)
    class Tiny(Layout):
        a = column(np.int8)
        alignment = 1
    assert Tiny.byte_size(3) == 3
    with pytest.raises(LayoutError, match="alignment 1 is smaller than the item"):
        Tiny.define("Bad", [("d", scalar(np.float64))])   # inherits alignment 1


def test_duplicate_member_names():
    with pytest.raises(LayoutError, match="Bad: member 'x' is declared twice"):
        Layout.define("Bad", [("x", column(np.float32)), ("x", scalar(np.int8))])
    with pytest.raises(LayoutError, match="Bad: member 'x' is declared twice in the class body"):
        class Bad(Layout):
            x = column(np.float32)
            y = column(np.float32)
            x = column(np.float64)
    with pytest.raises(LayoutError, match="would hide the member 'x' of Example"):
        class Child(Example):
            x = column(np.float64)


@pytest.mark.parametrize("name, reason", [
    ("1x", "not a valid Python identifier"), ("a-b", "not a valid Python identifier"),
    ("", "not a valid Python identifier"), ("class", "not a valid Python identifier"),
    (3, "not a valid Python identifier"), ("_hidden", "starts with '_'"),
    ("byte_size", "clashes with the layout's own attribute"),
    ("table", "clashes with the layout's own attribute"),
    ("alignment", "clashes with the layout's own attribute"),
    ("members", "clashes with the layout's own attribute"),
])
def test_invalid_member_names(name, reason):
    with pytest.raises(LayoutError, match=reason):
        Layout.define("Bad", [(name, column(np.float32))])


def test_reserved_name_in_class_body():
    with pytest.raises(LayoutError, match="'offset' clashes with the layout's own attribute"):
        class Bad(Layout):
            offset = column(np.float32)


def test_forgotten_declaration_is_an_error():
    with pytest.raises(LayoutError, match=r"Bad.x = np.float32 is not a member; declare it "
                                          r"as column\(np.float32\)"):
        class Bad(Layout):
            x = np.float32
    with pytest.raises(LayoutError, match=r"Bad.x = np.float32 is not a member; declare it"):
        Layout.define("Bad", [("x", np.float32)])
    with pytest.raises(LayoutError, match="is not a member declaration"):
        Layout.define("Bad", [("x", 3)])
    with pytest.raises(LayoutError, match=r"\(name, declaration\) pairs"):
        Layout.define("Bad", [column(np.float32)])
    with pytest.raises(LayoutError, match="layout name 'no good' is not a valid"):
        Layout.define("no good", [])


@pytest.mark.parametrize("spec, message", [
    (vector(np.float32, 0), "rows must be a positive integer, got 0"),
    (matrix(np.float32, 3, -1), "cols must be a positive integer, got -1"),
    (matrix(np.float32, 2.0, 2), "rows must be a positive integer, got 2.0"),
    (vector(np.float32, True), "rows must be a positive integer, got True"),
])
def test_bad_shapes(spec, message):
    with pytest.raises(LayoutError, match=f"Bad.m: {message}"):
        Layout.define("Bad", [("m", spec)])


def test_bad_blocks():
    with pytest.raises(LayoutError, match="block 1: expected a Layout subclass"):
        block_offsets([(Example, 1), (np.float32, 1)])
    with pytest.raises(LayoutError, match=r"block 0 \(Example\) n must be a non-negative"):
        block_offsets([(Example, -1)])
    with pytest.raises(LayoutError, match=r"block 0: expected a \(layout, n\) pair"):
        block_offsets([Example])


def test_bad_view_buffers():
    with pytest.raises(LayoutError, match="needs 384 bytes for n = 32, the buffer has 383"):
        numpy_views(Example, np.zeros(383, np.uint8), 32)
    with pytest.raises(LayoutError, match="contiguous 1-D uint8"):
        numpy_views(Example, np.zeros(96, np.float32), 32)
    with pytest.raises(LayoutError, match="contiguous 1-D uint8"):
        numpy_views(Example, np.zeros(800, np.uint8)[::2], 32)
    with pytest.raises(LayoutError, match="contiguous 1-D uint8"):
        numpy_views(Example, bytearray(384), 32)


def test_errors_are_portable_and_value_errors():
    assert issubclass(LayoutError, PortableError) and issubclass(LayoutError, ValueError)
