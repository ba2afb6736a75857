"""Bad layout declarations: each is refused when the layout is declared, with an
error naming the layout, the member or value, and the fix."""
import numpy as np
import pytest

import portable as pt
from portable.collection import MultiCollection, PortableCollection, View
from portable.layout import VIEW_ATTRIBUTES, Layout, LayoutError, column, matrix, scalar, vector

from bad_inputs import refused


class Base(Layout):
    x = column(np.float32)


# -- member names that views and collections would hide --------------------------------
@pytest.mark.parametrize("name", sorted(VIEW_ATTRIBUTES - {"table"}))
def test_names_taken_by_views_and_collections_are_refused(name):
    with refused(LayoutError, f"member name {name!r} is taken by views and collections",
                 "rename the member"):
        Layout.define("Bad", [(name, column(np.float32))])
    with refused(LayoutError, f"Bad: member name {name!r}"):
        type("Bad", (Layout,), {name: column(np.float32)})


def test_every_public_attribute_of_views_and_collections_is_reserved():
    for kind in (View, PortableCollection):
        public = {n for n in dir(kind) if not n.startswith("_")}
        assert public <= VIEW_ATTRIBUTES, public - VIEW_ATTRIBUTES


# -- class-body entries that are not declarations ------------------------------------------
@pytest.mark.parametrize("value, named", [
    ("float32", ["Bad.x = 'float32' is not a member", "x = column(np.float32)"]),
    ("hits", ["Bad.x = 'hits' is not a member", "starting with '_'"]),
    (np.float32, ["Bad.x = np.float32 is not a member", "column(np.float32)"]),
    (np.dtype("int16"), ["Bad.x = np.dtype('int16') is not a member"]),
    (float, ["Bad.x = float is not a member", "column(float)"]),
    (bool, ["Bad.x = bool is not a member"]),
    (column, ["Bad.x = column is not a member; call it: x = column(np.float32)"]),
    (vector, ["call it: x = vector(np.float32, R)"]),
    ((column(np.float32),), ["Bad.x is a tuple of declarations", "trailing comma"]),
    ([column(np.float32), column(np.int8)], ["Bad.x is a list of declarations"]),
    (Base.x, ["is a member of another layout", "x = <Layout>.x.spec"]),
], ids=["dtype-name", "string", "numpy-type", "dtype", "python-type", "bool-type",
        "uncalled-column", "uncalled-vector", "trailing-comma", "list", "foreign-member"])
def test_misdeclared_class_body_entries_are_refused(value, named):
    with refused(LayoutError, *named):
        type("Bad", (Layout,), {"x": value, "y": column(np.int32)})


def test_functional_form_refuses_the_same_entries():
    with refused(LayoutError, "Bad.x = 'float32' is not a member"):
        Layout.define("Bad", [("x", "float32")])
    with refused(LayoutError, "Bad.x is a tuple of declarations"):
        Layout.define("Bad", {"x": (column(np.float32),)})


@pytest.mark.parametrize("members, named", [
    ("x", ["members must be (name, declaration) pairs", "the str 'x'"]),
    (5, ["the int 5"]),
    (None, ["the NoneType None"]),
])
def test_functional_form_needs_pairs(members, named):
    with refused(LayoutError, *named):
        Layout.define("Bad", members)


def test_ordinary_class_body_entries_are_kept():
    class Fine(Layout):
        x = column(np.float32)
        _note = "a private constant"
        __doc__ = "documented"
        limit = 3

        def helper(self):
            return 1

        @property
        def prop(self):
            return 2

        @staticmethod
        def make():
            return 3

    assert [m.name for m in Fine.members()] == ["x"] and Fine.limit == 3
    assert Fine._note == "a private constant" and Fine.make() == 3


# -- layouts are classes --------------------------------------------------------------
def test_a_layout_is_never_instantiated():
    with refused(pt.ArgumentError, "layout Base is used as a class", "pass Base itself"):
        Base()
    with refused(TypeError, "not Base()"):
        Base(3)


@pytest.mark.parametrize("name, shown", [(3, "the int 3"), (None, "the NoneType None"),
                                         (Base.x, "the Member")])
def test_member_names_are_strings(name, shown):
    for ask in (Base.member, lambda n: Base.offset(n, 4), lambda n: Base.pitch(n, 4)):
        with refused(pt.ArgumentError, "a member name must be a str", shown, "members: x"):
            ask(name)


