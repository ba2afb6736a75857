"""Bad input to the ml bridge: models and model files, queues, metadata, rows,
batches, the model's outputs and their dtypes.

Each case asserts the exception's type, that the message names the offending
argument or value, and that the output blocks given are untouched.
"""
import zipfile

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import ml  # noqa: E402
import portable as pt  # noqa: E402
from portable.testing import every_backend, host_copy, is_simulated  # noqa: E402

from bad_inputs import refused  # noqa: E402

# TorchScript is deprecated in torch 2.13 but still a supported input
pytestmark = pytest.mark.filterwarnings(r"ignore:`torch\.jit\.:DeprecationWarning")
HOST = pt.get_device("cpu_serial")
ROWS = 40
#: words no error about a file may show: NumPy's and zipfile's internals
RAW_INTERNALS = ("allow_pickle", "BadZipFile", "zip file", "central directory")


class Rows(pt.Layout):
    x = pt.column(np.float32)
    y = pt.column(np.float32)
    z = pt.column(np.float32)
    s0 = pt.column(np.float32)
    s1 = pt.column(np.float32)
    lab = pt.column(np.int32)
    d = pt.column(np.float64)
    run = pt.scalar(np.int64)


def needs_torch_device(queue):
    if is_simulated(queue.backend.name):
        pytest.skip("no torch CUDA in Numba's CUDA simulator")
    if not queue.backend.host_memory and not torch.cuda.is_available():
        pytest.skip("torch has no CUDA")


def needs_gpu_backend(queue):
    if queue.backend.host_memory:
        pytest.skip("needs a GPU backend (or the CUDA simulator)")


def poisoned_rows(queue, size=ROWS, device=None):
    """A collection with every byte 0xFF (NaN floats, -1 integers)."""
    c = pt.PortableCollection(Rows, size, device or queue.device)
    pt.memset(queue, c.buffer, 0xFF)
    queue.synchronize()
    return c


def rows_meta(collection, *outputs, out_collection=None):
    """Inputs (x, y, z) and the output blocks ``(name, *members)``."""
    inputs = ml.SoAMetadata(collection)
    inputs.append_block("features", "x", "y", "z")
    out = ml.SoAMetadata(out_collection or collection)
    for name, *members in outputs:
        out.append_block(name, *members)
    return ml.ModelMetadata(inputs, out)


class Returns(torch.nn.Module):
    """A model whose forward returns ``make(x)``."""

    def __init__(self, make):
        super().__init__()
        self.make = make

    def forward(self, x):
        return self.make(x)


def model_on(queue, make, **options):
    return ml.Model(Returns(make), **options).to(queue)


def linear():
    return torch.nn.Linear(3, 2)


# -- models given as objects --------------------------------------------------------------
@pytest.mark.parametrize("source,fix", [
    (lambda x: x, "wrap it in a torch.nn.Module"),
    (torch.nn.Linear, "ml.Model(Linear())"),
    (torch.nn.Linear(3, 2).state_dict(), "load_state_dict"),
    (42, "torch.jit.save"),
    (None, "torch.jit.save"),
    (b"model.pt", "torch.jit.save"),
    (np.zeros(3), "torch.jit.save"),
])
def test_model_source_of_the_wrong_kind(source, fix):
    with refused(pt.ArgumentError, "'source'", type(source).__name__, fix):
        ml.Model(source)


@pytest.mark.parametrize("options,named", [
    ({"deploy": "yes"}, "'deploy'"), ({"deploy": None}, "'deploy'"),
    ({"cast": "unsafe"}, "'cast'"), ({"cast": None}, "'cast'")])
def test_model_options_of_the_wrong_kind(options, named):
    with refused(pt.ArgumentError, named, repr(next(iter(options.values())))):
        ml.Model(linear(), **options)


# -- model files --------------------------------------------------------------------------
def script_file(tmp_path):
    path = tmp_path / "model.ts"
    torch.jit.save(torch.jit.script(linear()), str(path))
    return path


def export_file(tmp_path):
    path = tmp_path / "model.pt2"
    torch.export.save(torch.export.export(linear(), (torch.randn(4, 3),)), str(path))
    return path


def cut_short(path):
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])
    return path


