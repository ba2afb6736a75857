"""The Numba settings read from the environment, checked before Numba reads them.

Numba fails to import when ``NUMBA_NUM_THREADS`` is not a positive integer, and
every backend needs Numba. A bad value is therefore set aside before the first
``import numba`` (with a warning that names it): ``cpu_serial`` stays usable, and
``cpu_threads``, the one backend that value is for, reports the problem as the
reason it cannot run.

Example::

    >>> from portable.numba_env import thread_count_problem
    >>> thread_count_problem("0")
    "NUMBA_NUM_THREADS='0' is not a thread count: set it to a whole number from 1 to the number of cores, or unset it"
    >>> thread_count_problem("4") is None
    True
"""
from __future__ import annotations

import os
import sys
import warnings

THREADS_VAR = "NUMBA_NUM_THREADS"


def thread_count_problem(raw: str | None) -> str | None:
    """What is wrong with ``raw`` as the value of ``NUMBA_NUM_THREADS``, or ``None``."""
    if raw is None:
        return None
    try:
        if int(raw) >= 1:
            return None
    except ValueError:
        pass
    return (f"{THREADS_VAR}={raw!r} is not a thread count: set it to a whole number from 1 "
            f"to the number of cores, or unset it")


def _set_aside_bad_thread_count() -> str | None:
    """Remove a bad ``NUMBA_NUM_THREADS`` before Numba imports; return the problem."""
    if "numba" in sys.modules:  # Numba has read it already and lived
        return None
    problem = thread_count_problem(os.environ.get(THREADS_VAR))
    if problem is not None:
        del os.environ[THREADS_VAR]
        warnings.warn(f"{problem}. It was ignored: cpu_threads cannot run, the other "
                      f"backends can.", RuntimeWarning, stacklevel=3)
    return problem


#: why ``cpu_threads`` cannot run because of ``NUMBA_NUM_THREADS``, or ``None``
THREADS_PROBLEM = _set_aside_bad_thread_count()
