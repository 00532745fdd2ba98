"""Every pending asyncio task on every event loop in every thread, not only the running loop's."""

from __future__ import annotations

import asyncio
import functools
import types
import weakref
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from looseends import _cpython
from looseends._library import is_library_file
from looseends._safe import safe
from looseends.model import BlockedOn, Frame, Kind, Unit
from looseends.sources._enclosing import handles_cancellation
from looseends.sources._frames import coroutine_frames, module_of_file, to_frame
from looseends.sources._origins import task_origin
from looseends.sources._tracking import is_tracking
from looseends.sources._waits import classify

__all__ = [
    "CANCELLED_AT_SHUTDOWN",
    "DESTROYED",
    "STOPPED_BY_DESIGN",
    "UNREAD",
    "TaskSource",
    "handles_its_cancellation",
    "live_unit",
    "pending_tasks",
    "vanished_unit",
]

Task = asyncio.Task[Any]


def _thread_names() -> dict[int, str]:
    """Thread names by ident, to say which thread's loop runs a task."""
    return {
        ident: name
        for ident, thread in _cpython.active_threads().items()
        if (name := _cpython.thread_name(thread)) is not None
    }


class TaskSource:
    """Reads every registered, not yet done task and walks its whole await chain."""

    name = "tasks"

    def __init__(self, *, _tasks: Callable[[], Iterable[Task]] | None = None) -> None:
        self._tasks = _tasks

    def read(self, *, detail: bool = True) -> list[Unit]:
        tasks = (self._tasks or _cpython.all_tasks)()
        pending = [task for task in tasks if not _cpython.task_done(task)]
        if not detail:
            return [
                Unit(
                    kind=Kind.TASK,
                    key=("task", id(task)),
                    name=_cpython.task_name(task),
                    ref=weakref.ref(task),
                )
                for task in pending
            ]
        threads = _thread_names()
        units = [safe(functools.partial(_task_unit, task, threads), None) for task in pending]
        if is_tracking():
            _remember(pending, units)
        return [unit for unit in units if unit is not None]


# The last detailed read's description of each pending task, by id(task), with id(its coroutine) to tell
# a reused id: what a task waited on once the collector has closed its coroutine (which it may do before
# the task's own finalizer reports it destroyed). Replaced whole by each read, never changed.
_seen: dict[int, tuple[int, Unit]] = {}


def _remember(tasks: list[Task], units: list[Unit | None]) -> None:
    global _seen
    _seen = {
        id(task): (id(_cpython.task_call(task, "get_coro", None)), unit)
        for task, unit in zip(tasks, units, strict=True)
        if unit is not None and unit.stack
    }


def _last_seen(task: Task, coro: object) -> Unit | None:
    entry = _seen.get(id(task))
    return entry[1] if entry is not None and entry[0] == id(coro) else None


# How a pending task can vanish before a check sees it, in the words reports use.
DESTROYED = "destroyed while pending by the garbage collector: nothing could wake it"
CANCELLED_AT_SHUTDOWN = "cancelled by its runner when the event loop shut down"
STOPPED_BY_DESIGN = "stopped by design when its event loop shut down: it handles its own cancellation"


def handles_its_cancellation(task: Task) -> bool:
    """Suspended inside a `try` of the program's own code that handles cancellation (`except
    BaseException`, `except CancelledError`, a bare `except`, a `finally`): it knows how it will stop.

    Only the program's own frames are its evidence: not the standard library, whose helpers have
    `finally` blocks everywhere, and not installed packages (`my_packages` aside), whose generic
    wrappers and cleanups do too: anyio runs every task inside one, and its streams wait in a
    `try/finally`. A library's cleanup says nothing of whether the program meant the task to stop. Nor
    does a wrapper's of the program's own that passes through what it was handed (`await self._coro`):
    in anyio's own repository, its task wrapper is the program's code, and runs every task."""
    frames = coroutine_frames(_cpython.task_call(task, "get_coro", None))  # innermost first
    try:
        return any(
            handles_cancellation(
                frame.f_code, frame.f_lineno or frame.f_code.co_firstlineno, awaits_a_frame=depth > 0
            )
            for depth, frame in enumerate(frames)
            if not is_library_file(frame.f_code.co_filename)
        )
    finally:
        frames.clear()


