"""What the kernel says a thread is doing, when its Python frames do not say: the system call it sleeps in
and, for a descriptor, what the descriptor is (a pipe, a socket, a file).

The classification by frames names a wait from the call the innermost frame makes; a call made through
an alias (`read = os.read; read(fd, n)`, `multiprocessing.Connection.recv`) or from C code is not among
the names it knows. Rather than call such a thread running, ask the kernel (Linux: /proc/self/task/TID).
Only waits the thread cannot leave by itself are named: a thread waiting for the GIL (a futex in the
interpreter's data) is running, as far as anyone can tell, and so is one in a call not listed here.
"""

from __future__ import annotations

import os

from looseends.model import BlockedOn

__all__ = ["children", "kernel_wait"]

# System call number (x86-64, aarch64's differ: no fallback there) -> (code, what it is, descriptor?).
_CALLS: dict[int, tuple[str, str, bool]] = {
    0: ("io.read", "read", True),
    17: ("io.read", "pread", True),
    19: ("io.read", "readv", True),
    1: ("os.wait", "write", True),
    20: ("os.wait", "writev", True),
    7: ("selector.select", "poll", False),
    23: ("selector.select", "select", False),
    270: ("selector.select", "pselect6", False),
    271: ("selector.select", "ppoll", False),
    232: ("selector.select", "epoll_wait", False),
    281: ("selector.select", "epoll_pwait", False),
    441: ("selector.select", "epoll_pwait2", False),
    43: ("socket.accept", "accept", True),
    288: ("socket.accept", "accept4", True),
    42: ("socket.connect", "connect", True),
    45: ("socket.recv", "recvfrom", True),
    47: ("socket.recv", "recvmsg", True),
    299: ("socket.recv", "recvmmsg", True),
    44: ("socket.send", "sendto", True),
    46: ("socket.send", "sendmsg", True),
    61: ("subprocess.wait", "wait4", False),
    247: ("subprocess.wait", "waitid", False),
    34: ("signal.wait", "pause", False),
    128: ("signal.wait", "rt_sigtimedwait", False),
    130: ("signal.wait", "rt_sigsuspend", False),
    35: ("time.sleep", "nanosleep", False),
    230: ("time.sleep", "clock_nanosleep", False),
    202: ("os.wait", "futex (a lock or condition in C code)", False),
}
_SOCKET_CODES = {"io.read": "socket.recv", "os.wait": "socket.send"}  # read/write on a socket


def kernel_wait(native_id: int | None, *, _proc: str = "/proc/self") -> BlockedOn | None:
    """The wait the kernel has thread `native_id` asleep in, or None (running, unknown, not Linux)."""
    if native_id is None or os.uname().machine not in ("x86_64", "AMD64"):
        return None
    try:
        with open(f"{_proc}/task/{native_id}/syscall") as file:
            fields = file.read().split()
    except OSError:
        return None
    if len(fields) < 2 or not fields[0].isdigit():
        return None  # "running", or "-1 ..." (not in a system call)
    known = _CALLS.get(int(fields[0]))
    if known is None:
        return None
    code, call, on_descriptor = known
    if int(fields[0]) == 202 and _in_a_file(int(fields[1], 16), _proc):
        return None  # the GIL's or the C library's own lock: the thread waits to run, it is running
    if not on_descriptor:
        return BlockedOn(code, f"{call} (from the kernel: no Python call names it)", {"syscall": call})
    fd = int(fields[1], 16)
    what = _descriptor(fd, _proc)
    if what.startswith("socket"):
        code = _SOCKET_CODES.get(code, code)
    detail: dict[str, int | float | str] = {"syscall": call, "fd": fd, "descriptor": what}
    return BlockedOn(code, f"{call} on {what} (fd {fd}, from the kernel: no Python call names it)", detail)


def _descriptor(fd: int, proc: str) -> str:
    """`a pipe`, `a socket`, `a terminal`, or the file's path."""
    try:
        target = os.readlink(f"{proc}/fd/{fd}")
    except OSError:
        return "a closed descriptor"
    if target.startswith("pipe:"):
        return "a pipe"
    if target.startswith("socket:"):
        return "a socket"
    if target.startswith(("/dev/pts/", "/dev/tty")):
        return "a terminal"
    if target.startswith("anon_inode:"):
        return target.removeprefix("anon_inode:").strip("[]")
    return target


def _in_a_file(address: int, proc: str) -> bool:
    """Whether an address lies in a file's mapping (a library's data: the GIL's, the C library's locks)."""
    try:
        with open(f"{proc}/maps") as file:
            for line in file:
                span, _, rest = line.partition(" ")
                low, _, high = span.partition("-")
                if int(low, 16) <= address < int(high, 16):
                    path = rest.split(None, 4)[-1].strip() if len(rest.split(None, 4)) == 5 else ""
                    return path.startswith("/")
    except (OSError, ValueError):
        return True  # unknown: claim nothing
    return False


class _ChildLists:
    """Each thread's list of children (/proc/self/task/TID/children), kept open: a read at offset 0 of a
    descriptor already open costs a microsecond, an open ten. Re-listed when the set of threads changes,
    and from scratch in a forked child (whose descriptors would still show its parent's)."""

    def __init__(self) -> None:
        self.pid = -1
        self.threads: frozenset[int] = frozenset()
        self.fds: dict[str, int] = {}

    def read(self, threads: frozenset[int]) -> frozenset[int] | None:
        if self.pid != os.getpid() or threads != self.threads:
            if not self._reopen():
                return None
            self.threads = threads
        found: list[bytes] = []
        for tid, fd in list(self.fds.items()):
            try:
                found += os.pread(fd, 65536, 0).split()
            except OSError:  # the thread ended: its children went to the process's other threads
                self.fds.pop(tid, None)
                os.close(fd)
        return frozenset(map(int, found))

    def _reopen(self) -> bool:
        if self.pid == os.getpid():
            for fd in self.fds.values():
                os.close(fd)
        self.fds, self.pid = {}, os.getpid()
        try:
            for tid in os.listdir("/proc/self/task"):
                self.fds[tid] = os.open(f"/proc/self/task/{tid}/children", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            for fd in self.fds.values():
                os.close(fd)
            self.fds = {}
            return False
        return True


_lists = _ChildLists()


def children(threads: frozenset[int]) -> frozenset[int] | None:
    """This process's direct children (zombies too), from the kernel, whatever started them: a fork in
    C, `pty.fork`, `_posixsubprocess`. `threads`: the Python threads now, whose change means the lists
    must be opened again. None where the kernel does not list children (not Linux, or no
    CONFIG_PROC_CHILDREN): then only tracked creations say that a child started."""
    return _lists.read(threads)
