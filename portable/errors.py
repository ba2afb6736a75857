"""Exceptions raised by the portable layer.

Every error says what was wrong and how to fix it; each is raised before any
data is touched.
"""


class PortableError(Exception):
    """Base class of every error raised by :mod:`portable`."""


class BackendError(PortableError):
    """A backend name is unknown, or the backend asked for cannot run here."""


class KernelError(PortableError):
    """A kernel's definition cannot be compiled for the portable model."""


class LaunchError(PortableError):
    """A launch's work division or arguments do not fit the queue's device."""


class RangeError(PortableError, IndexError):
    """An element index out of range, caught by the range-checked mode
    (``PORTABLE_BOUNDSCHECK=1``) on the CPU backends."""


class ArgumentError(PortableError, TypeError, ValueError):
    """An argument of the wrong kind or value (a string where a device is expected,
    a float or a negative number where a count is): the message names the function,
    the argument, what it got and the fix. It is a ``TypeError`` and a ``ValueError``
    too, so code catching either keeps working."""


class LaunchArgumentError(LaunchError, ArgumentError):
    """A launch given something of the wrong kind (not a kernel, not a work division,
    an argument no kernel can take): both a :class:`LaunchError` and an
    :class:`ArgumentError`, so code catching either sees it."""
