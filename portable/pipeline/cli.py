"""The command line of a pipeline program, with the reference framework's flags.

An example program builds its modules and source from the options::

    from portable.pipeline import cli

    def build(options):
        modules = [Unpack, Reconstruct] + ([Validate] if options.validation else [])
        return modules, make_source(options)

    if __name__ == "__main__":
        raise SystemExit(cli.main(build, description="my reconstruction"))

and is run as ``python my_program.py --numberOfThreads 4 --maxEvents 1000 --cuda 0.8
--serial 0.2``. It ends with the line ``Processed N events in T seconds, throughput
X events/s, CPU usage per thread: Y%`` and a table of time per module and backend.

Example::

    >>> options = parse(["--numberOfThreads", "2", "--serial", "1", "--threads", "3"])
    >>> threads_and_streams(options), weights(options)
    ((2, 2), {'cpu_serial': 0.25, 'cpu_threads': 0.75})
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Callable, Protocol, Sequence

from .process import Process
from .progress import ProgressBar

#: backend weight flags -> backend names
WEIGHT_FLAGS = {"serial": "cpu_serial", "threads": "cpu_threads", "cuda": "cuda"}


def parser(description: str | None = None) -> argparse.ArgumentParser:
    """The flags every pipeline program takes; add your own to the returned parser."""
    p = argparse.ArgumentParser(description=description, allow_abbrev=False)
    p.add_argument("--numberOfThreads", type=int, default=1,
                   help="host threads running modules (0: all cores; default 1)")
    p.add_argument("--numberOfStreams", type=int, default=0,
                   help="events in flight, one per slot (0: as many as threads)")
    p.add_argument("--maxEvents", type=int, default=-1,
                   help="events to process (-1: until the source ends)")
    p.add_argument("--runForMinutes", type=float, default=-1,
                   help="stop taking events after this many minutes (-1: no limit)")
    p.add_argument("--warmupEvents", type=int, default=0,
                   help="events run first and not timed")
    p.add_argument("--validation", action="store_true", help="run the validation modules")
    p.add_argument("--histogram", action="store_true", help="fill the histograms")
    p.add_argument("--transfer", action="store_true",
                   help="copy the results to the host")
    for flag, backend in WEIGHT_FLAGS.items():
        p.add_argument(f"--{flag}", type=float, default=None, metavar="WEIGHT",
                       help=f"share of the slots on {backend} (weights are normalised)")
    p.add_argument("--graphs", choices=("auto", "on", "off"), default="auto",
                   help="capture each slot's device work into graphs and replay them per "
                        "event: auto (where the backend and modules allow; the default), "
                        "on (an error where they do not), off")
    p.add_argument("--json", metavar="FILE", default=None, help="write the report as JSON")
    return p


def parse(argv: Sequence[str] | None = None, description: str | None = None
          ) -> argparse.Namespace:
    """The options of ``argv`` (default: the program's)."""
    return parser(description).parse_args(argv)


def threads_and_streams(options: argparse.Namespace) -> tuple[int, int]:
    """``--numberOfThreads`` (0: every core) and ``--numberOfStreams`` (0: the threads)."""
    threads = options.numberOfThreads or (os.cpu_count() or 1)
    return threads, options.numberOfStreams or threads


def weights(options: argparse.Namespace) -> dict[str, float] | None:
    """The backend weight flags given, normalised; ``None`` when none is given."""
    given = {WEIGHT_FLAGS[f]: getattr(options, f) for f in WEIGHT_FLAGS
             if getattr(options, f) is not None}
    if not given:
        return None
    total = sum(given.values())
    if total <= 0:
        return given  # Process refuses them, saying why
    return {name: w / total for name, w in given.items()}


def main(build: Callable[[argparse.Namespace], tuple[Sequence[Any], Any]],
         argv: Sequence[str] | None = None, description: str | None = None,
         add_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """Parse the flags, build ``(modules, source)`` with ``build(options)``, run the
    job, print the report; returns the exit status (1 when an event failed)."""
    p = parser(description)
    if add_arguments is not None:
        add_arguments(p)
    options = p.parse_args(argv)
    modules, source = build(options)
    threads, streams = threads_and_streams(options)
    max_events = None if options.maxEvents < 0 else options.maxEvents
    run_for = None if options.runForMinutes < 0 else options.runForMinutes * 60
    bar = ProgressBar(max_events)
    process = Process(modules, source, threads=threads, streams=streams,
                      backends=weights(options), max_events=max_events, run_for=run_for,
                      warmup_events=options.warmupEvents, on_event=bar.update,
                      graphs=options.graphs)
    try:
        report = process.run()
    finally:
        bar.close()
    print(report.summary())
    print(report.table())
    for failure in report.failures[:5]:
        print(failure, file=sys.stderr)
    if report.failed:
        print(f"{report.failed} of {report.events} events failed", file=sys.stderr)
    if options.json:
        with open(options.json, "w") as out:
            json.dump(report.to_dict(), out, indent=1)
    return 1 if report.failed else 0




class Job(Protocol):
    """What :func:`run_job` runs: modules, a source, and a last word."""

    modules: Sequence[Any]
    source: Any

    def finish(self) -> int:
        """Report what the job collected; the exit status it asks for (0: fine)."""


def run_job(assemble: Callable[[argparse.Namespace], Job], argv: Sequence[str] | None = None,
            description: str | None = None,
            add_arguments: Callable[[argparse.ArgumentParser], None] | None = None) -> int:
    """:func:`main` for a job that ``assemble(options)`` builds, over a source that
    makes events from their numbers (so never ends: ``--maxEvents`` or
    ``--runForMinutes`` is required); ``job.finish()`` runs after the report, and the
    exit status is the larger of the job's and the report's.

    Example::

        >>> run_job(lambda options: None, ["--maxEvents", "-1"])
        Traceback (most recent call last):
        ...
        SystemExit: the job's events never end (its source makes them from their numbers); give --maxEvents N or --runForMinutes M
    """
    jobs: list[Job] = []

    def build(options: argparse.Namespace) -> tuple[Sequence[Any], Any]:
        if options.maxEvents < 0 and options.runForMinutes < 0:
            raise SystemExit("the job's events never end (its source makes them from their "
                             "numbers); give --maxEvents N or --runForMinutes M")
        jobs.append(assemble(options))
        return jobs[-1].modules, jobs[-1].source

    status = main(build, argv, description, add_arguments)
    for job in jobs:
        status = max(status, job.finish())
    return status
