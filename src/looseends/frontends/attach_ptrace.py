"""ptrace on one thread of another process (Linux x86-64): stop it, read and set its registers, run one
system call in it, and put everything back.

Only the thread being borrowed is stopped, never the rest of the process. A system call is run in it only
where it stopped in or at one (the `syscall` instruction is there to reuse, and the kernel knows how to
restart the call it interrupted); which stopped threads may run the interpreter's code is
attach_trampoline's `borrowable`. The vector registers are never written through ptrace (a debugger's
xsave buffer can be smaller than the kernel's on CPUs with AMX, which is why gdb 13 cannot do this
there): system calls do not touch them, and the trampoline that calls into the interpreter saves and
restores them itself.
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
from collections.abc import Iterator

__all__ = [
    "EINTR",
    "FUTEX",
    "RESTART",
    "SAYS_EINTR",
    "SYS_MMAP",
    "SYS_MPROTECT",
    "SYS_MUNMAP",
    "WAITING_CALLS",
    "Registers",
    "TraceError",
    "Tracee",
    "stopped",
    "supported",
    "waiting_call",
]

PTRACE_CONT = 7
PTRACE_GETREGS = 12
PTRACE_SETREGS = 13
PTRACE_SINGLESTEP = 9
PTRACE_DETACH = 17
PTRACE_SEIZE = 0x4206
PTRACE_INTERRUPT = 0x4207
PTRACE_EVENT_STOP = 128  # the stop PTRACE_INTERRUPT asks for
WALL = 0x40000000  # __WALL: wait for threads that are not our children
SYSCALL_INSTRUCTION = b"\x0f\x05"
# The kernel's "restart me" answers, seen by a tracer that stopped a thread in a blocking call.
RESTART = {-512, -513, -514}  # ERESTARTSYS, ERESTARTNOINTR, ERESTARTNOHAND: run the call again
RESTART_BLOCK = -516  # ERESTART_RESTARTBLOCK: the kernel resumes it from state only it holds
EINTR = -4
SAYS_EINTR = {232, 281, 441}  # the epoll waits answer EINTR themselves when stopped, never restart
FUTEX = 202
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
SYS_MMAP, SYS_MPROTECT, SYS_MUNMAP, SYS_TGKILL = 9, 10, 11, 234
WAIT_STEP = 0.001  # seconds between looks at a stopping thread (waitpid has no time-out)


class TraceError(OSError):
    """ptrace refused or the thread went away; the message says which."""


class Registers(ctypes.Structure):
    """struct user_regs_struct (x86-64), in the kernel's order."""

    _fields_ = [
        (name, ctypes.c_ulonglong)
        for name in (
            "r15",
            "r14",
            "r13",
            "r12",
            "rbp",
            "rbx",
            "r11",
            "r10",
            "r9",
            "r8",
            "rax",
            "rcx",
            "rdx",
            "rsi",
            "rdi",
            "orig_rax",
            "rip",
            "cs",
            "eflags",
            "rsp",
            "ss",
            "fs_base",
            "gs_base",
            "ds",
            "es",
            "fs",
            "gs",
        )
    ]

    def copy(self) -> Registers:
        return Registers.from_buffer_copy(self)

    def signed(self, name: str) -> int:
        value: int = getattr(self, name)
        return value - (1 << 64) if value >= 1 << 63 else value


