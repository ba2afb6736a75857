"""Bad input to collections, views and multi-collections, on every backend: each is
refused with an error naming the offending argument or value and the fix, before
any data is touched; corrupt or foreign files given to ``load``."""
import json
import pickle
import zipfile

import numpy as np
import pytest

import portable as pt
from portable.collection import (CollectionAttributeError, CollectionFileError,
                                 CollectionFileMissing, View)
from portable.testing import every_backend, host_copy

from bad_inputs import refused
from collection_helpers import HOST, address, aligned_buffer, to_host


class Small(pt.Layout):
    x = pt.column(np.float32)
    idx = pt.column(np.int32)
    count = pt.scalar(np.int64)


class Wide(pt.Layout):
    e = pt.column(np.float64)
    alignment = 256


@pt.kernel
def fill_small(acc, c, base):
    for i in acc.uniform_elements(c.size):
        c.x[i] = base + i
        c.idx[i] = i
    if acc.once_per_grid():
        c.count = c.size


def poisoned(queue, layout=Small, size=10, capacity=None):
    c = pt.PortableCollection(layout, size, queue.device, capacity=capacity)
    pt.memset(queue, c.buffer, 0xFF)
    return c


def other_device(queue):
    """A device of another backend than the queue's."""
    return pt.get_device("cpu_threads" if queue.backend.name == "cpu_serial" else "cpu_serial")


# -- 1. the size cannot run past the capacity ----------------------------------------------
@every_backend
def test_assigning_a_size_past_the_capacity_is_refused(queue):
    """``c.size = 100000`` on a capacity of 10, then a kernel, crashed both CPU backends."""
    c = poisoned(queue)
    with refused(CollectionAttributeError, "collection.resize(n)", "capacity 10",
                 queue=queue, untouched=[c.buffer]):
        c.size = 100000
    assert c.size == c.view().size == 10
    pt.launch(queue, pt.make_workdiv(queue.device, 10), fill_small, c.view(), 0.0)
    assert int(to_host(queue, c).column("count")) == 10


@pytest.mark.parametrize("name", ["capacity", "layout", "device", "buffer", "nbytes"])
def test_collection_attributes_are_read_only(name):
    c = pt.PortableCollection(Small, 3, HOST, zero=True)
    before = getattr(c, name)
    with refused(AttributeError, f"collection.{name} cannot be assigned", untouched=[c.buffer]):
        setattr(c, name, Wide if name == "layout" else 10**6)
    assert getattr(c, name) is before


@every_backend
@pytest.mark.parametrize("n, shown", [(11, "the int 11"), (100000, "the int 100000"),
                                      (-1, "the int -1"), (2.0, "the float 2.0"),
                                      (True, "the bool True"), ("3", "the str '3'"),
                                      (None, "the NoneType None")])
def test_resize_refuses_what_the_capacity_cannot_hold(queue, n, shown):
    c = poisoned(queue)
    with refused(pt.ArgumentError, "argument 'n'", shown, "capacity 10", queue=queue,
                 untouched=[c.buffer]):
        c.resize(n)
    assert c.size == 10


@every_backend
def test_a_kernel_after_a_legal_resize_sees_the_new_size(queue):
    c = poisoned(queue, size=10, capacity=16)
    view = c.view()
    c.resize(np.int64(4))
    assert (c.size, view.size, c.const_view().size, c.capacity) == (4, 4, 4, 16)
    assert type(c.size) is int
    pt.launch(queue, pt.make_workdiv(queue.device, 16), fill_small, view, 1.0)
    host = to_host(queue, c)
    assert host.column("x").tolist() == [1.0, 2.0, 3.0, 4.0]
    assert int(host.column("count")) == 4
    raw = host_copy(queue, c.buffer)
    x = Small.geometry(16)["x"]
    assert (raw[x.offset + 4 * 4:x.end] == 0xFF).all()      # elements 4.. are untouched
    c.resize(16)
    pt.launch(queue, pt.make_workdiv(queue.device, 16), fill_small, view, 0.0)
    assert to_host(queue, c).column("idx").tolist() == list(range(16))


