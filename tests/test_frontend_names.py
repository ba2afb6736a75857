"""Globals and closures in kernels: closure constants and module globals (also those
defined after the kernel) are captured at the first compile, dotted paths through
modules resolve, device functions calling device functions are replaced by their
compiled versions, and SoA views lower through the layout's own geometry."""
import math

import numpy as np
import pytest

import portable as pt
from portable.frontend import ParsedFunction, parse_function
from portable.frontend.names import GlobalResolver, assigned, namespace_of
from portable.frontend.views import geometry_array
from portable.layout import numpy_views


def make_offset_kernel(offset):
    @pt.kernel
    def add_offset(acc, x, out):
        for i in acc.uniform_elements(x.size):
            out[i] = x[i] + offset + LATER * 0.5 + math.pi * np.float64(0.0)
    return add_offset


@pt.device_function
def cube(acc, v):
    return square_later(v) * v + acc.thread_idx * 0


@pt.kernel
def cubes(acc, x, out):
    for i in acc.uniform_elements(x.size):
        out[i] = cube(acc, x[i])


@pt.device_function
def square_later(v):
    return v * v


LATER = 4.0  # defined after the kernels that use it


@pytest.mark.parametrize("backend", ["cpu_serial"])
def test_closures_and_globals(queue):
    x = np.random.default_rng().random(9)
    offset = float(np.random.default_rng().integers(1, 100))
    out = np.full(9, np.nan)
    pt.launch(queue, pt.make_workdiv(queue.device, 9), make_offset_kernel(offset), x, out)
    np.testing.assert_allclose(out, x + offset + 2.0)


@pytest.mark.parametrize("backend", ["cpu_serial"])
def test_nested_device_functions(queue):
    x = np.random.default_rng().random(9)
    out = np.full(9, np.nan)
    pt.launch(queue, pt.make_workdiv(queue.device, 9), cubes, x, out)
    np.testing.assert_allclose(out, x ** 3)
    # each device function is compiled once for the backend and launch shape
    assert len(cube._compiled) == 1 and len(square_later._compiled) == 1


def test_global_resolver_replaces_only_what_it_maps():
    parsed: ParsedFunction = cube.parsed
    fdef = parsed.tree.body[0]
    resolver = GlobalResolver(namespace_of(parsed.func), set(parsed.params) | assigned(fdef),
                              lambda v: "compiled" if v is square_later else v)
    resolver.visit(fdef.__class__(**{f: getattr(fdef, f) for f in fdef._fields}))
    assert list(resolver.replacements.values()) == ["compiled"]
    assert next(iter(resolver.replacements)).endswith("square_later")


class Track(pt.Layout):
    q = pt.column(np.int32)
    p = pt.vector(np.float32, 3)
    cov = pt.matrix(np.float64, 2, 3)
    run = pt.scalar(np.int64)
    alignment = 64


@pt.kernel
def summarize(acc, t, out):
    for i in acc.uniform_elements(t.size):
        out[i] = (t.q[i] + t.p[i, 0] + 10 * t.p[i, 2] + 100 * t.cov[i, 1, 0]
                  + 1000 * t.cov[i, 0, 2] + t.run)


def test_geometry_is_the_layouts():
    for capacity in (0, 1, 17, 1000):
        geometry = Track.geometry(capacity)
        assert geometry_array(Track, capacity).tolist() == [
            v for g in geometry.values() for v in (g.offset, g.pitch_bytes)]


@pytest.mark.parametrize("backend", ["cpu_serial"])
def test_views_read_every_member_kind_where_the_layout_puts_it(queue):
    size, capacity = 13, 40  # offsets follow the capacity, loops the size
    tracks = pt.PortableCollection(Track, size, queue.device, capacity=capacity)
    rng = np.random.default_rng()
    tracks.buffer[:] = rng.integers(0, 256, tracks.buffer.size, dtype=np.uint8)
    views = numpy_views(Track, tracks.buffer, capacity)
    views["p"][:] = rng.random(views["p"].shape)
    views["cov"][:] = rng.random(views["cov"].shape)
    views["run"][...] = 7
    out = np.full(size, np.nan)
    pt.launch(queue, pt.make_workdiv(queue.device, size), summarize, tracks.const_view(), out)
    v = {name: array[:size] if array.ndim else array for name, array in views.items()}
    want = (v["q"] + v["p"][:, 0, 0] + 10 * v["p"][:, 2, 0] + 100 * v["cov"][:, 1, 0]
            + 1000 * v["cov"][:, 0, 2] + 7)
    np.testing.assert_allclose(out, want, rtol=1e-6)


def test_parse_function_keeps_device_functions_plain():
    def plain(x):
        return x + 1
    parsed = parse_function(plain, needs_acc=False)
    assert parsed.acc is None and parsed.kind == "device function"
