"""An event slot: its own module instances, its device and its pool of queues.

Example::

    >>> import portable as pt
    >>> from .module import Producer, module
    >>> class Nothing(Producer):
    ...     def produce(self, event, ctx): pass
    >>> slot = Slot(0, pt.get_device("cpu_serial"), [module(Nothing)])
    >>> list(slot.modules), slot.queue(slot.device, 0) is slot.queue(slot.device, 0)
    (['Nothing'], True)
"""
from __future__ import annotations

from typing import Sequence

from ..backend import get_backend
from ..device import Device
from ..errors import BackendError
from ..queue import Queue
from .errors import PipelineError
from .memory import Staging
from .module import Module, ModuleSpec
from .tokens import Registration


class Slot:
    """Slot ``index`` on ``device``: one instance of each module, built and registered
    here, and non-blocking queues created as the events need them, then reused."""

    def __init__(self, index: int, device: Device, specs: Sequence[ModuleSpec]) -> None:
        self.index = index
        self.device = device
        self.modules: dict[str, Module] = {}
        self.registrations: dict[str, Registration] = {}
        self.devices: dict[str, Device] = {}
        for spec in specs:
            instance = spec.build()
            reg = Registration(spec.name)
            instance.register(reg)
            self.modules[spec.name] = instance
            self.registrations[spec.name] = reg
            self.devices[spec.name] = self._device_of(spec.name, instance)
        self._queues: dict[Device, list[Queue]] = {}
        self._staging = {name: Staging(name) for name in self.modules}

    def staging(self, name: str) -> Staging:
        """Module ``name``'s static host buffers in this slot (``ctx.staging``)."""
        return self._staging[name]

    def _device_of(self, name: str, instance: Module) -> Device:
        """The slot's device, or a device of the backend the module pins itself to."""
        if instance.backend is None:
            return self.device
        try:
            backend = get_backend(instance.backend)
        except BackendError as err:
            raise PipelineError(f"module {name!r} sets backend = {instance.backend!r}: {err}"
                                ) from None
        if not backend.available:
            raise PipelineError(f"module {name!r} sets backend = {instance.backend!r}, which "
                                f"cannot run here ({backend.reason}); remove the attribute to "
                                f"run it on its slot's backend")
        found = backend.devices()
        return found[self.index % len(found)]

    def queue(self, device: Device, k: int) -> Queue:
        """The slot's ``k``-th non-blocking queue on ``device`` (made on first use)."""
        queues = self._queues.setdefault(device, [])
        while len(queues) <= k:
            queues.append(Queue(device, blocking=False))
        return queues[k]