def flip_a_byte(path):
    """One byte of a member's data changed, the archive's directory intact."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        member = next(i for i in archive.infolist() if i.filename.endswith("data.pkl"))
    data[member.header_offset + 30 + len(member.filename) + member.file_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return path


def rewritten(path, suffix, garbage=b"{not json"):
    """The archive again, each .json member replaced by ``garbage`` (checksums right)."""
    out = path.with_name("rewritten" + suffix)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, garbage if info.filename.endswith(".json") else src.read(info))
    return out


def written(path, data):
    path.write_bytes(data)
    return path


def zip_of(path, names):
    with zipfile.ZipFile(path, "w") as archive:
        for name in names:
            archive.writestr(name, b"\0" * 4096)
    return path


def legacy_pickle(path):
    torch.save(linear().state_dict(), str(path), _use_new_zipfile_serialization=False)
    return path


def save_state_dict(path):
    torch.save(linear().state_dict(), str(path))
    return path


def save_whole_module(path):
    torch.save(linear(), str(path))
    return path


def save_npz(path):
    np.savez(path, weight=np.zeros((2, 3)), bias=np.zeros(2))
    return path


def save_npy(path):
    np.save(path, np.zeros(3))
    return path


# name -> (make the file under tmp_path, words the message must hold)
BAD_FILES = {
    "missing": (lambda p: p / "nowhere" / "model.pt", ["no model file"]),
    "directory": (lambda p: p, ["is a directory"]),
    "empty": (lambda p: written(p / "m.pt", b""), ["is empty"]),
    "garbage": (lambda p: written(p / "m.pt", b"\x13\x37garbage" * 100), ["not a saved model"]),
    "text": (lambda p: written(p / "m.pt2", b"hello"), ["not a saved model"]),
    "torchscript cut short": (lambda p: cut_short(script_file(p)), ["cut short"]),
    "export cut short": (lambda p: cut_short(export_file(p)), ["cut short"]),
    "aoti package cut short": (
        lambda p: cut_short(zip_of(p / "m.pt2", ["m/aotinductor/model/m.so",
                                                 "m/archive_format"])), ["cut short"]),
    "torchscript with a flipped byte": (lambda p: flip_a_byte(script_file(p)),
                                        ["corrupt", "data.pkl"]),
    "export with garbage inside": (lambda p: rewritten(export_file(p), ".pt2"),
                                   ["torch.export program cannot be loaded"]),
    "state_dict": (lambda p: save_state_dict(p / "weights.pt"),
                   ["state_dict", "2 entries: weight, bias", "load_state_dict"]),
    "whole module pickled": (lambda p: save_whole_module(p / "m.pt"),
                             ["torch.save", "weights_only=False"]),
    "legacy pickle": (lambda p: legacy_pickle(p / "m.pt"), ["a pickle"]),
    "npz": (lambda p: save_npz(p / "m.npz"), ["NumPy .npz", "weight, bias"]),
    "npy": (lambda p: save_npy(p / "m.npy"), ["NumPy .npy"]),
    "other zip": (lambda p: zip_of(p / "m.pt", ["readme.txt"]), ["not a saved model"]),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_model_file_that_is_not_a_model(case, tmp_path):
    make, words = BAD_FILES[case]
    path = make(tmp_path)
    with refused(ml.ModelFileError, str(path), *words) as caught:
        ml.Model(path)
    assert isinstance(caught.value, pt.PortableError)
    for raw in RAW_INTERNALS:
        assert raw not in str(caught.value), str(caught.value)


def test_aoti_package_that_does_not_load_is_named(tmp_path, monkeypatch):
    """An AOTInductor package is loaded on the device it runs on: a failure there
    names the package too, before anything is written."""
    path = zip_of(tmp_path / "m.pt2", ["m/aotinductor/model/m.so", "m/archive_format"])
    model = ml.Model(path).to(pt.Queue(HOST))
    assert model.kind == "aoti"

    def fails(source):
        raise RuntimeError("internal loader failure")

    monkeypatch.setattr(torch._inductor, "aoti_load_package", fails)
    queue = pt.Queue(HOST)
    c = poisoned_rows(queue)
    with refused(ml.ModelFileError, str(path), "AOTInductor package cannot be loaded",
                 untouched=[c.buffer]):
        model(rows_meta(c, ("score", "s0", "s1")))


# -- queues -----------------------------------------------------------------------------
@pytest.mark.parametrize("queue_arg,fix", [
    ("cpu_serial", "pt.Queue(pt.get_device('cpu_serial'))"), (HOST, "pt.Queue(device)"),
    (None, "pt.Queue(pt.get_device(backend_name))"), (0, "pt.Queue")])
def test_model_to_needs_a_queue(queue_arg, fix):
    with refused(pt.ArgumentError, "'queue'", repr(queue_arg), fix):
        ml.Model(linear()).to(queue_arg)


@every_backend
def test_model_without_a_queue(queue):
    c = poisoned_rows(queue)
    with refused(ml.MetadataError, "model.to(queue)", queue=queue, untouched=[c.buffer]):
        ml.Model(linear())(rows_meta(c, ("score", "s0", "s1")))


# -- metadata ---------------------------------------------------------------------------
@every_backend
def test_metadata_of_something_that_is_not_a_collection(queue):
    multi = pt.MultiCollection([(Rows, 4)], queue.device)
    for value, fix in ((np.zeros(3), "pt.PortableCollection(layout"),
                       (None, "pt.PortableCollection(layout"), (multi, "multi[0]"),
                       (multi[0].view(), "not its view"), (Rows, "pt.PortableCollection(layout")):
        with refused(pt.ArgumentError, "'collection'", type(value).__name__, fix):
            ml.SoAMetadata(value)


@every_backend
def test_model_metadata_needs_soa_metadata(queue):
    c = poisoned_rows(queue)
    meta = ml.SoAMetadata(c)
    with refused(pt.ArgumentError, "'inputs'", "PortableCollection", "ml.SoAMetadata(inputs)"):
        ml.ModelMetadata(c, meta)
    with refused(pt.ArgumentError, "'outputs'", "NoneType"):
        ml.ModelMetadata(meta, None)


@every_backend
@pytest.mark.parametrize("args,kwargs,error,named", [
    ((3, "x"), {}, pt.ArgumentError, ["'name'", "3"]),
    (("", "x"), {}, pt.ArgumentError, ["'name'", "''"]),
    (("b", ["x", "y"]), {}, pt.ArgumentError, ["block 'b'", "list", "*members"]),
    (("b", "x"), {"copy": "no"}, pt.ArgumentError, ["'copy'", "'no'"]),
    (("b", "s00"), {}, ml.MetadataError, ["'s00'", "did you mean s0"]),
    (("b", "X"), {}, ml.MetadataError, ["'X'", "has no member"]),
    (("b", "x", "x"), {}, ml.MetadataError, ["block 'b'", "x", "more than once"]),
])
def test_append_block_refuses(queue, args, kwargs, error, named):
    meta = ml.SoAMetadata(poisoned_rows(queue))
    with refused(error, *named):
        meta.append_block(*args, **kwargs)
    assert meta.order == [] and meta.blocks == {}


@every_backend
def test_unknown_block_and_order(queue):
    meta = rows_meta(poisoned_rows(queue)).inputs
    with refused(ml.MetadataError, "'featurs'", "did you mean features"):
        meta.tensor("featurs")
    with refused(ml.MetadataError, "None", "declared: features"):
        meta.tensor(None)
    with refused(pt.ArgumentError, "'names'", "'features'"):
        meta.change_order("features")
    assert meta.order == ["features"]


ROW_RANGES = [
    ((2.5, None), "'start'"), ((True, None), "'start'"), ((-1, None), "'start'"),
    (("0", None), "'start'"), ((0, 40.0), "'stop'"), ((0, ROWS + 1), "'stop'"),
    ((32, 16), "'stop'"), ((64, None), "'start'"), ((0, np.float32(3)), "'stop'"),
]


@every_backend
@pytest.mark.parametrize("rows,named", ROW_RANGES)
def test_tensor_rows_out_of_range_or_not_integers(queue, rows, named):
    meta = rows_meta(poisoned_rows(queue)).inputs
    with refused(pt.ArgumentError, "SoAMetadata.tensor", named):
        meta.tensor("features", *rows)
    with refused(pt.ArgumentError, "SoAMetadata.tensors", named):
        meta.tensors(*rows)


@every_backend
@pytest.mark.parametrize("batch_size", [2.5, 0, -3, True, "8", None, 8.0])
def test_batches_need_a_positive_integer(queue, batch_size):
    meta = rows_meta(poisoned_rows(queue), ("score", "s0", "s1"))
    for where in (meta.inputs, meta):
        with refused(pt.ArgumentError, "'batch_size'", repr(batch_size)
                     if not isinstance(batch_size, int) or batch_size is True else "got"):
            where.batches(batch_size)


@every_backend
def test_simulated_gpu_memory_is_out_of_torch_reach(queue):
    if not is_simulated(queue.backend.name):
        pytest.skip("the CUDA simulator's memory only")
    meta = rows_meta(poisoned_rows(queue)).inputs
    with refused(pt.PortableError, "cuda:0", "simulator"):
        meta.tensor("features")


# -- model calls: arguments ------------------------------------------------------------
@every_backend
def test_model_called_with_soa_metadata_or_nothing_useful(queue):
    c = poisoned_rows(queue)
    meta = rows_meta(c, ("score", "s0", "s1"))
    model = ml.Model(linear()).to(queue)
    for value, named in ((meta.inputs, "SoAMetadata"), (None, "NoneType"), (c, "Rows")):
        with refused(pt.ArgumentError, "'meta'", named, "ml.ModelMetadata(inputs, outputs)",
                     queue=queue, untouched=[c.buffer]):
            model(value)


@every_backend
@pytest.mark.parametrize("rows,named", ROW_RANGES)
def test_model_rows_out_of_range_or_not_integers(queue, rows, named):
    c = poisoned_rows(queue)
    with refused(pt.ArgumentError, "Model.forward", named, queue=queue, untouched=[c.buffer]):
        ml.Model(linear()).to(queue)(rows_meta(c, ("score", "s0", "s1")), *rows)


@every_backend
def test_model_refuses_output_blocks_it_cannot_fill(queue):
    c = poisoned_rows(queue)
    model = ml.Model(linear()).to(queue)
    cases = [
        ((), "meta.outputs declares no blocks"),
        ((("run", "run"),), "['run'] hold a scalar"),
        ((("a", "s0", "s1"), ("b", "s1")), "'a' and 'b' both cover member 's1'"),
    ]
    for outputs, named in cases:
        with refused(ml.MetadataError, named, queue=queue, untouched=[c.buffer]):
            model(rows_meta(c, *outputs))
    other = poisoned_rows(queue, ROWS - 1)
    with refused(ml.MetadataError, f"inputs hold {ROWS} rows and the outputs {ROWS - 1}",
                 queue=queue, untouched=[c.buffer, other.buffer]):
        model(rows_meta(c, ("score", "s0", "s1"), out_collection=other))


@every_backend
def test_collections_on_another_device_than_the_queue(queue):
    """A model on the CPU given GPU collections and the other way round; inputs
    and outputs on different devices."""
    needs_gpu_backend(queue)
    host_queue = pt.Queue(HOST)
    on_gpu, on_host = poisoned_rows(queue), poisoned_rows(host_queue)
    cases = [
        (host_queue, rows_meta(on_gpu, ("score", "s0", "s1")), "inputs", str(queue.device)),
        (queue, rows_meta(on_host, ("score", "s0", "s1")), "inputs", "cpu_serial:0"),
        (queue, rows_meta(on_gpu, ("score", "s0", "s1"), out_collection=on_host), "outputs",
         "cpu_serial:0"),
    ]
    for model_queue, meta, side, home in cases:
        with refused(ml.MetadataError, f"meta.{side}", home, "collection.to(queue)",
                     queue=queue, untouched=[on_gpu.buffer]):
            ml.Model(linear()).to(model_queue)(meta)
        assert (on_host.buffer.view(np.uint8) == 0xFF).all()


# -- model calls: what the model returns --------------------------------------------------
class TwoHeads(torch.nn.Module):
    """score fits; the int head is int64 (lossy into the int32 block)."""

    def forward(self, x):
        return x[:, :2] + 1, x[:, :1].long()


def three(x):
    return x[:, :2], x[:, :1], x[:, :1]


# name -> (model's forward, output blocks, options, words the message must hold)
BAD_OUTPUTS = {
    "None": (lambda x: None, [("score", "s0", "s1")], {}, ["returned None"]),
    "a NumPy array": (lambda x: np.zeros((x.shape[0], 2), np.float32), [("score", "s0", "s1")],
                      {}, ["output 'score'", "ndarray of shape (40, 2)", "torch.from_numpy"]),
    "a list in a tuple": (lambda x: ([x[:, :2]],), [("score", "s0", "s1")], {},
                          ["output 'score'", "a list of 1 item(s)"]),
    "too many outputs": (three, [("score", "s0", "s1"), ("lab", "lab")], {},
                         ["3 output(s)", "2 output block(s)"]),
    "too few outputs": (lambda x: (x[:, :2],), [("score", "s0", "s1"), ("lab", "lab")], {},
                        ["1 output(s)", "2 output block(s)"]),
    "rows short": (lambda x: x[:-1, :2], [("score", "s0", "s1")], {},
                   ["output 'score'", f"({ROWS - 1}, 2)", f"({ROWS}, 2)"]),
    "columns wide": (lambda x: x, [("score", "s0", "s1")], {},
                     ["output 'score'", f"({ROWS}, 3)", f"({ROWS}, 2)"]),
    "one dimension": (lambda x: x[:, 0], [("score", "s0")], {}, [f"({ROWS},)", f"({ROWS}, 1)"]),
    "on another device": (lambda x: torch.empty((x.shape[0], 2), device="meta"),
                          [("score", "s0", "s1")], {}, ["output 'score'", "meta"]),
    "int64 into int32": (lambda x: x[:, :1].long(), [("lab", "lab")], {},
                         ["output 'lab'", "torch.int64", "torch.int32", "cast='same_kind'"]),
    "float64 into float32": (lambda x: x[:, :2].double(), [("score", "s0", "s1")], {},
                             ["output 'score'", "torch.float64", "torch.float32",
                              "cast='same_kind'"]),
    "float into int": (lambda x: x[:, :1], [("lab", "lab")], {},
                       ["output 'lab'", "torch.float32", "torch.int32"]),
    "float into int, same_kind": (lambda x: x[:, :1], [("lab", "lab")], {"cast": "same_kind"},
                                  ["output 'lab'", "cast='same_kind'"]),
    "int32 into float32": (lambda x: x[:, :2].int(), [("score", "s0", "s1")], {},
                           ["torch.int32", "torch.float32"]),
    "bfloat16 into int32": (lambda x: x[:, :1].bfloat16(), [("lab", "lab")], {"cast": "same_kind"},
                            ["torch.bfloat16", "torch.int32"]),
    "second output lossy": (TwoHeads().forward, [("score", "s0", "s1"), ("lab", "lab")], {},
                            ["output 'lab'", "torch.int64"]),
    "dict with a misspelt key": (lambda x: {"scor": x[:, :2]}, [("score", "s0", "s1")], {},
                                 ["'scor'", "meant to be 'score'"]),
}


@every_backend
@pytest.mark.parametrize("case", list(BAD_OUTPUTS))
def test_model_output_that_does_not_fit(queue, case):
    """Refused before any block is written, the first output too."""
    needs_torch_device(queue)
    make, outputs, options, words = BAD_OUTPUTS[case]
    c = poisoned_rows(queue)
    model = model_on(queue, make, **options)
    with refused(ml.MetadataError, *words, queue=queue, untouched=[c.buffer]):
        model(rows_meta(c, *outputs))


@pytest.mark.parametrize("backend", ["cpu_serial", "cpu_threads"])
def test_lossy_output_on_a_non_blocking_queue_reaches_synchronize(backend):
    queue = pt.Queue(pt.get_device(backend), blocking=False)
    c = poisoned_rows(queue)
    model_on(queue, lambda x: x[:, :1].long())(rows_meta(c, ("lab", "lab")))
    with refused(ml.MetadataError, "output 'lab'", "torch.int64", untouched=[c.buffer]):
        queue.synchronize()


# -- what is accepted -----------------------------------------------------------------
def filled_rows(queue):
    host = pt.PortableCollection(Rows, ROWS, HOST, zero=True)
    for i, name in enumerate("xyz"):
        host.column(name)[:] = np.arange(ROWS) + 100 * i + 0.5
    dev = host.to(queue)
    queue.synchronize()
    return host, dev


@every_backend
def test_widening_and_opted_in_narrowing_are_written(queue):
    needs_torch_device(queue)
    host, dev = filled_rows(queue)
    model_on(queue, lambda x: x[:, :1])(rows_meta(dev, ("d", "d")))     # float32 -> float64
    model_on(queue, lambda x: x[:, 1:].double(), cast="same_kind")(
        rows_meta(dev, ("score", "s0", "s1")))                             # float64 -> float32
    model_on(queue, lambda x: x[:, :1].short())(rows_meta(dev, ("lab", "lab")))  # int16 -> int32
    d, s0, lab = (host_copy(queue, dev.column(name)) for name in ("d", "s0", "lab"))
    np.testing.assert_array_equal(d, host.column("x"))
    np.testing.assert_array_equal(s0, host.column("y"))
    np.testing.assert_array_equal(lab, host.column("x").astype(np.int32))


@every_backend
def test_outputs_that_alias_their_blocks_are_written_as_computed(queue):
    """A model returning a view of its inputs that overlaps an output block: every
    value written is the one the model gave, not one already overwritten."""
    needs_torch_device(queue)
    host, dev = filled_rows(queue)
    inputs, outputs = ml.SoAMetadata(dev), ml.SoAMetadata(dev)
    inputs.append_block("features", "x", "y", "z")
    outputs.append_block("yz", "y", "z")
    model_on(queue, lambda x: x[:, :2])(ml.ModelMetadata(inputs, outputs))   # (x, y) -> (y, z)
    np.testing.assert_array_equal(host_copy(queue, dev.column("y")), host.column("x"))
    np.testing.assert_array_equal(host_copy(queue, dev.column("z")), host.column("y"))


# -- aot_compile and set_threads -------------------------------------------------------
@pytest.mark.parametrize("args,kwargs,named", [
    ((lambda x: x, (torch.randn(4, 3),)), {}, ["'module'", "function"]),
    ((torch.nn.Linear(3, 2), torch.randn(4, 3)), {}, ["'example_inputs'", "(tensor,)"]),
    ((torch.nn.Linear(3, 2), ()), {}, ["'example_inputs'", "()"]),
    ((torch.nn.Linear(3, 2), ([1.0, 2.0, 3.0],)), {}, ["'example_inputs'"]),
    ((torch.nn.Linear(3, 2), (torch.randn(4, 3),)), {"device": "gpu"}, ["'device'", "'gpu'"]),
    ((torch.nn.Linear(3, 2), (torch.randn(4, 3),)), {"device": HOST}, ["'device'", "Device"]),
    ((torch.nn.Linear(3, 2), (torch.randn(4, 3),)), {"compiler": 12}, ["'compiler'", "12"]),
])
def test_aot_compile_refuses(args, kwargs, named, tmp_path):
    path = tmp_path / "m.pt2"
    with refused(pt.ArgumentError, *named):
        ml.aot_compile(*args, path, **kwargs)
    assert not path.exists()


def test_aot_compile_for_cuda_without_cuda(tmp_path):
    if torch.cuda.is_available():
        pytest.skip("torch sees a CUDA GPU here")
    with refused(pt.ArgumentError, "'device'", "'cuda'", "no CUDA GPU"):
        ml.aot_compile(linear(), (torch.randn(4, 3),), tmp_path / "m.pt2", device="cuda")
    assert not (tmp_path / "m.pt2").exists()


def test_aot_compile_into_a_missing_folder(tmp_path):
    path = tmp_path / "nowhere" / "m.pt2"
    with refused(pt.ArgumentError, "'path'", str(path.parent)):
        ml.aot_compile(linear(), (torch.randn(4, 3),), path)
    with refused(pt.ArgumentError, "'path'", "None"):
        ml.aot_compile(linear(), (torch.randn(4, 3),), None)


@pytest.mark.parametrize("args,named", [
    ((0,), "'intra'"), ((1.5,), "'intra'"), ((True,), "'intra'"), ((1, -1), "'inter'"),
    ((1, "2"), "'inter'")])
def test_set_threads_needs_positive_counts(args, named):
    before = torch.get_num_threads()
    with refused(pt.ArgumentError, "ml.set_threads", named):
        ml.set_threads(*args)
    assert torch.get_num_threads() == before


def test_errors_keep_their_families():
    """Code that catches the broad classes keeps working."""
    assert issubclass(ml.ModelFileError, ml.MetadataError)
    assert issubclass(ml.MetadataError, pt.PortableError)
    assert issubclass(pt.ArgumentError, TypeError) and issubclass(pt.ArgumentError, ValueError)

