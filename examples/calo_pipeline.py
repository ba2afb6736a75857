"""Calorimeter clustering as an event-processing job on portable.pipeline.

The source gives, for each event number, the generator's hits of that event
(host arrays, the same on every run). Per event, on the device of its slot:

* ``Upload`` copies the hits, padded to the hit capacity, into pinned staging
  buffers (its ``stage``), then into a ``Hits`` collection of that capacity on
  the device, with the number of hits in a one-element device array;
* ``Clue`` runs CLUE on them, reading the count on the device, and puts the
  clustered hits and the number of clusters (on the device);
* ``Features`` computes each cluster's features into a ``Clusters`` collection
  of the cluster capacity (rows after the count are zeros);
* ``Score`` runs the MLP over every row in place (one ``ml.Model`` for every slot),
  or, with ``--inference service [--servers HOST:PORT,...]``, on Triton servers
  (``ml.service``; a local server is started for the model when none serves it);
* ``Select`` (ExternalWork) enqueues the selection of the clusters scoring
  above ``--threshold`` and copies the counts of selected clusters and of
  clusters into pinned memory; once the queue is there it puts them;
* with ``--transfer`` (implied by ``--histogram``), ``Transfer`` copies the
  results to the host; with ``--histogram``, ``Histogram`` fills the text
  histograms printed at the end;
* with ``--validation``, ``Validate`` checks every event against the NumPy
  reference on host copies of the device products: a difference fails the
  event, and the job exits with status 1 naming the events.

Every device step is capturable: buffers have the same sizes every event (the
capacities, ``--hit-capacity`` and ``--cluster-capacity``, by default from the
event shape), counts stay on the device and nothing waits for the host before
``Select``'s results, so on a GPU that can capture (``--graphs auto|on``) each
slot replays its events' device work as CUDA graphs. An event with more hits
than the capacity runs without graphs, with buffers of its own size; one with
more clusters than the cluster capacity fails, naming the option to raise.

    python examples/calo_pipeline.py --validation --maxEvents 100 \\
        --numberOfThreads 2 --numberOfStreams 2
"""
from __future__ import annotations

import argparse
import functools
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import ml  # noqa: E402
from ml import service  # noqa: E402
import portable.pipeline as pp  # noqa: E402
from examples.calo.clue import ClueParams, enqueue_cluster  # noqa: E402
from examples.calo.features import cluster_features, enqueue_select  # noqa: E402
from examples.calo.generator import SHAPES, Capacity, Event, capacity_for, generate  # noqa: E402
from examples.calo.layouts import Clusters, Hits, head  # noqa: E402
from examples.calo.model import ClusterScorer, score, score_metadata  # noqa: E402
from examples.calo.validate import check  # noqa: E402
from portable.pipeline import cli  # noqa: E402

#: the hit columns the generator gives, with their types; Clue fills the others
INPUT_COLUMNS = {m.name: m.dtype for m in Hits.members()
                 if m.name in ("layer", "x", "y", "energy")}


# -- the modules ----------------------------------------------------------------------

class Upload(pp.Producer):
    """The source's hits, copied into a ``Hits`` collection of ``capacity`` rows on
    the slot's device (the result columns are left for ``Clue``), and their number
    in a one-element device array. An event with more hits than ``capacity`` gets
    a collection of its own size instead (and runs without graphs)."""

    capturable = True

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity

    def register(self, reg: pp.Registration) -> None:
        self.hits = reg.produces(Hits, "uploaded")
        self.n_hits = reg.produces(np.ndarray, "hits")

    def stage(self, event: pp.Event, ctx: pp.Context) -> None:
        source: Event = event.input
        n = source.n_hits
        self.fits = n <= self.capacity
        if not self.fits:
            raise pp.OverCapacity(f"{n} hits > hit capacity {self.capacity} (--hit-capacity)")
        self.staged = {name: ctx.staging(name, self.capacity, dtype)
                       for name, dtype in INPUT_COLUMNS.items()}
        for name, staged in self.staged.items():
            staged[:n] = getattr(source, name)
        self.staged_count = ctx.staging("n_hits", 1, np.int32)
        self.staged_count[0] = n

    def produce(self, event: pp.Event, ctx: pp.Context) -> None:
        count = ctx.alloc(1, np.int32)
        if self.fits:
            hits = ctx.collection(Hits, self.capacity)
            for name, staged in self.staged.items():
                ctx.copy(hits.column(name), staged)
            ctx.copy(count, self.staged_count)
        else:
            source: Event = event.input
            hits = ctx.collection(Hits, source.n_hits)
            for name in INPUT_COLUMNS:
                ctx.copy(hits.column(name), getattr(source, name))
            host_count = ctx.host_alloc(1, np.int32)
            host_count[0] = source.n_hits
            ctx.copy(count, host_count)
        event.put(self.hits, hits)
        event.put(self.n_hits, count)


