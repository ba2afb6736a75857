"""What an AMD GPU code object holds: read from its ELF file, without ROCm.

A code object is an ELF shared object for machine ``EM_AMDGPU`` whose header
flags name the GPU architecture, with an ``AMDGPU`` note (type 32) holding the
kernels' metadata in MessagePack: per kernel its symbol, argument layout
(``.args``: offset, size, kind), LDS (``.group_segment_fixed_size``) and scratch
(``.private_segment_fixed_size``) sizes and wavefront size. The launcher lays
out kernel arguments from that metadata; tests check it against what kernels
declare.
"""
from __future__ import annotations

import re
import struct
from collections import Counter
from dataclasses import dataclass
from typing import Any

EM_AMDGPU = 224
#: the architecture field of an AMDGPU ELF header's flags, and its values
EF_AMDGPU_MACH = 0xFF
MACHINES = {0x30: "gfx908", 0x3F: "gfx90a", 0x4C: "gfx942", 0x4F: "gfx950",
            0x41: "gfx1100", 0x36: "gfx1030"}
_NOTE_SECTION, _DYNSYM, _SYMTAB = 7, 11, 2
_NT_AMDGPU_METADATA = 32


class CodeObjectError(ValueError):
    """The bytes are not a well-formed AMDGPU code object."""


@dataclass(frozen=True)
class KernelArg:
    """One kernel argument as the metadata lays it out."""

    offset: int
    size: int
    kind: str  # ".value_kind": by_value, global_buffer, hidden_*


@dataclass(frozen=True)
class KernelInfo:
    """One kernel's metadata."""

    name: str
    symbol: str
    args: tuple[KernelArg, ...]
    kernarg_size: int
    lds_bytes: int
    scratch_bytes: int
    wavefront_size: int
    sgprs: int
    vgprs: int

    @property
    def explicit_args(self) -> tuple[KernelArg, ...]:
        """The arguments the caller passes (not those the runtime fills in)."""
        return tuple(a for a in self.args if not a.kind.startswith("hidden_"))


@dataclass(frozen=True)
class CodeObjectInfo:
    """What :func:`inspect` reads from a code object."""

    machine: int
    arch: str
    flags: int
    kernels: dict[str, KernelInfo]
    undefined_symbols: tuple[str, ...]


