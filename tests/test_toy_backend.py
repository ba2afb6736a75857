"""A backend added in this one file runs the shared suite: nothing in the library,
its kernels or its tests needs to know its name, only what it does (its traits).

The toy backend runs kernels like ``cpu_serial`` (it borrows that backend's
compiler) but has queues of its own: each runs its work at once, in the calling
thread. This file is also a pytest plugin: ``-p test_toy_backend`` registers the
toy backend before the suite is collected, and the test below runs the kernel-API
and memory/queue/event tests on it in a child pytest."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import numba
import pytest

from portable.backend import register
from portable.backends.cpu import CpuSerial

TESTS = Path(__file__).resolve().parent
SHARED_SUITE = ("test_kernel_api.py", "test_memory_queue_event.py")


class ImmediateStream:
    """A queue's stream that runs each piece of work as it is submitted."""

    def __init__(self, blocking: bool) -> None:
        self.blocking = blocking

    def submit(self, work: Callable[[], None]) -> None:
        work()

    def synchronize(self) -> None:
        pass


class ImmediateEvent:
    """An event that is done as soon as it is recorded (its queue ran everything)."""

    def fire(self) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def query(self) -> bool:
        return True

    def elapsed_ms(self, end: ImmediateEvent) -> float:
        return 0.0


class ToyBackend(CpuSerial):
    """Kernels compiled as on ``cpu_serial``; queues that run work immediately."""

    name = "toy"

    def make_stream(self, device: Any, blocking: bool) -> ImmediateStream:
        return ImmediateStream(blocking)

    def record_event(self, event: Any, queue: Any) -> None:
        event.native = ImmediateEvent()

    def wait_event(self, queue: Any, event: Any) -> None:
        event._require_recorded()


def pytest_configure(config: pytest.Config) -> None:
    """Register the toy backend (when this file is loaded as a plugin)."""
    register(ToyBackend())


@pytest.mark.skipif(bool(numba.config.ENABLE_CUDASIM), reason="runs the CPU suite")
def test_shared_suite_runs_on_a_backend_added_in_one_file():
    env = dict(os.environ, PORTABLE_TEST_BACKENDS="toy",
               PYTHONPATH=os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "test_toy_backend", "-p",
         "no:cacheprovider", "-k", "toy", *SHARED_SUITE],
        cwd=TESTS, env=env, capture_output=True, text=True, timeout=1200)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert " passed" in summary and "failed" not in summary, summary
    passed = int(summary.split(" passed")[0].split()[-1])
    assert passed >= 30, summary  # the suite ran on the toy backend, not nothing
