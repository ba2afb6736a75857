"""What a job reports: events, failures, copies, time, CPU usage, time per module.

Example::

    >>> r = Report(events=10, failed=0, wall_s=2.0, cpu_s=3.0, threads=2, streams=2)
    >>> r.summary()
    'Processed 10 events in 2 seconds, throughput 5 events/s, CPU usage per thread: 75%'
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Failure:
    """An event that failed: in which module (or its queue's work), with the traceback."""

    event: int
    module: str
    slot: int
    error: str
    traceback: str

    def __str__(self) -> str:
        return f"event {self.event} failed in module {self.module!r} (slot {self.slot}): " \
               f"{self.error}\n{self.traceback}"


@dataclass
class ModuleTime:
    """Host time spent in one module's calls on one backend."""

    calls: int = 0
    seconds: float = 0.0


#: the most fallback reasons a report keeps per backend
KEPT_REASONS = 5


@dataclass
class GraphStats:
    """Graph mode on one backend: ``on`` or off and ``why``; over the timed events,
    ``replayed`` (their device work all from graphs), ``eager`` (warm-up and capture
    events of graph mode) and ``fallbacks`` (over capacity: run eagerly; counted on
    every backend) with the first few ``fallback_reasons``; ``captures``: segments
    captured over the whole job (warm-up events included)."""

    on: bool
    why: str = ""
    replayed: int = 0
    eager: int = 0
    fallbacks: int = 0
    fallback_reasons: list[str] = field(default_factory=list)
    captures: int = 0

    def count(self, over: str | None, outcome: str) -> None:
        """Count one event: over capacity (``over`` says why), else its ``outcome``
        in graph mode (``"replayed"`` or ``"eager"``; ``""`` outside graph mode)."""
        if over is not None:
            self.fallbacks += 1
            if len(self.fallback_reasons) < KEPT_REASONS and over not in self.fallback_reasons:
                self.fallback_reasons.append(over)
        elif outcome == "replayed":
            self.replayed += 1
        elif outcome == "eager":
            self.eager += 1

    def line(self, backend: str) -> str:
        """One line for the summary."""
        if not self.on:
            fell = f"; {self.fallbacks} events over capacity" if self.fallbacks else ""
            return f"graphs off on {backend} ({self.why}){fell}"
        reasons = f" ({'; '.join(self.fallback_reasons)})" if self.fallback_reasons else ""
        return (f"graphs on on {backend}: {self.replayed} events replayed, {self.eager} "
                f"eager, {self.fallbacks} fell back{reasons}, {self.captures} captures")


@dataclass
class Report:
    """The timed part of a job (warm-up events excluded)."""

    events: int
    failed: int
    wall_s: float
    cpu_s: float
    threads: int
    streams: int
    warmup_events: int = 0
    copies: int = 0
    slot_backends: list[str] = field(default_factory=list)
    events_per_backend: dict[str, int] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    #: (module name, backend) -> host time in its calls
    module_times: dict[tuple[str, str], ModuleTime] = field(default_factory=dict)
    #: backend -> graph mode there
    graphs: dict[str, GraphStats] = field(default_factory=dict)

    @property
    def throughput(self) -> float:
        """Events per second of wall time."""
        return self.events / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def cpu_usage(self) -> float:
        """Process CPU time over wall time times threads, in percent."""
        return 100.0 * self.cpu_s / (self.wall_s * self.threads) if self.wall_s > 0 else 0.0

    def summary(self) -> str:
        """The reference framework's closing line, then one line per backend saying
        whether graph mode ran there."""
        line = (f"Processed {self.events} events in {self.wall_s:.3g} seconds, throughput "
                f"{self.throughput:.4g} events/s, CPU usage per thread: {self.cpu_usage:.3g}%")
        return "\n".join([line] + [stats.line(b) for b, stats in self.graphs.items()])

    def table(self) -> str:
        """Time per module and backend, the slowest first."""
        rows = sorted(self.module_times.items(), key=lambda kv: -kv[1].seconds)
        width = max([len("module")] + [len(m) for (m, _), _ in rows])
        lines = [f"{'module':<{width}}  {'backend':<11}  {'calls':>7}  {'total ms':>10}  "
                 f"{'ms/call':>8}"]
        for (name, backend), t in rows:
            lines.append(f"{name:<{width}}  {backend:<11}  {t.calls:>7}  "
                         f"{t.seconds * 1e3:>10.2f}  {t.seconds * 1e3 / max(t.calls, 1):>8.3f}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """Everything, for ``--json``."""
        data = asdict(self)
        data["module_times"] = [{"module": m, "backend": b, **asdict(t)}
                                for (m, b), t in self.module_times.items()]
        data["graphs"] = {b: asdict(g) for b, g in self.graphs.items()}
        data.update(throughput=self.throughput, cpu_usage=self.cpu_usage)
        return data
