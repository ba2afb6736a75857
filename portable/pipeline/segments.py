"""Graph mode's plan of one slot's path: its modules in one fixed order, the device
steps grouped into segments (captured once, replayed per event), the host steps
between them, and the waits for the device that host steps need.

A *device step* is the ``produce`` of a capturable Producer or the ``acquire`` of a
capturable ExternalWork. *Host steps* run per event, eagerly: ``ExternalWork.produce``,
analyzers, filters, modules pinned to another backend and modules that consume a
product on the host. A segment is a maximal run of device steps behind the same
filters; a host step that follows device work waits for it first.

Example::

    >>> from .graph import Graph
    >>> from .tokens import Registration
    >>> make, count, show = Registration("Make"), Registration("Count"), Registration("Show")
    >>> hits = make.produces(int)
    >>> _ = count.consumes(int); n = count.produces(float)
    >>> _ = show.consumes(float)
    >>> graph = Graph.build({"Make": make, "Count": count, "Show": show}, filters=set())
    >>> kinds = {"Make": DEVICE, "Count": DEVICE_THEN_HOST, "Show": HOST}
    >>> [str(op) for op in plan_path(graph, kinds, filters=set())]
    ['segment Make, Count', 'wait', 'produce Count', 'call Show']
"""
from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from .graph import Graph
from .module import Analyzer, ExternalWork, Filter, Module, Producer
from .tokens import Registration

#: the kinds of step a module makes in graph mode
DEVICE = "device"                      # a capturable Producer: produce is captured
DEVICE_THEN_HOST = "device, then host"  # a capturable ExternalWork: acquire captured, produce not
HOST = "host"                          # run eagerly, every event


@dataclass(frozen=True)
class Segment:
    """Device steps captured into one graph, in order, all behind the filters ``guard``."""

    modules: tuple[str, ...]
    guard: frozenset[str]

    def __str__(self) -> str:
        return f"segment {', '.join(self.modules)}"


@dataclass(frozen=True)
class HostCall:
    """A host step: ``part`` is ``"call"`` (a Producer's produce, an Analyzer's analyze,
    a Filter's filter), ``"acquire"`` or ``"produce"`` (an ExternalWork's, the acquire
    of a captured one being part of a segment) or ``"copies"`` (the host copies of
    the device products that the module reads on the host)."""

    module: str
    part: str
    guard: frozenset[str]

    def __str__(self) -> str:
        return f"{self.part} {self.module}"


@dataclass(frozen=True)
class Wait:
    """The host waits (on a waiting thread) for the device work enqueued so far."""

    def __str__(self) -> str:
        return "wait"


Op = Segment | HostCall | Wait


def step_kind(name: str, instance: Module, reg: Registration, pinned: bool
              ) -> tuple[str | None, str]:
    """The kind of step module ``name`` makes in graph mode, or ``None`` and why it
    cannot be part of a captured path.

    Example::

        >>> class P(Producer):
        ...     pass
        >>> step_kind("P", P(), Registration("P"), pinned=False)
        (None, "module 'P' (a Producer) is not capturable; follow the graph rules in its produce and set capturable = True")
    """
    if isinstance(instance, (Analyzer, Filter)) or pinned or \
            any(wanted.host for wanted in reg.consumed):
        return HOST, ""
    if getattr(instance, "capturable", False) is True:
        return (DEVICE_THEN_HOST if isinstance(instance, ExternalWork) else DEVICE), ""
    kind = "an ExternalWork" if isinstance(instance, ExternalWork) else "a Producer"
    method = "acquire" if isinstance(instance, ExternalWork) else "produce"
    assert isinstance(instance, (Producer, ExternalWork))
    return None, (f"module {name!r} ({kind}) is not capturable; follow the graph rules in "
                  f"its {method} and set capturable = True")


def plan_path(graph: Graph, kinds: dict[str, str], filters: set[str],
              external: AbstractSet[str] = frozenset(),
              host_readers: AbstractSet[str] = frozenset()
              ) -> list[Op]:
    """The ops of one event in graph mode, for modules of the step ``kinds`` (see
    :func:`step_kind`), the ``filters`` among them, the ExternalWork modules
    (``external``) and the modules that read products on the host (``host_readers``)."""
    guards = _guards(graph, filters)
    available: set[str] = set()   # modules whose products are in the event
    acquired: list[str] = []      # captured ExternalWork whose produce is pending
    left = list(graph.order)
    ops: list[Op] = []

    def ready(name: str) -> bool:
        return graph.depends_on[name] <= available

    while left or acquired:
        devices = [m for m in left if kinds[m] != HOST and ready(m)]
        if devices:
            guard = guards[devices[0]]
            segment: list[str] = []
            while True:
                batch = [m for m in left if kinds[m] != HOST and guards[m] == guard and ready(m)]
                if not batch:
                    break
                for m in batch:
                    segment.append(m)
                    left.remove(m)
                    if kinds[m] == DEVICE:
                        available.add(m)
                    else:
                        acquired.append(m)
            ops.append(Segment(tuple(segment), guard))
            continue
        if acquired:
            ops.append(Wait())
            ops.extend(HostCall(m, "produce", guards[m]) for m in acquired)
            available.update(acquired)
            acquired.clear()
            continue
        hosts = [m for m in left if ready(m)]
        for m in hosts:
            left.remove(m)
            if m in host_readers:
                ops += [HostCall(m, "copies", guards[m]), Wait()]
            if m in external:
                ops += [HostCall(m, "acquire", guards[m]), Wait(),
                        HostCall(m, "produce", guards[m])]
            else:
                ops.append(HostCall(m, "call", guards[m]))
            available.add(m)
    return ops


def _guards(graph: Graph, filters: set[str]) -> dict[str, frozenset[str]]:
    """Per module, the filters it runs behind, directly or through its inputs."""
    guards: dict[str, frozenset[str]] = {}
    for name in graph.order:  # topological: every dependency comes first
        found: set[str] = set()
        for need in graph.depends_on[name]:
            found |= guards[need]
            if need in filters:
                found.add(need)
        guards[name] = frozenset(found)
    return guards
