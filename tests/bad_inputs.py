"""What every bad-input test asserts: the exception's type, that its message names
the offending value, and that the outputs given are untouched."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import numpy as np
import pytest

from portable.testing import host_copy


@contextlib.contextmanager
def refused(error: type[BaseException], *named: str, queue: Any = None,
            untouched: Sequence[Any] = ()) -> Iterator[Any]:
    """Expect ``error`` from the block, with every text of ``named`` in its message and
    every array of ``untouched`` (host or device; ``queue`` reads device arrays) holding
    the bytes it held before.

    >>> with refused(ValueError, "'x'"):
    ...     raise ValueError("argument 'x' is bad")
    """
    before = [_bytes(queue, a) for a in untouched]
    with pytest.raises(error) as caught:
        yield caught
    message = str(caught.value)
    for text in named:
        assert text in message, f"{text!r} is not named in the message: {message!r}"
    for index, (array, old) in enumerate(zip(untouched, before)):
        assert _bytes(queue, array) == old, f"output {index} was written before the error"


def _bytes(queue: Any, array: Any) -> bytes:
    if isinstance(array, np.ndarray):
        return array.tobytes()
    return host_copy(queue, array).tobytes()