# -- 2. read-only views ------------------------------------------------------------------
@pytest.mark.parametrize("write", [
    lambda v: v.x.__setitem__(0, 5.0),
    lambda v: v.x.fill(5.0),
    lambda v: v.count.__setitem__((), 5),
    lambda v: np.add(v.idx, 1, out=v.idx),
], ids=["element", "fill", "scalar", "ufunc-out"])
def test_const_view_arrays_are_read_only_on_the_host(write):
    c = pt.PortableCollection(Small, 4, HOST, zero=True)
    with refused(ValueError, "read-only", untouched=[c.buffer]):
        write(c.const_view())
    c.view().x[0] = 5.0                       # the read-write view still writes
    assert c.column("x")[0] == 5.0


@every_backend
def test_const_view_member_arrays_on_every_backend(queue):
    c = pt.PortableCollection(Small, 4, queue.device, zero=True, queue=queue)
    x = c.const_view().x
    if not queue.backend.host_memory:                  # device arrays cannot be marked read-only
        assert not isinstance(x, np.ndarray) and x.shape == (4,)
    else:
        assert not x.flags.writeable and np.shares_memory(x, c.buffer)


@pytest.mark.parametrize("name, value, message", [
    ("x", np.zeros(3, np.float32), "view.x cannot be assigned; write its elements"),
    ("size", 3, "collection.resize(n)"),
    ("readonly", False, "view.readonly cannot be assigned"),
    ("collection", None, "view.collection cannot be assigned"),
    ("capacity", 100, "view.capacity cannot be assigned"),
    ("xx", 1, "view.xx cannot be assigned"),
])
def test_view_attributes_cannot_be_assigned(name, value, message):
    c = pt.PortableCollection(Small, 3, HOST, zero=True)
    for view in (c.view(), c.const_view()):
        readonly = view.readonly
        with refused(AttributeError, message, untouched=[c.buffer]):
            setattr(view, name, value)
        assert view.readonly is readonly and view.collection is c and view.size == 3


@pytest.mark.parametrize("typo, suggestion", [
    ("xx", "did you mean 'x'"), ("idz", "did you mean 'idx'"), ("Count", "did you mean 'count'"),
    ("sise", "did you mean the view's 'size'"), ("capacty", "did you mean the view's 'capacity'"),
])
def test_view_attribute_typos_suggest_near_names(typo, suggestion):
    view = pt.PortableCollection(Small, 3, HOST).view()
    with refused(AttributeError, f"no member {typo!r}", suggestion):
        getattr(view, typo)
    assert not hasattr(view, typo)


@pytest.mark.parametrize("args, named", [
    (("x", True), "argument 'collection'"), ((None, False), "argument 'collection'"),
    ((1, "yes"), "argument 'collection'"),
])
def test_views_are_made_from_collections(args, named):
    with refused(pt.ArgumentError, named, "collection.view()"):
        View(*args)


def test_view_readonly_flag_is_a_bool():
    c = pt.PortableCollection(Small, 3, HOST)
    with refused(pt.ArgumentError, "argument 'readonly'", "the str 'yes'"):
        View(c, "yes")


@pytest.mark.parametrize("name, shown", [(5, "the int 5"), (None, "the NoneType None"),
                                         (b"x", "the bytes b'x'"), (Small.x, "the Member")])
def test_column_names_are_strings(name, shown):
    c = pt.PortableCollection(Small, 3, HOST)
    with refused(pt.ArgumentError, "member name must be a str", shown, "members: x, idx"):
        c.column(name)


# -- 3. argument kinds --------------------------------------------------------------------
LAYOUT_CASES = [
    ("Small", "pass the layout class itself, not its name 'Small'"),
    (np.float32, "class Hits(pt.Layout)"),
    (None, "the NoneType None"),
    (pt.Layout, "pass a subclass that declares members"),
    (Small.x, "the Member"),
]


