"""The borrowed-thread route's pieces: the machine code is what its assembly says, the registers it
restores are the thread's own, a system call resumes as the kernel would resume it, and a target that
checks its own work sees nothing of twenty attaches (bench/attach_race.py, short)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from looseends.frontends import attach_ptrace, attach_trampoline
from looseends.frontends.attach_ptrace import Registers

RACE = Path(__file__).resolve().parent.parent / "bench" / "attach_race.py"
NEVER = (1 << 64) - 1  # orig_rax of a thread that is not in a system call


def _regs(**values: int) -> Registers:
    regs = Registers()
    for name, value in values.items():
        setattr(regs, name, value & NEVER)
    return regs


@pytest.mark.skipif(
    not (shutil.which("as") and shutil.which("objcopy")), reason="needs binutils (as, objcopy)"
)
def test_the_code_is_its_assembly(tmp_path: Path) -> None:
    source, obj, raw = tmp_path / "t.s", tmp_path / "t.o", tmp_path / "t.bin"
    source.write_text(attach_trampoline.ASSEMBLY)
    subprocess.run(["as", "--64", "-o", str(obj), str(source)], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(obj), str(raw)], check=True)
    assert raw.read_bytes() == attach_trampoline.CODE


def test_the_trampoline_restores_the_threads_own_registers() -> None:
    values = {name: 0x1000 + number for number, name in enumerate(attach_trampoline.SAVED)}
    regs = _regs(**values, orig_rax=202)  # in futex, just returned 0: no restart
    regs.rax = 0
    functions = {name: 0x7000 + number for number, name in enumerate(attach_trampoline.FUNCTIONS)}
    code = attach_trampoline.trampoline(0x5000_0000, functions, regs, site=values["rip"] - 2)
    assert b"\x11\x11\x11\x11\x11\x11" not in code
    assert b"\x22\x22\x22\x22\x22\x22" not in code
    restored = code[-8 * len(attach_trampoline.SAVED) :]
    unpacked = struct.unpack(f"<{len(attach_trampoline.SAVED)}Q", restored)
    words = dict(zip(attach_trampoline.SAVED, unpacked, strict=True))
    assert words == {**values, "rax": 0}
    assert struct.pack("<Q", 0x5000_0000 + attach_trampoline.PAGE) in code  # the data page
    assert all(struct.pack("<Q", address) in code for address in functions.values())


@pytest.mark.parametrize(
    ("rax", "orig_rax", "expected"),
    [
        (-514, 230, ("site", 230)),  # ERESTARTNOHAND (time.sleep's clock_nanosleep): run it again
        (-512, 202, ("site", 202)),  # ERESTARTSYS (a lock's futex): run it again
        (-4, 232, ("after", -4)),  # epoll_wait says EINTR itself: asyncio retries (PEP 475)
        (3, 0, ("after", 3)),  # a read that had finished: its answer stands
        (99, -1, ("after", 99)),  # not in a call, stopped on the instruction: just run it
    ],
)
def test_a_system_call_resumes_as_the_kernel_would(
    rax: int, orig_rax: int, expected: tuple[str, int]
) -> None:
    regs = _regs(rip=0x4002, rax=rax, orig_rax=orig_rax)
    rip, value = attach_trampoline.resume(regs, site=0x4000)
    assert (rip, value & NEVER) == ({"site": 0x4000, "after": 0x4002}[expected[0]], expected[1] & NEVER)


LIBPYTHON = (0x7F00_0000_0000, 0x7F00_0010_0000, 0, "/usr/lib/libpython3.11.so.1.0")  # its data: _PyRuntime
HEAP = (0x5500_0000_0000, 0x5500_0100_0000, 0, "[heap]")


@pytest.mark.parametrize(
    ("call", "answer", "futex", "expected"),
    [
        (230, -514, 0, True),  # time.sleep, stopped while sleeping
        (202, -512, HEAP[0] + 64, True),  # a Python lock's semaphore, on the heap
        (202, -512, LIBPYTHON[0] + 440, False),  # the GIL's mutex: its waiter may hold the GIL's other one
        (202, 1, HEAP[0] + 64, False),  # a futex wake that had finished: maybe inside the GIL hand-off
        (202, -516, HEAP[0] + 64, False),  # a timed wait: only the kernel resumes it exactly
        (232, -4, 0, True),  # epoll_wait answers EINTR itself
        (0, -4, 0, False),  # a read that says EINTR had finished
        (9, -512, 0, False),  # mmap: not a waiting call (malloc may hold its lock around it)
    ],
)
def test_only_a_thread_waiting_outside_the_runtimes_locks_is_borrowed(
    call: int, answer: int, futex: int, expected: bool
) -> None:
    regs = _regs(orig_rax=call, rax=answer, rdi=futex)
    assert attach_trampoline.borrowable(regs, [LIBPYTHON, HEAP]) is expected


@pytest.mark.skipif(attach_ptrace.supported() is not None, reason=str(attach_ptrace.supported()))
def test_twenty_attaches_into_busy_threads_leave_their_work_and_the_process_intact() -> None:
    done = subprocess.run(
        [sys.executable, str(RACE), "--rounds", "20"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["answered"] == 20, result
    assert result["failures"] == []  # the busy threads' own checks, all right
    assert result["checks"] > 0
    assert result["ours"] == []
    assert result["code_pages"] == 0
    assert result["target exit"] == 0
    assert result["signals_sent"] == result["signals_handled"] > 0  # none lost to a stopped thread
    assert done.returncode == 0
