"""Products, tokens and the registration step in which modules declare them.

A product is identified by its type and a label (empty by default; labels tell
apart two products of one type). ``produces`` and ``consumes`` hand back tokens
that the module keeps and later passes to ``event.put`` and ``event.get``.

Example::

    >>> import numpy as np
    >>> reg = Registration("Calib")
    >>> out = reg.produces(np.ndarray, "calibrated")
    >>> raw = reg.consumes(np.ndarray, "raw", host=True)
    >>> out, raw.product, raw.host
    (Token(ndarray, 'calibrated'), Token(ndarray, 'raw'), True)
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..checks import describe
from ..errors import ArgumentError


@dataclass(frozen=True)
class Token:
    """A product's identity: its type and label."""

    type: type
    label: str = ""

    def __repr__(self) -> str:
        return f"Token({self.type.__name__}, {self.label!r})"

    def __str__(self) -> str:
        return f"{self.type.__name__} {self.label!r}" if self.label else self.type.__name__


@dataclass(frozen=True)
class Input:
    """A consumed product: ``host`` asks for it in host memory (a device product is then
    copied once per event, into pinned memory, for every such consumer)."""

    product: Token
    host: bool = False


@dataclass
class Registration:
    """What one module declares: the products it makes, the products it reads, and the
    filters it runs behind (``requires``)."""

    module: str
    produced: list[Token] = field(default_factory=list)
    consumed: list[Input] = field(default_factory=list)
    required: list[str] = field(default_factory=list)

    def _token(self, kind: object, label: object, where: str) -> Token:
        if not isinstance(kind, type):
            raise ArgumentError(f"{where} in module {self.module!r}: the product type must be "
                                f"a class (a Layout subclass, np.ndarray, ...), got "
                                f"{describe(kind)}")
        if not isinstance(label, str):
            raise ArgumentError(f"{where} in module {self.module!r}: the label must be a str, "
                                f"got {describe(label)}")
        return Token(kind, label)

    def produces(self, kind: type, label: str = "") -> Token:
        """Declare a product of type ``kind`` (labelled ``label``); returns its token."""
        token = self._token(kind, label, "produces")
        if token in self.produced:
            raise ArgumentError(f"module {self.module!r} declares produces({token}) twice; "
                                f"give the second one another label")
        self.produced.append(token)
        return token

    def consumes(self, kind: type, label: str = "", *, host: bool = False) -> Input:
        """Declare that the module reads the product ``kind``/``label``; with
        ``host=True`` it reads it in host memory. Returns the token for ``event.get``."""
        if not isinstance(host, bool):
            raise ArgumentError(f"consumes in module {self.module!r}: 'host' must be True or "
                                f"False, got {describe(host)}")
        wanted = Input(self._token(kind, label, "consumes"), host)
        self.consumed.append(wanted)
        return wanted

    def requires(self, filter_name: str) -> None:
        """Run the module only on events that the filter module ``filter_name`` passes."""
        if not isinstance(filter_name, str):
            raise ArgumentError(f"requires in module {self.module!r}: give the filter's module "
                                f"name as a str, got {describe(filter_name)}")
        self.required.append(filter_name)
