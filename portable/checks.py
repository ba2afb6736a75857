"""Argument checks shared by every public entry point.

Each check names the function, the argument and what it got, and says how to
get the right kind of value, before any data is touched.

Example::

    >>> import portable as pt
    >>> from portable.checks import expect_device
    >>> expect_device("cpu_serial", "device", "pt.Queue")
    Traceback (most recent call last):
    ...
    portable.errors.ArgumentError: pt.Queue: argument 'device' must be a pt.Device, got the str 'cpu_serial'; use pt.get_device('cpu_serial')
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import ArgumentError

if TYPE_CHECKING:
    from .device import Device
    from .event import Event
    from .queue import Queue

# Device, Queue and Event, imported at the first check (their modules import this one)
_Device: Any = None
_Queue: Any = None
_Event: Any = None


def _load_types() -> None:
    global _Device, _Queue, _Event
    from .device import Device
    from .event import Event
    from .queue import Queue
    _Device, _Queue, _Event = Device, Queue, Event


def describe(value: Any) -> str:
    """``value`` for an error message: its type and a short repr."""
    text = " ".join(repr(value).split())  # arrays and tensors print on several lines
    if len(text) > 60:
        text = text[:57] + "..."
    return f"the {type(value).__name__} {text}"


def expect_device(value: Any, arg: str, where: str) -> Device:
    """``value`` if it is a :class:`~portable.Device`, else an :class:`ArgumentError`
    that says how to get one from what was given."""
    if _Device is None:
        _load_types()
    if isinstance(value, _Device):
        return value
    if isinstance(value, str):
        fix = f"use pt.get_device({value!r})"
    elif isinstance(value, _Queue):
        fix = "use queue.device"
    else:
        fix = "use pt.get_device(backend_name, index)"
    raise ArgumentError(f"{where}: argument {arg!r} must be a pt.Device, got "
                        f"{describe(value)}; {fix}")


def expect_queue(value: Any, arg: str, where: str) -> Queue:
    """``value`` if it is a :class:`~portable.Queue`, else an :class:`ArgumentError`
    that says how to make one."""
    if _Queue is None:
        _load_types()
    if isinstance(value, _Queue):
        return value
    if isinstance(value, _Device):
        fix = "make one with pt.Queue(device)"
    elif isinstance(value, str):
        fix = f"make one with pt.Queue(pt.get_device({value!r}))"
    else:
        fix = "make one with pt.Queue(pt.get_device(backend_name))"
    raise ArgumentError(f"{where}: argument {arg!r} must be a pt.Queue, got "
                        f"{describe(value)}; {fix}")


def expect_event(value: Any, arg: str, where: str, fix: str = "") -> Event:
    """``value`` if it is a :class:`~portable.Event`, else an :class:`ArgumentError`
    naming ``arg`` (and ``fix``, when given).

    Example::

        >>> expect_event(3, "event", "queue.wait_for")
        Traceback (most recent call last):
        ...
        portable.errors.ArgumentError: queue.wait_for: argument 'event' must be a pt.Event, got the int 3
    """
    if _Event is None:
        _load_types()
    if isinstance(value, _Event):
        return value
    raise ArgumentError(f"{where}: argument {arg!r} must be a pt.Event, got "
                        f"{describe(value)}{'; ' + fix if fix else ''}")


def expect_count(value: Any, arg: str, where: str, least: int = 0) -> int:
    """``value`` as an ``int`` if it is an integer (not a bool) ``>= least``; a float,
    even a whole one, is refused, as NumPy refuses it for a shape."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ArgumentError(f"{where}: argument {arg!r} must be an integer >= {least}, got "
                            f"{describe(value)}")
    if value < least:
        raise ArgumentError(f"{where}: argument {arg!r} must be an integer >= {least}, got "
                            f"{int(value)}")
    return int(value)


def expect_flag(value: Any, arg: str, where: str) -> bool:
    """``value`` if it is a ``bool`` (NumPy's included), else an :class:`ArgumentError`."""
    if not isinstance(value, (bool, np.bool_)):
        raise ArgumentError(f"{where}: argument {arg!r} must be True or False, got "
                            f"{describe(value)}")
    return bool(value)
