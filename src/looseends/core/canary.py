"""The canary: before a process's first check, make sure the sources really see threads and tasks.

A new Python can move what looseends reads (3.14 moved native tasks out of asyncio's registries); a
source that silently sees nothing would make every check say "clean". So the first check of a process
starts a thread blocked on an Event and a task awaiting one (on a loop of its own, in a thread of its
own), looks for both with the right blocked-on, and stops them. If either is missed, looseends says so
once, loudly (a LooseEndsWarning, and a line on stderr), and every report carries the warning: it never
passes for clean.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import warnings
from collections.abc import Sequence

from looseends.errors import LooseEndsWarning
from looseends.model import Unit
from looseends.sources import DEFAULT_SOURCES, Source, take_snapshot

__all__ = ["canary", "problems", "sing_once"]

DEADLINE = 5.0
EVENT_WAITS = ("event.wait", "gevent.event.wait")  # threading.Event, or gevent's under monkey-patching
THREAD_NAME = "looseends-canary"
TASK_NAME = "looseends-canary-task"

_problems: list[str] = []  # what the canary found missing, once
_sung = False  # once True, never False again: read without the lock
_lock = threading.Lock()


def problems() -> tuple[str, ...]:
    """The canary's findings as report warnings (empty when all is seen, or before the first check)."""
    return tuple(f"this interpreter is not fully supported: {problem}" for problem in _problems)


def sing_once() -> None:
    """Run the canary the first time any check starts in this process (later calls return at once)."""
    global _sung
    if _sung:
        return
    with _lock:
        if _sung:
            return
        found = canary()
        _problems[:] = found
        _sung = True
    if found:
        message = (
            f"looseends: this interpreter (Python {sys.version.split()[0]}) is not fully supported: "
            + "; ".join(found)
            + ". Checks cannot see what is listed and will not report it as leaked."
        )
        print(message, file=sys.stderr, flush=True)
        warnings.warn(message, LooseEndsWarning, stacklevel=3)


def canary(sources: Sequence[Source] = DEFAULT_SOURCES) -> list[str]:
    """What the sources fail to see of a known thread and a known task; empty when both are seen."""
    release = threading.Event()
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    # Its own task, kept to be cancelled: listing all_tasks(loop) instead would call the get_loop of
    # every task in the process, a host's subclass's too.
    made: list[asyncio.Task[bool]] = []

    def run_loop() -> None:
        never = asyncio.Event()
        made.append(loop.create_task(never.wait(), name=TASK_NAME))
        loop.call_soon(ready.set)
        loop.run_forever()
        made.clear()

    thread = threading.Thread(target=release.wait, name=THREAD_NAME, daemon=True)
    runner = threading.Thread(target=run_loop, name=f"{THREAD_NAME}-loop", daemon=True)
    missing: list[str] = []
    try:
        thread.start()
        runner.start()
        ready.wait(DEADLINE)
        units = _settled_look(sources)
        if not any(u.name == THREAD_NAME and u.blocked_on.code in EVENT_WAITS for u in units):
            missing.append("threads are not seen (or not what they wait on)")
        if not any(u.name == TASK_NAME and u.blocked_on.code == "asyncio.event.wait" for u in units):
            missing.append("asyncio tasks are not seen (or not what they wait on)")
    finally:
        release.set()
        loop.call_soon_threadsafe(_cancel_and_stop, loop, made)
        thread.join(DEADLINE)
        runner.join(DEADLINE)
        if not runner.is_alive():
            loop.close()
    return missing


def _settled_look(sources: Sequence[Source]) -> list[Unit]:
    """A look once both canaries had a moment to block (a few tries, no fixed sleep)."""
    units: list[Unit] = []
    for _ in range(50):
        units = list(take_snapshot(sources).units)
        thread_ready = any(u.name == THREAD_NAME and u.blocked_on.code == "event.wait" for u in units)
        task_ready = any(u.name == TASK_NAME and u.blocked_on.code == "asyncio.event.wait" for u in units)
        if thread_ready and task_ready:
            return units
        threading.Event().wait(0.002)
    return units


def _cancel_and_stop(loop: asyncio.AbstractEventLoop, made: list[asyncio.Task[bool]]) -> None:
    for task in made:
        task.cancel()
    loop.call_soon(loop.stop)