@every_backend
@pytest.mark.parametrize("layout, fix", LAYOUT_CASES,
                         ids=["name", "dtype", "none", "base", "member"])
def test_collection_layout_must_be_a_layout_class(queue, layout, fix):
    with refused(pt.ArgumentError, "argument 'layout'", fix):
        pt.PortableCollection(layout, 3, queue.device)


def test_a_layout_instance_is_refused_where_it_is_made():
    with refused(pt.ArgumentError, "layout Small", "pass Small itself", "not Small()"):
        pt.PortableCollection(Small(), 3, HOST)


COUNT_CASES = [(2.5, "the float 2.5"), (3.0, "the float 3.0"), (-1, "got -1"),
               (True, "the bool True"), ("3", "the str '3'"), (np.float32(2), "float32"),
               (np.bool_(True), "True")]


@every_backend
@pytest.mark.parametrize("size, shown", COUNT_CASES)
def test_collection_size_must_be_a_count(queue, size, shown):
    with refused(pt.ArgumentError, "argument 'size'", shown):
        pt.PortableCollection(Small, size, queue.device)


@every_backend
@pytest.mark.parametrize("capacity, shown", COUNT_CASES + [(2, "'capacity' (2) is smaller "
                                                               "than 'size' (3)")])
def test_collection_capacity_must_be_a_count_at_least_the_size(queue, capacity, shown):
    with refused(pt.ArgumentError, "argument 'capacity'", shown):
        pt.PortableCollection(Small, 3, queue.device, capacity=capacity)


@every_backend
@pytest.mark.parametrize("flag", ["zero", "pinned"])
@pytest.mark.parametrize("value, shown", [("yes", "the str 'yes'"), (1, "the int 1"),
                                          (None, "the NoneType None")])
def test_collection_flags_must_be_bools(queue, flag, value, shown):
    with refused(pt.ArgumentError, f"argument {flag!r}", shown, "True or False"):
        pt.PortableCollection(Small, 3, queue.device, **{flag: value})


@every_backend
def test_collection_device_given_as_a_name(queue):
    name = queue.backend.name
    with refused(pt.ArgumentError, "argument 'device'", f"the str {name!r}",
                 f"pt.get_device({name!r})"):
        pt.PortableCollection(Small, 3, name)


@every_backend
def test_collection_device_given_as_a_queue(queue):
    with refused(pt.ArgumentError, "argument 'device'", "queue.device"):
        pt.PortableCollection(Small, 3, queue)


@every_backend
def test_collection_queue_given_as_a_device(queue):
    with refused(pt.ArgumentError, "argument 'queue'", "pt.Queue(device)"):
        pt.PortableCollection(Small, 3, queue.device, zero=True, queue=queue.device)


@every_backend
def test_collection_queue_on_another_device(queue):
    other = other_device(queue)
    with refused(pt.ArgumentError, "argument 'queue'", f"runs on {queue.device}",
                 f"'device' is {other}"):
        pt.PortableCollection(Small, 3, other, zero=True, queue=queue)
    assert pt.PortableCollection(Small, 3, queue=queue).device is queue.device


@every_backend
@pytest.mark.parametrize("make_args, named", [
    (lambda q: (q.device,), ["argument 'queue'", "pt.Queue(device)"]),
    (lambda q: (q.backend.name,), ["argument 'queue'", "pt.Queue(pt.get_device("]),
    (lambda q: (None,), ["argument 'queue'"]),
    (lambda q: (q, q.backend.name), ["argument 'device'", "pt.get_device("]),
    (lambda q: (q, q), ["argument 'device'", "queue.device"]),
], ids=["device-as-queue", "name-as-queue", "none", "name-as-device", "queue-as-device"])
def test_to_checks_its_arguments(queue, make_args, named):
    c = poisoned(queue)
    with refused(pt.ArgumentError, *named, queue=queue, untouched=[c.buffer]):
        c.to(*make_args(queue))


