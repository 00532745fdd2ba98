"""Another process's address space, read from outside: its mappings and its bytes, through /proc.

Everything the attach learns about a target before touching it comes from here: nothing of the
target's is executed, and a file it has replaced or deleted on disk is read as it is mapped.
"""

from __future__ import annotations

import dataclasses
import os

__all__ = ["Mapping", "Memory", "exited", "mappings"]


@dataclasses.dataclass(frozen=True)
class Mapping:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    perms: str
    offset: int
    path: str

    @property
    def executable(self) -> bool:
        return "x" in self.perms

    def __contains__(self, address: int) -> bool:
        return self.start <= address < self.end


def exited(pid: int) -> bool:
    """Whether the process is gone, or a zombie its parent has not reaped yet."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return True


def mappings(pid: int) -> list[Mapping]:
    """The process's mappings, lowest first (an OSError if it is gone or hidden from us)."""
    found = []
    with open(f"/proc/{pid}/maps") as file:
        for line in file:
            parts = line.split(None, 5)
            if len(parts) < 5:
                continue
            low, _, high = parts[0].partition("-")
            path = parts[5].rstrip("\n") if len(parts) == 6 else ""
            found.append(Mapping(int(low, 16), int(high, 16), parts[1], int(parts[2], 16), path))
    return found


class Memory:
    """Reads (and, for the attach, writes) of a process's memory through /proc/PID/mem.

    The kernel allows it only to a process that may trace the target, so every read here is also the
    first check of the permission the attach needs."""

    def __init__(self, pid: int, *, writable: bool = False) -> None:
        self.pid = pid
        self.fd = os.open(f"/proc/{pid}/mem", os.O_RDWR if writable else os.O_RDONLY)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, address: int, size: int) -> bytes:
        """Exactly `size` bytes at `address` (an OSError where any of them is unmapped)."""
        data = os.pread(self.fd, size, address)
        if len(data) != size:
            raise OSError(f"short read of process {self.pid}'s memory at {address:#x}")
        return data

    def write(self, address: int, data: bytes) -> None:
        if os.pwrite(self.fd, data, address) != len(data):
            raise OSError(f"short write into process {self.pid}'s memory at {address:#x}")

    def word(self, address: int) -> int:
        return int.from_bytes(self.read(address, 8), "little")

    def string(self, address: int, limit: int = 4096) -> bytes:
        """A NUL-terminated string, read a little at a time so a short one near a mapping's end reads."""
        out = b""
        while len(out) < limit:
            chunk = os.pread(self.fd, 64, address + len(out))
            if not chunk:
                break
            end = chunk.find(b"\0")
            if end >= 0:
                return out + chunk[:end]
            out += chunk
        return out
