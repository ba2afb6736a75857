"""The per-backend fixtures also load from the installed package's pytest plugin;
importing them here keeps the suite runnable from a plain checkout."""
from portable.testing import queue  # noqa: F401
