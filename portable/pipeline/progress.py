"""A progress bar on the terminal: tqdm's when it is installed, else a plain one; shown
only when stderr is a terminal.

Example::

    >>> bar = ProgressBar(total=3, enabled=False)
    >>> bar.update(); bar.close(); bar.count
    1
"""
from __future__ import annotations

import sys
import threading
import time
from typing import Any


class ProgressBar:
    """Counts events; draws at most ten times a second."""

    def __init__(self, total: int | None, enabled: bool | None = None) -> None:
        self.total, self.count = total, 0
        self.enabled = sys.stderr.isatty() if enabled is None else enabled
        self._lock = threading.Lock()
        self._drawn = 0.0
        self._tqdm: Any = None
        if self.enabled:
            try:
                from tqdm import tqdm
            except ImportError:
                return
            self._tqdm = tqdm(total=total, unit="events", file=sys.stderr)

    def update(self) -> None:
        """One more event done."""
        with self._lock:
            self.count += 1
            if self._tqdm is not None:
                self._tqdm.update(1)
            elif self.enabled and time.monotonic() - self._drawn > 0.1:
                self._draw()

    def _draw(self) -> None:
        self._drawn = time.monotonic()
        if self.total:
            done = 30 * self.count // self.total
            sys.stderr.write(f"\r[{'#' * done}{'.' * (30 - done)}] {self.count}/{self.total} "
                             f"events")
        else:
            sys.stderr.write(f"\r{self.count} events")
        sys.stderr.flush()

    def close(self) -> None:
        """Finish the bar's line."""
        if self._tqdm is not None:
            self._tqdm.close()
        elif self.enabled:
            self._draw()
            sys.stderr.write("\n")
