"""The array dtypes each ``acc.atomic_*`` member takes: one rule for every backend."""
from __future__ import annotations

from typing import Any

import numpy as np

_ATOMIC_INTS = tuple(np.dtype(t) for t in (np.int32, np.int64, np.uint32, np.uint64))
_ATOMIC_NUMBERS = _ATOMIC_INTS + (np.dtype(np.float32), np.dtype(np.float64))
#: the array dtypes each atomic takes on every backend (CUDA's exch and cas take
#: integers only, so no backend offers them on floats)
ATOMIC_DTYPES: dict[str, tuple[np.dtype, ...]] = {
    **{f"atomic_{op}": _ATOMIC_NUMBERS for op in ("add", "sub", "min", "max")},
    "atomic_exch": _ATOMIC_INTS, "atomic_cas": _ATOMIC_INTS}


def atomic_dtype_problem(member: str, dtype: Any) -> str | None:
    """Why ``acc.<member>`` cannot update an array of ``dtype``, or ``None`` if it can.
    The rule is the same on every backend.

    Example::

        >>> atomic_dtype_problem("atomic_add", np.float32) is None
        True
        >>> atomic_dtype_problem("atomic_exch", np.float64)
        'acc.atomic_exch takes an array of int32, int64, uint32 or uint64 on every backend, not float64'
    """
    allowed = ATOMIC_DTYPES[member]
    dtype = np.dtype(dtype)
    if dtype in allowed:
        return None
    names = [d.name for d in allowed]
    return (f"acc.{member} takes an array of {', '.join(names[:-1])} or {names[-1]} on every "
            f"backend, not {dtype}")