@every_backend
@pytest.mark.parametrize("make_args, named", [
    (lambda q, src: (q, np.zeros(Small.byte_size(10), np.uint8)),
     ["argument 'source'", "the ndarray", "pt.memcpy"]),
    (lambda q, src: (q, src.view()), ["argument 'source'", "the View"]),
    (lambda q, src: (q, None), ["argument 'source'", "the NoneType None"]),
    (lambda q, src: (q.device, src), ["argument 'queue'", "pt.Queue(device)"]),
    (lambda q, src: (src, q), ["argument 'queue'", "the PortableCollection"]),
], ids=["array", "view", "none", "device-as-queue", "swapped"])
def test_copy_from_checks_its_arguments(queue, make_args, named):
    dst = poisoned(queue)
    src = pt.PortableCollection(Small, 10, queue.device, zero=True, queue=queue)
    with refused(pt.ArgumentError, *named, queue=queue, untouched=[dst.buffer]):
        dst.copy_from(*make_args(queue, src))


# -- 4. adopted buffers ----------------------------------------------------------------
@every_backend
@pytest.mark.parametrize("offset", [1, 8, 64])
def test_a_misaligned_buffer_is_refused(queue, offset):
    need = Small.byte_size(10)
    raw = aligned_buffer(queue.device, need + 256, 256)
    pt.memset(queue, raw, 0xFF)
    with refused(pt.ArgumentError, "argument 'buffer'", "alignment of 128 bytes",
                 queue=queue, untouched=[raw]):
        pt.PortableCollection(Small, 10, queue.device, buffer=raw[offset:offset + need],
                              zero=True, queue=queue)
    with refused(pt.ArgumentError, "alignment of 256 bytes", queue=queue, untouched=[raw]):
        pt.PortableCollection(Wide, 3, queue.device, buffer=raw[128:], zero=True, queue=queue)
    aligned = pt.PortableCollection(Small, 10, queue.device, buffer=raw[:need])
    assert aligned.nbytes == need


