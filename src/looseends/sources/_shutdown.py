"""Loop shutdowns that would hang: a default-executor job that does not return.

Closing a loop (`asyncio.run`, `asyncio.Runner`, pytest-asyncio) waits for its default executor's workers
(`shutdown_default_executor`); a job that never returns makes that wait last forever (3.11) or 300 s (3.12+),
and then the interpreter's exit waits for the worker again. While tracking is on, looseends looks before
that wait. A job still running then is given the patience a check gives a straggler: most end in a moment
and nothing is said. One still running after that is announced, once, naming the job, where it waits and
who submitted it. A front end may take that over (`on_stuck_jobs`): the pytest plugin announces it where the
user sees it and closes the loop without waiting, so the test that left the job fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Coroutine
from contextlib import ExitStack
from typing import Any

from looseends import _cpython
from looseends.sources import _tracking

# What to do about a loop whose close would wait for stuck jobs: given one line per job, say whether to
# close without waiting (True). One handler at a time, installed by a front end for its lifetime, with the
# seconds a job may take to end before it is called stuck.
StuckJobs = Callable[[list[str]], bool]
_handler: list[tuple[StuckJobs, float]] = []
PATIENCE = 5.0  # without a front end's own: long enough that a slow job is not called stuck


def on_stuck_jobs(handler: StuckJobs, patience: float) -> Callable[[], None]:
    """Let `handler` decide about jobs still running `patience` seconds into a close; returns the undo."""
    entry = (handler, patience)
    _handler[:] = [entry]
    return lambda: _handler.clear() if _handler == [entry] else None


def _warn_and_wait(busy: list[str]) -> bool:
    print(warning(busy, PATIENCE), file=sys.stderr, flush=True)
    return False


__all__ = ["PATIENCE", "busy_default_workers", "on_stuck_jobs", "warning"]


def busy_default_workers(loop: object) -> list[str]:
    """One line per worker of the loop's default executor that is inside a job: what it runs, where."""
    from looseends.sources.threads import ThreadSource  # threads.py reads origins: import late

    executor = _cpython.read_attr(loop, "_default_executor")
    threads = _cpython.read_attr(executor, "_threads") if executor not in (None, _cpython.MISSING) else None
    if not isinstance(threads, set) or not threads:
        return []
    idents = {thread.ident for thread in list(threads)}
    lines = []
    for unit in ThreadSource().read():
        if unit.ident in idents and unit.top is not None and unit.top.function != "_worker":
            site = unit.origin.site if unit.origin is not None else None
            submitted = f", submitted at {site.location}" if site is not None else ""
            lines.append(f"{unit.name}: {unit.blocked_on.description} at {unit.top.location}{submitted}")
    return lines


def _busy(loop: object) -> list[str]:
    try:
        return busy_default_workers(loop)
    except Exception:  # looking is ours: it must never change what the host's call does
        return []


def _install(stack: ExitStack) -> None:
    original = asyncio.BaseEventLoop.shutdown_default_executor

    def shutdown_default_executor(
        self: asyncio.BaseEventLoop, *args: Any, **kwargs: Any
    ) -> Coroutine[Any, Any, None]:
        busy = _busy(self)
        if not busy:
            return original(self, *args, **kwargs)
        return _patiently(self, busy, lambda: original(self, *args, **kwargs))

    _tracking.patch(stack, asyncio.BaseEventLoop, "shutdown_default_executor", shutdown_default_executor)


async def _patiently(
    loop: asyncio.BaseEventLoop, busy: list[str], shut_down: Callable[[], Coroutine[Any, Any, None]]
) -> None:
    """Wait for the busy jobs on the loop, looking again at growing intervals; past the patience, ask."""
    handler, patience = _handler[0] if _handler else (_warn_and_wait, PATIENCE)
    deadline = time.monotonic() + patience
    pause = 0.005
    while busy and time.monotonic() < deadline:
        await asyncio.sleep(min(pause, max(0.0, deadline - time.monotonic())))
        pause = min(pause * 2, 0.25)
        busy = _busy(loop)
    if busy and handler(busy):
        shutdown = getattr(_cpython.read_attr(loop, "_default_executor"), "shutdown", None)
        if callable(shutdown):
            shutdown(wait=False)
        return
    await shut_down()


def warning(
    busy: list[str], patience: float, way: str = "this waits until the job returns: make it return"
) -> str:
    """The announcement, with the way out that will be taken."""
    jobs = "\n  ".join(busy)
    return (
        "\nlooseends: closing this event loop waits for its default executor, and a job there has not "
        f"returned in {patience:g} s:\n  {jobs}\n  {way}"
    )


_tracking.register(_install)
