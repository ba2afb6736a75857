"""The command line: the reference framework's flags, the report line, the JSON file."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from portable.pipeline import cli

PROGRAM = textwrap.dedent('''
    import numpy as np
    import portable as pt
    import portable.pipeline as pp
    from portable.pipeline import cli

    @pt.kernel
    def iota(acc, out, start):
        for i in acc.uniform_elements(out.size):
            out[i] = start + i

    class Make(pp.Producer):
        def register(self, reg):
            self.out = reg.produces(np.ndarray)
        def produce(self, event, ctx):
            out = ctx.alloc(16, np.int64)
            ctx.launch(iota, 16, out, event.number)
            event.put(self.out, out)

    class Check(pp.Analyzer):
        def register(self, reg):
            self.values = reg.consumes(np.ndarray, host=True)
        def analyze(self, event, ctx):
            values = np.asarray(event.get(self.values))
            assert values.tolist() == list(range(event.number, event.number + 16))

    def build(options):
        modules = [Make] + ([Check] if options.validation else [])
        return modules, (lambda n: None)

    raise SystemExit(cli.main(build, description="a test pipeline"))
''')


def test_flags_run_a_program_and_print_the_reference_line(tmp_path):
    program = tmp_path / "program.py"
    program.write_text(PROGRAM)
    report_file = tmp_path / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NUMBA_ENABLE_CUDASIM",
                                                                    "PORTABLE_"))}
    done = subprocess.run(
        [sys.executable, str(program), "--numberOfThreads", "2", "--numberOfStreams", "3",
         "--maxEvents", "20", "--warmupEvents", "2", "--validation", "--serial", "1",
         "--threads", "1", "--json", str(report_file)],
        capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Processed 20 events in " in done.stdout
    assert "events/s, CPU usage per thread: " in done.stdout
    assert "Check" in done.stdout and "cpu_serial" in done.stdout
    report = json.loads(report_file.read_text())
    assert report["events"] == 20 and report["failed"] == 0 and report["threads"] == 2
    assert report["streams"] == 3 and report["warmup_events"] == 2
    assert sorted(report["slot_backends"]) == ["cpu_serial", "cpu_threads", "cpu_threads"] or \
        sorted(report["slot_backends"]) == ["cpu_serial", "cpu_serial", "cpu_threads"]


def test_zero_threads_and_streams_mean_all_cores_and_threads():
    options = cli.parse(["--numberOfThreads", "0", "--numberOfStreams", "0"])
    threads = os.cpu_count() or 1
    assert cli.threads_and_streams(options) == (threads, threads)
    assert cli.weights(options) is None
    options = cli.parse(["--numberOfThreads", "3", "--cuda", "0.8", "--serial", "0.2"])
    assert cli.threads_and_streams(options) == (3, 3)
    assert cli.weights(options) == pytest.approx({"cuda": 0.8, "cpu_serial": 0.2})
