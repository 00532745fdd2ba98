"""The attacher's end of the answer: the script it sends, and the memfd the target answers in.

attach.bootstrap is the other end; the protocol is in its docstring. The attacher finds the memfd by
its name in /proc/PID/fd (the kernel shows it as `/memfd:looseends-NONCE`), opens its own reference
through the same link and acknowledges; from then on the report is the attacher's to read whatever
the target does. Opening /proc/PID/fd/N asks the kernel for the same leave as ptrace, so nobody else
can read the answer, and no file is ever created.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

from looseends.attach import bootstrap, shipment
from looseends.attach.memory import exited
from looseends.sources.threads import ATTACH_SCRIPT

__all__ = ["POLL", "Channel", "same_mount_namespace", "same_pid_namespace", "script"]

MAX_REPORT = 256 << 20  # bytes: a report larger than this is refused, not read
POLL = 0.005  # seconds between looks at the target (another process: nothing to wait on)


def script(pid: int, nonce: str, *, deadline: float, proven: bool, remove: tuple[str, ...] = ()) -> str:
    """bootstrap.py's text with the call that runs it, compiled under ATTACH_SCRIPT so its frames are told
    from the target's own: no placeholder is filled in, only literals appended (the repr of a str, a
    float, a bool, an int and lists of them is Python source)."""
    arguments = {
        "nonce": nonce,
        "deadline": deadline,
        "proven": proven,
        "attacher": os.getpid() if same_pid_namespace(pid) else 0,  # 0: not a pid the target can see
        "remove": list(remove),
        "code": shipment.sources(),
    }
    source = Path(bootstrap.__file__).read_text() + f"\nrun({arguments!r})\nglobals().clear()\n"
    return f"exec(compile({source!r}, {ATTACH_SCRIPT!r}, 'exec'))\n"


def same_pid_namespace(pid: int) -> bool:
    """Whether process `pid` sees our pid as ours (not from inside a container of its own)."""
    try:
        return os.readlink("/proc/self/ns/pid") == os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return True  # no namespaces here (or no access to compare): the plain case


def same_mount_namespace(pid: int) -> bool:
    """Whether process `pid` sees the files we see (not from inside a container of its own)."""
    try:
        return os.readlink("/proc/self/ns/mnt") == os.readlink(f"/proc/{pid}/ns/mnt")
    except OSError:
        return True


class Channel:
    """Waits for the memfd of one attach (`nonce`) in process `pid`, and reads the report from it."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.nonce = secrets.token_hex(16)
        self.name = f"/memfd:looseends-{self.nonce}"
        self.fd = -1

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def wait(self, deadline: float, done: Callable[[], bool]) -> dict[str, object] | None:
        """The report, once complete; None when `done()` says the target came back without one.
        TimeoutError at the deadline, ProcessLookupError if the target exits."""
        while True:
            finished = done()  # read before the memfd, so a report written just before counts
            answer = self._answer()
            if answer is not None:
                return answer
            if exited(self.pid):
                raise ProcessLookupError(self.pid)
            if finished:
                return None
            if time.monotonic() > deadline:
                raise TimeoutError
            time.sleep(POLL)

    def _answer(self) -> dict[str, object] | None:
        if self.fd < 0:
            self._find()
        if self.fd < 0:
            return None
        length = int.from_bytes(os.pread(self.fd, 8, bootstrap.LENGTH), "little")
        if not length:
            return None
        if length > MAX_REPORT:
            raise ValueError(f"a report of {length} bytes is more than this attach reads")
        data = json.loads(os.pread(self.fd, length, bootstrap.PAYLOAD))
        if not isinstance(data, dict):
            raise ValueError("the answer is not a report")
        return data

    def _find(self) -> None:
        """Every descriptor's link is read each time: a number seen before may have been reused."""
        with contextlib.suppress(OSError):
            for entry in os.listdir(f"/proc/{self.pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{self.pid}/fd/{entry}").startswith(self.name):
                        self.fd = os.open(f"/proc/{self.pid}/fd/{entry}", os.O_RDWR | os.O_CLOEXEC)
                        os.pwrite(self.fd, b"\x01", bootstrap.ACK)
                        return
