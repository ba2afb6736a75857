"""The C++ compiler that :func:`ml.aot_compile` builds AOTInductor packages with.

An AOTInductor package holds a shared object compiled from C++ that uses
``std::regex`` (to parse the device string when the model is created). Those
template instantiations are emitted as GNU "unique" symbols, which the dynamic
loader binds process-wide: when the package is loaded into a process whose torch
libraries were built by an older GCC, the package's regex code can end up
using torch's copies of the same statics and helpers, whose layout differs, and
the process dies in an endless recursion inside the regex compiler (seen with
GCC 13.3 and torch 2.11 on Ubuntu 24.04).

The cure is to keep the package's C++ runtime to itself: compile with
``-fno-gnu-unique`` (plain weak symbols, bound in the package's own scope) and
link with ``-Wl,-Bsymbolic`` (the package's references to what it defines bind
to its own definitions). Inductor has no setting for extra flags, so the
compiler it is given is a small script that adds them and runs the real one.

Example::

    >>> from ml.toolchain import isolating_compiler
    >>> isolating_compiler().endswith(("g++", "clang++"))
    True
"""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from .metadata import MetadataError

_SCRIPT = """#!/bin/sh
# Runs {base} for AOTInductor with the package's C++ runtime kept to itself.
for arg in "$@"; do
  case "$arg" in
    --version|-dumpversion|-print-*) exec "{base}" "$@" ;;
    -shared) exec "{base}" "$@" {compile_flags} -Wl,-Bsymbolic ;;
  esac
done
exec "{base}" "$@" {compile_flags}
"""


def isolating_compiler(base: str | None = None) -> str:
    """The path of a compiler script for AOTInductor: ``base`` (default ``$CXX``
    or ``g++``) with the flags that keep a package's C++ runtime to itself
    (see the module's docstring). The script is written once per compiler into
    the temporary directory; its name ends as the base compiler's does, so
    Inductor recognises GCC or Clang from it."""
    name = base or os.environ.get("CXX", "g++")
    found = shutil.which(name)
    if found is None:
        raise MetadataError(f"no C++ compiler {name!r} on PATH: AOTInductor needs one to "
                            f"compile a package; install g++ or set CXX")
    is_clang = "clang" in _version(found)
    compile_flags = "" if is_clang else "-fno-gnu-unique"  # clang emits no unique symbols
    text = _SCRIPT.format(base=found, compile_flags=compile_flags)
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    folder = Path(tempfile.gettempdir()) / f"portable-ml-cxx-{os.getuid()}-{digest}"
    script = folder / ("isolated-clang++" if is_clang else "isolated-g++")
    if not script.exists():
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{os.getpid()}.tmp"
        partial.write_text(text)
        partial.chmod(0o755)
        os.replace(partial, script)  # atomic: concurrent callers see a whole script
    return str(script)


def _version(compiler: str) -> str:
    try:
        return subprocess.run([compiler, "--version"], capture_output=True, text=True,
                              check=True).stdout.lower()
    except (OSError, subprocess.CalledProcessError) as err:
        raise MetadataError(f"the C++ compiler {compiler} does not run ({err}); AOTInductor "
                            f"needs a working one: install g++ or set CXX") from err
