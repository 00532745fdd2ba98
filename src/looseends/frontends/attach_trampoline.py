"""Run a script inside another Python process (3.11+) by borrowing one of its blocked threads: the
attach route for interpreters without `sys.remote_exec`, with no debugger.

A thread blocked in a waiting system call (a sleep, a lock, a select, a read: where Python code waits
with the GIL released) is stopped, and three pages are mapped in its process: a trampoline, a data page
and the script. The thread is sent to the trampoline and let go at once. It saves its vector
registers (xsave), takes the GIL as any C callback would (`PyGILState_Ensure`), runs the script
(`PyRun_SimpleString`), releases the GIL, restores every register and goes back into its system call
exactly as the kernel would have restarted it. Which threads may be borrowed, and why only those, is
`borrowable`'s docstring: the others are let go untouched. A thread that holds the GIL while blocked
(a C extension that forgot to release it) is not entered: the trampoline checks `PyGILState_Check`
first and says so in a status byte.

Nothing stays attached while the script runs, so a killed `looseends` cannot leave the target stopped
or crashing; when the status byte says the trampoline is done, the pages are unmapped again through a
thread that waits in a system call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import struct
import subprocess

import psutil

from looseends.frontends.attach_ptrace import (
    EINTR,
    FUTEX,
    RESTART,
    SAYS_EINTR,
    SYS_MMAP,
    SYS_MPROTECT,
    SYS_MUNMAP,
    WAITING_CALLS,
    Registers,
    Tracee,
    TraceError,
    stopped,
    waiting_call,
)

__all__ = [
    "ASSEMBLY",
    "CODE",
    "FUNCTIONS",
    "HELD_GIL",
    "PAGE",
    "RAN",
    "RUNNING",
    "SAVED",
    "Borrowed",
    "Interpreter",
    "NotHere",
    "borrow",
    "borrowable",
    "candidates",
    "give_back",
    "interpreter",
    "resume",
    "status",
    "trampoline",
]

PAGE = 4096
STATUS = PAGE + 0xF00  # in the data page, after the xsave area (2,688 bytes for the components saved)
ALL_SIGNALS = PAGE + 0xF08  # the mask the trampoline blocks while it runs; the old one goes after it
SCRIPT = 2 * PAGE
RUNNING, RAN, HELD_GIL = 0, 1, 2
PROT_READ, PROT_WRITE, PROT_EXEC = 1, 2, 4
MAP_PRIVATE, MAP_ANONYMOUS = 0x02, 0x20
STACK_GAP = 512  # bytes left below the thread's stack pointer: its red zone (128) and more
FUNCTIONS = ("PyGILState_Check", "PyGILState_Ensure", "PyRun_SimpleString", "PyGILState_Release")
SAVED = (
    "eflags",
    "rax",
    "rbx",
    "rcx",
    "rdx",
    "rsi",
    "rdi",
    "rbp",
    "r8",
    "r9",
    "r10",
    "r11",
    "r13",
    "r14",
    "r15",
    "rsp",
    "r12",
    "rip",
)

# The trampoline, as `as --64` assembles it (tests/test_attach_trampoline.py assembles this text and
# compares). 0x11111111111111NN are the data page and the four functions; 0x22222222222222NN the
# registers to restore, in SAVED's order. xsave/xrstor mask 0xE7: x87, SSE, AVX and AVX-512 state, all
# that C code can change (the AMX tiles and PKRU are never touched by the interpreter). Signals are
# blocked while it runs (rt_sigprocmask): a Ctrl-C cannot land in the snapshot, and no call of the
# snapshot's can be interrupted and leave the thread's restart state changed.
ASSEMBLY = """
.intel_syntax noprefix
entry:
    movabs r12, 0x1111111111111101
    mov eax, 0xE7
    xor edx, edx
    xsave64 [r12]
    mov eax, 14
    xor edi, edi
    lea rsi, [r12 + 0xF08]
    lea rdx, [r12 + 0xF10]
    mov r10d, 8
    syscall
    mov r14d, 2
    movabs rax, 0x1111111111111102
    call rax
    test eax, eax
    jnz restore
    movabs rax, 0x1111111111111103
    call rax
    mov r13d, eax
    lea rdi, [r12 + 0x1000]
    movabs rax, 0x1111111111111104
    call rax
    mov edi, r13d
    movabs rax, 0x1111111111111105
    call rax
    mov r14d, 1