@every_backend
@pytest.mark.parametrize("make, named", [
    (lambda q, need: aligned_buffer(q.device, need - 1, 128),
     [f"has {Small.byte_size(10) - 1} bytes but Small needs {Small.byte_size(10)}"]),
    (lambda q, need: pt.alloc_buffer(q.device, need // 4, np.float32),
     ["must be a 1-D uint8 array, got float32"]),
    (lambda q, need: pt.alloc_buffer(q.device, (need, 2), np.uint8),
     ["1-D uint8 array, got uint8 of shape"]),
    (lambda q, need: [0] * need, ["does not live on", "pt.alloc_buffer"]),
    (lambda q, need: "buffer", ["does not live on", "the str 'buffer'"]),
], ids=["too-small", "float32", "2-d", "list", "str"])
def test_bad_buffers_are_refused(queue, make, named):
    need = Small.byte_size(10)
    buffer = make(queue, need)
    arrays = [] if isinstance(buffer, (list, str)) else [buffer]
    for array in arrays:
        pt.memset(queue, array, 0xAB)
    with refused(pt.ArgumentError, "argument 'buffer'", *named, queue=queue, untouched=arrays):
        pt.PortableCollection(Small, 10, queue.device, buffer=buffer, zero=True, queue=queue)


@pytest.mark.parametrize("make, named", [
    (lambda raw: raw[::2], ["must be contiguous"]),
    (lambda raw: np.frombuffer(raw.tobytes(), np.uint8), ["is read-only"]),
], ids=["strided", "read-only"])
def test_host_buffers_must_be_contiguous_and_writeable(make, named):
    raw = aligned_buffer(HOST, 2 * Small.byte_size(5), 128)
    raw[:] = 0xAB
    with refused(pt.ArgumentError, "argument 'buffer'", *named, untouched=[raw]):
        pt.PortableCollection(Small, 5, HOST, buffer=make(raw), zero=True)


def test_pinned_with_a_buffer_is_refused():
    raw = aligned_buffer(HOST, Small.byte_size(5), 128)
    with refused(pt.ArgumentError, "argument 'pinned'", "'buffer' is given"):
        pt.PortableCollection(Small, 5, HOST, buffer=raw, pinned=True)


@every_backend
def test_a_host_array_for_a_gpu_collection_is_refused(queue):
    if queue.backend.host_memory:
        pytest.skip("the CPU backends share host memory")
    raw = aligned_buffer(HOST, Small.byte_size(5), 128)
    with refused(pt.ArgumentError, "argument 'buffer'", f"does not live on {queue.device}"):
        pt.PortableCollection(Small, 5, queue.device, buffer=raw)


@every_backend
def test_new_buffers_start_on_any_power_of_two_alignment(queue):
    Huge = pt.Layout.define("Huge", [("e", pt.column(np.float64))], alignment=4096)
    c = pt.PortableCollection(Huge, 5, queue.device, zero=True, queue=queue)
    m = pt.MultiCollection([(Small, 3), (Huge, 5)], queue.device, zero=True, queue=queue)
    assert address(c.buffer) % 4096 == 0 and address(m.buffer) % 4096 == 0
    assert address(m[1].buffer) % 4096 == 0


# -- 5. multi-collections ---------------------------------------------------------------
@every_backend
@pytest.mark.parametrize("blocks, named", [
    ([], ["argument 'blocks' is empty"]),
    ("Small", ["argument 'blocks'", "the str 'Small'"]),
    (5, ["argument 'blocks'", "the int 5"]),
    ({Small: 3}, ["argument 'blocks'", "the dict"]),
    ([Small], ["blocks[0] must be a (layout, size) pair"]),
    ([(Small,)], ["blocks[0] must be a (layout, size) pair"]),
    ([(Small, 3), (Small, 3, 4)], ["blocks[1] must be a (layout, size) pair"]),
    ([("Small", 3)], ["'blocks[0][0]' must be a Layout class", "'Small'"]),
    ([(np.float32, 3)], ["'blocks[0][0]' must be a Layout class"]),
    ([(Small, 2.0)], ["'blocks[0][1]'", "the float 2.0"]),
    ([(Small, 3), (Wide, -1)], ["'blocks[1][1]'", "got -1"]),
    ([(Small, True)], ["'blocks[0][1]'", "the bool True"]),
    ([(3, Small)], ["'blocks[0][0]'", "the int 3"]),
], ids=["empty", "str", "int", "dict", "bare-layout", "one-tuple", "triple", "name",
        "dtype", "float-size", "negative-size", "bool-size", "swapped"])
def test_multicollection_blocks_are_checked(queue, blocks, named):
    with refused(pt.ArgumentError, *named):
        pt.MultiCollection(blocks, queue.device)


@every_backend
def test_multicollection_device_queue_and_zero_are_checked(queue):
    blocks = [(Small, 3)]
    with refused(pt.ArgumentError, "argument 'device'", "pt.get_device("):
        pt.MultiCollection(blocks, queue.backend.name)
    with refused(pt.ArgumentError, "argument 'zero'", "the str 'yes'"):
        pt.MultiCollection(blocks, queue.device, zero="yes")
    with refused(pt.ArgumentError, "argument 'queue'", "pt.Queue(device)"):
        pt.MultiCollection(blocks, queue.device, zero=True, queue=queue.device)
    with refused(pt.ArgumentError, "argument 'queue'", f"runs on {queue.device}"):
        pt.MultiCollection(blocks, other_device(queue), zero=True, queue=queue)


@pytest.mark.parametrize("name", ["buffer", "blocks", "device", "nbytes"])
def test_multicollection_attributes_are_read_only(name):
    m = pt.MultiCollection([(Small, 3)], HOST, zero=True)
    with refused(AttributeError, f"multi_collection.{name} cannot be assigned",
                 untouched=[m.buffer]):
        setattr(m, name, None)
    with refused(AttributeError, "collection.size cannot be assigned", untouched=[m.buffer]):
        m[0].size = 10**6


# -- 6. files -------------------------------------------------------------------------------
def saved(tmp_path, layout=Small, name="good.npz"):
    c = pt.PortableCollection(layout, 5, HOST, capacity=8, zero=True)
    c.column(layout.members()[0].name)[:] = 1
    path = tmp_path / name
    c.save(path)
    return path


def write_npz(path, **entries):
    np.savez(path, **entries)
    return path


def good_meta(**changes):
    meta = {"layout": "Small", "size": 5, "capacity": 8, "alignment": 128,
            "members": [[m.name, m.kind, m.dtype.str, m.rows, m.cols] for m in Small.members()]}
    meta.update(changes)
    return json.dumps(meta)


def corrupt_files():
    """(id, make(tmp_path) -> path, texts the error must hold)."""
    def truncated(tmp):
        data = saved(tmp).read_bytes()
        path = tmp / "truncated.npz"
        path.write_bytes(data[:len(data) // 2])
        return path

    def garbage(tmp):
        path = tmp / "garbage.npz"
        path.write_bytes(np.random.default_rng(1).bytes(4000))
        return path

    def empty(tmp):
        path = tmp / "empty.npz"
        path.write_bytes(b"")
        return path

    def pickled(tmp):
        path = tmp / "pickled.npz"
        path.write_bytes(pickle.dumps({"meta": 1, "buffer": 2}))
        return path

    def npy(tmp):
        path = tmp / "array.npy"
        np.save(path, np.zeros(10, np.uint8))
        return path

    def torch_file(tmp):
        torch = pytest.importorskip("torch")
        path = tmp / "tensor.npz"
        torch.save({"buffer": torch.zeros(10)}, path)
        return path

    def other_zip(tmp):
        path = tmp / "other.npz"
        with zipfile.ZipFile(path, "w") as z:
            z.writestr("readme.txt", "hello")
        return path

    buffer = np.zeros(Small.byte_size(8), np.uint8)
    return [
        ("truncated", truncated, ["damaged or truncated"]),
        ("garbage", garbage, ["not a NumPy .npz (zip) archive"]),
        ("empty", empty, ["the file is empty"]),
        ("pickle", pickled, ["a pickle", "never unpickles"]),
        ("npy", npy, ["a single NumPy array (.npy)"]),
        ("torch", torch_file, ["lacks the entries meta, buffer"]),
        ("other-zip", other_zip, ["lacks the entries meta, buffer"]),
        ("no-meta", lambda t: write_npz(t / "a.npz", buffer=buffer), ["lacks the entries meta"]),
        ("no-buffer", lambda t: write_npz(t / "a.npz", meta=good_meta()),
         ["lacks the entries buffer"]),
        ("pickled-meta", lambda t: write_npz(t / "a.npz", buffer=buffer,
                                             meta=np.array([{"a": 1}], dtype=object)),
         ["pickled Python objects"]),
        ("meta-not-json", lambda t: write_npz(t / "a.npz", buffer=buffer, meta="{size: 5"),
         ["not valid JSON"]),
        ("meta-not-text", lambda t: write_npz(t / "a.npz", buffer=buffer, meta=np.arange(3)),
         ["'meta' entry is int64", "not the JSON text"]),
        ("meta-list", lambda t: write_npz(t / "a.npz", buffer=buffer, meta="[1, 2]"),
         ["holds a JSON list"]),
        ("meta-lacks-keys", lambda t: write_npz(t / "a.npz", buffer=buffer,
                                                meta=json.dumps({"layout": "Small"})),
         ["lacks or garbles size, capacity, alignment, members"]),
        ("meta-bad-size", lambda t: write_npz(t / "a.npz", buffer=buffer,
                                              meta=good_meta(size="5")),
         ["lacks or garbles size"]),
        ("size-over-capacity", lambda t: write_npz(t / "a.npz", buffer=buffer,
                                                   meta=good_meta(size=9)),
         ["size 9 and capacity 8"]),
        ("short-buffer", lambda t: write_npz(t / "a.npz", buffer=buffer[:-1], meta=good_meta()),
         ["damaged", f"takes {Small.byte_size(8)} bytes"]),
        ("float-buffer", lambda t: write_npz(t / "a.npz", buffer=buffer.view(np.float32),
                                             meta=good_meta()),
         ["its buffer is float32"]),
        ("huge-capacity", lambda t: write_npz(t / "a.npz", buffer=buffer,
                                              meta=good_meta(capacity=10**15)),
         ["takes"]),
    ]


CORRUPT = corrupt_files()


@pytest.mark.parametrize("make, named", [c[1:] for c in CORRUPT], ids=[c[0] for c in CORRUPT])
def test_corrupt_or_foreign_files_are_refused(tmp_path, make, named):
    path = make(tmp_path)
    with refused(CollectionFileError, str(path), *named) as caught:
        pt.PortableCollection.load(path, Small)
    assert "allow_pickle" not in str(caught.value)


def test_a_file_of_another_layout_is_refused(tmp_path):
    path = saved(tmp_path, Wide)
    with refused(pt.LayoutError, str(path), "holds layout Wide", "differs from Small"):
        pt.PortableCollection.load(path, Small)


@pytest.mark.parametrize("name", ["missing.npz", "missing", "folder"])
def test_a_missing_file_is_refused(tmp_path, name):
    (tmp_path / "folder").mkdir()
    path = tmp_path / name
    with refused(FileNotFoundError, str(path), "collection.save(path)") as caught:
        pt.PortableCollection.load(path, Small)
    assert isinstance(caught.value, CollectionFileMissing)


@pytest.mark.parametrize("layout, named", [
    ("Small", ["argument 'layout'", "'Small'"]), (None, ["argument 'layout'"]),
    (pt.Layout, ["argument 'layout'"]),
], ids=["name", "none", "base"])
def test_load_needs_a_layout_class(tmp_path, layout, named):
    with refused(pt.ArgumentError, *named):
        pt.PortableCollection.load(saved(tmp_path), layout)


@pytest.mark.parametrize("path", [5, None, b"file.npz", ""])
def test_load_and_save_need_a_path(tmp_path, path):
    with refused(pt.ArgumentError, "argument 'path'"):
        pt.PortableCollection.load(path, Small)
    c = pt.PortableCollection(Small, 3, HOST, zero=True)
    with refused(pt.ArgumentError, "argument 'path'", untouched=[c.buffer]):
        c.save(path)


def test_save_into_a_missing_folder_is_refused(tmp_path):
    c = pt.PortableCollection(Small, 3, HOST, zero=True)
    path = tmp_path / "no" / "such" / "hits.npz"
    with refused(FileNotFoundError, str(path.parent), "does not exist", "mkdir"):
        c.save(path)
    assert not (tmp_path / "no").exists()


def test_save_onto_a_folder_is_refused(tmp_path):
    (tmp_path / "taken.npz").mkdir()
    c = pt.PortableCollection(Small, 3, HOST, zero=True)
    with refused(CollectionFileError, "taken.npz", "it is a folder"):
        c.save(tmp_path / "taken")


def test_load_reads_exactly_the_path_given_when_it_exists(tmp_path):
    path = saved(tmp_path)
    renamed = path.rename(tmp_path / "hits.data")
    assert pt.PortableCollection.load(renamed, Small).column("x").tolist() == [1.0] * 5
