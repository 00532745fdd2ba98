"""`looseends attach PID`: a grouped leak dump of a running Python process that has no looseends code.

The snapshot runs inside the target and comes back as JSON. A script loads this looseends (and psutil)
from their directories without touching the target's `sys.path`, takes the snapshot, writes the report
to a file only this user can read, and takes its own modules back out of `sys.modules` (standard-library
modules it needed stay loaded); it starts no thread that outlives it and turns no tracking on. Two ways
in:

- `sys.remote_exec` (PEP 768) when both sides run the same Python 3.14+: the interpreter runs the script
  in the main thread at its next safe point, between bytecodes. A main thread blocked in C runs none
  until it returns, so the attach waits up to `timeout` and then says so.
- Otherwise (3.11-3.13, or a different version here), a borrowed thread (attach_trampoline): one that
  waits in a system call with the GIL released runs the script as a C callback would, then goes back
  to waiting. This serves a main thread blocked in `time.sleep` or a lock too. Linux on x86-64 only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path

import psutil

from looseends._library import also_standard_library, is_own_file
from looseends.errors import LooseEndsError
from looseends.frontends import attach_ptrace, attach_trampoline
from looseends.model import Unit
from looseends.report import Report
from looseends.report_json import report_from_dict

__all__ = ["ROUTES", "AttachError", "attach"]

ROUTES = ("remote-exec", "thread")
POLL = 0.05  # seconds between looks for the target's answer (a separate process: nothing to wait on)

BOOTSTRAP = """
def _looseends_attach(packages, out, proven):
    import importlib.machinery, importlib.util, os, sys
    before = set(sys.modules)
    try:
        for name, where in packages:  # by spec, from their directories: sys.path is never changed,
            if name not in sys.modules:  # so the target's own imports meanwhile see nothing of ours
                spec = importlib.machinery.PathFinder.find_spec(name, [where])
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
        import looseends, looseends._find
        look = getattr(looseends._find, "visit", looseends.snapshot)  # an older looseends of the target's
        dump = look(proven_only=proven)
        text = looseends.Report.from_units(dump.units, now=dump.taken_at, errors=dump.errors).to_json()
    except Exception as exc:  # the target must never see an exception of ours
        import json
        text = json.dumps({"attach_error": f"{type(exc).__name__}: {exc}"})
    finally:
        for name in set(sys.modules) - before:  # ours only: the target's threads may be importing too
            if name.partition(".")[0] in ("looseends", "psutil"):
                del sys.modules[name]
    try:
        fd = os.open(out + ".part", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.rename(out + ".part", out)
    except OSError:
        pass  # the caller gave up and removed its directory


_looseends_attach(__PACKAGES__, __OUT__, __PROVEN__)
del _looseends_attach
"""


class AttachError(LooseEndsError):
    """The attach could not be made or did not answer; the message says why, in one line."""


def attach(pid: int, *, timeout: float = 10.0, proven: bool = False, via: str | None = None) -> Report:
    """The report of process `pid`, taken inside it. Raises AttachError with the reason otherwise.

    `via` picks the way in ("remote-exec" or "thread"); by default sys.remote_exec where it can serve,
    a borrowed thread elsewhere."""
    if via not in (None, *ROUTES):
        raise AttachError(f"via must be one of {', '.join(ROUTES)}, not {via!r}")
    _check_target(pid)
    try:
        target = attach_trampoline.interpreter(pid, timeout)
    except OSError as exc:
        raise AttachError(str(exc)) from None
    if target.version < (3, 11):
        raise AttachError(f"process {pid} runs Python {_dotted(target.version)}; looseends needs 3.11+")
    with tempfile.TemporaryDirectory(prefix="looseends-attach-") as where:  # mode 0700: ours only
        out = Path(where, "report.json")
        text = BOOTSTRAP
        for name, value in (("__PACKAGES__", _packages()), ("__OUT__", str(out)), ("__PROVEN__", proven)):
            text = text.replace(name, repr(value))
        remote_exec = getattr(sys, "remote_exec", None)
        fits = remote_exec is not None and target.version == sys.version_info[:2]
        if via == "remote-exec" and not fits:
            raise AttachError(
                f"--via remote-exec needs the same Python 3.14+ on both sides (sys.remote_exec, PEP 768); "
                f"this is {_dotted(sys.version_info[:2])}, process {pid} runs {_dotted(target.version)}"
            )
        if remote_exec is not None and fits and via != "thread":
            script = Path(where, "bootstrap.py")
            script.write_text(text)
            try:
                remote_exec(pid, str(script))
            except (OSError, RuntimeError, ValueError) as exc:
                raise AttachError(f"could not attach to process {pid}: {_why(exc)}") from None
            data = _answer(pid, out, timeout)
        else:
            data = _through_a_borrowed_thread(pid, target, text, out, timeout)
    if "attach_error" in data:
        raise AttachError(f"the snapshot failed inside process {pid}: {data['attach_error']}")
    try:
        report = report_from_dict(data, max_groups=10_000)
    except ValueError as exc:
        raise AttachError(f"process {pid} answered with an unreadable report: {exc}") from None
    also_standard_library(*target.stdlib)  # its library frames fold like ours, whatever its version
    units = [_without_bootstrap(unit) for unit in report.units]
    return Report.from_units(units, now=report.now, errors=report.errors, max_groups=10_000)


def _through_a_borrowed_thread(
    pid: int, target: attach_trampoline.Interpreter, text: str, out: Path, timeout: float
) -> dict[str, object]:
    why = attach_ptrace.supported()
    if why is not None:
        raise AttachError(f"{why}; on Python 3.14+ on both sides, attach uses sys.remote_exec instead")
    if target.free_threaded:
        raise AttachError(f"process {pid} runs a free-threaded Python, which a borrowed thread cannot serve")
    deadline = time.monotonic() + timeout
    while True:  # threads pass through their waits all the time: look again until one can be borrowed
        data, held_gil = _one_pass(pid, target, text, out, deadline)
        if data is not None:
            return data
        if held_gil:
            raise AttachError(
                f"every waiting thread of process {pid} that could be borrowed holds the GIL (a C "
                "extension blocking without releasing it): none could run the snapshot; nothing was changed"
            )
        if not psutil.pid_exists(pid):
            raise AttachError(f"process {pid} exited before it answered")
        if time.monotonic() > deadline:
            raise AttachError(
                f"no thread of process {pid} waited where it can be borrowed within {timeout:g} s (in a "
                "sleep, a lock, a select, a read...; all were busy in code, in the GIL's hand-off or in "
                "timed waits): nothing was changed"
            )
        time.sleep(POLL)


def _one_pass(
    pid: int, target: attach_trampoline.Interpreter, text: str, out: Path, deadline: float
) -> tuple[dict[str, object] | None, int]:
    """One look at the waiting threads: the report of the first that ran the snapshot, else None and how
    many were entered but held the GIL."""
    held_gil = 0
    for tid in attach_trampoline.candidates(pid):
        try:
            borrowed = attach_trampoline.borrow(pid, tid, text.encode(), target.functions)
        except attach_trampoline.NotHere:
            continue  # not waiting where it may be borrowed (or no longer): the next one
        except OSError as exc:
            raise AttachError(str(exc)) from None
        state = _finished(borrowed, deadline)
        with contextlib.suppress(OSError):
            attach_trampoline.give_back(borrowed)
        if state == attach_trampoline.RAN:
            if not out.exists():
                raise AttachError(f"process {pid} ran the snapshot but wrote no report")
            return _read(out), 0
        held_gil += 1
    return None, held_gil


def _finished(borrowed: attach_trampoline.Borrowed, deadline: float) -> int:
    """The trampoline's last status; raises AttachError if the target exits or the deadline passes."""
    while True:
        try:
            state = attach_trampoline.status(borrowed)
        except OSError:
            raise AttachError(f"process {borrowed.pid} exited before it answered") from None
        if state != attach_trampoline.RUNNING:
            return state
        if time.monotonic() > deadline:
            raise AttachError(
                f"process {borrowed.pid} did not answer within the time-out: its thread {borrowed.tid} "
                "waits for the GIL, which another thread holds (or the snapshot is slow). It was left "
                "running; the snapshot will end on its own, unseen (3 pages of memory stay mapped)"
            )
        time.sleep(POLL)


def _without_bootstrap(unit: Unit) -> Unit:
    """The thread that ran the bootstrap, as it was before: without the snapshot's and the script's frames."""
    stack = unit.stack
    while stack and (stack[0].filename == "<string>" or is_own_file(stack[0].filename)):
        stack = stack[1:]
    return unit if stack is unit.stack else dataclasses.replace(unit, stack=stack)


def _check_target(pid: int) -> None:
    try:
        process = psutil.Process(pid)
        name = process.name()
    except psutil.NoSuchProcess:
        raise AttachError(f"no process {pid}") from None
    except psutil.AccessDenied:
        return  # the way in will say what it can or cannot do
    if "python" not in name.lower():
        raise AttachError(f"process {pid} ({name}) is not a Python interpreter")


def _answer(pid: int, out: Path, timeout: float) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while not out.exists():
        if not psutil.pid_exists(pid):
            raise AttachError(f"process {pid} exited before it answered")
        if time.monotonic() > deadline:
            raise AttachError(
                f"process {pid} did not answer within {timeout:g} s: its main thread ran no Python code "
                "(blocked in C: time.sleep, a lock, a read). It was left running, untouched; try again "
                "when it is busy, or give it a longer --timeout"
            )
        time.sleep(POLL)
    return _read(out)


def _read(out: Path) -> dict[str, object]:
    data = json.loads(out.read_text())
    if not isinstance(data, dict):
        raise AttachError("the process answered with something other than a report")
    return data


def _packages() -> list[tuple[str, str]]:
    """psutil and this looseends, each with the directory it is found in: the target loads them from
    there unless it has its own (a borrowed thread may serve another version: looseends' Python code
    is the same, psutil's wheels are abi3)."""
    return [
        ("psutil", str(Path(psutil.__file__).resolve().parent.parent)),
        ("looseends", str(Path(__file__).resolve().parents[2])),
    ]


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, PermissionError) or "ptrace" in text.lower() or "permission" in text.lower():
        return (
            f"{text} (the kernel refused: same user needed, and /proc/sys/kernel/yama/ptrace_scope <= 1, "
            "or CAP_SYS_PTRACE in a container)"
        )
    return text


def _dotted(version: tuple[int, int]) -> str:
    return ".".join(map(str, version))
