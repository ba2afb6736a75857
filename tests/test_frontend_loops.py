"""The loop members' lowering, run as plain Python for every block and thread of a
grid: every element visited once, by the thread the backend's trait says (block-strided
elements on GPUs, consecutive ones on CPUs), also with ``continue`` and in n-D; the
group loops cover their groups."""
import dataclasses
import itertools

import numpy as np
import pytest

from portable.backends.cpu import cpu_dialect
from portable.frontend import Dialect, build_function, parse_function

_KINDS = ("block_idx", "thread_idx", "grid_blocks", "block_threads", "thread_elements")


def grid_dialect(ndim: int, strided: bool) -> Dialect:
    """A GPU-like dialect whose indices are fields of the ``acc`` tuple that
    :func:`run_grid` passes, elements per thread a literal (as on CUDA)."""
    def index(kind: str, d: int, acc: str) -> str:
        return f"{acc}[{_KINDS.index(kind) * ndim + d}]"
    return Dialect(ndim, index, {}, block_strided_elements=strided)


def run_grid(func, blocks, threads, elements, *args, strided=True):
    """Run ``func`` rewritten for a GPU-like grid, one (block, thread) after another."""
    ndim = len(blocks)
    dialect = grid_dialect(ndim, strided)
    literal = dialect.index
    dialect.index = lambda kind, d, acc: (str(elements[d]) if kind == "thread_elements"
                                          else literal(kind, d, acc))
    py = build_function(parse_function(func, needs_acc=True), dialect, lambda v: v)
    for b in itertools.product(*map(range, blocks)):
        for t in itertools.product(*map(range, threads)):
            py((*b, *t, *blocks, *threads, *elements), *args)


def run_cpu(func, blocks, elements, *args):
    """Run ``func`` rewritten by the CPU backends' dialect, block after block (plain
    Python: the CPU's loops before Numba compiles them, without the index hint that
    only compiled code can call)."""
    dialect = dataclasses.replace(cpu_dialect(len(blocks)), index_hint=None)
    py = build_function(parse_function(func, needs_acc=True), dialect, lambda v: v)
    for b in itertools.product(*map(range, blocks)):
        py((*b, *blocks, *elements), *args)


def visit(acc, n, visits, owner):
    for i in acc.uniform_elements(n):
        visits[i] += 1
        owner[i] = acc.global_thread_idx


def visit_skipping_odd(acc, n, visits, owner):
    for i in acc.uniform_elements(n):
        if i % 2 == 1:
            continue
        visits[i] += 1
        owner[i] = acc.global_thread_idx


@pytest.mark.parametrize("func", [visit, visit_skipping_odd])
@pytest.mark.parametrize("blocks,threads,elements,n", [
    (3, 4, 1, 50), (2, 8, 3, 100), (4, 2, 5, 7), (2, 4, 4, 32), (1, 32, 8, 1000)])
def test_block_strided_elements(func, blocks, threads, elements, n):
    visits, owner = np.zeros(n, np.int64), np.full(n, -1)
    run_grid(func, (blocks,), (threads,), (elements,), n, visits, owner)
    i = np.arange(n)
    wanted = np.ones(n) if func is visit else (i % 2 == 0)
    np.testing.assert_array_equal(visits, wanted)
    # thread t of block b takes b*threads*elements + k*threads + t, then a grid's width on
    expected = (i // (threads * elements)) % blocks * threads + i % threads
    np.testing.assert_array_equal(owner[wanted == 1], expected[wanted == 1])


@pytest.mark.parametrize("func", [visit, visit_skipping_odd])
@pytest.mark.parametrize("blocks,elements,n", [(3, 1, 50), (4, 5, 7), (2, 7, 100)])
def test_consecutive_elements_on_the_cpu(func, blocks, elements, n):
    visits, owner = np.zeros(n, np.int64), np.full(n, -1)
    run_cpu(func, (blocks,), (elements,), n, visits, owner)
    i = np.arange(n)
    wanted = np.ones(n) if func is visit else (i % 2 == 0)
    np.testing.assert_array_equal(visits, wanted)
    np.testing.assert_array_equal(owner[wanted == 1], ((i // elements) % blocks)[wanted == 1])


def visit_2d(acc, rows, cols, visits):
    for i, j in acc.uniform_elements(rows, cols):
        visits[i, j] += 1


@pytest.mark.parametrize("strided", [True, False], ids=["block-strided", "consecutive"])
def test_two_dimensions(strided):
    visits = np.zeros((7, 13), np.int64)
    run_grid(visit_2d, (2, 3), (2, 2), (2, 3), 7, 13, visits, strided=strided)
    assert (visits == 1).all()


def groups(acc, n, group_of, local_of):
    for g in acc.uniform_groups(n):
        for i, local in acc.uniform_group_elements(g, n):
            group_of[i] = g
            local_of[i] = local


def independent(acc, ngroups, extent, visits):
    for g in acc.independent_groups(ngroups):
        for j in acc.independent_group_elements(extent):
            visits[g, j] += 1


@pytest.mark.parametrize("elements", [1, 3])
def test_group_loops(elements):
    n, threads = 100, 4
    group_of, local_of = np.full(n, -1), np.full(n, -1)
    run_grid(groups, (3,), (threads,), (elements,), n, group_of, local_of)
    size = threads * elements
    np.testing.assert_array_equal(group_of, np.arange(n) // size)
    np.testing.assert_array_equal(local_of, np.arange(n) % size)
    visits = np.zeros((5, 11), np.int64)
    run_grid(independent, (2,), (threads,), (elements,), 5, 11, visits)
    assert (visits == 1).all()
    visits[:] = 0
    run_cpu(independent, (2,), (elements,), 5, 11, visits)
    assert (visits == 1).all()


def test_group_loops_need_one_dimension():
    with pytest.raises(Exception, match="acc.uniform_groups needs a 1-D work division"):
        run_grid(groups, (1, 1), (1, 1), (1, 1), 4, np.zeros(4), np.zeros(4))


def test_uniform_elements_takes_one_extent_per_dimension():
    with pytest.raises(Exception, match="2 expected, 1 given"):
        run_grid(visit, (1, 1), (1, 1), (1, 1), 4, np.zeros(4), np.zeros(4))
