"""Backend selection: names, availability, and the precedence rules."""
import subprocess
import sys

import pytest

import portable as pt
from portable.backend import DEFAULT_ORDER, ENV_VAR


@pytest.fixture
def no_env(monkeypatch):
    monkeypatch.delenv(ENV_VAR, raising=False)


def test_every_backend_is_registered():
    assert {b.name for b in pt.all_backends()} == {"cpu_serial", "cpu_threads", "cuda", "rocm"}


def test_unknown_name_is_an_error_with_suggestions():
    with pytest.raises(pt.BackendError, match=r"unknown backend 'cpu_thread'.*'cpu_threads'"):
        pt.get_backend("cpu_thread")


def test_unavailable_backend_says_why_and_lists_runnable():
    with pytest.raises(pt.BackendError) as err:
        pt.get_backend("rocm")
    text = str(err.value)
    assert "cannot run here" in text and "HIP" in text
    assert "cpu_serial" in text and "cpu_threads" in text


def test_default_is_first_available_of_cuda_rocm_cpu(no_env):
    by_name = {b.name: b for b in pt.all_backends()}
    expected = next(n for n in DEFAULT_ORDER if by_name[n].available)
    assert pt.selected_backend().name == expected


def test_environment_variable_selects(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "cpu_threads")
    assert pt.selected_backend().name == "cpu_threads"
    assert pt.Queue().device.backend.name == "cpu_threads"


def test_environment_variable_naming_unavailable_backend_is_an_error(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "rocm")
    with pytest.raises(pt.BackendError, match=f"{ENV_VAR}='rocm'.*cannot run here"):
        pt.selected_backend()


def test_environment_variable_with_unknown_name_is_an_error(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "gpu")
    with pytest.raises(pt.BackendError, match="unknown backend 'gpu'"):
        pt.Queue()


def test_scoped_selection_beats_environment(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "cpu_threads")
    with pt.use_backend("cpu_serial"):
        assert pt.selected_backend().name == "cpu_serial"
        assert pt.get_device().backend.name == "cpu_serial"
    assert pt.selected_backend().name == "cpu_threads"


def test_explicit_device_beats_scope_and_environment(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "cpu_threads")
    with pt.use_backend("cpu_threads"):
        q = pt.Queue(pt.get_device("cpu_serial"))
    assert q.backend.name == "cpu_serial"


def test_scoped_selection_of_unavailable_backend_fails_on_entry():
    with pytest.raises(pt.BackendError, match="rocm"):
        with pt.use_backend("rocm"):
            pass  # pragma: no cover


def test_device_index_out_of_range():
    with pytest.raises(pt.BackendError, match="device index 3 is out of range"):
        pt.get_device("cpu_serial", 3)


def test_python_m_portable_reports_everything(no_env):
    out = subprocess.run([sys.executable, "-m", "portable"], capture_output=True, text=True,
                         check=True).stdout
    for name in ("cpu_serial", "cpu_threads", "cuda", "rocm", "numba", "numpy", "selected:"):
        assert name in out
    assert "unavailable:" in out  # rocm at least says why


def test_python_m_portable_reports_bad_environment(monkeypatch):
    monkeypatch.setenv(ENV_VAR, "nonsense")
    out = subprocess.run([sys.executable, "-m", "portable"], capture_output=True,
                         text=True).stdout
    assert "selected: none" in out and "unknown backend 'nonsense'" in out
