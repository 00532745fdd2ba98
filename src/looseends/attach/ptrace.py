"""ptrace on one thread of another process (Linux x86-64), limited to operations that leave nothing
pending in the kernel when the tracer dies.

The thread is seized with PTRACE_O_TRACESYSGOOD and moved only by PTRACE_SYSCALL: if the tracer is
killed while the thread sits in a system-call stop, the kernel lets it go with no signal (a plain
PTRACE_SYSCALL stop would have handed it a SIGTRAP, and a single step leaves the trap flag set, which
kills it). Signals that arrive while the thread is ours are never held by us: they are passed on at
once, or wait blocked in the thread's own mask, which the frames it returns through restore.
"""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import errno
import os
import platform
import signal
import time
from collections.abc import Callable, Iterator

__all__ = [
    "RESTART",
    "RESTART_BLOCK",
    "SAYS_EINTR",
    "WAITING_CALLS",
    "Registers",
    "TraceError",
    "Tracee",
    "seized",
    "supported",
    "tracer_of",
    "waiting_call",
]

PTRACE_CONT, PTRACE_SYSCALL, PTRACE_GETREGS, PTRACE_SETREGS, PTRACE_DETACH = 7, 24, 12, 13, 17
PTRACE_GETREGSET, PTRACE_SEIZE, PTRACE_INTERRUPT = 0x4204, 0x4206, 0x4207
PTRACE_GETSIGMASK, PTRACE_SETSIGMASK = 0x420A, 0x420B
PTRACE_O_TRACESYSGOOD = 1
PTRACE_EVENT_STOP = 128  # the stop PTRACE_INTERRUPT asks for
NT_X86_XSTATE = 0x202
XSTATE_MAX = 64 << 10  # bytes offered for the vector state (11 KiB with AMX today)
SYSCALL_STOP = signal.SIGTRAP | 0x80
WALL = 0x40000000  # __WALL: wait for threads that are not our children
# The kernel's "run me again" answers, seen by a tracer that stops a thread in a blocking call.
RESTART = {-512, -513, -514}  # ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND
RESTART_BLOCK = -516  # ERESTART_RESTARTBLOCK: resumed from state only the kernel holds
# Where a thread may be borrowed: calls that wait for something and can be restarted or interrupted.
WAITING_CALLS = {
    0: "read",
    7: "poll",
    23: "select",
    34: "pause",
    35: "nanosleep",
    43: "accept",
    45: "recvfrom",
    47: "recvmsg",
    61: "wait4",
    128: "rt_sigtimedwait",
    202: "futex",
    230: "clock_nanosleep",
    232: "epoll_wait",
    247: "waitid",
    270: "pselect6",
    271: "ppoll",
    281: "epoll_pwait",
    288: "accept4",
    441: "epoll_pwait2",
}
SAYS_EINTR = {232, 281, 441}  # the epoll waits answer EINTR themselves when stopped, never restart


class TraceError(OSError):
    """ptrace refused or the thread went away; the message says which."""


class Registers(ctypes.Structure):
    """struct user_regs_struct (x86-64), in the kernel's order."""

    _fields_ = [
        (name, ctypes.c_ulonglong)
        for name in (
            "r15", "r14", "r13", "r12", "rbp", "rbx", "r11", "r10", "r9", "r8", "rax", "rcx", "rdx",
            "rsi", "rdi", "orig_rax", "rip", "cs", "eflags", "rsp", "ss", "fs_base", "gs_base", "ds", "es",
            "fs", "gs",
        )
    ]  # fmt: skip

    def copy(self) -> Registers:
        return Registers.from_buffer_copy(self)

    def signed(self, name: str) -> int:
        value: int = getattr(self, name)
        return value - (1 << 64) if value >= 1 << 63 else value

    def set(self, **values: int) -> Registers:
        """A copy with these registers changed (negative numbers as two's complement)."""
        out = self.copy()
        for name, value in values.items():
            setattr(out, name, value & ((1 << 64) - 1))
        return out


class _Iovec(ctypes.Structure):
    _fields_ = [("base", ctypes.c_void_p), ("length", ctypes.c_size_t)]


