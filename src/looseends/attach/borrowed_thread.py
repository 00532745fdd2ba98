"""Borrowing one waiting thread of another process to run a script in it (Linux x86-64), so that the
process is left as if nothing happened whatever happens to the attach.

A thread blocked in a waiting system call is stopped (only that thread, for about a millisecond) and
two signal frames are written below its stack pointer: its own registers, signal mask and vector state
("home"), and under it one that unmaps a page range and then returns through home ("undo"). From
then on every way the thread can go leads home:

1. It is pointed at `syscall; ret` in the C library with the arguments of an `mmap` of a free range
   (read and execute only, at an address chosen in the widest gap, never replacing anything) and its
   stack on undo, all its signals blocked. Run to the end on its own, this maps the range, unmaps it
   again and goes home: that is what happens if the attach dies here.
2. The attach watches the `mmap` leave the kernel (a system-call stop, which the kernel forgets
   when the tracer dies), writes the trampoline, its parameters and the script into the range, and
   points the thread at the trampoline with its stack on home. Then it lets go: nothing is attached
   while the script runs.
3. The trampoline runs the script (attach.trampoline) and unmaps the range through the same
   `syscall; ret`, whose `ret` lands in the C library's signal return on home.

Home resumes the thread's system call the way the kernel restarts one, or makes it return EINTR when a
signal with a handler came meanwhile (the trampoline decides). Which threads may be borrowed, and why
only those, is `borrowable`'s docstring.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import signal
from collections.abc import Iterator

from looseends.attach import trampoline
from looseends.attach.frame import FRAME_SIZE, fpstate, frame
from looseends.attach.memory import Mapping, Memory, mappings
from looseends.attach.ptrace import (
    RESTART,
    RESTART_BLOCK,
    SAYS_EINTR,
    WAITING_CALLS,
    Registers,
    TraceError,
    seized,
)
from looseends.attach.target import Interpreter, stack_limit

__all__ = ["STACK_NEEDED", "Borrowed", "NotHere", "borrow", "borrowable", "returned"]

PAGE = 4096
STACK_NEEDED = 256 << 10  # bytes of stack the snapshot may use below the frames (measured: docs/attach.md)
RED_ZONE = 128  # below the stack pointer, the thread's own code may still keep data there
MAIN_STACK_GUARD = 1 << 20  # the kernel keeps this much between a growing main stack and the next mapping
ALL_SIGNALS = (1 << 64) - 1  # the kernel keeps SIGKILL and SIGSTOP out of any mask itself
SYS_MMAP, SYS_MUNMAP = 9, 11
PROT_READ, PROT_EXEC = 1, 4
MAP_PRIVATE, MAP_ANONYMOUS, MAP_FIXED_NOREPLACE = 0x02, 0x20, 0x100000
ERESTARTSYS, ERESTARTNOHAND, EINTR = -512, -514, -4
FUTEX = 202
FUTEX_COMMAND, FUTEX_WAIT_BITSET = 0x7F, 9  # the operation without its PRIVATE and CLOCK_REALTIME flags
USER_TOP = 0x7FFF_FFFF_F000  # the end of a 47-bit address space: nothing is mapped for us above it
DEFERRED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


class NotHere(Exception):
    """This thread cannot be borrowed now; the message says why."""


@dataclasses.dataclass(frozen=True)
class Borrowed:
    pid: int
    tid: int
    region: int
    size: int


@contextlib.contextmanager
def deferred_signals() -> Iterator[None]:
    """Ctrl-C, a terminal hang-up or a plain kill of the attach wait until the thread is let go: a
    thread is never left half-borrowed by them (only SIGKILL can, and then every frame leads home)."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, DEFERRED)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def borrow(pid: int, tid: int, python: Interpreter, script: bytes, memory: Memory) -> Borrowed:
    """Send thread `tid` through the trampoline with `script`; it runs on its own once this returns.
    NotHere when the thread cannot be borrowed now (it is let go untouched)."""
    size = -(-(trampoline.SCRIPT_AT + len(script) + 1) // PAGE) * PAGE
    with deferred_signals(), seized(pid, tid) as thread:
        regs = thread.registers()
        maps = mappings(pid)
        site = _syscall_site(memory, regs)
        if site is None or not borrowable(regs, maps):
            raise NotHere(f"thread {tid} is not waiting in a system call it can be borrowed from")
        home_regs = _resumed(regs, site)
        fp = fpstate(thread.vector_state())
        fp_at = (regs.rsp - RED_ZONE - len(fp)) & ~63
        home = (fp_at - FRAME_SIZE) & ~15
        undo = home - FRAME_SIZE
        room = regs.rsp - _stack_floor(pid, regs.rsp, maps)
        if room < regs.rsp - undo + STACK_NEEDED:
            raise NotHere(
                f"thread {tid} has {room // 1024} KiB of stack left, too little to run the snapshot"
            )
        region = _free_range(maps, size)
        mask = thread.signal_mask()
        memory.write(fp_at, fp)
        memory.write(home, frame(home_regs, mask=mask, fp_address=fp_at, pretcode=python.sigreturn))
        back = regs.set(rip=python.syscall_ret, rax=SYS_MUNMAP, rdi=region, rsi=size, rsp=home)
        memory.write(undo, frame(back, mask=ALL_SIGNALS, fp_address=fp_at, pretcode=python.sigreturn))
        flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE
        thread.set_registers(
            regs.set(
                rip=python.syscall_ret, rsp=undo, orig_rax=-1, rax=SYS_MMAP,
                rdi=region, rsi=size, rdx=PROT_READ | PROT_EXEC, r10=flags, r8=-1, r9=0,
            )
        )  # fmt: skip
        thread.set_signal_mask(ALL_SIGNALS)
        thread.next_syscall_stop()  # into mmap
        thread.next_syscall_stop()  # out of it
        mapped = thread.registers().signed("rax")
        if mapped != region:  # undo would unmap whatever is there: straight home instead
            thread.set_registers(home_regs.set(orig_rax=-1))
            thread.set_signal_mask(mask)
            raise TraceError(-mapped if mapped < 0 else 0, f"process {pid} refused to map pages ({mapped})")
        parameters = {
            "region": region,
            "size": size,
            "syscall_ret": python.syscall_ret,
            "resume_rip": regs.rip,
            "mode": _mode(regs, home_regs),
            **python.functions,
        }
        memory.write(region, trampoline.page(parameters, script))
        thread.set_registers(regs.set(rip=region, rsp=home, orig_rax=-1))
    return Borrowed(pid, tid, region, size)


def returned(borrowed: Borrowed, memory: Memory) -> bool:
    """Whether the trampoline is done: its pages are gone."""
    try:
        memory.read(borrowed.region, 1)
    except OSError:
        return True
    return False


def borrowable(regs: Registers, maps: list[Mapping]) -> bool:
    """Whether a stopped thread holds nothing the snapshot could need.

    Only a thread that was waiting when stopped: one whose call had just finished may be anywhere in
    the code around it, such as the interpreter's GIL hand-off holding the GIL's mutex (borrowing it
    there deadlocks the process). Not one waiting on a futex in a file's data either: the GIL's mutexes
    and condition variables lie in `_PyRuntime`, the C library's own locks in its data, and a thread
    that waits for one of those may hold another. Python's locks and conditions are on the heap.
    A call only the kernel can resume exactly (ERESTART_RESTARTBLOCK: a relative sleep or poll) is left
    alone too: a signal return forgets the state it is resumed from. A timed futex wait answers the
    same, but when its deadline is absolute, making it again resumes it exactly (`_made_again`)."""
    call, answer = regs.signed("orig_rax"), regs.signed("rax")
    if call not in WAITING_CALLS or not (_made_again(regs) or (answer == EINTR and call in SAYS_EINTR)):
        return False
    if call == FUTEX:
        return not any(regs.rdi in mapping and mapping.path.startswith("/") for mapping in maps)
    return True


def _syscall_site(memory: Memory, regs: Registers) -> int | None:
    """Where the `syscall` instruction is that this thread stopped just after."""
    site = regs.rip - 2
    try:
        return site if regs.signed("orig_rax") >= 0 and memory.read(site, 2) == b"\x0f\x05" else None
    except OSError:
        return None


def _resumed(regs: Registers, site: int) -> Registers:
    """The registers that take the thread on as if never stopped: a restartable call made again, as the
    kernel does; epoll's own EINTR returned (asyncio and libuv retry, PEP 475)."""
    if _made_again(regs):
        return regs.set(rip=site, rax=regs.orig_rax)
    return regs.copy()


def _made_again(regs: Registers) -> bool:
    """Whether the call, made again with the same arguments, goes on exactly as the kernel would have
    resumed it: a restartable one; or a futex wait whose deadline is absolute (FUTEX_WAIT_BITSET: what
    the C library's timed locks, semaphores and condition variables use, so Python's `lock.acquire`,
    `queue.get` and `Event.wait` with a timeout), whose own restart state only the kernel holds."""
    answer = regs.signed("rax")
    if answer in RESTART:
        return True
    absolute = regs.rsi & FUTEX_COMMAND == FUTEX_WAIT_BITSET
    return answer == RESTART_BLOCK and regs.signed("orig_rax") == FUTEX and absolute


def _mode(regs: Registers, home: Registers) -> int:
    """When a handled signal makes the call return EINTR instead (the kernel's own rules)."""
    if home.rip != regs.rip - 2:
        return 0  # not a restart: the answer stands
    return {ERESTARTNOHAND: 1, RESTART_BLOCK: 1, ERESTARTSYS: 2}.get(regs.signed("rax"), 0)  # NOINTR: never


def _stack_floor(pid: int, sp: int, maps: list[Mapping]) -> int:
    """The lowest address the thread's stack can reach: a thread's mapping ends there; the main thread's
    grows down to its size limit, short of the mapping below it."""
    for index, mapping in enumerate(maps):
        if sp in mapping:
            if mapping.path != "[stack]":
                return mapping.start
            below = maps[index - 1].end + MAIN_STACK_GUARD if index else 0
            return max(mapping.end - stack_limit(pid), below)
    return sp  # not on a mapping we know: no room at all


def _free_range(maps: list[Mapping], size: int) -> int:
    """An address in the middle of the widest gap between mappings: nothing the process maps meanwhile
    lands there (new mappings go to the top of a gap), and MAP_FIXED_NOREPLACE refuses if one did."""
    ends = [(mapping.end, following.start) for mapping, following in itertools.pairwise(maps)]
    low, high = max((gap for gap in ends if gap[1] <= USER_TOP), key=lambda gap: gap[1] - gap[0])
    if high - low < 4 * size:
        raise NotHere("no free address range to map the trampoline")
    return (low + (high - low) // 2) & ~(PAGE - 1)