restore:
    mov eax, 14
    mov edi, 2
    lea rsi, [r12 + 0xF10]
    xor edx, edx
    mov r10d, 8
    syscall
    mov eax, 0xE7
    xor edx, edx
    xrstor64 [r12]
    mov byte ptr [r12 + 0xF00], r14b
    push qword ptr [rip + saved_rflags]
    popfq
    mov rax, [rip + saved_rax]
    mov rbx, [rip + saved_rbx]
    mov rcx, [rip + saved_rcx]
    mov rdx, [rip + saved_rdx]
    mov rsi, [rip + saved_rsi]
    mov rdi, [rip + saved_rdi]
    mov rbp, [rip + saved_rbp]
    mov r8, [rip + saved_r8]
    mov r9, [rip + saved_r9]
    mov r10, [rip + saved_r10]
    mov r11, [rip + saved_r11]
    mov r13, [rip + saved_r13]
    mov r14, [rip + saved_r14]
    mov r15, [rip + saved_r15]
    mov rsp, [rip + saved_rsp]
    mov r12, [rip + saved_r12]
    jmp [rip + saved_rip]
    .balign 8
saved_rflags: .quad 0x2222222222222201
saved_rax: .quad 0x2222222222222202
saved_rbx: .quad 0x2222222222222203
saved_rcx: .quad 0x2222222222222204
saved_rdx: .quad 0x2222222222222205
saved_rsi: .quad 0x2222222222222206
saved_rdi: .quad 0x2222222222222207
saved_rbp: .quad 0x2222222222222208
saved_r8: .quad 0x2222222222222209
saved_r9: .quad 0x222222222222220a
saved_r10: .quad 0x222222222222220b
saved_r11: .quad 0x222222222222220c
saved_r13: .quad 0x222222222222220d
saved_r14: .quad 0x222222222222220e
saved_r15: .quad 0x222222222222220f
saved_rsp: .quad 0x2222222222222210
saved_r12: .quad 0x2222222222222211
saved_rip: .quad 0x2222222222222212
"""
CODE = bytes.fromhex(
    "49bc0111111111111111b8e700000031d2490fae2424b80e00000031ff498db424080f0000498d9424100f000041"
    "ba080000000f0541be0200000048b80211111111111111ffd085c0753848b80311111111111111ffd04189c5498d"
    "bc240010000048b80411111111111111ffd04489ef48b80511111111111111ffd041be01000000b80e000000bf02"
    "000000498db424100f000031d241ba080000000f05b8e700000031d2490fae2c244588b424000f0000ff35770000"
    "009d488b0577000000488b1d78000000488b0d79000000488b157a000000488b357b000000488b3d7c000000488b"
    "2d7d0000004c8b057e0000004c8b0d7f0000004c8b15800000004c8b1d810000004c8b2d820000004c8b35830000"
    "004c8b3d84000000488b25850000004c8b2586000000ff2588000000012222222222222202222222222222220322"
    "22222222222204222222222222220522222222222222062222222222222207222222222222220822222222222222"
    "09222222222222220a222222222222220b222222222222220c222222222222220d222222222222220e2222222222"
    "22220f22222222222222102222222222222211222222222222221222222222222222"
)

# Run by the target's own executable: where the four functions lie in its files (the target maps the
# same files, so the same file offsets), which Python it is and where its standard library is.
SYMBOLS_HELPER = r"""
import ctypes, json, sys, sysconfig
maps = []
with open("/proc/self/maps") as file:
    for line in file:
        parts = line.split(None, 5)
        if len(parts) == 6:
            low, high = (int(value, 16) for value in parts[0].split("-"))
            maps.append((low, high, int(parts[2], 16), parts[5].strip()))
found = {}
for name in sys.argv[1:]:
    address = ctypes.cast(getattr(ctypes.pythonapi, name), ctypes.c_void_p).value
    for low, high, offset, path in maps:
        if low <= address < high:
            found[name] = [path, address - low + offset]
free = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
stdlib = sorted({sysconfig.get_paths()[name] for name in ("stdlib", "platstdlib")})
version = list(sys.version_info[:2])
print(json.dumps({"version": version, "free_threaded": free, "symbols": found, "stdlib": stdlib}))
"""


class NotHere(Exception):
    """This thread cannot be borrowed now (not in a waiting call, or the call just finished)."""


@dataclasses.dataclass(frozen=True)
class Interpreter:
    version: tuple[int, int]
    free_threaded: bool
    functions: dict[str, int]  # the addresses of FUNCTIONS in the target
    stdlib: tuple[str, ...]  # where its standard library is


@dataclasses.dataclass(frozen=True)
class Borrowed:
    pid: int
    tid: int
    mapping: int
    size: int


def interpreter(pid: int, timeout: float) -> Interpreter:
    """What the target runs, found by running its executable beside it (no ptrace needed)."""
    env = dict(os.environ)
    with contextlib.suppress(psutil.Error):
        library_path = psutil.Process(pid).environ().get("LD_LIBRARY_PATH")
        if library_path is not None:
            env["LD_LIBRARY_PATH"] = library_path
    try:
        done = subprocess.run(
            [f"/proc/{pid}/exe", "-I", "-S", "-c", SYMBOLS_HELPER, *FUNCTIONS],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=True,
        )
        found = json.loads(done.stdout)
    except (OSError, subprocess.SubprocessError, ValueError) as exc:
        raise TraceError(
            0, f"process {pid}'s executable did not run as a CPython interpreter ({exc})"
        ) from None
    where = {name: tuple(value) for name, value in found["symbols"].items()}
    if set(where) != set(FUNCTIONS):
        raise TraceError(
            0, f"process {pid}'s interpreter does not export {', '.join(sorted(set(FUNCTIONS) - set(where)))}"
        )
    maps = _maps(pid)
    functions = {}
    for name, (path, file_offset) in where.items():
        for low, high, offset, mapped in maps:
            if mapped == path and offset <= file_offset < offset + high - low:
                functions[name] = low + file_offset - offset
        if name not in functions:
            raise TraceError(0, f"process {pid} does not map {path}, where {name} is")
    version = (found["version"][0], found["version"][1])
    return Interpreter(version, found["free_threaded"], functions, tuple(found["stdlib"]))


def _maps(pid: int) -> list[tuple[int, int, int, str]]:
    maps = []
    with open(f"/proc/{pid}/maps") as file:
        for line in file:
            parts = line.split(None, 5)
            if len(parts) == 6:
                low, high = (int(value, 16) for value in parts[0].split("-"))
                maps.append((low, high, int(parts[2], 16), parts[5].strip()))
    return maps


def candidates(pid: int) -> list[int]:
    """Threads waiting in a system call now, the main thread first (it is the one most often idle)."""
    try:
        tids = sorted(int(name) for name in os.listdir(f"/proc/{pid}/task"))
    except OSError:
        return []
    ordered = [pid, *(tid for tid in tids if tid != pid)] if pid in tids else tids
    return [tid for tid in ordered if waiting_call(pid, tid) is not None]


def borrow(pid: int, tid: int, script: bytes, functions: dict[str, int]) -> Borrowed:
    """Send thread `tid` through the trampoline with `script`; it runs on its own once this returns."""
    size = SCRIPT + -(-(len(script) + 1) // PAGE) * PAGE
    with stopped(pid, tid) as thread:
        regs = thread.registers()
        site = thread.syscall_site(regs)
        if site is None or not borrowable(regs, _maps(pid)):
            raise NotHere(tid)
        mapping = thread.run_syscall(
            site, regs, SYS_MMAP, 0, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0
        )
        try:
            thread.write(mapping + SCRIPT, script + b"\0")
            thread.write(mapping + ALL_SIGNALS, b"\xff" * 8)
            thread.write(mapping, trampoline(mapping, functions, regs, site))
            thread.run_syscall(site, regs, SYS_MPROTECT, mapping, PAGE, PROT_READ | PROT_EXEC)
        except OSError:
            with contextlib.suppress(OSError):
                thread.run_syscall(site, regs, SYS_MUNMAP, mapping, size)
            thread.set_registers(regs)
            raise
        sent = regs.copy()
        sent.rip, sent.rsp, sent.orig_rax = mapping, (regs.rsp - STACK_GAP) & ~0xF, (1 << 64) - 1
        thread.set_registers(sent)
    return Borrowed(pid, tid, mapping, size)


def borrowable(regs: Registers, maps: list[tuple[int, int, int, str]]) -> bool:
    """Whether a stopped thread holds nothing the trampoline's calls could need.

    Only a thread that was waiting when stopped: one whose call had just finished may be anywhere in
    the code around it, such as the interpreter's GIL hand-off holding the GIL's mutex (borrowing it
    there deadlocks the process). Not one waiting on a futex in a file's data either: the GIL's mutexes
    and condition variables lie in `_PyRuntime`, the C library's own locks in its data, and a thread
    that waits for one of those may hold another. Python's locks and conditions are on the heap.
    A call only the kernel can resume exactly (ERESTART_RESTARTBLOCK: a timed futex, a relative
    sleep) is left alone too."""
    call, answer = regs.signed("orig_rax"), regs.signed("rax")
    if call not in WAITING_CALLS or not (answer in RESTART or (answer == EINTR and call in SAYS_EINTR)):
        return False
    if call == FUTEX:
        return not any(
            low <= regs.rdi < high and path and not path.startswith("[") for low, high, _, path in maps
        )
    return True


def trampoline(mapping: int, functions: dict[str, int], regs: Registers, site: int) -> bytes:
    """CODE with its addresses filled in and, to restore, `regs` as they resume the system call."""
    rip, rax = resume(regs, site)
    values = {name: getattr(regs, name) for name in SAVED}
    values.update(rip=rip, rax=rax & ((1 << 64) - 1))
    code = CODE
    marks = [mapping + PAGE, *(functions[name] for name in FUNCTIONS)]
    for number, value in enumerate(marks, start=1):
        code = code.replace(struct.pack("<Q", 0x1111111111111100 + number), struct.pack("<Q", value))
    for number, name in enumerate(SAVED, start=1):
        code = code.replace(struct.pack("<Q", 0x2222222222222200 + number), struct.pack("<Q", values[name]))
    return code


def resume(regs: Registers, site: int) -> tuple[int, int]:
    """Where, and with which rax, the thread goes on as if never stopped."""
    if regs.signed("orig_rax") >= 0 and regs.signed("rax") in RESTART:
        return site, regs.orig_rax  # what the kernel does for a restartable call
    return regs.rip, regs.rax  # epoll_wait's own EINTR stands (asyncio retries, PEP 475)


def status(borrowed: Borrowed) -> int:
    """RUNNING, RAN or HELD_GIL, read from the target's memory."""
    with open(f"/proc/{borrowed.pid}/mem", "rb", buffering=0) as memory:
        memory.seek(borrowed.mapping + STATUS)
        return memory.read(1)[0]


def give_back(borrowed: Borrowed) -> None:
    """Unmap the pages once the borrowed thread is past the trampoline's last instruction."""
    with stopped(borrowed.pid, borrowed.tid) as thread:
        regs = thread.registers()
        for _ in range(64):  # the restore sequence is 20 instructions
            if not borrowed.mapping <= regs.rip < borrowed.mapping + PAGE:
                break
            thread.step()
            regs = thread.registers()
        else:
            raise TraceError(0, f"thread {borrowed.tid} did not leave the trampoline")
        if _unmap(thread, regs, borrowed):
            return
    for tid in candidates(borrowed.pid):  # the borrowed thread went on running: another one unmaps
        with contextlib.suppress(TraceError), stopped(borrowed.pid, tid) as thread:
            if _unmap(thread, thread.registers(), borrowed):
                return


def _unmap(thread: Tracee, regs: Registers, borrowed: Borrowed) -> bool:
    """Unmap the pages through a system call in `thread`, if it is at one, and put `regs` back."""
    site = thread.syscall_site(regs)
    if site is None:
        return False
    thread.run_syscall(site, regs, SYS_MUNMAP, borrowed.mapping, borrowed.size)
    thread.set_registers(regs)
    return True
