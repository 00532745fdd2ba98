"""Which pending tasks have been reported already: a guard that lives exactly as long as its task.

A task reported while pending (or recorded as cancelled at its loop's shutdown) that the collector
destroys later is the same leak, not a new one for whichever check is running then. The guard must end
with the task: keyed by `id()` alone it outlives it, and the next task given the same address (and its
coroutine its coroutine's) would be taken for it and never reported, a silent all-clear. So each entry
holds a weak reference whose callback removes it when the task goes.

The order of the two ends differs: freed by reference counting, a task's finalizer (asyncio's "destroyed
but it is pending") runs first, while the weak reference still answers; freed by the collector, the weak
reference is cleared, and its callback run, first. The callback therefore keeps the entry of a task the
collector is freeing (`_dying`) until that collection ends (`_collection` says when).

Everything here runs inside the host's calls, destructors and collections: no locks, and every change is
one atomic dict operation.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from looseends.sources import _collection

MAX_GUARDED = 40_000  # reported tasks still alive; beyond it the guards start over (a report may repeat)

_guards: dict[int, tuple[int, weakref.ref[Any]]] = {}  # id(task) -> (id(its coroutine), weak ref)
_dying: dict[int, int] = {}  # id(task) -> id(its coroutine): guarded tasks freed by the running collection


def guard(task: object, coro: object) -> None:
    """Remember `task` (running `coro`) as reported, until it is freed."""
    if len(_guards) >= MAX_GUARDED:
        _guards.clear()
    _guards[id(task)] = (id(coro), weakref.ref(task, _forget(id(task))))


def guarded(task: object, coro: object) -> bool:
    """Whether `task`, still alive, was reported already."""
    return _is_its_guard(_guards.get(id(task)), task, coro)


def release(task: object, coro: object) -> bool:
    """Called as `task` is destroyed: whether it was reported already. Its guard ends here."""
    if _is_its_guard(_guards.pop(id(task), None), task, coro):  # freed by reference count
        return True
    return _dying.pop(id(task), None) == id(coro)  # freed by the collection running now


def _is_its_guard(entry: tuple[int, weakref.ref[Any]] | None, task: object, coro: object) -> bool:
    return entry is not None and entry[0] == id(coro) and entry[1]() is task


def _forget(key: int) -> Callable[[weakref.ref[Any]], None]:
    def gone(ref: weakref.ref[Any]) -> None:
        entry = _guards.get(key)
        if (
            entry is not None
            and entry[1] is ref
            and _guards.pop(key, None) is not None
            and _collection.running()
        ):
            _dying[key] = entry[0]  # its finalizer may run next, in this collection

    return gone


_collection.on_change(_dying.clear)  # what it held belongs to a collection that has ended


def install(stack: ExitStack) -> None:
    """Clear everything when tracking ends."""

    def uninstall() -> None:
        _guards.clear()
        _dying.clear()

    stack.callback(uninstall)
