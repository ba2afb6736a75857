"""Module kinds, and how a job names and builds them once per event slot.

Every module declares its products in ``register(reg)``. Then, per event:

* :class:`Producer`: ``produce(event, ctx)``;
* :class:`ExternalWork`: ``acquire(event, ctx)`` enqueues device work on ``ctx.queue``;
  ``produce(event, ctx)`` runs once that work has finished, with no host thread
  waiting in between;
* :class:`Analyzer`: ``analyze(event, ctx)``, reads products and makes none;
* :class:`Filter`: ``filter(event, ctx) -> bool``; modules that ``reg.requires`` it
  (and whatever depends on them) skip the events it refuses.

A class attribute ``backend = "cpu_serial"`` pins a module to that backend whatever
its slot runs on (its device inputs then reach it as host copies).

Example::

    >>> class Count(Producer):
    ...     def register(self, reg):
    ...         self.out = reg.produces(int, "count")
    ...     def produce(self, event, ctx):
    ...         event.put(self.out, len(event.input))
    >>> spec = module(Count, name="counter")
    >>> spec.name, type(spec.build()).__name__
    ('counter', 'Count')
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import numpy as np

from ..checks import describe
from ..errors import ArgumentError
from .errors import PipelineError

if TYPE_CHECKING:
    from .context import Context
    from .event import Event
    from .tokens import Registration


class Module:
    """Base of every module: ``register`` declares products; ``backend`` (a class
    attribute, default ``None``: the slot's) pins the module to one backend;
    ``capturable = True`` (a class attribute) says that the device work of
    ``produce`` (Producer) or ``acquire`` (ExternalWork) follows the graph rules
    (fixed capacities, no per-event host values, no host synchronisation), so that
    graph mode may capture it once per slot and replay it (see docs/pipeline.md)."""

    backend: str | None = None
    capturable: bool = False

    def register(self, reg: Registration) -> None:
        """Declare products with ``reg.produces``, ``reg.consumes``, ``reg.requires``."""

    def stage(self, event: Event, ctx: Context) -> None:
        """Host-only work run for every event right before the module's device work:
        copy this event's host inputs into ``ctx.staging(name, shape, dtype)``
        buffers; raise :class:`~portable.pipeline.OverCapacity` when the event does
        not fit the capacities (the event then runs eagerly). Does nothing unless
        overridden."""


class Producer(Module):
    """Makes products on the host thread that runs it (device work on ``ctx.queue``)."""

    def produce(self, event: Event, ctx: Context) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define produce(event, ctx)")


class ExternalWork(Module):
    """Enqueues device work in ``acquire``; ``produce`` runs once it has finished."""

    def acquire(self, event: Event, ctx: Context) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define acquire(event, ctx)")

    def produce(self, event: Event, ctx: Context) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define produce(event, ctx)")


class Analyzer(Module):
    """Reads products at the end of a path; makes none."""

    def analyze(self, event: Event, ctx: Context) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define analyze(event, ctx)")


class Filter(Module):
    """Decides whether the modules that require it run for an event."""

    def filter(self, event: Event, ctx: Context) -> bool:
        raise NotImplementedError(f"{type(self).__name__} must define filter(event, ctx)")


KINDS = (Producer, ExternalWork, Analyzer, Filter)


def decision(name: str, value: Any) -> bool:
    """A filter's return value as a bool, or a PipelineError naming the filter."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise PipelineError(f"filter {name!r} returned {value!r}; a filter returns True (the "
                        f"event goes on) or False (the modules that require it skip it)")


def stages(instance: Module) -> bool:
    """Whether ``instance`` overrides :meth:`Module.stage`."""
    return type(instance).stage is not Module.stage


@dataclass(frozen=True)
class ModuleSpec:
    """How to build one module: ``factory(**config)``, named ``name`` in the job."""

    factory: Callable[..., Module]
    name: str
    config: dict[str, Any] = field(default_factory=dict)

    def build(self) -> Module:
        """A new instance (one per event slot), checked to be a module of a known kind."""
        instance = self.factory(**self.config)
        if not isinstance(instance, KINDS):
            raise ArgumentError(
                f"module {self.name!r}: its factory returned {describe(instance)}, which is "
                f"not a module; derive the class from pipeline.Producer, ExternalWork, "
                f"Analyzer or Filter")
        return instance


def module(factory: Callable[..., Module], name: str | None = None,
           **config: Any) -> ModuleSpec:
    """A module of the job: built per slot as ``factory(**config)``, named ``name``
    (default: the factory's ``__name__``).

    Example::

        >>> class Scale(Producer):
        ...     def __init__(self, factor): self.factor = factor
        >>> module(Scale, factor=2).config
        {'factor': 2}
    """
    if not callable(factory) or isinstance(factory, Module):
        raise ArgumentError(f"pipeline.module: argument 'factory' must be a module class or "
                            f"a function returning a module, got {describe(factory)}; pass "
                            f"the class itself, not an instance")
    if name is None:
        name = getattr(factory, "__name__", None)
    if not isinstance(name, str) or not name:
        raise ArgumentError(f"pipeline.module: argument 'name' must be a non-empty str, got "
                            f"{describe(name)}")
    return ModuleSpec(factory, name, dict(config))


def as_spec(entry: Any) -> ModuleSpec:
    """A job's module entry (a :class:`ModuleSpec` or a module class) as a spec."""
    if isinstance(entry, ModuleSpec):
        return entry
    if isinstance(entry, type) and issubclass(entry, KINDS):
        return module(entry)
    fix = ("pass the class, or pipeline.module(cls, name=..., **config), so that each "
           "event slot builds its own instance" if isinstance(entry, Module) else
           "derive it from pipeline.Producer, ExternalWork, Analyzer or Filter")
    raise ArgumentError(f"Process: the module entry {describe(entry)} is not a module; {fix}")
