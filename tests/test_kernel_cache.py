"""The disk cache of compiled kernels: a second process loads what the first
compiled, a changed kernel (or device function, or captured constant) is
compiled anew, ``PORTABLE_CACHE=0`` writes nothing, an unwritable directory
warns and still runs, and processes compiling into one directory at once all
succeed."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import portable as pt

SCRIPT = textwrap.dedent('''
    import json, sys, time
    import numpy as np
    import portable as pt

    OFFSET = {offset}

    @pt.device_function
    def power(x):
        return {power}

    @pt.kernel
    def shifted_powers(acc, x, out):
        for i in acc.uniform_elements(x.size):
            out[i] = power(x[i]) + OFFSET * {scale}

    report = {{}}
    for backend in sys.argv[1:]:
        queue = pt.Queue(pt.get_device(backend))
        x, out = np.arange(6.0), np.zeros(6)
        start = time.perf_counter()
        pt.launch(queue, pt.make_workdiv(queue.device, x.size), shifted_powers, x, out)
        queue.synchronize()
        report[backend] = [time.perf_counter() - start, out.tolist()]
    print(json.dumps(report))
''')
BACKENDS = ("cpu_serial", "cpu_threads")


def _script(tmp_path: Path, offset: float = 1.0, power: str = "x * x",
            scale: float = 1.0) -> Path:
    path = tmp_path / "cached_kernel.py"
    path.write_text(SCRIPT.format(offset=offset, power=power, scale=scale))
    return path


def _expected(offset: float = 1.0, power: str = "x * x", scale: float = 1.0) -> list[float]:
    return [eval(power, {"x": x}) + offset * scale for x in np.arange(6.0)]


def _run(script: Path, cache: Path | str, *backends: str, **env: str) -> dict:
    """Run ``script`` in a new process with the cache directory ``cache``; its report."""
    process = _start(script, cache, backends, env)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return json.loads(out.strip().splitlines()[-1])


def _start(script: Path, cache: Path | str, backends: tuple[str, ...],
           env: dict[str, str]) -> subprocess.Popen:
    environment = {key: value for key, value in os.environ.items() if key != "PORTABLE_CACHE"}
    environment.update(PORTABLE_CACHE_DIR=str(cache), **env)
    return subprocess.Popen([sys.executable, str(script), *backends], env=environment,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_second_process_loads_the_compiled_kernels(tmp_path: Path) -> None:
    script, cache = _script(tmp_path), tmp_path / "cache"
    cold = _run(script, cache, *BACKENDS)
    warm = _run(script, cache, *BACKENDS)
    for report in (cold, warm):
        for backend in BACKENDS:
            assert report[backend][1] == _expected()
    cold_time = sum(cold[b][0] for b in BACKENDS)
    warm_time = sum(warm[b][0] for b in BACKENDS)
    assert warm_time < 0.5 * cold_time, (cold, warm)
    assert any(cache.glob("pt_*.py")) and any((cache / "__pycache__").iterdir())


def test_a_changed_kernel_device_function_or_constant_is_compiled_anew(tmp_path: Path
                                                                       ) -> None:
    cache = tmp_path / "cache"
    for change in ({}, {"offset": 5.0}, {"power": "x * x * x"}, {"scale": 3.0}):
        report = _run(_script(tmp_path, **change), cache, "cpu_serial")
        assert report["cpu_serial"][1] == _expected(**change), change


def test_the_cache_switched_off_writes_nothing(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    report = _run(_script(tmp_path), cache, "cpu_serial", PORTABLE_CACHE="0")
    assert report["cpu_serial"][1] == _expected()
    assert not cache.exists() or not any(cache.iterdir())


def test_an_unwritable_directory_warns_and_the_kernel_still_runs(tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    cache = blocker / "cache"  # cannot be made, even by root
    process = _start(_script(tmp_path), cache, ("cpu_serial",), {})
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["cpu_serial"][1] == _expected()
    assert str(cache) in err and "cannot be written" in err


def test_processes_compiling_into_one_empty_directory_at_once_all_succeed(tmp_path: Path
                                                                          ) -> None:
    script, cache = _script(tmp_path), tmp_path / "cache"
    processes = [_start(script, cache, BACKENDS, {}) for _ in range(2)]
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        report = json.loads(out.strip().splitlines()[-1])
        assert all(report[b][1] == _expected() for b in BACKENDS)


@pt.kernel
def _does_not_type(acc, out):
    for i in acc.uniform_elements(out.size):
        out[i] = out.no_such_member  # the line the error names


def test_a_compile_error_names_the_users_file_and_line_not_the_cache_file() -> None:
    queue = pt.Queue(pt.get_device("cpu_serial"))
    with pytest.raises(pt.KernelError) as caught:
        pt.launch(queue, pt.make_workdiv(queue.device, 4), _does_not_type, np.zeros(4))
    message = str(caught.value)
    assert f"{__file__}:" in message and "no_such_member" in message
    assert "pt_" not in message.split("Numba says")[0]
    assert os.environ["PORTABLE_CACHE_DIR"] not in message