class Clue(pp.Producer):
    """CLUE on the uploaded hits. It fills their result columns, which no module
    reads before, and puts them again as the ``clustered`` hits, with the number
    of clusters in a one-element device array."""

    capturable = True

    def __init__(self, params: ClueParams) -> None:
        self.params = params

    def register(self, reg: pp.Registration) -> None:
        self.uploaded = reg.consumes(Hits, "uploaded")
        self.n_hits = reg.consumes(np.ndarray, "hits")
        self.clustered = reg.produces(Hits, "clustered")
        self.n_clusters = reg.produces(np.ndarray, "clusters")

    def produce(self, event: pp.Event, ctx: pp.Context) -> None:
        hits = event.get(self.uploaded)
        count = enqueue_cluster(ctx.queue, hits, self.params, ctx.alloc, event.get(self.n_hits))
        event.put(self.clustered, hits)
        event.put(self.n_clusters, count)


class Features(pp.Producer):
    """One ``Clusters`` row per cluster (energy, barycentre, widths, size, layer) in
    a collection of ``capacity.clusters`` rows, the rows after the clusters zeros;
    in an event beyond the hit capacity, one row per hit."""

    capturable = True

    def __init__(self, capacity: Capacity) -> None:
        self.capacity = capacity

    def register(self, reg: pp.Registration) -> None:
        self.hits = reg.consumes(Hits, "clustered")
        self.n_hits = reg.consumes(np.ndarray, "hits")
        self.n_clusters = reg.consumes(np.ndarray, "clusters")
        self.features = reg.produces(Clusters, "features")

    def produce(self, event: pp.Event, ctx: pp.Context) -> None:
        hits = event.get(self.hits)
        fits = hits.size <= self.capacity.hits
        clusters = ctx.collection(Clusters, self.capacity.clusters if fits else hits.size)
        cluster_features(ctx.queue, hits, clusters, ctx.alloc, event.get(self.n_hits),
                         event.get(self.n_clusters))
        event.put(self.features, clusters)


class Score(pp.Producer):
    """The MLP's score of every row of the features, written in place into their
    ``score`` column (which no module reads before), put again as ``scored``.
    ``scorer`` is one :class:`ml.Model` that every slot shares."""

    capturable = True

    def __init__(self, scorer: ml.Model) -> None:
        self.scorer = scorer

    def register(self, reg: pp.Registration) -> None:
        self.features = reg.consumes(Clusters, "features")
        self.scored = reg.produces(Clusters, "scored")

    def produce(self, event: pp.Event, ctx: pp.Context) -> None:
        clusters = event.get(self.features)
        score(ctx.queue, self.scorer, clusters)
        event.put(self.scored, clusters)


class ClusterOverflow(Exception):
    """An event has more clusters than its ``Clusters`` collection has rows."""


