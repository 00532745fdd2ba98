"""`looseends attach PID`: a grouped leak dump of a running Python process that has no looseends code,
safe to point at a production service (docs/attach.md says what it can and cannot do to one).

The target is recognised from its memory alone (attach.target): nothing of it is executed. The
snapshot runs inside it (attach.bootstrap) and the report comes back through a memfd (attach.channel):
no file is written, and a dying attach leaves nothing behind. Two ways in:

- A borrowed thread (attach.borrowed_thread, Linux x86-64, Python 3.11+, the default there): a thread waiting
  in a system call runs the snapshot as a C callback would, then goes back to its wait. Another thread
  than the main one whenever one can serve, so the program's signal handlers keep running where and
  when they would.
- `sys.remote_exec` (PEP 768), when both sides run the same Python 3.14+ (elsewhere, or by choice):
  the interpreter runs the script in the main thread at its next safe point (attach.remote_exec).
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import socket
import sys
import time
from collections.abc import Iterator

from looseends.attach import ptrace, remote_exec, target
from looseends.attach.borrowed_thread import Borrowed, NotHere, borrow, returned
from looseends.attach.channel import POLL, Channel, same_mount_namespace, script
from looseends.attach.memory import Memory, exited
from looseends.errors import LooseEndsError
from looseends.model import Kind, Unit
from looseends.report import Report
from looseends.report_json import report_from_dict
from looseends.sources.processes import ProcessSource
from looseends.sources.threads import ATTACH_SCRIPT

__all__ = ["ROUTES", "AttachError", "NotPython", "Visit", "attach", "visit"]

ROUTES = ("thread", "remote-exec")
RETRY = 0.02  # seconds between looks for a thread that waits where it can be borrowed


class AttachError(LooseEndsError):
    """The attach could not be made or did not answer; the message says why, in one line."""


class NotPython(AttachError):
    """The process is not a CPython interpreter (or not one looseends can attach to)."""


@dataclasses.dataclass(frozen=True)
class Answer:
    """The report a target sent, and which way it came."""

    data: dict[str, object]
    route: str


@dataclasses.dataclass(frozen=True)
class Visit:
    """An attach's report, with the way it came in and the target's Python."""

    report: Report
    route: str  # "thread" or "remote-exec"
    version: tuple[int, int]

    def describe(self) -> str:
        way = "a borrowed thread" if self.route == "thread" else "sys.remote_exec"
        return f"Python {_dotted(self.version)}, through {way}"


def attach(pid: int, *, timeout: float = 10.0, proven: bool = False, via: str | None = None) -> Report:
    """The report of process `pid`, taken inside it. Raises AttachError with the reason otherwise.

    `via` picks the way in ("thread" or "remote-exec"); by default a borrowed thread where this machine
    can borrow one, sys.remote_exec elsewhere."""
    return visit(pid, timeout=timeout, proven=proven, via=via).report


def visit(pid: int, *, timeout: float = 10.0, proven: bool = False, via: str | None = None) -> Visit:
    """`attach`, saying also which way it went in and which Python the target runs."""
    if via not in (None, *ROUTES):
        raise AttachError(f"via must be one of {', '.join(ROUTES)}, not {via!r}")
    _check_process(pid)
    deadline = time.monotonic() + timeout
    with _one_attach_at_a_time(pid, deadline), _memory(pid) as memory:
        try:
            python = target.interpreter(pid, memory)
        except target.NotCPython as exc:
            raise NotPython(str(exc)) from None
        except OSError as exc:
            raise AttachError(f"could not read process {pid}: {os.strerror(exc.errno or 0)}") from None
        if python.version < (3, 11):
            raise AttachError(f"process {pid} runs Python {_dotted(python.version)}; looseends needs 3.11+")
        route = via or ("thread" if ptrace.supported() is None else "remote-exec")
        if route == "thread":
            answer = _through_a_borrowed_thread(pid, python, memory, proven, deadline, timeout)
        else:
            answer = _through_remote_exec(pid, python, proven, deadline, timeout)
    return Visit(_report(pid, answer), answer.route, python.version)


def _report(pid: int, answer: Answer) -> Report:
    data = answer.data
    if "attach_error" in data:
        raise AttachError(f"the snapshot failed inside process {pid}: {data['attach_error']}")
    try:
        report = report_from_dict(data, max_groups=10_000)
    except ValueError as exc:
        raise AttachError(f"process {pid} answered with an unreadable report: {exc}") from None
    units = [_without_bootstrap(unit) for unit in report.units]
    units += _children_of(pid, {unit.ident for unit in units if unit.kind is Kind.PROCESS})
    return Report.from_units(units, now=report.now, errors=report.errors, max_groups=10_000)


def _children_of(pid: int, known: set[object]) -> list[Unit]:
    """The target's child processes, read from outside (the snapshot inside loads no psutil), but for
    those a looseends of the target's own already reported with the spawn that made them."""
    import psutil

    try:
        root = psutil.Process(pid)
    except psutil.Error:
        return []
    found = ProcessSource(_root=root).read()
    now = time.monotonic()  # the target's report is rendered at 0: ages, not times
    return [_aged(unit, now) for unit in found if unit.ident not in known and unit.ident != os.getpid()]


