"""Every member of the accelerator ``acc``, and how each lowers on a backend.

A kernel's first parameter is the accelerator; inside the kernel
``acc.<member>`` is the only backend-specific thing. This module is the one list
of those members: their kind, what they take, what they mean, and how each is
lowered, through the backend's :class:`~portable.frontend.dialect.Dialect`.

=========================== ======== ==============================================
member                      kind     lowering
=========================== ======== ==============================================
``block_idx``,              index    the dialect's index expression, per dimension
``thread_idx``,                      (a tuple in n-D): CUDA built-ins on GPUs,
``grid_blocks``,                     fields of the block's ``acc`` tuple on CPUs
``block_threads``,                   (``thread_idx`` 0, ``block_threads`` 1);
``thread_elements``                  ``thread_elements`` a compile-time constant on
                                     GPUs
``global_thread_idx``       index    ``block_idx * block_threads + thread_idx``
``grid_threads``            index    ``grid_blocks * block_threads``
``ndim``                    constant the launch's number of dimensions
``uniform_elements``,       loop     nested loops (see :mod:`.loops`): a thread's
``uniform_groups``,                  several elements block-strided on backends
``uniform_group_elements``,          with ``block_strided_elements``, consecutive
``independent_groups``,              otherwise
``independent_group_elements``
``once_per_grid``           call     every index of block and thread is 0
``once_per_block``          call     every index of the thread is 0
``sync_block``              call     the dialect's barrier (a no-op on CPUs)
``shared_array``            call     the dialect's block-shared allocation
``atomic_*``                call     the dialect's atomic (each returns the old value)
=========================== ======== ==============================================
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from .dialect import Dialect

Kind = Literal["index", "constant", "loop", "call"]


@dataclass(frozen=True)
class Member:
    """One member of the accelerator.

    ``params`` names the arguments a call or loop member takes, ``None`` for
    one per dimension of the launch; ``targets`` the numbers of names a loop's
    target may have (``None``: one per dimension); ``one_dim`` whether the
    member needs a 1-D launch.
    """

    name: str
    kind: Kind
    meaning: str
    params: tuple[str, ...] | None = ()
    targets: tuple[int, ...] | None = (1,)
    one_dim: bool = False


_INDEX = (
    ("block_idx", "the block's index in the grid"),
    ("thread_idx", "the thread's index in its block"),
    ("grid_blocks", "blocks in the grid"),
    ("block_threads", "threads in a block"),
    ("thread_elements", "elements per thread"),
    ("global_thread_idx", "the thread's index in the grid"),
    ("grid_threads", "threads in the grid"))
_ATOMIC: dict[str, tuple[str, ...]] = {f"atomic_{op}": ("array", "index", "value")
           for op in ("add", "sub", "min", "max", "exch")}
_ATOMIC["atomic_cas"] = ("array", "index", "expected", "value")

#: every member of the accelerator, by name
MEMBERS: dict[str, Member] = {m.name: m for m in (
    *(Member(name, "index", meaning, params=None) for name, meaning in _INDEX),
    Member("ndim", "constant", "the launch's number of dimensions", params=None),
    Member("uniform_elements", "loop", "every element index, each visited by one thread",
           params=None, targets=None),
    Member("uniform_groups", "loop", "the groups of block_threads * thread_elements "
           "elements this block takes (the same for every thread of the block)",
           params=("extent",), one_dim=True),
    Member("uniform_group_elements", "loop", "the thread's elements of a group, as a "
           "global index or a pair (global index, index in the group)",
           params=("group", "extent"), targets=(1, 2), one_dim=True),
    Member("independent_groups", "loop", "the groups this block takes, with no barrier "
           "between blocks", params=("groups",), one_dim=True),
    Member("independent_group_elements", "loop", "the thread's elements of one group",
           params=("extent",), one_dim=True),
    Member("once_per_grid", "call", "true in exactly one thread of the grid"),
    Member("once_per_block", "call", "true in exactly one thread of each block"),
    Member("sync_block", "call", "a barrier for the threads of the block"),
    Member("shared_array", "call", "block-shared scratch space of a constant shape",
           params=("shape", "dtype")),
    *(Member(name, "call", "an atomic update returning the old value", params=params)
      for name, params in _ATOMIC.items()),
)}

INDEX_MEMBERS = tuple(n for n, m in MEMBERS.items() if m.kind == "index")
LOOP_MEMBERS = tuple(n for n, m in MEMBERS.items() if m.kind == "loop")
CALL_MEMBERS = tuple(n for n, m in MEMBERS.items() if m.kind == "call")
ALL_MEMBERS = tuple(MEMBERS)
#: call members that lower to a condition of their own, with no arguments
CONDITION_MEMBERS = ("once_per_grid", "once_per_block")


def value_source(member: str, dialect: Dialect, acc: str) -> str:
    """The source of the value member ``acc.<member>`` (an index or ``ndim``): one
    expression, or a tuple of one per dimension in n-D.

    Example::

        >>> d = Dialect(1, lambda kind, dim, acc: f"{acc}_{kind}", {})
        >>> value_source("grid_threads", d, "acc")
        '(acc_grid_blocks) * (acc_block_threads)'
    """
    if member == "ndim":
        return str(dialect.ndim)
    parts = [_index_source(member, d, dialect, acc) for d in range(dialect.ndim)]
    return parts[0] if len(parts) == 1 else "(" + ", ".join(parts) + ",)"


def _index_source(member: str, d: int, dialect: Dialect, acc: str) -> str:
    ix = dialect.ix
    if member == "global_thread_idx":
        return (f"{ix('block_idx', d, acc)} * {ix('block_threads', d, acc)}"
                f" + {ix('thread_idx', d, acc)}")
    if member == "grid_threads":
        return f"{ix('grid_blocks', d, acc)} * {ix('block_threads', d, acc)}"
    return ix(member, d, acc)


def call_source(member: str, dialect: Dialect, acc: str) -> str:
    """The source that a call member lowers to: the whole expression for
    ``once_per_grid``/``once_per_block`` (which take no arguments), else the
    backend function that the call's arguments are passed to.

    Example::

        >>> d = Dialect(1, lambda kind, dim, acc: f"{acc}_{kind}", {"sync_block": "barrier"})
        >>> call_source("once_per_block", d, "acc")
        '(acc_thread_idx) == 0'
        >>> call_source("sync_block", d, "acc")
        'barrier'
    """
    if member in CONDITION_MEMBERS:
        kinds = ("thread_idx",) if member == "once_per_block" else ("block_idx", "thread_idx")
        return " and ".join(f"{dialect.ix(k, d, acc)} == 0"
                            for k in kinds for d in range(dialect.ndim))
    return dialect.calls[member]