class Select(pp.ExternalWork):
    """The indices of the clusters scoring above ``threshold`` (on the device, in
    order, at the front of a buffer of one entry per row), put in ``acquire``;
    then, on the host, how many there are and how many clusters the event has.
    An event with more clusters than rows fails here (its features are
    incomplete)."""

    capturable = True

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold

    def register(self, reg: pp.Registration) -> None:
        self.clusters = reg.consumes(Clusters, "scored")
        self.n_clusters = reg.consumes(np.ndarray, "clusters")
        self.indices = reg.produces(np.ndarray, "selected")
        self.n_selected = reg.produces(int, "selected")
        self.n_clusters_host = reg.produces(int, "clusters")

    def stage(self, event: pp.Event, ctx: pp.Context) -> None:
        self.counts = ctx.staging("counts", 2, np.int32)  # selected, clusters

    def acquire(self, event: pp.Event, ctx: pp.Context) -> None:
        clusters = event.get(self.clusters)
        n_clusters = event.get(self.n_clusters)
        selected = ctx.alloc(clusters.size, np.int32)
        count = enqueue_select(ctx.queue, clusters, self.threshold, selected, ctx.alloc,
                               n_clusters)
        ctx.copy(self.counts[:1], count)
        ctx.copy(self.counts[1:], n_clusters)
        event.put(self.indices, selected)

    def produce(self, event: pp.Event, ctx: pp.Context) -> None:
        n_selected, n_clusters = (int(c) for c in self.counts)
        rows = event.get(self.clusters).size
        if n_clusters > rows:
            raise ClusterOverflow(f"event {event.number} has {n_clusters} clusters, more than "
                                  f"the {rows} rows of its features; raise --cluster-capacity")
        event.put(self.n_selected, n_selected)
        event.put(self.n_clusters_host, n_clusters)


@dataclass(frozen=True)
class Results:
    """An event's results in host memory, kept after the event: every cluster's
    energy and score, and the selected clusters' indices."""

    energy: np.ndarray
    score: np.ndarray
    selected: np.ndarray


class Transfer(pp.Producer):
    """The results, copied to the host (``--transfer``)."""

    def register(self, reg: pp.Registration) -> None:
        self.clusters = reg.consumes(Clusters, "scored", host=True)
        self.n_clusters = reg.consumes(int, "clusters")
        self.indices = reg.consumes(np.ndarray, "selected", host=True)
        self.n_selected = reg.consumes(int, "selected")
        self.results = reg.produces(Results)

    def produce(self, event: pp.Event, ctx: pp.Context) -> None:
        clusters = head(event.get(self.clusters), event.get(self.n_clusters))
        selected = event.get(self.indices)[:event.get(self.n_selected)]
        event.put(self.results, Results(clusters.column("energy").copy(),
                                        clusters.column("score").copy(), selected.copy()))


class Histograms:
    """Cluster energies and clusters per event, filled from any thread.

    Example::

        >>> h = Histograms()
        >>> h.fill(Results(np.array([1.0, 30.0]), np.array([0.1, 0.9]), np.array([1])))
        >>> print(h.render().splitlines()[0])
        1 events: 2.0 clusters and 1.0 selected per event
    """

    ENERGY_EDGES = np.array([0.0, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, np.inf])
    COUNT_EDGES = np.array([0, 5, 10, 20, 30, 50, 100, 200, np.inf])

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events = self.clusters = self.selected = 0
        self.energy = np.zeros(self.ENERGY_EDGES.size - 1, np.int64)
        self.counts = np.zeros(self.COUNT_EDGES.size - 1, np.int64)

    def fill(self, results: Results) -> None:
        """Add one event."""
        energy, _ = np.histogram(results.energy, self.ENERGY_EDGES)
        counts, _ = np.histogram([results.energy.size], self.COUNT_EDGES)
        with self.lock:
            self.events += 1
            self.clusters += results.energy.size
            self.selected += results.selected.size
            self.energy += energy
            self.counts += counts

    def render(self, width: int = 40) -> str:
        """The histograms as text bars."""
        per_event = max(self.events, 1)
        lines = [f"{self.events} events: {self.clusters / per_event:.1f} clusters and "
                 f"{self.selected / per_event:.1f} selected per event"]
        for title, edges, counts in (("cluster energy (GeV)", self.ENERGY_EDGES, self.energy),
                                     ("clusters per event", self.COUNT_EDGES, self.counts)):
            lines.append(title)
            most = max(int(counts.max()), 1)
            for lo, hi, n in zip(edges[:-1], edges[1:], counts):
                bin_name = f"{lo:g}-{hi:g}" if np.isfinite(hi) else f">= {lo:g}"
                lines.append(f"  {bin_name:>9} {int(n):8d} {'#' * round(width * n / most)}")
        return "\n".join(lines)


