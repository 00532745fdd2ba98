"""The `sys.remote_exec` route (PEP 768): the interpreter runs the script in the target's main thread at
its next safe point, between two bytecodes.

The interpreter takes a file's path, which it opens only when it gets to that safe point: perhaps
never (a main thread blocked in C runs no bytecode), perhaps long after the attach gave up. So no one
else may ever be able to put a file at that path: the script lies in a directory with a secret random
name inside one only we (or, for a root attach, the target's user) can enter, and it is never removed
while it may still be run. The script removes itself and its directories when it runs, and returns at
once when the attach has given up. When the attach itself ends first, the files stay until then: a
pending script is harmless, and a missing one would make the target print an error. A target that
exits with a script still pending leaves them behind: their directory is named after the target (its
pid and start time), and every remote-exec attach removes those of processes that are gone.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import sys
import tempfile

from looseends.attach.channel import Channel, script

__all__ = ["RemoteExecError", "run"]


class RemoteExecError(Exception):
    """The target did not answer; the message says why, in one line."""


PREFIX = "looseends-attach-"


def run(pid: int, channel: Channel, *, proven: bool, deadline: float, timeout: float) -> dict[str, object]:
    """The report the target answers with, through `channel`."""
    _sweep()
    outer = tempfile.mkdtemp(prefix=f"{PREFIX}{pid}-{_started(pid)}-")
    inner = os.path.join(outer, secrets.token_hex(16))
    path = os.path.join(inner, "bootstrap.py")
    pending = False
    try:
        os.mkdir(inner, 0o700)
        text = script(
            pid, channel.nonce, deadline=deadline, proven=proven, remove=(path, inner + "/", outer + "/")
        )
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(text)
        _hand_over(pid, (outer, inner, path))
        try:
            sys.remote_exec(pid, path)  # type: ignore[attr-defined]  # new in 3.14
        except (OSError, RuntimeError, ValueError) as exc:
            raise RemoteExecError(f"could not attach to process {pid}: {exc}") from None
        pending = True
        answer = channel.wait(deadline, lambda: False)
        pending = False
        return answer or {}
    except ProcessLookupError:
        pending = False
        raise RemoteExecError(f"process {pid} exited before it answered") from None
    except TimeoutError:
        raise RemoteExecError(
            f"process {pid} did not answer within {timeout:g} s: its main thread ran no Python code "
            "(blocked in C: time.sleep, a lock, a read). It was left running; the script it will run when "
            "it gets there returns at once and removes itself. Try --via thread, or a longer --timeout"
        ) from None
    finally:
        if not pending:
            for leftover in (path, inner, outer):
                with contextlib.suppress(OSError):
                    (os.unlink if leftover == path else os.rmdir)(leftover)


def _started(pid: int) -> str:
    """The process's start time (clock ticks after boot): with its pid, it names one process for good."""
    try:
        with open(f"/proc/{pid}/stat") as file:
            return file.read().rpartition(")")[2].split()[19]
    except (OSError, IndexError):
        return "0"


def _sweep() -> None:
    """Remove the directories of pending scripts whose target is gone (it never ran them)."""
    pattern = re.compile(rf"{PREFIX}(\d+)-(\d+)-")
    with contextlib.suppress(OSError):
        for entry in os.scandir(tempfile.gettempdir()):
            found = pattern.match(entry.name)
            if found and entry.is_dir(follow_symlinks=False) and _started(int(found[1])) != found[2]:
                shutil.rmtree(entry.path, ignore_errors=True)  # never follows a link out of it


def _hand_over(pid: int, paths: tuple[str, ...]) -> None:
    """A root attach to another user's process: the target must be able to read the script and remove
    it, so its user owns the directories (nobody else can enter them either way)."""
    if os.geteuid() != 0:
        return
    try:
        owner = os.stat(f"/proc/{pid}").st_uid
    except OSError:
        return
    for path in paths:
        os.chown(path, owner, -1)