# -- dtypes ----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype, named", [
    (object, ["dtype object is not supported", "supported item types: bool"]),
    ("U5", ["dtype <U5 is not supported"]),
    (str, ["is not supported"]),
    ("S3", ["dtype |S3 is not supported"]),
    ("f4,i4", ["is not supported"]),
    (np.dtype((np.float32, 3)), ["sub-array", "vector(float32, R)"]),
    ("M8[s]", ["dtype datetime64[s] is not supported"]),
    ("m8", ["timedelta64"]),
    (">f4", ["not in native byte order; use float32"]),
    (np.dtype("<i8").newbyteorder(">"), ["not in native byte order; use int64"]),
    (np.longdouble, ["is not supported"]),
    ("nonsense", ["'nonsense' is not a NumPy dtype"]),
    (None, ["no dtype given"]),
    (np.zeros(3, np.float32), ["(ndarray) is not a dtype", "np.float32"]),
    (np.float32(0), ["(float32) is not a dtype"]),
    (5, ["5 (int) is not a dtype"]),
], ids=["object", "unicode", "str", "bytes", "structured", "sub-array", "datetime",
        "timedelta", "big-endian", "swapped", "longdouble", "unknown-name", "none", "array",
        "scalar-value", "int-value"])
def test_bad_dtypes_are_refused(dtype, named):
    for declare in (column, scalar, lambda d: vector(d, 2), lambda d: matrix(d, 2, 2)):
        with refused(LayoutError, "Bad.m", *named):
            Layout.define("Bad", [("m", declare(dtype))])


def test_bool_and_python_number_types_are_supported():
    L = Layout.define("L", [("flag", column(bool)), ("n", column(int)), ("f", scalar(float)),
                            ("z", column(complex)), ("b", column(np.bool_))])
    assert [str(m.dtype) for m in L.members()] == ["bool", "int64", "float64", "complex128",
                                                   "bool"]


# -- shapes and alignment ---------------------------------------------------------------
@pytest.mark.parametrize("spec, named", [
    (vector(np.float32, 0), ["rows must be a positive integer, got 0"]),
    (vector(np.float32, -2), ["rows must be a positive integer, got -2"]),
    (vector(np.float32, 3.0), ["rows must be a positive integer, got 3.0"]),
    (vector(np.float32, True), ["rows must be a positive integer, got True"]),
    (vector(np.float32, "3"), ["rows must be a positive integer, got '3'"]),
    (vector(np.float32, None), ["rows must be a positive integer, got None"]),
    (matrix(np.float32, 3, 0), ["cols must be a positive integer, got 0"]),
    (matrix(np.float32, 2.5, 2), ["rows must be a positive integer, got 2.5"]),
    (matrix(np.float32, 2, np.float64(2)), ["cols must be a positive integer"]),
], ids=["zero", "negative", "float", "bool", "str", "none", "zero-cols", "float-rows",
        "numpy-float-cols"])
def test_bad_dimensions_are_refused(spec, named):
    with refused(LayoutError, "Bad.m", *named):
        Layout.define("Bad", [("m", spec)])


@pytest.mark.parametrize("alignment, named", [
    (0, ["alignment 0 is not a power of two"]), (3, ["alignment 3 is not a power of two"]),
    (96, ["alignment 96 is not a power of two"]), (-128, ["alignment -128"]),
    (64.0, ["alignment must be a power of two in bytes, got 64.0 (float)"]),
    (True, ["got True (bool)"]), ("128", ["got '128' (str)"]),
    (2, ["alignment 2 is smaller than the item of member 'x'"]),
], ids=["zero", "three", "96", "negative", "float", "bool", "str", "too-small"])
def test_bad_alignments_are_refused(alignment, named):
    with refused(LayoutError, "Bad", *named):
        Layout.define("Bad", [("x", column(np.float32))], alignment=alignment)
    with refused(LayoutError, *named):
        type("Bad", (Layout,), {"x": column(np.float32), "alignment": alignment})


def test_a_collection_of_a_refused_layout_is_never_made():
    """Nothing of a refused declaration survives to be used."""
    with refused(LayoutError, "Bad.x = np.float32 is not a member"):
        class Bad(Layout):
            x = np.float32
    with refused(pt.ArgumentError, "argument 'blocks[0][0]'"):
        MultiCollection([("Bad", 3)], pt.get_device("cpu_serial"))