def _aged(unit: Unit, now: float) -> Unit:
    origin = unit.origin
    if origin is None or origin.created_at is None:
        return unit
    return dataclasses.replace(unit, origin=dataclasses.replace(origin, created_at=origin.created_at - now))


def _through_a_borrowed_thread(
    pid: int, python: target.Interpreter, memory: Memory, proven: bool, deadline: float, timeout: float
) -> Answer:
    why = ptrace.supported()
    if why is not None:
        raise AttachError(f"{why}; use --via remote-exec (the same Python 3.14+ on both sides)")
    if python.free_threaded:
        raise AttachError(f"process {pid} runs a free-threaded Python, which a borrowed thread cannot serve")
    channel = Channel(pid)
    text = script(pid, channel.nonce, deadline=deadline, proven=proven).encode()
    came_back = 0
    try:
        while True:  # threads pass through their waits all the time: look again until one can serve
            found, main_only = _candidates(pid)
            for tid in found:
                try:
                    borrowed = borrow(pid, tid, python, text, memory)
                except NotHere:
                    continue
                except ptrace.TraceError as exc:
                    raise AttachError(str(exc)) from None
                answer = _wait(channel, borrowed, memory, deadline)
                if answer is not None:
                    return Answer(answer, "thread")
                came_back += 1  # it held the GIL: the next one
            if exited(pid):
                raise AttachError(f"process {pid} exited before it answered")
            if time.monotonic() > deadline:
                raise AttachError(_nobody(pid, timeout, came_back, main_only))
            time.sleep(RETRY)
    finally:
        channel.close()


def _wait(channel: Channel, borrowed: Borrowed, memory: Memory, deadline: float) -> dict[str, object] | None:
    try:
        answer = channel.wait(deadline, lambda: returned(borrowed, memory))
    except ProcessLookupError:
        raise AttachError(f"process {borrowed.pid} exited before it answered") from None
    except TimeoutError:
        raise AttachError(
            f"process {borrowed.pid} did not answer within the time-out: its thread {borrowed.tid} waits for "
            "the GIL, which another thread holds (or the snapshot is slow). It was left running: the "
            "snapshot ends on its own, unseen, and takes its pages with it"
        ) from None
    except ValueError as exc:
        raise AttachError(f"process {borrowed.pid} answered with an unreadable report: {exc}") from None
    if answer is not None:
        _until_home(borrowed, memory, deadline)
    return answer


def _until_home(borrowed: Borrowed, memory: Memory, deadline: float) -> None:
    """The report comes before the script has tidied up and the thread unmapped our pages: attach
    returns once the target is as it was, or at the deadline (the thread then finishes on its own)."""
    while not returned(borrowed, memory) and not exited(borrowed.pid) and time.monotonic() < deadline:
        time.sleep(POLL)


