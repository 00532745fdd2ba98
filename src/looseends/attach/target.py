"""What a process runs, recognised from its memory alone: which mapped object is a CPython interpreter,
its version, where its C-API functions lie, and two instruction sequences of its C library.

Nothing of the target is executed and no path is trusted: the process may be called anything
(`uvicorn`, `gunicorn`, a `#!` script), its interpreter may be the executable itself (Debian's
/usr/bin/python3) or a `libpython3.X.so` beside it (pyenv, `--enable-shared`), and either may have been
replaced or deleted on disk since it started. An object is CPython when it exports `Py_Version` and the
functions the trampoline calls.
"""

from __future__ import annotations

import dataclasses
import os
import re

from looseends.attach.elf import ElfError, LoadedObject
from looseends.attach.memory import Mapping, Memory, mappings

__all__ = ["FUNCTIONS", "Interpreter", "NotCPython", "interpreter", "stack_limit", "thread_ids"]

# The C-API the trampoline calls, in the order of its parameter block (attach.trampoline.PARAMETERS).
FUNCTIONS = (
    "PyGILState_Check",
    "PyGILState_Ensure",
    "PyGILState_Release",
    "PyDict_New",
    "PyRun_StringFlags",
    "Py_DecRef",
    "PyErr_Clear",
)
FREE_THREADED_ONLY = "_Py_DecRefShared"  # biased reference counting: exported by free-threaded builds only
SYSCALL_RET = b"\x0f\x05\xc3"  # syscall; ret
SIGRETURNS = (b"\x48\xc7\xc0\x0f\x00\x00\x00\x0f\x05", b"\xb8\x0f\x00\x00\x00\x0f\x05")  # rax = 15; syscall
LIBC = re.compile(r"/(libc\.so[.\d]*|libc-[\d.]+\.so|ld-musl-[\w-]+\.so[.\d]*)( \(deleted\))?$")
MAX_SCAN = 64 << 20  # bytes of a C library's code searched for the two sequences


class NotCPython(OSError):
    """The process is not a CPython interpreter this attach can serve; the message says what it is."""


@dataclasses.dataclass(frozen=True)
class Interpreter:
    version: tuple[int, int]
    free_threaded: bool
    functions: dict[str, int]  # FUNCTIONS' addresses in the target
    syscall_ret: int  # a `syscall; ret` in the C library's code
    sigreturn: int  # its signal-return sequence (`mov rax, 15; syscall`, glibc's __restore_rt)
    where: str  # the file the interpreter was mapped from


def interpreter(pid: int, memory: Memory) -> Interpreter:
    """The CPython in process `pid`, read through `memory`; NotCPython says why when there is none."""
    maps = mappings(pid)
    python = _find_python(memory, maps)
    if python is None:
        raise NotCPython(
            f"process {pid} ({_name(pid)}) is not a CPython interpreter: no mapped object exports Py_Version"
        )
    loaded, where = python
    missing = [name for name in FUNCTIONS if loaded.symbol(name) is None]
    if missing:
        raise NotCPython(f"process {pid}'s interpreter ({where}) does not export {', '.join(missing)}")
    hexversion = int.from_bytes(memory.read(_required(loaded, "Py_Version"), 4), "little")
    version = (hexversion >> 24, (hexversion >> 16) & 0xFF)
    syscall_ret, sigreturn = _libc_sequences(pid, memory, maps)
    return Interpreter(
        version=version,
        free_threaded=loaded.symbol(FREE_THREADED_ONLY) is not None,
        functions={name: _required(loaded, name) for name in FUNCTIONS},
        syscall_ret=syscall_ret,
        sigreturn=sigreturn,
        where=where,
    )


def _required(loaded: LoadedObject, name: str) -> int:
    address = loaded.symbol(name)
    if address is None:
        raise NotCPython(f"{name} is not exported")
    return address


def _objects(maps: list[Mapping]) -> list[tuple[int, str]]:
    """(base, path) of every file mapped from its offset 0: the executable, the interpreter's library
    if it has one (tried first), then the rest."""
    seen: dict[str, int] = {}
    for mapping in maps:
        if mapping.offset == 0 and mapping.path.startswith("/") and mapping.path not in seen:
            seen[mapping.path] = mapping.start
    return sorted(((base, path) for path, base in seen.items()), key=lambda item: "python" not in item[1])


def _find_python(memory: Memory, maps: list[Mapping]) -> tuple[LoadedObject, str] | None:
    for base, path in _objects(maps):
        try:
            loaded = LoadedObject(memory, base)
            if loaded.symbol("Py_Version") is not None:
                return loaded, path
        except (ElfError, OSError, ValueError, IndexError):
            continue  # not ELF, or a table we cannot read: not the interpreter
    return None


def _libc_sequences(pid: int, memory: Memory, maps: list[Mapping]) -> tuple[int, int]:
    """Where `syscall; ret` and the signal return are in the C library's code: the two pieces of
    machine code the borrowed thread runs outside the pages the attach maps, so that it can unmap
    them and still get back to where it was."""
    found: dict[str, int] = {}
    for mapping in maps:
        if not (mapping.executable and LIBC.search(mapping.path)):
            continue
        code = memory.read(mapping.start, min(mapping.end - mapping.start, MAX_SCAN))
        at = code.find(SYSCALL_RET)
        if at >= 0:
            found.setdefault("syscall_ret", mapping.start + at)
        for sequence in SIGRETURNS:
            at = code.find(sequence)
            if at >= 0:
                found.setdefault("sigreturn", mapping.start + at)
    if len(found) < 2:
        missing = "signal return" if "syscall_ret" in found else "`syscall; ret`"
        raise NotCPython(
            f"process {pid}'s C library has no {missing} that a borrowed thread could use (not glibc or "
            "musl on x86-64?)"
        )
    return found["syscall_ret"], found["sigreturn"]


def _name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as file:
            return file.read().strip()
    except OSError:
        return "?"


def stack_limit(pid: int) -> int:
    """The main thread's stack size limit (RLIMIT_STACK, soft), from /proc; 8 MiB when unreadable."""
    try:
        with open(f"/proc/{pid}/limits") as file:
            for line in file:
                if line.startswith("Max stack size"):
                    soft = line.split()[3]
                    return 1 << 40 if soft == "unlimited" else int(soft)
    except (OSError, ValueError, IndexError):
        pass
    return 8 << 20


def thread_ids(pid: int) -> list[int]:
    try:
        return sorted(int(name) for name in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return []
