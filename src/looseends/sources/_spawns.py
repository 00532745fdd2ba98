"""Child processes started while tracking is on: who started each, and with what command line.

`subprocess.Popen`, `multiprocessing` processes, `os.fork` and `os.posix_spawn[p]` are wrapped. The
process source uses the spawn count to know when its cached process list is stale. `subprocess` is
imported when tracking starts, not with this module: an attach's snapshot imports the sources inside a
process that may not have it. `multiprocessing` is never imported by us (a few milliseconds of every
`pytest --looseends` start-up, and a module name added to an attach's target): it is wrapped when it
arrives, before any of its processes can start, like uvloop (`_tracking.LATE_MODULES`).
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import multiprocessing.process
    import subprocess

from looseends._cpython import read_attr
from looseends.model import Origin
from looseends.sources import _tracking
from looseends.sources._origins import Record, capture, to_origin

MAX_COMMAND = 120
MAX_RECORDS = 4096  # children long gone: their pids may come back for others

# How a child was started: the fix for leaving it running depends on it.
SUBPROCESS, MULTIPROCESSING, FORK, POSIX_SPAWN = "subprocess", "multiprocessing", "os.fork", "os.posix_spawn"

# pid -> (origin, command line, how it was started) for children started while tracking.
_process_origins: dict[int, tuple[Record, str, str]] = {}
_spawns = 0  # bumped (never decremented) when a child may have started unseen or was seen


def process_origin(pid: int) -> Origin | None:
    entry = _process_origins.get(pid)
    return to_origin(entry[0]) if entry is not None else None


def process_command(pid: int) -> str | None:
    entry = _process_origins.get(pid)
    return entry[1] if entry is not None else None


def process_spawner(pid: int) -> str | None:
    """SUBPROCESS, MULTIPROCESSING, FORK or POSIX_SPAWN; None for a child started while not tracking."""
    entry = _process_origins.get(pid)
    return entry[2] if entry is not None else None


def spawn_count() -> int:
    """Moves whenever a child was started while tracking, or tracking (re)started: an unchanged count
    means a cached process list still holds."""
    return _spawns


def _record(pid: object, command: object, spawner: str, skip: int) -> None:
    global _spawns
    _spawns += 1
    _tracking.noted("others")
    if not isinstance(pid, int) or pid <= 0:
        return
    if len(_process_origins) > MAX_RECORDS:
        _process_origins.clear()
    _process_origins[pid] = (capture(None, skip + 1), command_text(command), spawner)


def command_text(command: object) -> str:
    """A child's command line as reports show it: secrets masked (looseends._redaction, whose patterns
    load with the first child rather than with every run), cut short."""
    from looseends._redaction import redact_command

    if isinstance(command, bytes):
        command = command.decode(errors="replace")
    if isinstance(command, str):
        text = redact_command(command)
    elif isinstance(command, list | tuple):
        text = redact_command(
            [part.decode(errors="replace") if isinstance(part, bytes) else str(part) for part in command]
        )
    else:
        text = "?"
    return text if len(text) <= MAX_COMMAND else text[: MAX_COMMAND - 3] + "..."


def _install(stack: ExitStack) -> None:
    import subprocess

    global _spawns
    _spawns += 1  # spawns went unnoticed while tracking was off: cached process lists are stale
    original_popen_init = subprocess.Popen.__init__

    def popen_init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        original_popen_init(self, args, *rest, **kwargs)
        _record(read_attr(self, "pid"), args, SUBPROCESS, 1)

    original_fork = os.fork

    def fork() -> int:
        # 3.12+ warns when a multi-threaded process forks; re-issue it at the caller, not at this wrapper.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pid = original_fork()
        for warning in caught:
            warnings.warn(warning.message, warning.category, stacklevel=2)
        if pid > 0:
            _record(pid, "python (os.fork)", FORK, 1)
        return pid

    def spawner(original: Callable[..., int]) -> Callable[..., int]:
        def spawn(path: Any, argv: Any, *args: Any, **kwargs: Any) -> int:
            pid = original(path, argv, *args, **kwargs)
            _record(pid, argv, POSIX_SPAWN, 1)
            return pid

        return spawn

    _tracking.patch(stack, subprocess.Popen, "__init__", popen_init)
    _tracking.patch(stack, os, "fork", fork)
    for name in ("posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            _tracking.patch(stack, os, name, spawner(getattr(os, name)))


def _install_multiprocessing(stack: ExitStack) -> None:
    """Wrap `BaseProcess.start` once multiprocessing is loaded (now, or when it arrives later)."""
    module = sys.modules.get("multiprocessing.process")
    base = getattr(module, "BaseProcess", None)
    if base is None or _tracking.is_patched(base, "start"):
        return
    original_process_start = base.start

    def process_start(self: multiprocessing.process.BaseProcess) -> None:
        original_process_start(self)
        pid, name = read_attr(read_attr(self, "_popen"), "pid"), read_attr(self, "_name")
        _record(pid, f"python (multiprocessing {name})", MULTIPROCESSING, 1)

    _tracking.patch(stack, base, "start", process_start)


_tracking.register(_install)
_tracking.register(_install_multiprocessing, again_on_entry=True)
