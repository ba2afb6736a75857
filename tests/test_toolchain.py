"""The compiler script AOTInductor packages are built with keeps the package's
C++ runtime to itself: no process-wide (GNU unique) symbols, references bound
to the package's own definitions."""
import os
import shutil
import subprocess

import pytest

from ml.toolchain import isolating_compiler

REGEX_USER = """
#include <regex>
#include <string>
extern "C" int device_index(const char* text) {
    std::smatch match;
    std::string s(text);
    static const std::regex pattern("(cpu|cuda)(:([0-9]+))?");
    return std::regex_match(s, match, pattern) && match[3].matched ? std::stoi(match[3]) : -1;
}
"""

needs_tools = pytest.mark.skipif(not (shutil.which("g++") and shutil.which("readelf")),
                                 reason="needs g++ and readelf")


def build(compiler: str, tmp_path, name: str) -> str:
    source = tmp_path / "regex_user.cpp"
    source.write_text(REGEX_USER)
    target = tmp_path / f"{name}.so"
    subprocess.run([compiler, "-O1", "-fPIC", "-std=c++17", "-c", str(source),
                    "-o", str(tmp_path / f"{name}.o")], check=True)
    subprocess.run([compiler, "-shared", str(tmp_path / f"{name}.o"), "-o", str(target)],
                   check=True)
    return str(target)


def unique_symbols(path: str) -> list[str]:
    table = subprocess.run(["readelf", "--dyn-syms", "-W", path], capture_output=True,
                           text=True, check=True).stdout
    return [line for line in table.splitlines() if " UNIQUE " in line]


def is_symbolic(path: str) -> bool:
    dynamic = subprocess.run(["readelf", "-d", path], capture_output=True, text=True,
                             check=True).stdout
    return "SYMBOLIC" in dynamic


@needs_tools
def test_isolating_compiler_keeps_the_runtime_to_itself(tmp_path):
    plain = build("g++", tmp_path, "plain")
    assert unique_symbols(plain), "plain g++ should emit GNU unique symbols for std::regex"
    assert not is_symbolic(plain)
    isolated = build(isolating_compiler("g++"), tmp_path, "isolated")
    assert unique_symbols(isolated) == []
    assert is_symbolic(isolated)
    import ctypes
    assert ctypes.CDLL(isolated).device_index(b"cuda:3") == 3


@needs_tools
def test_isolating_compiler_passes_queries_through():
    script = isolating_compiler("g++")
    assert os.access(script, os.X_OK) and script.endswith("g++")
    version = subprocess.run([script, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout == subprocess.run(["g++", "--version"], capture_output=True,
                                            text=True).stdout
    assert isolating_compiler("g++") == script          # written once


def test_missing_compiler_is_a_clear_error():
    from ml import MetadataError
    with pytest.raises(MetadataError, match="no C\\+\\+ compiler 'no-such-c\\+\\+'.*set CXX"):
        isolating_compiler("no-such-c++")
