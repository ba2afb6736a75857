"""``python -m portable``: versions, backends (available or why not), the
selected backend and its devices."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import sys

import portable as pt
from portable.backend import ENV_VAR


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def report() -> tuple[str, bool]:
    """The text that ``python -m portable`` prints, and whether the selected backend
    can be used (the command's exit status is 1 when it cannot)."""
    lines = [f"portable {pt.__version__} on Python {platform.python_version()} "
             f"({platform.machine()})", "", "versions:"]
    for dist in ("numpy", "numba", "llvmlite", "numba-cuda", "ziglang", "rocm-bindings-hip",
                 "torch", "cupy"):
        lines.append(f"  {dist:<17} {_version(dist)}")
    lines += ["", "backends:"]
    for backend in pt.all_backends():
        lines.append(f"  {backend.name:<12} {backend.state}")
        lines += [f"  {'':<12} {note}" for note in backend.notes()]
    lines.append("")
    try:
        chosen = pt.selected_backend()
    except pt.BackendError as err:
        lines.append(f"selected: none ({err})")
        return "\n".join(lines), False
    how = f"from {ENV_VAR}" if os.environ.get(ENV_VAR, "").strip() else "default"
    lines.append(f"selected: {chosen.name} ({how})")
    for device in chosen.devices():
        lim = device.limits
        lines.append(f"  {device}: {device.name}; max {lim.max_threads_per_block} threads/block, "
                     f"{lim.multiprocessors} multiprocessors/cores")
    return "\n".join(lines), True


if __name__ == "__main__":
    text, usable = report()
    print(text)
    sys.exit(0 if usable else 1)
