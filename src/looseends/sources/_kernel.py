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
import time

from looseends.model import BlockedOn

__all__ = ["children", "children_listed", "kernel_wait", "time_left"]

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
    call = _system_call(native_id, _proc)
    known = _CALLS.get(call[0]) if call is not None else None
    if call is None or known is None:
        return None
    code, name, on_descriptor = known
    number, arguments = call
    if number == 202 and _in_a_file(arguments[0], _proc):
        return None  # the GIL's or the C library's own lock: the thread waits to run, it is running
    if not on_descriptor:
        detail: dict[str, int | float | str] = {"syscall": name}
        left = _time_left(number, arguments, _proc)
        if left is not None:
            detail["timeout"] = round(left, 3)  # what settling waits for: it ends by itself by then
        return BlockedOn(code, f"{name} (from the kernel: no Python call names it)", detail)
    fd = arguments[0]
    what = _descriptor(fd, _proc)
    if what.startswith("socket"):
        code = _SOCKET_CODES.get(code, code)
    detail = {"syscall": name, "fd": fd, "descriptor": what}
    return BlockedOn(code, f"{name} on {what} (fd {fd}, from the kernel: no Python call names it)", detail)


def time_left(native_id: int | None, *, _proc: str = "/proc/self") -> float | None:
    """The longest thread `native_id`'s system call can still wait by itself, when it is a timed wait
    whose timeout the Python frames did not show (a call through a wrapper: `f(*args)`)."""
    call = _system_call(native_id, _proc)
    return _time_left(*call, _proc) if call is not None else None


def _system_call(native_id: int | None, proc: str) -> tuple[int, list[int]] | None:
    """The call thread `native_id` is in, and its six arguments (x86-64 numbers: None elsewhere)."""
    if native_id is None or os.uname().machine not in ("x86_64", "AMD64"):
        return None
    try:
        with open(f"{proc}/task/{native_id}/syscall") as file:
            fields = file.read().split()
    except OSError:
        return None
    if len(fields) < 7 or not fields[0].isdigit():
        return None  # "running", or "-1 ..." (not in a system call)
    return int(fields[0]), [int(field, 16) for field in fields[1:7]]


# Timed waits: call -> (the argument holding the timeout, its form). "ms": milliseconds in the argument
# itself (negative: none); the others point at a struct, relative to when the call was made, so what
# is left is at most that. Where it is absolute (clock_nanosleep with TIMER_ABSTIME, the futex waits of
# the C library's timed locks), what is left is exact.
_TIMEOUTS: dict[int, tuple[int, str]] = {
    7: (2, "ms"),  # poll(fds, n, timeout)
    232: (3, "ms"),  # epoll_wait(epfd, events, max, timeout)
    281: (3, "ms"),  # epoll_pwait
    441: (3, "timespec"),  # epoll_pwait2
    271: (2, "timespec"),  # ppoll(fds, n, timeout, mask)
    23: (4, "timeval"),  # select(n, r, w, x, timeout)
    270: (4, "timespec"),  # pselect6
    35: (0, "timespec"),  # nanosleep(request, remaining)
    128: (2, "timespec"),  # rt_sigtimedwait(set, info, timeout)
}
CLOCK_REALTIME, CLOCK_MONOTONIC = 0, 1
TIMER_ABSTIME = 1
FUTEX_COMMAND, FUTEX_WAIT, FUTEX_WAIT_BITSET, FUTEX_CLOCK_REALTIME = 0x7F, 0, 9, 256


def _time_left(number: int, arguments: list[int], proc: str) -> float | None:
    """The longest a timed wait can still last by itself, from its arguments (None: no timeout)."""
    if number == 230:  # clock_nanosleep(clock, flags, request, remaining)
        return _until(arguments[2], arguments[0], arguments[1] & TIMER_ABSTIME != 0, proc)
    if number == 202:  # futex(address, operation, value, timeout, ...)
        command = arguments[1] & FUTEX_COMMAND
        if command not in (FUTEX_WAIT, FUTEX_WAIT_BITSET) or not arguments[3]:
            return None
        clock = CLOCK_REALTIME if arguments[1] & FUTEX_CLOCK_REALTIME else CLOCK_MONOTONIC
        return _until(arguments[3], clock, command == FUTEX_WAIT_BITSET, proc)
    where = _TIMEOUTS.get(number)
    if where is None:
        return None
    index, form = where
    if form == "ms":
        milliseconds = arguments[index] - (1 << 64) if arguments[index] >= 1 << 63 else arguments[index]
        return milliseconds / 1000 if milliseconds >= 0 else None
    if not arguments[index]:
        return None  # a null pointer: no timeout
    return _until(arguments[index], CLOCK_MONOTONIC, False, proc, micro=form == "timeval")


def _until(address: int, clock: int, absolute: bool, proc: str, *, micro: bool = False) -> float | None:
    """Seconds from now to the time a struct timespec (or timeval) in the thread's memory says: read
    through /proc, which answers an error, never a fault, if the call ended and its memory went."""
    try:
        fd = os.open(f"{proc}/mem", os.O_RDONLY | os.O_CLOEXEC)
        try:
            data = os.pread(fd, 16, address)
        finally:
            os.close(fd)
    except (OSError, OverflowError):
        return None
    if len(data) != 16:
        return None
    seconds = int.from_bytes(data[:8], "little", signed=True)
    fraction = int.from_bytes(data[8:], "little", signed=True) / (1e6 if micro else 1e9)
    value = seconds + fraction
    if not absolute:
        return max(0.0, value)
    try:
        return max(0.0, value - time.clock_gettime(clock))
    except OSError:
        return None


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

    def listed(self, threads: frozenset[int]) -> bytes | None:
        """The lists as the kernel writes them ("pid pid "), one after another: equal bytes, same children
        (a fingerprint compares these unparsed; the same children listed in another order only costs a
        look)."""
        if self.pid != os.getpid() or threads != self.threads:
            if not self._reopen():
                return None
            self.threads = threads
        found = b""
        for tid, fd in list(self.fds.items()):
            try:
                found += os.pread(fd, 65536, 0)
            except OSError:  # the thread ended: its children went to the process's other threads
                self.fds.pop(tid, None)
                os.close(fd)
        return found

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
    listed = _lists.listed(threads)
    return None if listed is None else frozenset(map(int, listed.split()))


def children_listed(threads: frozenset[int]) -> bytes | None:
    """`children()` as the kernel lists them, unparsed: what a fingerprint compares, twice per checked
    test."""
    return _lists.listed(threads)
