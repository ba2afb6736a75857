"""A fixed set of host threads that run tasks from one queue, in the order given.

Lighter than ``concurrent.futures.ThreadPoolExecutor`` per task (no future, no
work item, no thread-count check): handing a task over is one put on a
``queue.SimpleQueue``, which matters when a replayed event's whole host work is a
few tens of microseconds.

Example::

    >>> done = []
    >>> pool = Threads(2, "example")
    >>> for k in range(3):
    ...     pool.submit(done.append, k)
    >>> pool.shutdown()
    >>> sorted(done)
    [0, 1, 2]
"""
from __future__ import annotations

import queue
import threading
from typing import Any, Callable


class Threads:
    """``count`` daemon threads named ``name_<k>``. A task that lets an exception
    out has it shown by ``threading.excepthook`` (wrap tasks to handle their errors);
    the thread goes on with the next task."""

    def __init__(self, count: int, name: str) -> None:
        self._tasks: queue.SimpleQueue[tuple[Callable[..., Any], tuple[Any, ...]] | None] = \
            queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._loop, name=f"{name}_{k}", daemon=True)
                         for k in range(count)]
        for thread in self._threads:
            thread.start()

    def submit(self, task: Callable[..., Any], *args: Any) -> None:
        """Run ``task(*args)`` on one of the threads."""
        self._tasks.put((task, args))

    def shutdown(self) -> None:
        """Let the threads finish the tasks given so far, then end them."""
        for _ in self._threads:
            self._tasks.put(None)
        for thread in self._threads:
            thread.join()

    def _loop(self) -> None:
        while True:
            item = self._tasks.get()
            if item is None:
                return
            task, args = item
            try:
                task(*args)
            except BaseException as err:  # shown as any thread's error; the thread goes on
                threading.excepthook(threading.ExceptHookArgs(
                    (type(err), err, err.__traceback__, threading.current_thread())))
