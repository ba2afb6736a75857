"""Merge fragmented particles with a GNN on the event-processing pipeline.

Each event's tracksters (fragments of particles in two calorimeter endcaps, from
examples/gnn/generator.py) are uploaded to the slot's device; portable kernels build
the graph of neighbouring tracksters in eta-phi tiles and compute the edge
features; the GNN scores every edge in place on the SoA collections; union-find on
the device merges the tracksters joined by passing edges into particles. With
--validation every event is checked against NumPy references and host runs of the
model, and the merge's efficiency and purity against the generator's truth are
printed. --copyPath elementwise|bulk scores through a copy path instead (the
baselines of the in-place path).

    python examples/gnn_pipeline.py --maxEvents 100 --validation [--shape typical]
        [--copyPath inplace|elementwise|bulk] [--weights FILE] [--graphs auto|on|off]
        [--numberOfThreads N --numberOfStreams M] [--json report.json]

The model's weights are trained on the generator's truth at the first run (seconds
on a CPU) and kept in the disk cache, unless --weights names a file written by
torch.save(model.state_dict(), FILE).
"""
from __future__ import annotations

import argparse
import functools
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

if __package__ in (None, ""):  # run as a script: the project's root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ml  # noqa: E402
import portable.pipeline as pp  # noqa: E402
from portable.pipeline import cli  # noqa: E402

from examples.gnn.generator import SHAPES, Event, generate  # noqa: E402
from examples.gnn.layouts import Edges, Nodes, Particles  # noqa: E402
from examples.gnn.model import trained  # noqa: E402
from examples.gnn.modules import (BuildGraph, EdgeFeatures, Merge, Score,  # noqa: E402
                                  ScoreCopied, Upload)
from examples.gnn.scoring import COPY_PATHS, Linker  # noqa: E402
from examples.gnn.validate import Validation, check  # noqa: E402


class ValidationError(Exception):
    """An event's results differ from the reference's."""


class Validate(pp.Analyzer):
    """Checks every event on host copies (:func:`examples.gnn.validate.check`),
    records it in ``validation`` and fails the event on a difference."""

    def __init__(self, module: torch.nn.Module, validation: Validation) -> None:
        self.module, self.validation = module, validation

    def register(self, reg: pp.Registration) -> None:
        self.nodes = reg.consumes(Nodes, "merged", host=True)
        self.edges = reg.consumes(Edges, "scored", host=True)
        self.particles = reg.consumes(Particles, "merged", host=True)
        self.n_edges = reg.consumes(int, "edges")
        self.n_particles = reg.consumes(int, "particles")

    def analyze(self, event: pp.Event, ctx: pp.Context) -> None:
        problems, quality = check(event.input, event.get(self.nodes), event.get(self.edges),
                                  event.get(self.n_edges), event.get(self.particles),
                                  event.get(self.n_particles), self.module)
        self.validation.record(event.number, problems, quality)
        if problems:
            raise ValidationError(f"event {event.number} differs from the reference: "
                                  f"{'; '.join(problems)}")


@dataclass
class Job:
    """The modules and source of a job, and what its validation collects."""

    modules: list[pp.ModuleSpec]
    source: Callable[[int], Event]
    validation: Validation | None = None

    def finish(self) -> int:
        """Print the validation summary; 1 if an event failed validation, else 0."""
        if self.validation is None:
            return 0
        print(self.validation.summary(), file=sys.stderr if self.validation.failed else sys.stdout)
        return 1 if self.validation.failed else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this job's flags to the framework's.

    Example::

        >>> p = cli.parser(); add_arguments(p)
        >>> o = p.parse_args(["--shape", "tiny"]); o.shape, o.copyPath, o.weights
        ('tiny', 'inplace', None)
    """
    parser.add_argument("--shape", choices=sorted(SHAPES), default="typical",
                        help="event size: tiny ~40, typical ~270, large ~540 tracksters "
                             "(default typical)")
    parser.add_argument("--copyPath", choices=("inplace", *COPY_PATHS), default="inplace",
                        help="score in place (default) or through a copy path: elementwise "
                             "(element by element, one .item() per edge) or bulk")
    parser.add_argument("--weights", default=None, metavar="FILE",
                        help="the model's weights (a torch.save'd state_dict); default: "
                             "trained at the first run and cached")


def assemble(options: argparse.Namespace) -> Job:
    """The job the options describe (see :func:`build`)."""
    ml.set_threads(1, 1)
    shape = SHAPES[options.shape]
    module = trained(options.weights, verbose=True)
    linker = Linker(module, threads=1)
    score = (pp.module(Score, linker=linker) if options.copyPath == "inplace" else
             pp.module(ScoreCopied, name="Score", linker=linker, path=options.copyPath))
    modules = [pp.module(Upload, shape=shape), pp.module(BuildGraph, shape=shape),
               pp.module(EdgeFeatures), score, pp.module(Merge, shape=shape)]
    job = Job(modules, functools.partial(generate, shape=shape))
    if options.validation:
        job.validation = Validation()
        modules.append(pp.module(Validate, module=module, validation=job.validation))
    return job


def build(options: argparse.Namespace) -> tuple[list[pp.ModuleSpec], Callable[[int], Event]]:
    """The modules and the source of the job for ``options`` (the framework's flags
    plus :func:`add_arguments`'), for :func:`portable.pipeline.cli.main` or
    :class:`portable.pipeline.Process`."""
    job = assemble(options)
    return job.modules, job.source


def main(argv: list[str] | None = None) -> int:
    """Run the job on the command line ``argv`` (default: the program's); returns
    the exit status: 1 if an event failed (validation included), else 0."""
    return cli.run_job(assemble, argv, description=__doc__.splitlines()[0],
                       add_arguments=add_arguments)


if __name__ == "__main__":
    sys.exit(main())
