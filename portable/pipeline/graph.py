"""The per-event dependency graph, worked out from what modules declare.

A module depends on the producers of what it consumes and on the filters it
requires. The graph is refused, with the modules named, when it has a cycle, when
a product is consumed but nobody produces it, or when two modules produce one.

Example::

    >>> from .tokens import Registration
    >>> a, b = Registration("A"), Registration("B")
    >>> t = a.produces(int)
    >>> _ = b.consumes(int)
    >>> g = Graph.build({"A": a, "B": b}, filters=set())
    >>> g.depends_on["B"], g.roots
    ({'A'}, ['A'])
    >>> _ = a.consumes(float)
    >>> Graph.build({"A": a, "B": b}, filters=set())
    Traceback (most recent call last):
    ...
    portable.pipeline.errors.PipelineError: module 'A' consumes float, which no module produces; add a module that produces it (register: self.token = reg.produces(float)), or consume a product that exists: int by 'A'
"""
from __future__ import annotations

import functools

from dataclasses import dataclass

from .errors import PipelineError
from .tokens import Registration, Token


@dataclass
class Graph:
    """Who produces each product, what each module waits for and who waits for it."""

    producer_of: dict[Token, str]
    depends_on: dict[str, set[str]]
    dependents: dict[str, list[str]]
    order: list[str]

    @functools.cached_property
    def roots(self) -> list[str]:
        """The modules that wait for nothing, in listed order."""
        return [m for m in self.order if not self.depends_on[m]]

    @classmethod
    def build(cls, registrations: dict[str, Registration], filters: set[str]) -> Graph:
        """The graph of ``registrations`` (module name -> declarations, in listed
        order); ``filters`` names the filter modules."""
        producer_of: dict[Token, str] = {}
        for name, reg in registrations.items():
            for token in reg.produced:
                other = producer_of.setdefault(token, name)
                if other != name:
                    raise PipelineError(
                        f"{token} is produced by both {other!r} and {name!r}; a product has "
                        f"one producer: give one of them another label "
                        f"(reg.produces({token.type.__name__}, 'other-label'))")
        depends_on: dict[str, set[str]] = {}
        for name, reg in registrations.items():
            needs = set()
            for wanted in reg.consumed:
                if wanted.product not in producer_of:
                    raise PipelineError(_missing(name, wanted.product, producer_of))
                needs.add(producer_of[wanted.product])
            for filter_name in reg.required:
                if filter_name not in filters:
                    kind = ("is not a filter" if filter_name in registrations
                            else "is not a module of this job")
                    raise PipelineError(
                        f"module {name!r} requires {filter_name!r}, which {kind}; name a "
                        f"filter module: {sorted(filters) or 'the job has none'}")
                needs.add(filter_name)
            if name in needs:
                raise PipelineError(f"module {name!r} consumes a product it produces itself; "
                                    f"a module cannot wait for itself")
            depends_on[name] = needs
        dependents: dict[str, list[str]] = {name: [] for name in registrations}
        for name, needs in depends_on.items():
            for need in sorted(needs):
                dependents[need].append(name)
        return cls(producer_of, depends_on, dependents,
                   _topological(list(registrations), depends_on))


def _missing(name: str, token: Token, producer_of: dict[Token, str]) -> str:
    known = ", ".join(f"{t} by {m!r}" for t, m in producer_of.items())
    return (f"module {name!r} consumes {token}, which no module produces; add a module "
            f"that produces it (register: self.token = reg.produces({token.type.__name__}"
            f"{', ' + repr(token.label) if token.label else ''})), or consume a product "
            f"that exists: {known or 'the job produces nothing'}")


def _topological(names: list[str], depends_on: dict[str, set[str]]) -> list[str]:
    """``names`` in an order where each comes after what it depends on, or a
    :class:`PipelineError` naming a cycle."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: placed

    def visit(name: str, path: list[str]) -> None:
        if state.get(name) == 2:
            return
        if state.get(name) == 1:
            cycle = path[path.index(name):] + [name]
            raise PipelineError(f"the modules form a cycle: {' -> '.join(cycle)} (each "
                                f"waits for a product of the next, or for a filter); break "
                                f"it by removing one of these consumes or requires")
        state[name] = 1
        for need in sorted(depends_on[name]):
            visit(need, path + [name])
        state[name] = 2
        order.append(name)

    for name in names:
        visit(name, [])
    return order