class Histogram(pp.Analyzer):
    """Fills the job's :class:`Histograms` (``--histogram``)."""

    def __init__(self, histograms: Histograms) -> None:
        self.histograms = histograms

    def register(self, reg: pp.Registration) -> None:
        self.results = reg.consumes(Results)

    def analyze(self, event: pp.Event, ctx: pp.Context) -> None:
        self.histograms.fill(event.get(self.results))


class ValidationError(Exception):
    """An event's results differ from the reference's."""


@dataclass
class Validation:
    """The events checked, and the problems of those that differ (from any thread)."""

    checked: int = 0
    failed: dict[int, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(self, number: int, problems: list[str]) -> None:
        """Count event ``number``, with its ``problems`` (empty if none)."""
        with self.lock:
            self.checked += 1
            if problems:
                self.failed[number] = problems

    def summary(self) -> str:
        """One line, and a line per failed event.

        Example::

            >>> v = Validation()
            >>> v.record(0, []); v.record(3, ["hits.cluster_id differs"])
            >>> print(v.summary())
            Validation FAILED: 1 of 2 events differ from the NumPy reference: event 3
              event 3: hits.cluster_id differs
        """
        if not self.failed:
            return f"Validation: all {self.checked} events agree with the NumPy reference"
        numbers = sorted(self.failed)
        lines = [f"Validation FAILED: {len(numbers)} of {self.checked} events differ from the "
                 f"NumPy reference: event{'s' if len(numbers) > 1 else ''} "
                 f"{', '.join(map(str, numbers))}"]
        lines += [f"  event {n}: {'; '.join(self.failed[n])}" for n in numbers]
        return "\n".join(lines)


class Validate(pp.Analyzer):
    """Checks every event against the NumPy reference, on host copies of the device
    products: labels, counts and selected indices exactly, features and scores
    within :mod:`examples.calo.validate`'s tolerances. Records the outcome in
    ``validation`` and fails the event on a difference."""

    def __init__(self, params: ClueParams, scorer: torch.nn.Module, threshold: float,
                 validation: Validation) -> None:
        self.params, self.scorer, self.threshold = params, scorer, threshold
        self.validation = validation

    def register(self, reg: pp.Registration) -> None:
        self.hits = reg.consumes(Hits, "clustered", host=True)
        self.clusters = reg.consumes(Clusters, "scored", host=True)
        self.n_clusters = reg.consumes(int, "clusters")
        self.indices = reg.consumes(np.ndarray, "selected", host=True)
        self.n_selected = reg.consumes(int, "selected")

    def analyze(self, event: pp.Event, ctx: pp.Context) -> None:
        source: Event = event.input
        hits = head(event.get(self.hits), source.n_hits)
        clusters = head(event.get(self.clusters), event.get(self.n_clusters))
        selected = event.get(self.indices)[:event.get(self.n_selected)]
        problems = check(source, self.params, hits, clusters, selected, self.scorer,
                         self.threshold)
        self.validation.record(event.number, problems)
        if problems:
            raise ValidationError(f"event {event.number} differs from the NumPy reference: "
                                  f"{'; '.join(problems)}")


# -- the job --------------------------------------------------------------------------

@dataclass
class Job:
    """The modules and source of a job, and what its analyzers collect."""

    modules: list[pp.ModuleSpec]
    source: Callable[[int], Event]
    validation: Validation | None = None
    histograms: Histograms | None = None
    #: the scorer on Triton servers (``--inference service``), closed at the end
    service_model: service.ServiceModel | None = None

    def finish(self) -> int:
        """Close the service model (its channels, shared-memory regions and any local
        server it started), print the histograms and the validation summary; 1 if an
        event failed validation, else 0."""
        if self.service_model is not None:
            self.service_model.close()
        if self.histograms is not None:
            print(self.histograms.render())
        if self.validation is None:
            return 0
        print(self.validation.summary(), file=sys.stderr if self.validation.failed else sys.stdout)
        return 1 if self.validation.failed else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this job's flags, ``--shape``, ``--threshold``, ``--hit-capacity`` and
    ``--cluster-capacity``, to the framework's.

    Example::

        >>> p = cli.parser(); add_arguments(p)
        >>> p.parse_args(["--shape", "tiny"]).shape, p.parse_args([]).threshold
        ('tiny', 0.5)
    """
    parser.add_argument("--shape", choices=sorted(SHAPES), default="small",
                        help="event size: tiny ~200, small ~1k, large ~10k hits "
                             "(default small)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="score a selected cluster exceeds (default 0.5)")
    parser.add_argument("--hit-capacity", type=int, default=0, metavar="N",
                        help="hits the event buffers hold; events with more run without "
                             "graphs (default 0: 1.25 x the most of the shape's first 16 "
                             "events)")
    parser.add_argument("--cluster-capacity", type=int, default=0, metavar="N",
                        help="clusters the event buffers hold; an event with more fails "
                             "(default 0: a 16th of the hit capacity, 32 at least)")
    service.add_arguments(parser)


def score_module(options: argparse.Namespace, module: torch.nn.Module) -> pp.ModuleSpec:
    """``Score``: the scorer in process, capturable (``--inference direct``), or on
    Triton servers through :class:`ml.service.ServiceInference` (``--inference
    service --servers ...``), which runs each event eagerly. Either way the
    ``scored`` clusters are the ``features`` written in place.

    Example::

        >>> p = cli.parser(); add_arguments(p)
        >>> score_module(p.parse_args([]), ClusterScorer()).factory.__name__
        'Score'
        >>> o = p.parse_args(["--inference", "service", "--servers", "127.0.0.1:9"])
        >>> score_module(o, ClusterScorer()).factory.__name__
        'ServiceInference'
    """
    if options.inference == "direct":
        return pp.module(Score, scorer=ml.Model(module))
    return service.inference_module(options, module, "calo_scorer", Clusters, score_metadata,
                                    consumes="features", produces="scored", name="Score")


def assemble(options: argparse.Namespace) -> Job:
    """The job the options describe (see :func:`build`)."""
    ml.set_threads(1, 1)
    shape = SHAPES[options.shape]
    params = ClueParams.for_geometry(shape.geometry)
    module = ClusterScorer(extent=shape.geometry.extent)
    capacity = capacity_for(options.shape, options.hit_capacity, options.cluster_capacity)
    modules = [pp.module(Upload, capacity=capacity.hits), pp.module(Clue, params=params),
               pp.module(Features, capacity=capacity),
               score_module(options, module),
               pp.module(Select, threshold=options.threshold)]
    job = Job(modules, functools.partial(generate, shape=shape))
    scorer = modules[3].config.get("model")
    if isinstance(scorer, service.ServiceModel):
        job.service_model = scorer
    if options.transfer or options.histogram:
        modules.append(pp.module(Transfer))
    if options.histogram:
        job.histograms = Histograms()
        modules.append(pp.module(Histogram, histograms=job.histograms))
    if options.validation:
        job.validation = Validation()
        modules.append(pp.module(Validate, params=params, scorer=module,
                                 threshold=options.threshold, validation=job.validation))
    return job


def build(options: argparse.Namespace) -> tuple[list[pp.ModuleSpec], Callable[[int], Event]]:
    """The modules and the source of the job for ``options`` (the framework's flags
    plus :func:`add_arguments`'), for :func:`portable.pipeline.cli.main` or
    :class:`portable.pipeline.Process`.

    Example::

        >>> p = cli.parser(); add_arguments(p)
        >>> modules, source = build(p.parse_args(["--shape", "tiny", "--validation"]))
        >>> [m.name for m in modules], source(0).n_hits > 0
        (['Upload', 'Clue', 'Features', 'Score', 'Select', 'Validate'], True)
    """
    job = assemble(options)
    return job.modules, job.source


def main(argv: list[str] | None = None) -> int:
    """Run the job on the command line ``argv`` (default: the program's); returns
    the exit status: 1 if an event failed (validation included), else 0."""
    return cli.run_job(assemble, argv, description=__doc__.splitlines()[0],
                       add_arguments=add_arguments)


if __name__ == "__main__":
    sys.exit(main())
