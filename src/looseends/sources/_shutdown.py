"""Loop shutdowns that would hang: a default-executor job that never returns.

Closing a loop (`asyncio.run`, `asyncio.Runner`, pytest-asyncio) waits for its default executor's workers
(`shutdown_default_executor`); a job that never returns makes that wait last forever (3.11) or 300 s (3.12+),
and then the interpreter's exit waits for the worker again. While tracking is on, looseends looks before
that wait: if a worker is inside a job, it says so, once per loop, naming the job, where it waits and who
submitted it, and the way out. When a test run asked to exit anyway (`--looseends-force-exit`), the loop
is closed without waiting for such jobs; the worker is then reported as the leak it is.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from contextlib import ExitStack
from typing import Any

from looseends import _cpython
from looseends.sources import _tracking

leave_stuck_jobs = [False]  # set by a front end that will exit without waiting for threads anyway
_warned: set[int] = set()


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
            lines.append(
                f"{unit.name} waits in {unit.blocked_on.description} at {unit.top.location}{submitted}"
            )
    return lines


def _install(stack: ExitStack) -> None:
    original = asyncio.BaseEventLoop.shutdown_default_executor

    def shutdown_default_executor(
        self: asyncio.BaseEventLoop, *args: Any, **kwargs: Any
    ) -> Coroutine[Any, Any, None]:
        try:
            busy = busy_default_workers(self)
        except Exception:  # looking is ours: it must never change what the host's call does
            busy = []
        if busy and id(self) not in _warned:
            _warned.add(id(self))
            leaving = leave_stuck_jobs[0]
            print(_warning(busy, leaving), file=sys.stderr, flush=True)
            if leaving:
                return _leave(_cpython.read_attr(self, "_default_executor"))
        return original(self, *args, **kwargs)

    _tracking.patch(stack, asyncio.BaseEventLoop, "shutdown_default_executor", shutdown_default_executor)


def _warning(busy: list[str], leaving: bool) -> str:
    way = (
        "--looseends-force-exit: closing the loop without waiting; the worker is reported as a leak"
        if leaving
        else "the run would hang here: make the job return, or run pytest with --looseends-force-exit"
    )
    jobs = "\n  ".join(busy)
    return (
        "\nlooseends: closing this event loop waits for its default executor, and a job there does not "
        f"return:\n  {jobs}\n  {way}"
    )


async def _leave(executor: object) -> None:
    shutdown = getattr(executor, "shutdown", None)
    if callable(shutdown):
        shutdown(wait=False)


_tracking.register(_install)