def _candidates(pid: int) -> tuple[list[int], bool]:
    """Threads waiting in a system call now, other threads than the main one; the main thread only when
    it is the process's only thread (else a signal meanwhile would reach a Python handler inside the
    snapshot). Also whether the main thread was left out for that reason."""
    tids = target.thread_ids(pid)
    others = [tid for tid in tids if tid != pid and ptrace.waiting_call(pid, tid)]
    main_waits = pid in tids and ptrace.waiting_call(pid, pid) is not None
    if main_waits and tids == [pid]:
        return [pid], False
    return others, main_waits and not others


def _nobody(pid: int, timeout: float, came_back: int, main_only: bool) -> str:
    if came_back:
        return (
            f"every waiting thread of process {pid} that could be borrowed holds the GIL (a C extension "
            "blocking without releasing it): none could run the snapshot; nothing was changed"
        )
    if main_only:
        return (
            f"only the main thread of process {pid} waited where it can be borrowed within {timeout:g} s, "
            "and the process has other threads: a signal meanwhile would reach its Python handler inside "
            "the snapshot, so it was not borrowed; nothing was changed (--via remote-exec on 3.14+)"
        )
    return (
        f"no thread of process {pid} waited where it can be borrowed within {timeout:g} s (in a sleep, a "
        "lock, a select, a read...; all were busy in code, in the GIL's hand-off, in timed waits or "
        "short of stack): nothing was changed"
    )


def _through_remote_exec(
    pid: int, python: target.Interpreter, proven: bool, deadline: float, timeout: float
) -> Answer:
    if python.version != sys.version_info[:2] or not hasattr(sys, "remote_exec"):
        raise AttachError(
            f"--via remote-exec needs the same Python 3.14+ on both sides (sys.remote_exec, PEP 768); "
            f"this is {_dotted(sys.version_info[:2])}, process {pid} runs {_dotted(python.version)}"
        )
    if not same_mount_namespace(pid):
        raise AttachError(
            f"process {pid} sees other files than ours (a container): sys.remote_exec would hand it a "
            "script path it cannot open; use the default route (--via thread)"
        )
    channel = Channel(pid)
    try:
        data = remote_exec.run(pid, channel, proven=proven, deadline=deadline, timeout=timeout)
    except remote_exec.RemoteExecError as exc:
        raise AttachError(str(exc)) from None
    finally:
        channel.close()
    return Answer(data, "remote-exec")


def _without_bootstrap(unit: Unit) -> Unit:
    """The thread that ran the bootstrap, as it was before: without the snapshot's frames, the script's
    and the one line that compiled it (the trampoline's, or sys.remote_exec's). The snapshot strips
    them itself; an older looseends of the target's own may not."""
    script = [index for index, frame in enumerate(unit.stack) if frame.filename == ATTACH_SCRIPT]
    if not script:
        return unit
    return dataclasses.replace(unit, stack=unit.stack[script[-1] + 2 :])


def _check_process(pid: int) -> None:
    try:
        with open(f"/proc/{pid}/stat") as file:
            state = file.read().rpartition(")")[2].split()[0]
    except OSError:
        raise AttachError(f"no process {pid}") from None
    if state in ("T", "t"):
        raise AttachError(
            f"process {pid} is stopped (SIGSTOP or a debugger): continue it first (kill -CONT {pid})"
        )
    if state in ("Z", "X"):
        raise AttachError(f"process {pid} exited before it answered")


@contextlib.contextmanager
def _memory(pid: int) -> Iterator[Memory]:
    try:
        memory = Memory(pid, writable=True)
    except PermissionError:
        raise AttachError(f"could not attach to process {pid}: {ptrace.PTRACE_NEEDS}") from None
    except OSError:
        raise AttachError(f"no process {pid}") from None
    with memory:
        yield memory


@contextlib.contextmanager
def _one_attach_at_a_time(pid: int, deadline: float) -> Iterator[None]:
    """Attaches to one process are serialised: an abstract socket named after it (its pid and start
    time) is held meanwhile, and goes away with the process holding it, however that ends."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            started = file.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        started = "0"
    lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        while True:
            try:
                lock.bind(f"\0looseends-attach-{pid}-{started}")
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise AttachError(f"another attach to process {pid} is under way; try again") from None
                time.sleep(RETRY)
        yield
    finally:
        lock.close()


def _dotted(version: tuple[int, int]) -> str:
    return ".".join(map(str, version))
