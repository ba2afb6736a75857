"""Shared by the tests that show a plain, non-atomic update losing counts."""
from __future__ import annotations

import time
from typing import Callable

#: how long a race demonstration may keep trying before it gives up; one try
#: takes milliseconds, but on a loaded 2-core machine the threads can run one
#: after the other for many tries in a row
RACE_DEADLINE_S = 30.0


def loses_a_count(try_once: Callable[[], bool], deadline_s: float = RACE_DEADLINE_S) -> int:
    """Call ``try_once`` (True when that try lost a count) until one try loses a
    count or ``deadline_s`` has passed; return how many tries it took, or 0
    when none lost a count.

    >>> loses_a_count(lambda: True)
    1
    """
    end = time.perf_counter() + deadline_s
    tries = 0
    while True:
        tries += 1
        if try_once():
            return tries
        if time.perf_counter() > end:
            return 0
