"""The borrowed-thread route's pieces: the machine code is what its assembly says and reads its
parameters where Python writes them, a signal frame holds the thread's own registers, mask and vector
state, a system call resumes as the kernel would resume it, and a target that checks its own work sees
nothing of twenty attaches (bench/attach_race.py, short)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from looseends.attach import borrowed_thread, frame, trampoline
from looseends.attach.memory import Mapping
from looseends.attach.ptrace import Registers, supported

RACE = Path(__file__).resolve().parent.parent / "bench" / "attach_race.py"
NEVER = (1 << 64) - 1  # orig_rax of a thread that is not in a system call


def _regs(**values: int) -> Registers:
    return Registers().set(**values)


def _assembled(tmp_path: Path) -> tuple[bytes, dict[str, int]]:
    source, obj, raw = tmp_path / "t.s", tmp_path / "t.o", tmp_path / "t.bin"
    source.write_text(trampoline.ASSEMBLY)
    subprocess.run(["as", "--64", "-o", str(obj), str(source)], check=True)
    subprocess.run(["objcopy", "-O", "binary", "-j", ".text", str(obj), str(raw)], check=True)
    symbols = subprocess.run(["nm", str(obj)], capture_output=True, text=True, check=True).stdout
    labels = {line.split()[2]: int(line.split()[0], 16) for line in symbols.splitlines()}
    return raw.read_bytes(), labels


@pytest.mark.skipif(
    not (shutil.which("as") and shutil.which("objcopy") and shutil.which("nm")),
    reason="needs binutils (as, objcopy, nm)",
)
def test_the_code_is_its_assembly_and_reads_the_parameters_where_python_writes_them(tmp_path: Path) -> None:
    raw, labels = _assembled(tmp_path)
    assert raw[: labels["code_end"]] == trampoline.CODE
    for name, offset in trampoline.SLOT.items():  # the block the assembly reads is the one page() packs
        assert labels[f"p_{name.lower()}"] == offset
    assert labels["script"] == trampoline.SCRIPT_AT
    page = trampoline.page({name: 0x1000 + n for n, name in enumerate(trampoline.PARAMETERS)}, b"pass")
    for n, name in enumerate(trampoline.PARAMETERS):
        assert struct.unpack_from("<Q", page, trampoline.SLOT[name])[0] == 0x1000 + n
    assert page[trampoline.SCRIPT_AT :] == b"pass\0"


def test_the_page_refuses_a_missing_or_unknown_parameter() -> None:
    with pytest.raises(ValueError, match="parameters differ"):
        trampoline.page({"region": 1}, b"")


def test_a_frame_holds_the_registers_the_mask_and_the_way_home() -> None:
    regs = _regs(**{name: 0x100 + n for n, name in enumerate(frame.SIGCONTEXT)}, cs=0x33, ss=0x2B)
    built = frame.frame(regs, mask=0xFFFE, fp_address=0xF00D, pretcode=0xBEEF)
    assert len(built) == frame.FRAME_SIZE
    assert struct.unpack_from("<Q", built, frame.PRETCODE)[0] == 0xBEEF
    assert struct.unpack_from("<Q", built, frame.UC_RIP)[0] == regs.rip
    assert struct.unpack_from("<Q", built, frame.UC_RAX)[0] == regs.rax
    assert struct.unpack_from("<Q", built, frame.UC_SIGMASK)[0] == 0xFFFE
    assert struct.unpack_from("<Q", built, frame.UC_MCONTEXT + frame.SC_FPSTATE)[0] == 0xF00D
    assert struct.unpack_from("<i", built, frame.UC_STACK + 8)[0] == frame.SS_INVALID  # altstack untouched


@pytest.mark.parametrize(
    ("present", "size"),
    [
        (0b11, 576),  # x87 and SSE only: the legacy area and the header
        (0b111, 832),  # AVX in use
        (0b11100111, 2688),  # AVX-512
        (0b11100111 | 1 << 9, 2696),  # and PKRU
        (0b11 | 1 << 30, 576),  # a component not known here: left to its init state
    ],
)
def test_the_vector_state_is_cut_to_what_the_thread_has_in_use(present: int, size: int) -> None:
    xstate = bytearray(11008)
    struct.pack_into("<Q", xstate, frame.XSTATE_BV, present)
    area = frame.fpstate(bytes(xstate))
    magic1, extended, features, xstate_size = struct.unpack_from("<IIQI", area, frame.SW_BYTES)
    assert (magic1, xstate_size, extended) == (frame.FP_XSTATE_MAGIC1, size, size + 4)
    assert features == (present & (frame.KNOWN | 3)) | 3
    assert struct.unpack_from("<I", area, size)[0] == frame.FP_XSTATE_MAGIC2
    assert len(area) == size + 4


@pytest.mark.parametrize(
    ("rax", "orig_rax", "rip", "eintr_mode"),
    [
        (-514, 230, 0x4000, 1),  # ERESTARTNOHAND (time.sleep's clock_nanosleep): again, EINTR if handled
        (-512, 202, 0x4000, 2),  # ERESTARTSYS (a lock's futex): again, EINTR unless SA_RESTART
        (-513, 202, 0x4000, 0),  # ERESTARTNOINTR: always again
        (-4, 232, 0x4002, 0),  # epoll_wait says EINTR itself: asyncio retries (PEP 475)
    ],
)
def test_a_system_call_resumes_as_the_kernel_would(
    rax: int, orig_rax: int, rip: int, eintr_mode: int
) -> None:
    regs = _regs(rip=0x4002, rax=rax, orig_rax=orig_rax)
    home = borrowed_thread._resumed(regs, site=0x4000)
    assert home.rip == rip
    assert home.rax == (orig_rax if rip == 0x4000 else rax) & NEVER
    assert borrowed_thread._mode(regs, home) == eintr_mode


LIBPYTHON = Mapping(0x7F00_0000_0000, 0x7F00_0010_0000, "rw-p", 0, "/usr/lib/libpython3.11.so.1.0")
HEAP = Mapping(0x5500_0000_0000, 0x5500_0100_0000, "rw-p", 0, "[heap]")


@pytest.mark.parametrize(
    ("call", "answer", "futex", "expected"),
    [
        (230, -514, 0, True),  # time.sleep, stopped while sleeping
        (202, -512, HEAP.start + 64, True),  # a Python lock's semaphore, on the heap
        (202, -512, LIBPYTHON.start + 440, False),  # the GIL's mutex: its waiter may hold the GIL's other one
        (202, 1, HEAP.start + 64, False),  # a futex wake that had finished: maybe inside the GIL hand-off
        (202, -516, HEAP.start + 64, False),  # a timed wait: only the kernel resumes it exactly
        (232, -4, 0, True),  # epoll_wait answers EINTR itself
        (0, -4, 0, False),  # a read that says EINTR had finished
        (9, -512, 0, False),  # mmap: not a waiting call (malloc may hold its lock around it)
    ],
)
def test_only_a_thread_waiting_outside_the_runtimes_locks_is_borrowed(
    call: int, answer: int, futex: int, expected: bool
) -> None:
    regs = _regs(orig_rax=call, rax=answer, rdi=futex)
    assert borrowed_thread.borrowable(regs, [LIBPYTHON, HEAP]) is expected


def test_the_trampoline_goes_in_the_middle_of_the_widest_gap() -> None:
    maps = [
        Mapping(0x1000, 0x2000, "r-xp", 0, "/bin/python"),
        Mapping(0x10_0000, 0x20_0000, "rw-p", 0, "[heap]"),
        Mapping(0x7F00_0000_0000, 0x7F00_0001_0000, "r-xp", 0, "/lib/libc.so.6"),
        Mapping(0x7FFF_0000_0000, 0x7FFF_0001_0000, "rw-p", 0, "[stack]"),
    ]
    address = borrowed_thread._free_range(maps, 0x2000)
    assert 0x20_0000 + 0x1000_0000 < address < 0x7F00_0000_0000 - 0x1000_0000
    assert address % 4096 == 0


@pytest.mark.skipif(supported() is not None, reason=str(supported()))
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
