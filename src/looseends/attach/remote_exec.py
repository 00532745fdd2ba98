"""The `sys.remote_exec` route (PEP 768): the interpreter runs the script in the target's main thread at
its next safe point, between two bytecodes.

The interpreter takes a file's path, which it opens only when it gets to that safe point: perhaps
never (a main thread blocked in C runs no bytecode), perhaps long after the attach gave up. So no one
else may ever be able to put a file at that path: the script lies in a directory with a secret random
name inside one only we (or, for a root attach, the target's user) can enter, and it is never removed
while it may still be run. The script removes itself and its directories when it runs, and returns at
once when the attach has given up. When the attach itself ends first, the files stay until then: a
pending script is harmless, and a missing one would make the target print an error.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import tempfile

from looseends.attach.channel import Channel, script

__all__ = ["RemoteExecError", "run"]


class RemoteExecError(Exception):
    """The target did not answer; the message says why, in one line."""


def run(pid: int, channel: Channel, *, proven: bool, deadline: float, timeout: float) -> dict[str, object]:
    """The report the target answers with, through `channel`."""
    outer = tempfile.mkdtemp(prefix="looseends-attach-")
    inner = os.path.join(outer, secrets.token_hex(16))
    path = os.path.join(inner, "bootstrap.py")
    pending = False
    try:
        os.mkdir(inner, 0o700)
        text = script(
            channel.nonce, deadline=deadline, proven=proven, remove=(path, inner + "/", outer + "/")
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
