"""Exported symbols of an ELF object as the target has it loaded: read from its memory, never run.

The dynamic linker needs an object's dynamic symbol table at run time, so it is always in a loaded
segment: the ELF header and program headers at the mapping of file offset 0, PT_DYNAMIC, and through
it DT_SYMTAB, DT_STRTAB and a hash table (DT_GNU_HASH, else DT_HASH) that finds a name without reading
every symbol. Names are looked up exactly as ld.so does (the GNU hash, then its chain). Only ELF64
little-endian (x86-64) is read; anything else is "not an ELF object" to the caller.
"""

from __future__ import annotations

import struct

from looseends.attach.memory import Memory

__all__ = ["ElfError", "LoadedObject"]

PT_LOAD, PT_DYNAMIC = 1, 2
DT_NULL, DT_HASH, DT_STRTAB, DT_SYMTAB, DT_GNU_HASH = 0, 4, 5, 6, 0x6FFFFEF5
ET_EXEC = 2
SYMBOL = struct.Struct("<IBBHQQ")  # st_name, st_info, st_other, st_shndx, st_value, st_size
MAX_DYNAMIC = 512  # entries: real objects have a few dozen; a bound against a garbage table


class ElfError(OSError):
    """The memory at a mapping is not an ELF object this reader understands."""


def _gnu_hash(name: bytes) -> int:
    value = 5381
    for byte in name:
        value = (value * 33 + byte) & 0xFFFFFFFF
    return value


def _sysv_hash(name: bytes) -> int:
    value = 0
    for byte in name:
        value = ((value << 4) + byte) & 0xFFFFFFFF
        value ^= (value >> 24) & 0xF0
        value &= 0x0FFFFFFF
    return value


class LoadedObject:
    """An ELF object mapped at `base` in the target (the address of its file offset 0)."""

    def __init__(self, memory: Memory, base: int) -> None:
        self.memory, self.base = memory, base
        header = memory.read(base, 64)
        if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
            raise ElfError(f"no ELF64 little-endian object at {base:#x}")
        e_type = struct.unpack_from("<H", header, 16)[0]
        phoff, phentsize, phnum = (
            struct.unpack_from("<Q", header, 32)[0],
            *struct.unpack_from("<HH", header, 54),
        )
        segments = [
            struct.unpack_from("<IIQQQQQQ", memory.read(base + phoff + n * phentsize, 56))
            for n in range(min(phnum, 64))
        ]
        loads = [segment[3] for segment in segments if segment[0] == PT_LOAD]
        if not loads:
            raise ElfError(f"the object at {base:#x} has no loadable segment")
        self.bias = 0 if e_type == ET_EXEC else base - min(loads)
        dynamic = [segment[3] for segment in segments if segment[0] == PT_DYNAMIC]
        self.tags = self._dynamic(self.bias + dynamic[0]) if dynamic else {}
        self._gnu = self._pointer(DT_GNU_HASH)
        self._sysv = self._pointer(DT_HASH)
        self._symtab, self._strtab = self._pointer(DT_SYMTAB), self._pointer(DT_STRTAB)

    def _dynamic(self, address: int) -> dict[int, int]:
        tags: dict[int, int] = {}
        for n in range(MAX_DYNAMIC):
            tag, value = struct.unpack("<qQ", self.memory.read(address + 16 * n, 16))
            if tag == DT_NULL:
                break
            tags.setdefault(tag, value)
        return tags

    def _pointer(self, tag: int) -> int | None:
        """A dynamic entry's address: ld.so relocates some in place (glibc on x86-64), others it leaves
        as offsets from the load bias."""
        value = self.tags.get(tag)
        if value is None:
            return None
        return value if value >= self.bias else value + self.bias

    def symbol(self, name: str) -> int | None:
        """The run-time address of exported symbol `name`, or None when it is not exported here."""
        if self._symtab is None or self._strtab is None:
            return None
        wanted = name.encode()
        for index in self._candidates(wanted):
            st_name, _, _, shndx, value, _ = SYMBOL.unpack(self.memory.read(self._symtab + 24 * index, 24))
            if shndx and value and self.memory.string(self._strtab + st_name, len(wanted) + 1) == wanted:
                address: int = self.bias + value
                return address
        return None

    def _candidates(self, name: bytes) -> list[int]:
        if self._gnu is not None:
            return self._gnu_candidates(name)
        if self._sysv is not None:
            nbucket, nchain = struct.unpack("<II", self.memory.read(self._sysv, 8))
            index = struct.unpack(
                "<I", self.memory.read(self._sysv + 8 + 4 * (_sysv_hash(name) % nbucket), 4)
            )[0]
            found: list[int] = []
            while index and len(found) < nchain:
                found.append(index)
                index = struct.unpack("<I", self.memory.read(self._sysv + 8 + 4 * (nbucket + index), 4))[0]
            return found
        return []

    def _gnu_candidates(self, name: bytes) -> list[int]:
        assert self._gnu is not None
        table = self._gnu
        nbuckets, symoffset, bloom_size, _ = struct.unpack("<IIII", self.memory.read(table, 16))
        if not nbuckets:
            return []
        wanted = _gnu_hash(name)
        buckets = table + 16 + 8 * bloom_size
        index = struct.unpack("<I", self.memory.read(buckets + 4 * (wanted % nbuckets), 4))[0]
        if index < symoffset:
            return []
        chain = buckets + 4 * nbuckets
        found: list[int] = []
        while len(found) < 1 << 16:
            value = struct.unpack("<I", self.memory.read(chain + 4 * (index - symoffset), 4))[0]
            if value | 1 == wanted | 1:
                found.append(index)
            if value & 1:
                break
            index += 1
        return found