def supported() -> str | None:
    """Why this machine cannot borrow threads, or None when it can."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        here = f"{platform.system()} {platform.machine()}"
        return f"borrowing a thread is built for Linux on x86-64 only; this is {here}"
    return None


def waiting_call(pid: int, tid: int) -> str | None:
    """The name of the waiting system call thread `tid` is in now, from /proc (no ptrace), or None."""
    try:
        with open(f"/proc/{pid}/task/{tid}/syscall") as file:
            first = file.read().split(" ", 1)[0]
    except OSError:
        return None
    return WAITING_CALLS.get(int(first)) if first.lstrip("-").isdigit() else None


def tracer_of(pid: int, tid: int) -> int:
    """The process tracing thread `tid`, or 0."""
    try:
        with open(f"/proc/{pid}/task/{tid}/status") as file:
            line = next((line for line in file if line.startswith("TracerPid:")), "TracerPid: 0")
    except OSError:
        return 0
    return int(line.split()[1])


@dataclasses.dataclass
class Tracee:
    """One seized thread, stopped. Use `seized(pid, tid)`: it is let go however the block ends."""

    pid: int
    tid: int
    libc: ctypes.CDLL

    def call(
        self, request: int, addr: int = 0, data: int | ctypes.Array[ctypes.c_char] | ctypes.Structure = 0
    ) -> int:
        ctypes.set_errno(0)
        pointer = data if isinstance(data, int) else ctypes.addressof(data)
        result: int = self.libc.ptrace(request, self.tid, addr, pointer)
        if result == -1 and ctypes.get_errno():
            code = ctypes.get_errno()
            raise TraceError(code, f"ptrace on thread {self.tid}: {os.strerror(code)}")
        return result

    def registers(self) -> Registers:
        regs = Registers()
        self.call(PTRACE_GETREGS, 0, regs)
        return regs

    def set_registers(self, regs: Registers) -> None:
        self.call(PTRACE_SETREGS, 0, regs)

    def signal_mask(self) -> int:
        mask = ctypes.c_uint64()
        self.call(PTRACE_GETSIGMASK, 8, ctypes.addressof(mask))
        return mask.value

    def set_signal_mask(self, mask: int) -> None:
        self.call(PTRACE_SETSIGMASK, 8, ctypes.addressof(ctypes.c_uint64(mask & ((1 << 64) - 1))))

    def vector_state(self) -> bytes:
        """The thread's xsave area (standard format), as long as the kernel makes it."""
        buffer = ctypes.create_string_buffer(XSTATE_MAX)
        iovec = _Iovec(ctypes.addressof(buffer), XSTATE_MAX)
        self.call(PTRACE_GETREGSET, NT_X86_XSTATE, iovec)
        return buffer.raw[: iovec.length]

    def next_syscall_stop(self, timeout: float = 5.0) -> None:
        """Let the thread run to its next system-call stop (entry or exit)."""
        self.call(PTRACE_SYSCALL)
        self.wait(lambda status: os.WSTOPSIG(status) == SYSCALL_STOP, PTRACE_SYSCALL, timeout)

    def wait(self, accept: Callable[[int], bool], again: int, timeout: float) -> None:
        """Wait for a stop that `accept(status)` takes. A signal's own stop is passed on at once (the
        thread handles it as it would have) and the thread sent on with request `again`; a job-control
        stop of the whole process is left as it is, and a TraceError."""
        deadline, pause = time.monotonic() + timeout, 20e-6
        while True:
            try:
                tid, status = os.waitpid(self.tid, os.WNOHANG | WALL)
            except ChildProcessError:
                raise TraceError(errno.ESRCH, f"process {self.pid} exited") from None
            if tid:
                if not os.WIFSTOPPED(status):
                    raise TraceError(errno.ESRCH, f"process {self.pid} exited")
                if accept(status):
                    return
                if status >> 16 == PTRACE_EVENT_STOP:  # a group stop: SIGSTOP, SIGTSTP... reached it
                    raise TraceError(errno.EAGAIN, f"process {self.pid} is stopped (job control)")
                self.call(again, 0, os.WSTOPSIG(status))
                continue
            if time.monotonic() > deadline:
                raise TraceError(errno.ETIMEDOUT, f"thread {self.tid} of process {self.pid} did not stop")
            time.sleep(pause)  # another process's thread: waitpid has no time-out to wait on
            pause = min(pause * 2, 1e-3)


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    libc.ptrace.restype = ctypes.c_long
    return libc


@contextlib.contextmanager
def seized(pid: int, tid: int, timeout: float = 5.0) -> Iterator[Tracee]:
    """Thread `tid` of `pid`, stopped where it is, for the block; detached at its end with the
    registers as the block left them."""
    tracee = Tracee(pid, tid, _libc())
    try:
        tracee.call(PTRACE_SEIZE, 0, PTRACE_O_TRACESYSGOOD)
    except TraceError as exc:
        raise TraceError(exc.errno, refused(pid, tid, exc.errno or 0)) from None
    try:
        tracee.call(PTRACE_INTERRUPT)
        tracee.wait(_interrupted, PTRACE_CONT, timeout)
        yield tracee
    finally:
        with contextlib.suppress(OSError):
            tracee.call(PTRACE_DETACH)


def _interrupted(status: int) -> bool:
    return status >> 16 == PTRACE_EVENT_STOP and os.WSTOPSIG(status) == signal.SIGTRAP


def refused(pid: int, tid: int, code: int) -> str:
    """Why ptrace was refused, in one line."""
    tracer = tracer_of(pid, tid)
    if code == errno.EPERM and tracer:
        return (
            f"could not attach to process {pid}: its thread {tid} is already traced by process {tracer} "
            "(a debugger, strace or py-spy): try again when it has let go"
        )
    if code in (errno.EPERM, errno.EACCES):
        return f"could not attach to process {pid}: {PTRACE_NEEDS}"
    if code == errno.ESRCH:
        return f"process {pid} exited before it answered"
    return f"could not attach to process {pid}: {os.strerror(code)}"


# The one statement of what the kernel asks of an attach (docs/attach.md and docs/security.md quote it).
PTRACE_NEEDS = (
    "the kernel refused ptrace (it allows it to root, or to the same user when "
    "/proc/sys/kernel/yama/ptrace_scope is 0; in a container, CAP_SYS_PTRACE)"
)
