"""The per-backend fixtures also load from the installed package's pytest plugin;
importing them here keeps the suite runnable from a plain checkout.

Each test session compiles into a fresh kernel cache directory (removed at the
end) unless ``PORTABLE_CACHE_DIR`` is set, so no run depends on an earlier one."""
import atexit
import os
import shutil
import tempfile

if not os.environ.get("PORTABLE_CACHE_DIR"):
    os.environ["PORTABLE_CACHE_DIR"] = tempfile.mkdtemp(prefix="portable-kernels-")
    atexit.register(shutil.rmtree, os.environ["PORTABLE_CACHE_DIR"], True)

from portable.testing import queue  # noqa: E402,F401
