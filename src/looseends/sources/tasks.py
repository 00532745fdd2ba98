"""Every pending asyncio task on every event loop in every thread, not only the running loop's."""

from __future__ import annotations

import asyncio
import functools
import threading
import weakref
from collections.abc import Callable, Collection
from dataclasses import replace
from typing import Any

from looseends.model import BlockedOn, Kind, Unit
from looseends.sources._frames import coroutine_frames, to_frame
from looseends.sources._origins import task_origin
from looseends.sources._safe import safe, safe_copy, safe_list
from looseends.sources._waits import classify

Task = asyncio.Task[Any]


def all_task_sets() -> list[Collection[Task]]:
    """asyncio's registries of live tasks: `_all_tasks` (3.11); `_scheduled_tasks` and `_eager_tasks` (3.12+).

    `asyncio.all_tasks(loop)` filters these by loop; reading them directly is what lets one
    snapshot see the tasks of loops running in other threads, or of loops not running at all.
    """
    return [getattr(asyncio.tasks, name) for name in _REGISTRIES]


# Which registries this Python has, found once: a missing attribute costs a raised AttributeError per look.
_REGISTRIES = [
    name for name in ("_all_tasks", "_scheduled_tasks", "_eager_tasks") if hasattr(asyncio.tasks, name)
]


def _thread_names() -> dict[int, str]:
    """Thread names by ident, to say which thread's loop runs a task."""
    active = safe_copy(threading._active)  # type: ignore[attr-defined]
    return {ident: safe(functools.partial(_name_of, thread), "?") for ident, thread in active.items()}


def _name_of(thread: threading.Thread) -> str:
    return str(thread.name)


class TaskSource:
    """Reads every registered, not yet done task and walks its whole await chain."""

    name = "tasks"

    def __init__(self, *, _task_sets: Callable[[], list[Collection[Task]]] = all_task_sets) -> None:
        self._task_sets = _task_sets

    def read(self, *, detail: bool = True) -> list[Unit]:
        tasks = {id(t): t for tasks in self._task_sets() for t in safe_list(tasks)}
        pending = [task for task in tasks.values() if not safe(task.done, True)]
        if not detail:
            return [
                Unit(kind=Kind.TASK, key=("task", id(task)), name=_task_name(task), ref=weakref.ref(task))
                for task in pending
            ]
        threads = _thread_names()
        units = (safe(functools.partial(_task_unit, task, threads), None) for task in pending)
        return [unit for unit in units if unit is not None]


# How a pending task can vanish before a check sees it, in the words reports use.
DESTROYED = "destroyed while pending by the garbage collector: nothing could wake it"
CANCELLED_AT_SHUTDOWN = "cancelled by its runner when the event loop shut down"


def vanished_unit(task: Task, how: str) -> Unit | None:
    """A pending task about to vanish (destroyed or cancelled at shutdown), described one last time."""
    unit = safe(functools.partial(_task_unit, task, _thread_names()), None)
    if unit is None:
        return None
    blocked = unit.blocked_on
    return replace(
        unit,
        blocked_on=BlockedOn(
            blocked.code,
            blocked.description,
            {**blocked.detail, "vanished": how},
            blocked.context,
        ),
        ref=None,
    )


def pending_tasks(loop: asyncio.AbstractEventLoop) -> list[Task]:
    tasks: list[Task] = safe(lambda: list(asyncio.all_tasks(loop)), [])
    return [task for task in tasks if not safe(task.done, True)]


def _task_name(task: Task) -> str:
    return safe(lambda: str(task.get_name()), "<task>")


def _task_unit(task: Task, threads: dict[int, str]) -> Unit:
    """Callers guard with `safe`: a task of a loop closing mid-snapshot may fail anywhere here."""
    loop = task.get_loop()
    live = coroutine_frames(task.get_coro())
    stack = tuple(to_frame(f) for f in live)
    blocked_on = classify(live, stack) or _awaited(task, loop)
    live.clear()
    thread_ident = getattr(loop, "_thread_id", None)
    return Unit(
        kind=Kind.TASK,
        key=("task", id(task)),
        name=str(task.get_name()),
        stack=stack,
        blocked_on=blocked_on,
        origin=task_origin(task),
        thread=threads.get(thread_ident) if isinstance(thread_ident, int) else None,
        ref=weakref.ref(task),
    )


def _awaited(task: Task, loop: asyncio.AbstractEventLoop | None) -> BlockedOn:
    """When no known wait API is on the await chain: what the task's pending future is."""
    if loop is not None and safe(loop.is_closed, False):
        return BlockedOn("asyncio.loop-closed", "pending on a closed event loop: it can never run again")
    waiter = getattr(task, "_fut_waiter", None)
    if waiter is None:
        return BlockedOn("running", "running (scheduled to run)")
    if isinstance(waiter, asyncio.Task):
        name = safe(lambda: str(waiter.get_name()), "?")
        return BlockedOn("asyncio.task", f"awaiting task {name!r}", {"task": name})
    children = getattr(waiter, "_children", None)
    if isinstance(children, list):  # asyncio.gather's _GatheringFuture
        pending = sum(1 for c in children if not safe(c.done, True))
        return BlockedOn(
            "asyncio.gather",
            f"awaiting gather of {len(children)} ({pending} pending)",
            {"children": len(children), "pending": pending},
        )
    return BlockedOn("asyncio.future", f"awaiting a bare {type(waiter).__name__}")
