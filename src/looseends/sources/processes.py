"""Child processes (and their descendants): running, stopped, or exited and never waited for (zombies).

psutil reads the process table; listing children scans every process on the machine, which costs
milliseconds. So an identity-only read reuses the last scan while nothing says a child came or went:
no spawn tracked since (`Popen`, `multiprocessing`, `os.fork`, `os.posix_spawn`) and the kernel's own
list of this process's children unchanged (a child forked by an untracked call, such as `pty.fork`,
changes it): a test that started no process pays almost nothing. Detailed reads always scan.

psutil is imported only when there is a child to describe, not with this module: an attach's snapshot
imports the sources inside a process that may not have psutil loaded, and reads its processes from
outside; and a pytest run with no child process never pays for importing it.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from looseends._safe import safe
from looseends.model import BlockedOn, Kind, Origin, Unit
from looseends.sources._kernel import children
from looseends.sources._spawns import (
    command_text,
    process_command,
    process_origin,
    process_spawner,
    spawn_count,
)
from looseends.sources._tracking import is_tracking

__all__ = ["ProcessSource"]

_STATES = {  # psutil's status strings (psutil.STATUS_*), in words
    "running": "running",
    "sleeping": "sleeping",
    "disk-sleep": "in uninterruptible sleep",
    "stopped": "stopped",
    "tracing-stop": "stopped by a tracer",
    "zombie": "zombie",
    "idle": "idle",
}
ZOMBIE = "zombie"


class ProcessSource:
    """Descendants of this process, via psutil."""

    name = "processes"

    def __init__(self, *, _root: Any = None) -> None:
        self._root = _root
        self._cache: list[Unit] | None = None
        self._cache_spawns = -1
        self._cache_pid = -1
        self._cache_children: frozenset[int] | None = None

    def read(self, *, detail: bool = True) -> list[Unit]:
        pid = os.getpid()  # a forked child must not reuse its parent's cache
        kernel = None if detail else children(frozenset(sys._current_frames()))
        cached = (
            self._cache is not None
            and self._cache_spawns == spawn_count()
            and self._cache_pid == pid
            and kernel is not None
            and kernel == self._cache_children
        )
        if not detail and is_tracking() and cached and self._cache is not None:
            return self._cache
        spawns = spawn_count()
        now = time.time()
        units = [
            unit for child in _children(self._root) if (unit := _process_unit(child, now, detail)) is not None
        ]
        if not detail:
            self._cache, self._cache_spawns, self._cache_pid, self._cache_children = (
                units,
                spawns,
                pid,
                kernel,
            )
        return units


def _children(root: Any) -> list[Any]:
    """The descendants of `root` (None: this process) as psutil processes; psutil is not even imported
    when the kernel lists none, which is what most reads find."""
    pids = _descendant_pids(os.getpid() if root is None else root.pid)
    if pids == []:
        return []
    import psutil

    if pids is not None:
        return [process for pid in pids if (process := _process(pid)) is not None]
    if root is None:
        root = psutil.Process()
    try:
        return list(root.children(recursive=True))
    except psutil.Error:
        return []


def _process(pid: int) -> Any:
    import psutil

    try:
        return psutil.Process(pid)
    except psutil.Error:
        return None


def _descendant_pids(root: int) -> list[int] | None:
    """Linux: follow /proc/PID/task/TID/children down the tree, reading only our own descendants.

    psutil's children() reads every process on the machine to find them; on a busy machine, or with
    threads contending for the GIL, that costs far more than this. None where the files do not exist.
    """
    if not os.path.exists(f"/proc/{root}/task/{root}/children"):
        return None
    found: list[int] = []
    pending = [root]
    while pending:
        pid = pending.pop()
        try:
            tids = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as file:
                    children = [int(child) for child in file.read().split()]
            except (OSError, ValueError):
                continue
            found.extend(children)
            pending.extend(children)
    return found


def _process_unit(process: Any, now: float, detail: bool) -> Unit | None:
    import psutil

    try:
        with process.oneshot():
            pid = process.pid
            created = process.create_time()
            if not detail:
                return Unit(kind=Kind.PROCESS, key=("process", pid, created), name=f"pid {pid}", ident=pid)
            status = process.status()
            parent = safe(process.ppid, None)
            command = process_command(pid) or _command(process)
    except psutil.NoSuchProcess:
        return None  # gone while we looked: not a leak
    except psutil.Error:
        return None
    # Untracked children still get an age, from the process table's start time.
    origin = process_origin(pid) or Origin((), created_at=time.monotonic() - max(0.0, now - created))
    return Unit(
        kind=Kind.PROCESS,
        key=("process", pid, created),
        name=f"pid {pid}",
        ident=pid,
        blocked_on=_state(pid, status, command, parent, process_spawner(pid)),
        origin=origin,
        target=command,
    )


def _command(process: Any) -> str:
    import psutil

    try:
        parts = process.cmdline()
    except psutil.Error:
        parts = []
    return command_text(parts) if parts else command_text(safe(process.name, "?"))


def _state(pid: int, status: str, command: str, parent: int | None, spawner: str | None) -> BlockedOn:
    detail: dict[str, int | float | str] = {"pid": pid, "state": _STATES.get(status, status)}
    if parent is not None:
        detail["parent"] = parent
    if spawner is not None:
        detail["spawner"] = spawner
    if status == ZOMBIE:
        code = _exit_code(pid)
        if code is not None:
            detail["exit_code"] = code
        how = f"exited with {code}" if code is not None else "exited"
        return BlockedOn("process.zombie", f"`{command}` {how}, never waited for", detail)
    return BlockedOn("process.running", f"`{command}` ({detail['state']})", detail)


def _exit_code(pid: int) -> int | None:
    """A zombie child's exit status, read without reaping it (WNOWAIT): waiting stays the owner's job."""
    try:
        result = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except (ChildProcessError, OSError, AttributeError):
        return _kernel_exit_code(pid)  # not our direct child: a grandchild, or an attach's target's
    if result is None:
        return None
    return result.si_status if result.si_code == os.CLD_EXITED else -result.si_status


def _kernel_exit_code(pid: int) -> int | None:
    """A zombie's status as the kernel shows it (Linux 3.5+: the last field of /proc/PID/stat, in
    waitpid's encoding), for zombies whose parent is someone else."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as file:
            fields = file.read().rpartition(b")")[2].split()
        status = int(fields[49])
    except (OSError, ValueError, IndexError):
        return None
    return status >> 8 if status & 0x7F == 0 else -(status & 0x7F)