def live_unit(task: Task) -> Unit | None:
    """The task as a unit now, or None when it cannot be read (a loop closing mid-read)."""
    return safe(functools.partial(_task_unit, task, _thread_names()), None)


def vanished_unit(task: Task, how: str, proof: str | None = None, unit: Unit | None = None) -> Unit | None:
    """A pending task about to vanish (destroyed or cancelled at shutdown), described one last time.

    The collector may have closed its coroutine already: then it is described as the last snapshot saw
    it, or, never seen, by its coroutine's function and an honest "what it waited on is unknown"."""
    unit = unit or live_unit(task)
    if unit is None:
        return None
    if not unit.stack:
        coro = _cpython.task_call(task, "get_coro", None)
        seen = _last_seen(task, coro)
        unit = replace(unit, stack=seen.stack, blocked_on=seen.blocked_on) if seen else _closed(unit, coro)
    blocked = unit.blocked_on
    return replace(
        unit,
        blocked_on=BlockedOn(
            blocked.code, blocked.description, {**blocked.detail, "vanished": how}, blocked.context
        ),
        proof=proof,
        ref=None,
    )


UNREAD = "unread"  # BlockedOn.detail: what the task waited on could not be read before it vanished


def _closed(unit: Unit, coro: object) -> Unit:
    """A task whose coroutine was closed before anyone read its wait: its function, and no guess."""
    code = _cpython.read_attr(coro, "cr_code")
    if not isinstance(code, types.CodeType):
        return unit
    frame = Frame(code.co_filename, code.co_firstlineno, code.co_qualname, module_of_file(code.co_filename))
    unknown = BlockedOn(
        "asyncio.future",
        "awaiting something its coroutine no longer shows (the collector closed it before it was read)",
        {UNREAD: 1},
    )
    return replace(unit, stack=(frame,), blocked_on=unknown)


def pending_tasks(loop: asyncio.AbstractEventLoop) -> list[Task]:
    return [task for task in _cpython.loop_tasks(loop) if not _cpython.task_done(task)]


def _task_unit(task: Task, threads: dict[int, str]) -> Unit:
    """Callers guard with `safe`: a task of a loop closing mid-snapshot may fail anywhere here."""
    loop = _cpython.task_call(task, "get_loop", None)
    live = coroutine_frames(_cpython.task_call(task, "get_coro", None))
    stack = tuple(to_frame(f) for f in live)
    blocked_on = classify(live, stack) or _awaited(task, loop)
    live.clear()
    thread_ident = _cpython.loop_thread_id(loop)
    return Unit(
        kind=Kind.TASK,
        key=("task", id(task)),
        name=_cpython.task_name(task),
        stack=stack,
        blocked_on=blocked_on,
        origin=task_origin(task),
        thread=threads.get(thread_ident) if thread_ident is not None else None,
        ref=weakref.ref(task),
    )


def _awaited(task: Task, loop: object) -> BlockedOn:
    """When no known wait API is on the await chain: what the task's pending future is."""
    if _cpython.loop_closed(loop):
        return BlockedOn("asyncio.loop-closed", "pending on a closed event loop: it can never run again")
    waiter = _cpython.fut_waiter(task)
    if waiter is None:
        return BlockedOn("running", "running (scheduled to run)")
    if isinstance(waiter, asyncio.Task):
        name = _cpython.task_name(waiter)
        return BlockedOn("asyncio.task", f"awaiting task {name!r}", {"task": name})
    children = _cpython.gather_children(waiter)
    if children is not None:  # asyncio.gather's _GatheringFuture
        pending = sum(1 for child in children if not _cpython.task_done(child))
        return BlockedOn(
            "asyncio.gather",
            f"awaiting gather of {len(children)} ({pending} pending)",
            {"children": len(children), "pending": pending},
        )
    return BlockedOn("asyncio.future", f"awaiting a bare {type(waiter).__name__}")
