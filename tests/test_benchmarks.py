"""Every benchmark's smoke run (``--quick``) completes on the CPU and writes its record,
and the README's performance table can be generated from the records.

No timing is asserted: the smoke runs only show that the scripts still work. They run
as separate processes, a few at a time (several mostly wait: on servers, on timed
event loops), all started by the first test that needs one.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Iterator

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
HELPERS = {"common", "workloads", "report"}
SCRIPTS = sorted(path.stem for path in BENCHMARKS.glob("*.py") if path.stem not in HELPERS)
#: narrower smoke runs where --quick alone takes minutes on two cores
NARROWER = {"pipeline": ["--threads-list", "1", "--streams-list", "1", "--shapes", "small",
                         "--events", "4", "--pool", "2", "--warmup", "1", "--backends",
                         "cpu_serial", "--mixed", "", "--graphs-list", "off"]}
AT_ONCE = 3


def run(arguments: list[str]) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    environment.pop("NUMBA_ENABLE_CUDASIM", None)
    return subprocess.run([sys.executable, *arguments], cwd=BENCHMARKS.parent,
                          env=environment, capture_output=True, text=True, timeout=900)


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[dict[str, tuple[Path, Future[subprocess.CompletedProcess[str]]]]]:
    """Every script's smoke run, started at once (``AT_ONCE`` at a time): its output
    folder and the run."""
    pool = ThreadPoolExecutor(max_workers=AT_ONCE)
    runs = {}
    for script in sorted(SCRIPTS, key=lambda s: s not in NARROWER and s != "service"):
        out = tmp_path_factory.mktemp(script)
        runs[script] = (out, pool.submit(run, [str(BENCHMARKS / f"{script}.py"), "--quick",
                                               "--out", str(out), *NARROWER.get(script, [])]))
    yield runs
    pool.shutdown(wait=True)


@pytest.mark.parametrize("script", SCRIPTS)
def test_smoke_run_writes_a_record(script: str, smoke_runs: dict[str, Any]) -> None:
    out, running = smoke_runs[script]
    done = running.result()
    assert done.returncode == 0, f"{script} --quick failed:\n{done.stdout[-2000:]}\n" \
                                 f"{done.stderr[-4000:]}"
    records = [json.loads(path.read_text()) for path in out.glob("*.json")]
    assert records, f"{script} --quick wrote no record in {out}"
    for record in records:
        assert record["quick"] is True
        assert record["date"] and record["versions"]["numpy"]


def test_report_fills_the_table_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    shutil.copy(BENCHMARKS.parent / "README.md", readme)
    done = run([str(BENCHMARKS / "report.py"), "--readme", str(readme)])
    assert done.returncode == 0, done.stderr
    table = readme.read_text().split("<!-- performance table:", 1)[1].split(
        "<!-- end of the", 1)[0]
    assert "| what | portable | baseline in the same run | measured on |" in table
    assert table.count("\n|") >= 3, table