def supported() -> str | None:
    """Why this machine cannot borrow threads, or None when it can."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        here = f"{platform.system()} {platform.machine()}"
        return f"borrowing a thread is built for Linux on x86-64 only; this is {here}"
    return None


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    libc.ptrace.restype = ctypes.c_long
    return libc


def waiting_call(pid: int, tid: int) -> str | None:
    """The name of the waiting system call thread `tid` is in now, from /proc (no ptrace), or None."""
    try:
        with open(f"/proc/{pid}/task/{tid}/syscall") as file:
            first = file.read().split(" ", 1)[0]
    except OSError:
        return None
    return WAITING_CALLS.get(int(first)) if first.lstrip("-").isdigit() else None


@dataclasses.dataclass
class Tracee:
    """One stopped thread. Use `stopped(pid, tid)`; it is let go however the block ends."""

    pid: int
    tid: int
    libc: ctypes.CDLL
    memory: int  # a descriptor of /proc/pid/mem
    signals: list[int] = dataclasses.field(default_factory=list)  # arrived meanwhile: given back at the end

    def call(self, request: int, addr: int = 0, data: int | ctypes.Structure | None = None) -> int:
        ctypes.set_errno(0)
        pointer = ctypes.addressof(data) if isinstance(data, ctypes.Structure) else data
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

    def read(self, address: int, size: int) -> bytes:
        return os.pread(self.memory, size, address)

    def write(self, address: int, data: bytes) -> None:
        if os.pwrite(self.memory, data, address) != len(data):
            raise TraceError(errno.EIO, f"short write into process {self.pid}")

    def syscall_site(self, regs: Registers) -> int | None:
        """Where the `syscall` instruction is that this thread stopped in (just after it) or at (on it)."""
        site = regs.rip - 2 if regs.signed("orig_rax") >= 0 else regs.rip
        try:
            return site if self.read(site, 2) == SYSCALL_INSTRUCTION else None
        except OSError:
            return None

    def step(self) -> None:
        self.call(PTRACE_SINGLESTEP)
        self.wait_stop(again=PTRACE_SINGLESTEP)

    def wait_stop(self, again: int = PTRACE_CONT, timeout: float = 5.0) -> None:
        """Wait for our own stop (the interrupt's, or a single step's trap). A signal that arrives
        first is held back and given to the thread when it is let go (never lost, never handled while
        it is ours), and the request is made `again`."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                tid, status = os.waitpid(self.tid, os.WNOHANG | WALL)
            except ChildProcessError:
                raise TraceError(errno.ESRCH, f"process {self.pid} exited") from None
            if tid:
                if not os.WIFSTOPPED(status):
                    raise TraceError(errno.ESRCH, f"process {self.pid} exited")
                if os.WSTOPSIG(status) == signal.SIGTRAP or status >> 16 == PTRACE_EVENT_STOP:
                    return
                self.signals.append(os.WSTOPSIG(status))
                self.call(again)
                continue
            if time.monotonic() > deadline:
                raise TraceError(errno.ETIMEDOUT, f"thread {self.tid} of process {self.pid} did not stop")
            time.sleep(WAIT_STEP)

    def run_syscall(self, site: int, base: Registers, number: int, *args: int) -> int:
        """Run one system call in the stopped thread at `site`; the caller puts `base` back afterwards."""
        regs = base.copy()
        regs.rip, regs.rax, regs.orig_rax = site, number, (1 << 64) - 1
        for name, value in zip(("rdi", "rsi", "rdx", "r10", "r8", "r9"), args, strict=False):
            setattr(regs, name, value & ((1 << 64) - 1))
        self.set_registers(regs)
        self.step()
        result = self.registers().signed("rax")
        if -4096 < result < 0:
            raise TraceError(-result, f"system call {number} in process {self.pid}: {os.strerror(-result)}")
        return result


@contextlib.contextmanager
def stopped(pid: int, tid: int) -> Iterator[Tracee]:
    """Thread `tid` of `pid`, stopped for the block; detached at its end, with the registers as the block
    left them."""
    libc = _libc()
    tracee = Tracee(pid, tid, libc, -1)
    try:
        tracee.call(PTRACE_SEIZE)
    except TraceError as exc:
        raise TraceError(exc.errno, _refused(pid, tid, exc)) from None
    try:
        tracee.memory = os.open(f"/proc/{pid}/mem", os.O_RDWR)
        tracee.call(PTRACE_INTERRUPT)
        tracee.wait_stop()
        yield tracee
    finally:
        with contextlib.suppress(OSError):
            tracee.call(PTRACE_DETACH)
        # Sent again, to the same thread: a detach passes a signal on only from a signal's own stop,
        # and drops it from the interrupt's. (The sender shows as looseends in its siginfo.)
        for held in tracee.signals:
            libc.syscall(SYS_TGKILL, pid, tid, held)
        if tracee.memory >= 0:
            os.close(tracee.memory)


def _tracer(pid: int, tid: int) -> int:
    try:
        with open(f"/proc/{pid}/task/{tid}/status") as file:
            line = next((line for line in file if line.startswith("TracerPid:")), "TracerPid: 0")
    except OSError:
        return 0
    return int(line.split()[1])


def _refused(pid: int, tid: int, exc: TraceError) -> str:
    tracer = _tracer(pid, tid)
    if exc.errno == errno.EPERM and tracer:
        return (
            f"could not attach to process {pid}: its thread {tid} is already traced by process {tracer} "
            "(a debugger, strace or py-spy): try again when it has let go"
        )
    if exc.errno == errno.EPERM:
        return (
            f"could not attach to process {pid}: the kernel refused ptrace (same user needed, and "
            "/proc/sys/kernel/yama/ptrace_scope at 0, or root; in a container, CAP_SYS_PTRACE)"
        )
    if exc.errno == errno.ESRCH:
        return f"process {pid} exited before it answered"
    return f"could not attach to process {pid}: {os.strerror(exc.errno or 0)}"
