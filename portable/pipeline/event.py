"""What a module sees of one event: its number, the source's input, and the products.

Products are read-only for their consumers. ``get`` hands a device product to a
module on its device, or its host copy to a module that consumes it on the host.

Example::

    >>> from .tokens import Registration
    >>> reg = Registration("A")
    >>> token = reg.produces(int, "n")
    >>> event = Event(7, "input", {}, {}, "A", {token})
    >>> event.put(token, 3); event.products[token].value
    3
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..checks import describe
from ..collection import PortableCollection
from ..layout import Layout
from .errors import PipelineError
from .tokens import Input, Token

if TYPE_CHECKING:
    from ..device import Device
    from ..event import Event as QueueEvent
    from ..queue import Queue


@dataclass
class Product:
    """A product of one event: where it lives, the queue that made it and an event
    recorded there after its producer's work (``None`` for host objects)."""

    value: Any
    device: Device | None = None
    queue: Queue | None = None
    ready: QueueEvent | None = None
    #: the host copy (or the value itself when it is in host memory) and its event
    host_value: Any = None
    host_ready: QueueEvent | None = None
    #: whether a consumer has reused ``queue`` for its own work in this event
    queue_taken: bool = False


class Event:
    """One event as seen by one module call (``number``, ``input``, ``get``, ``put``)."""

    def __init__(self, number: int, input: Any, products: dict[Token, Product],
                 inputs: dict[Token, Any], module: str, produces: set[Token]) -> None:
        self.number = number
        self.input = input
        self.products = products
        self._inputs = inputs
        self._module = module
        self._produces = produces

    def get(self, token: Input | Token) -> Any:
        """The product ``token`` names (a token from ``reg.consumes``)."""
        if isinstance(token, Input):
            key = token.product
        elif isinstance(token, Token):
            key = token
        else:
            raise PipelineError(f"module {self._module!r}: event.get takes a token from "
                                f"reg.consumes, got {describe(token)}")
        if key not in self._inputs:
            raise PipelineError(f"module {self._module!r} reads {key} without declaring it; "
                                f"add self.token = reg.consumes({key.type.__name__}"
                                f"{', ' + repr(key.label) if key.label else ''}) in register")
        return self._inputs[key]

    def put(self, token: Token, value: Any) -> None:
        """Store ``value`` as the product ``token`` (from ``reg.produces``)."""
        if token not in self._produces:
            raise PipelineError(f"module {self._module!r} puts {token!s} without declaring "
                                f"it; add reg.produces({getattr(token, 'type', object).__name__}"
                                f") in register")
        if token in self.products:
            raise PipelineError(f"module {self._module!r} puts {token} twice in event "
                                f"{self.number}")
        if not _fits(token.type, value):
            raise PipelineError(f"module {self._module!r} puts {describe(value)} as {token}; "
                                f"put a {token.type.__name__}")
        self.products[token] = Product(value)


def _fits(kind: type, value: Any) -> bool:
    """Whether ``value`` may be stored as a product of type ``kind``: a collection of
    the layout for a Layout, any array (host or device) for np.ndarray."""
    if issubclass(kind, Layout):
        return isinstance(value, PortableCollection) and value.layout is kind
    if kind is np.ndarray:
        return hasattr(value, "shape") and hasattr(value, "dtype")
    return isinstance(value, kind)
