"""Calorimeter clustering, one event after another, on the selected backend.

Each event is generated (showers plus noise on a layered cell grid), copied
to the device, clustered with CLUE, summarised into cluster features, scored
by an MLP in place and selected; ``--validation`` checks every event against
the NumPy reference. The first event also compiles the kernels and is not
timed.

    PORTABLE_BACKEND=cpu_threads python examples/calo_single.py --events 20 --validation
"""
from __future__ import annotations

import argparse
import sys
import time

import ml
import portable as pt
from calo.clue import ClueParams
from calo.generator import SHAPES, generate
from calo.model import ClusterScorer
from calo.pipeline import process_event
from calo.validate import validate


def main(argv: list[str] | None = None) -> int:
    """Run the events; return 1 if validation found a problem, else 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10, help="events to time (default 10)")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="small",
                        help="event size: tiny ~200, small ~1k, large ~10k hits (default small)")
    parser.add_argument("--threshold", type=float, default=0.5,
                        help="score a selected cluster exceeds (default 0.5)")
    parser.add_argument("--validation", action="store_true",
                        help="check every event against the NumPy reference")
    args = parser.parse_args(argv)

    ml.set_threads(1, 1)
    queue = pt.Queue(pt.get_device())
    shape = SHAPES[args.shape]
    params = ClueParams.for_geometry(shape.geometry)
    module = ClusterScorer(extent=shape.geometry.extent)
    scorer = ml.Model(module)

    start = time.perf_counter()
    process_event(queue, generate(0, shape), params, scorer, args.threshold)
    print(f"backend {queue.backend.name}, {args.shape} events: first event (compiling) "
          f"{time.perf_counter() - start:.1f} s")

    failed, busy = 0, 0.0
    for number in range(1, args.events + 1):
        event = generate(number, shape)
        start = time.perf_counter()
        outputs = process_event(queue, event, params, scorer, args.threshold)
        busy += time.perf_counter() - start
        line = (f"event {number:3d}: {event.n_hits:6d} hits, {outputs.clusters.size:4d} "
                f"clusters, {outputs.n_selected:4d} selected")
        if args.validation:
            problems = validate(queue, event, params, outputs, module, args.threshold)
            failed += bool(problems)
            line += " ok" if not problems else "\n  " + "\n  ".join(problems)
        print(line)
    rate = args.events / busy if busy else float("inf")
    print(f"{args.events} events in {busy * 1e3:.1f} ms: {rate:.1f} events/s "
          f"({busy / max(args.events, 1) * 1e3:.2f} ms per event, generation and validation "
          f"not counted)")
    if args.validation:
        print(f"validation: {args.events - failed} of {args.events} events agree with the "
              f"reference")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
