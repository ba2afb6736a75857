"""Source capture at decoration: the accelerator found by name or by annotation
(string annotations resolved in the function's globals), nodes at the file's lines
and columns, and every misuse of a loop, value or call member refused at the
decorator with the file, line, code and a caret under the column."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import portable as pt
from portable.frontend import MEMBERS, parse_function

HERE = __file__
Accelerator = pt.Acc  # an alias: the string annotation "Accelerator" resolves to pt.Acc


def annotated(a: pt.Acc, out):
    out[0] = a.ndim


def aliased(gpu: Accelerator, out):
    out[0] = gpu.ndim


def mistyped(a: np.ndarray, out):
    out[0] = 1.0


@pytest.mark.parametrize("func", [annotated, aliased])
def test_string_annotations_are_resolved(func):
    assert isinstance(func.__annotations__[func.__code__.co_varnames[0]], str)
    assert parse_function(func, needs_acc=True).acc == func.__code__.co_varnames[0]


def test_another_annotation_is_no_accelerator():
    with pytest.raises(pt.KernelError, match="the first parameter must be the accelerator"):
        parse_function(mistyped, needs_acc=True)


def test_nodes_keep_the_files_lines_and_columns():
    def nested(acc, out):
        for i in acc.uniform_elements(out.size):
            out[i] = 1.0

    lines, first = inspect.getsourcelines(nested)
    loop = parse_function(nested, needs_acc=True).tree.body[0].body[0]
    assert loop.lineno == first + 1
    assert loop.col_offset == lines[1].index("for")


def marked(func):
    """Line number, code and column of the line of ``func`` marked ``# <-``, the
    column being that of the text after ``^`` in the comment ``# ^ text``."""
    lines, first = inspect.getsourcelines(func)
    for k, line in enumerate(lines):
        if "# <-" in line:
            code, _, hint = line.partition("# <-")
            column = line.index(hint.split("^")[1].strip()) if "^" in hint else None
            return first + k, code.strip(), column
    raise AssertionError("no marked line")


def loop_with_else(acc, out):
    for i in acc.uniform_elements(out.size):  # <- ^ for
        out[i] = 1.0
    else:
        out[0] = 2.0


def loop_with_break(acc, out):
    for i in acc.uniform_elements(out.size):
        break  # <- ^ break


def loop_with_keywords(acc, out):
    for i in acc.uniform_elements(n=out.size):  # <- ^ acc.uniform_elements(n
        out[i] = 1.0


def group_loop_arguments(acc, out):
    for g in acc.uniform_groups(out.size, 2):  # <- ^ acc.uniform_groups(out
        out[g] = 1.0


def group_loop_target(acc, out):
    for g, h in acc.uniform_groups(out.size):  # <- ^ for
        out[g] = 1.0


def loop_target_attribute(acc, out):
    for out.x in acc.uniform_elements(out.size):  # <- ^ for
        pass


def loop_as_a_value(acc, out):
    steps = acc.uniform_elements(out.size)  # <- ^ acc.uniform_elements(out
    out[0] = steps


def loop_not_called(acc, out):
    for i in acc.uniform_elements:  # <- ^ acc.uniform_elements:
        out[i] = 1.0


def value_called(acc, out):
    out[0] = acc.block_idx()  # <- ^ acc.block_idx()


def call_not_called(acc, out):
    barrier = acc.sync_block  # <- ^ acc.sync_block
    out[0] = 1.0


def once_with_arguments(acc, out):
    if acc.once_per_grid(0):  # <- ^ acc.once_per_grid(0)
        out[0] = 1.0


def sync_with_arguments(acc, out):
    acc.sync_block(1)  # <- ^ acc.sync_block(1)


def unknown_member(acc, out):
    out[0] = acc.grid_size  # <- ^ acc.grid_size


def acc_stored(acc, out):
    box = (acc,)  # <- ^ acc,)
    out[0] = 1.0


REFUSED = [
    (loop_with_else, "cannot have an else clause"),
    (loop_with_break, "break is not supported in a loop over acc.uniform_elements"),
    (loop_with_keywords, "acc.uniform_elements() takes positional arguments only"),
    (group_loop_arguments, "acc.uniform_groups takes (extent); 2 argument(s) given"),
    (group_loop_target, "the target of a loop over acc.uniform_groups must be a name"),
    (loop_target_attribute, "must be a name, or a tuple of names"),
    (loop_as_a_value, "can only be the iterable of a for loop"),
    (loop_not_called, "acc.uniform_elements must be called"),
    (value_called, "acc.block_idx is a value, not a function"),
    (call_not_called, "acc.sync_block must be called"),
    (once_with_arguments, "acc.once_per_grid takes no arguments; 1 argument(s) given"),
    (sync_with_arguments, "acc.sync_block takes no arguments"),
    (unknown_member, "no member 'grid_size'"),
    (acc_stored, "acc can only be used as acc.<member>"),
]


@pytest.mark.parametrize("func,what", REFUSED, ids=[f.__name__ for f, _ in REFUSED])
def test_refused_at_decoration_with_a_caret(func, what):
    line, code, column = marked(func)
    with pytest.raises(pt.KernelError) as caught:
        pt.kernel(func)
    head, quoted, caret = str(caught.value).split("\n")
    assert head.startswith(f"kernel {func.__name__} ({HERE}:{line}): ") and what in head
    prefix = f"    {line} | "
    assert quoted.startswith(prefix + code)
    source_line = inspect.getsourcelines(func)[0][line - func.__code__.co_firstlineno]
    indent = len(source_line) - len(source_line.lstrip())
    assert caret == " " * (len(prefix) + column - indent) + "^"


def test_every_member_is_in_the_table_of_lowerings():
    import portable.frontend.acc as acc
    assert {m.kind for m in MEMBERS.values()} == {"index", "constant", "loop", "call"}
    for name, member in MEMBERS.items():
        assert member.meaning
        assert f"``{name}``" in acc.__doc__ or (name.startswith("atomic_")
                                                and "``atomic_*``" in acc.__doc__)
