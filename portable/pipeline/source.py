"""The one thread-safe source of events: a callable ``source(number) -> input`` or an
iterable of inputs, up to an event count or a deadline.

Example::

    >>> source = EventSource(lambda n: n * n)
    >>> source.limit(2); [source.next(), source.next(), source.next()]
    [(0, 0), (1, 1), None]
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Iterable, Iterator

from ..checks import describe
from ..errors import ArgumentError


class EventSource:
    """Hands out ``(event number, input)`` pairs to any number of threads."""

    def __init__(self, source: Callable[[int], Any] | Iterable[Any]) -> None:
        self._call: Callable[[int], Any] | None = None
        self._items: Iterator[Any] | None = None
        if callable(source):
            self._call = source
        elif isinstance(source, Iterable) and not isinstance(source, (str, bytes)):
            self._items = iter(source)
        else:
            raise ArgumentError(f"Process: argument 'source' must be a callable "
                                f"source(event_number) -> input or an iterable of inputs, got "
                                f"{describe(source)}")
        self._lock = threading.Lock()
        self.count = 0
        self.exhausted = False
        self._stop_at: int | None = None
        self._deadline: float | None = None

    @property
    def bounded(self) -> bool:
        """Whether the source ends by itself (an iterable does, a callable does not)."""
        return self._items is not None

    def limit(self, events: int | None, seconds: float | None = None) -> None:
        """Hand out at most ``events`` more events, and none after ``seconds`` from now."""
        with self._lock:
            self._stop_at = None if events is None else self.count + events
            self._deadline = None if seconds is None else time.monotonic() + seconds

    def stop(self) -> None:
        """Hand out no more events."""
        with self._lock:
            self._stop_at = self.count

    def next(self) -> tuple[int, Any] | None:
        """The next event, or ``None`` when the source or its limits are reached. A
        callable is called outside the lock, so that several threads make events at
        once; an iterable is read under it."""
        with self._lock:
            if self.exhausted or (self._stop_at is not None and self.count >= self._stop_at) \
                    or (self._deadline is not None and time.monotonic() >= self._deadline):
                return None
            number = self.count
            if self._call is None:
                assert self._items is not None
                try:
                    item = next(self._items)
                except StopIteration:
                    self.exhausted = True
                    return None
            self.count += 1
        if self._call is not None:
            item = self._call(number)
        return number, item
