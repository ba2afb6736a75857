"""A backend's spelling of the accelerator's members, and its traits that shape loops."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np


@dataclass
class Dialect:
    """How one backend spells the accelerator's members for one launch shape.

    ``index(kind, d, acc)`` returns the source of an expression for the
    primitive index ``kind`` (``block_idx``, ``thread_idx``, ``grid_blocks``,
    ``block_threads``, ``thread_elements``) in dimension ``d`` of an
    ``ndim``-dimensional launch, where ``acc`` names the accelerator
    parameter. ``calls`` maps the call members that are not built from indices
    to the dotted name of the backend function that implements them (called
    without ``acc``); ``globals`` are the names those spellings need.

    Example::

        >>> d = Dialect(1, lambda kind, dim, acc: f"{acc}.{kind}", {})
        >>> d.ix("block_idx", 0, "acc")
        '(acc.block_idx)'
    """

    ndim: int
    index: Callable[[str, int, str], str]
    calls: dict[str, str]
    globals: dict[str, Any] = field(default_factory=dict)
    #: a function wrapped around every element index from a runtime-sized
    #: chunk, telling the compiler the index is not negative (so indexing
    #: needs no wraparound check and loops vectorize); ``None`` for none
    index_hint: str | None = None
    #: dtypes the backend's compiler cannot index (collection members of these
    #: types are an error when a kernel uses them)
    unsupported_dtypes: frozenset[np.dtype] = frozenset()
    #: whether a view's used members are passed as parameters of their own
    #: (else the view's buffer is, and a prologue builds the member arrays)
    view_members_as_params: bool = False
    #: whether a thread's several elements lie a block's width apart (thread t
    #: takes base + k * block_threads + t, so the loads of a warp are
    #: coalesced) rather than next to each other (a CPU thread's run)
    block_strided_elements: bool = False

    def ix(self, kind: str, d: int, acc: str) -> str:
        """The parenthesised source of the primitive index ``kind`` in dimension ``d``."""
        return f"({self.index(kind, d, acc)})"