def inspect(image: bytes) -> CodeObjectInfo:
    """The machine, architecture, kernels and undefined symbols of ``image``.

    Example::

        >>> inspect(b"not an ELF file")
        Traceback (most recent call last):
        ...
        portable.backends.rocm.codeobject.CodeObjectError: not an ELF file (the first bytes are b'not ')
    """
    if image[:4] != b"\x7fELF":
        raise CodeObjectError(f"not an ELF file (the first bytes are {image[:4]!r})")
    if image[4] != 2 or image[5] != 1:
        raise CodeObjectError("not a 64-bit little-endian ELF file")
    (_, _, machine, _, _, _, shoff, flags, _, _, _, shentsize, shnum,
     shstrndx) = struct.unpack_from("<16sHHIQQQIHHHHHH", image, 0)
    sections = [struct.unpack_from("<IIQQQQIIQQ", image, shoff + k * shentsize)
                for k in range(shnum)]
    metadata: dict[str, Any] = {}
    undefined: list[str] = []
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        body = image[offset:offset + size]
        if kind == _NOTE_SECTION:
            metadata.update(_amdgpu_metadata(body))
        elif kind in (_DYNSYM, _SYMTAB):
            strings = sections[link]
            names = image[strings[4]:strings[4] + strings[5]]
            for k in range(1, size // entsize):
                name_at, _, _, shndx, _, _ = struct.unpack_from("<IBBHQQ", body, k * entsize)
                if shndx == 0 and name_at:
                    undefined.append(names[name_at:names.index(b"\0", name_at)].decode())
    del shstrndx
    kernels = {}
    for entry in metadata.get("amdhsa.kernels", []):
        info = KernelInfo(
            name=entry[".name"], symbol=entry[".symbol"],
            args=tuple(KernelArg(a[".offset"], a[".size"], a[".value_kind"])
                       for a in entry.get(".args", [])),
            kernarg_size=entry[".kernarg_segment_size"],
            lds_bytes=entry[".group_segment_fixed_size"],
            scratch_bytes=entry[".private_segment_fixed_size"],
            wavefront_size=entry[".wavefront_size"],
            sgprs=entry.get(".sgpr_count", 0), vgprs=entry.get(".vgpr_count", 0))
        kernels[info.name] = info
    arch = MACHINES.get(flags & EF_AMDGPU_MACH, f"unknown (0x{flags & EF_AMDGPU_MACH:x})")
    return CodeObjectInfo(machine, arch, flags, kernels, tuple(sorted(set(undefined))))


def _amdgpu_metadata(notes: bytes) -> dict[str, Any]:
    """The decoded AMDGPU metadata note among ``notes`` (a note section), or ``{}``."""
    at = 0
    while at + 12 <= len(notes):
        namesz, descsz, kind = struct.unpack_from("<III", notes, at)
        name_at = at + 12
        desc_at = name_at + (namesz + 3) // 4 * 4
        name = notes[name_at:name_at + namesz].rstrip(b"\0")
        if name == b"AMDGPU" and kind == _NT_AMDGPU_METADATA:
            value, _ = unpack_msgpack(notes, desc_at)
            return value if isinstance(value, dict) else {}
        at = desc_at + (descsz + 3) // 4 * 4
    return {}


def unpack_msgpack(data: bytes, at: int = 0) -> tuple[Any, int]:
    """The MessagePack value at ``data[at:]`` and the offset after it (the subset
    that AMDGPU metadata uses: maps, arrays, strings, integers, booleans, floats).

    Example::

        >>> unpack_msgpack(bytes([0x82, 0xa1, 0x61, 0x01, 0xa1, 0x62, 0x92, 0xc3, 0xcd, 0x01, 0x00]))
        ({'a': 1, 'b': [True, 256]}, 11)
    """
    head = data[at]
    at += 1
    if head <= 0x7F:
        return head, at
    if head >= 0xE0:
        return head - 0x100, at
    if 0x80 <= head <= 0x8F:
        return _map(data, at, head & 0x0F)
    if 0x90 <= head <= 0x9F:
        return _array(data, at, head & 0x0F)
    if 0xA0 <= head <= 0xBF:
        return data[at:at + (head & 0x1F)].decode(), at + (head & 0x1F)
    if head in (0xC0, 0xC2, 0xC3):
        return {0xC0: None, 0xC2: False, 0xC3: True}[head], at
    sized = {0xCC: "<B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h",
             0xD2: ">i", 0xD3: ">q", 0xCA: ">f", 0xCB: ">d"}
    if head in sized:
        fmt = sized[head]
        return struct.unpack_from(fmt, data, at)[0], at + struct.calcsize(fmt)
    lengths = {0xD9: ">B", 0xDA: ">H", 0xDB: ">I", 0xC4: ">B", 0xC5: ">H", 0xC6: ">I",
               0xDC: ">H", 0xDD: ">I", 0xDE: ">H", 0xDF: ">I"}
    if head not in lengths:
        raise CodeObjectError(f"MessagePack type 0x{head:02x} is not used by AMDGPU metadata")
    fmt = lengths[head]
    count = struct.unpack_from(fmt, data, at)[0]
    at += struct.calcsize(fmt)
    if head in (0xDC, 0xDD):
        return _array(data, at, count)
    if head in (0xDE, 0xDF):
        return _map(data, at, count)
    raw = data[at:at + count]
    return (raw.decode() if head >= 0xD9 else bytes(raw)), at + count


def _array(data: bytes, at: int, count: int) -> tuple[list[Any], int]:
    items = []
    for _ in range(count):
        item, at = unpack_msgpack(data, at)
        items.append(item)
    return items, at


def _map(data: bytes, at: int, count: int) -> tuple[dict[Any, Any], int]:
    found = {}
    for _ in range(count):
        key, at = unpack_msgpack(data, at)
        found[key], at = unpack_msgpack(data, at)
    return found, at


_INSTRUCTION = re.compile(r"^\s+([a-z][a-z0-9_]*)\b", re.MULTILINE)


def mnemonics(assembly: str) -> Counter[str]:
    """How often each instruction mnemonic occurs in AMDGPU ``assembly`` text.

    Example::

        >>> mnemonics("\\ts_barrier\\n\\tds_add_u32 v1, v2\\n\\t.text\\n")
        Counter({'s_barrier': 1, 'ds_add_u32': 1})
    """
    return Counter(_INSTRUCTION.findall(assembly))
