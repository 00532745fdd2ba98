"""Loop shutdowns that would hang: a default-executor job that never returns.

Closing a loop (`asyncio.run`, `asyncio.Runner`, pytest-asyncio) waits for its default executor's workers
(`shutdown_default_executor`); a job that never returns makes that wait last forever (3.11) or 300 s (3.12+),
and then the interpreter's exit waits for the worker again. While tracking is on, looseends looks before
that wait: if a worker is inside a job, it says so, once per loop, naming the job, where it waits and who
submitted it. A front end may take that over (`on_stuck_jobs`): the pytest plugin announces it where the
user sees it and closes the loop without waiting, so the test that left the job fails instead of hanging.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from contextlib import ExitStack
from typing import Any

from looseends import _cpython
from looseends.sources import _tracking

# What to do about a loop whose close would wait for stuck jobs: given one line per job, say whether to
# close without waiting (True). One handler at a time, installed by a front end for its lifetime.
StuckJobs = Callable[[list[str]], bool]
_handler: list[StuckJobs] = []
_warned: set[int] = set()


def on_stuck_jobs(handler: StuckJobs) -> Callable[[], None]:
    """Let `handler` decide about stuck jobs from now on; returns the undo."""
    _handler[:] = [handler]
    return lambda: _handler.clear() if _handler == [handler] else None


def _warn_and_wait(busy: list[str]) -> bool:
    print(warning(busy), file=sys.stderr, flush=True)
    return False


__all__ = ["busy_default_workers", "on_stuck_jobs", "warning"]


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
            handler = _handler[0] if _handler else _warn_and_wait
            if handler(busy):
                return _leave(_cpython.read_attr(self, "_default_executor"))
        return original(self, *args, **kwargs)

    _tracking.patch(stack, asyncio.BaseEventLoop, "shutdown_default_executor", shutdown_default_executor)


def warning(busy: list[str], way: str = "this waits until the job returns: make it return") -> str:
    """The announcement, with the way out that will be taken."""
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
