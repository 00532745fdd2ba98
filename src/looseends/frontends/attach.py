"""`looseends attach PID`: a grouped leak dump of a running Python process that has no looseends code.

On Python 3.14+ the snapshot runs inside the target through `sys.remote_exec` (PEP 768), which runs a
script in the target's main thread at its next safe point: between bytecodes, never in the middle of
interpreter work. The script puts this looseends (and psutil) on the target's `sys.path` for the
moment, takes the snapshot, writes the report as JSON to a file only this user can read, and takes its
own modules back out of `sys.modules` (standard-library modules it needed stay loaded); it starts no
thread that outlives it and turns no tracking on.

The safe point is also the limit: a main thread blocked in C (`time.sleep`, a lock, a read) runs no
bytecode until it returns, so the attach waits up to `timeout` and then says so. Targets on 3.11-3.13
need a debugger to get in, which is not built yet: they are refused with that reason.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import psutil

from looseends._library import is_own_file
from looseends.errors import LooseEndsError
from looseends.model import Unit
from looseends.report import Report
from looseends.report_json import report_from_dict

__all__ = ["AttachError", "attach"]

POLL = 0.05  # seconds between looks for the target's answer (a separate process: nothing to wait on)

BOOTSTRAP = """
def _looseends_attach(paths, out, proven):
    import os, sys
    added = [path for path in paths if path not in sys.path]
    sys.path[:0] = added
    before = set(sys.modules)
    try:
        import looseends
        dump = looseends.snapshot(proven_only=proven)
        text = looseends.Report.from_units(dump.units, now=dump.taken_at, errors=dump.errors).to_json()
    except Exception as exc:  # the target must never see an exception of ours
        text = '{"attach_error": %r}' % f"{type(exc).__name__}: {exc}"
    finally:
        for path in added:
            if path in sys.path:
                sys.path.remove(path)
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


_looseends_attach(__PATHS__, __OUT__, __PROVEN__)
del _looseends_attach
"""


class AttachError(LooseEndsError):
    """The attach could not be made or did not answer; the message says why, in one line."""


def attach(pid: int, *, timeout: float = 10.0, proven: bool = False) -> Report:
    """The report of process `pid`, taken inside it. Raises AttachError with the reason otherwise."""
    _check_target(pid)
    remote_exec = getattr(sys, "remote_exec", None)
    if remote_exec is None:
        raise AttachError(
            f"attach needs Python 3.14+ here (sys.remote_exec, PEP 768); this is {_version()}. "
            "Targets on 3.11-3.13 need a debugger route, which is not built yet"
        )
    with tempfile.TemporaryDirectory(prefix="looseends-attach-") as where:  # mode 0700: ours only
        out = os.path.join(where, "report.json")
        script = Path(where, "bootstrap.py")
        text = BOOTSTRAP
        for name, value in (("__PATHS__", _import_paths()), ("__OUT__", out), ("__PROVEN__", proven)):
            text = text.replace(name, repr(value))
        script.write_text(text)
        try:
            remote_exec(pid, str(script))
        except (OSError, RuntimeError, ValueError) as exc:
            raise AttachError(f"could not attach to process {pid}: {_why(exc)}") from None
        data = _answer(pid, Path(out), timeout)
    if "attach_error" in data:
        raise AttachError(f"the snapshot failed inside process {pid}: {data['attach_error']}")
    try:
        report = report_from_dict(data, max_groups=10_000)
    except ValueError as exc:
        raise AttachError(f"process {pid} answered with an unreadable report: {exc}") from None
    units = [_without_bootstrap(unit) for unit in report.units]
    return Report.from_units(units, now=report.now, errors=report.errors, max_groups=10_000)


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
        return  # remote_exec will say what it can or cannot do
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
    data = json.loads(out.read_text())
    if not isinstance(data, dict):
        raise AttachError(f"process {pid} answered with something other than a report")
    return data


def _import_paths() -> list[str]:
    """Where this looseends and psutil are installed: the target (same Python version) imports them."""
    here = [str(Path(__file__).resolve().parents[2]), str(Path(psutil.__file__).resolve().parent.parent)]
    return list(dict.fromkeys(here))


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if isinstance(exc, PermissionError) or "ptrace" in text.lower() or "permission" in text.lower():
        return (
            f"{text} (the kernel refused: same user needed, and /proc/sys/kernel/yama/ptrace_scope <= 1, "
            "or CAP_SYS_PTRACE in a container)"
        )
    return text


def _version() -> str:
    return f"Python {sys.version.split()[0]}"
