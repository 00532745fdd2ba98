"""CPython's private runtime internals, read in one place, with the version switches beside them.

Everything looseends reads that is not public API is here: threading's registry of threads, asyncio's
registries of tasks, a task's pending future, a Condition's waiters. A new Python should touch this
file only. Every read is static (`read_attr`): it never runs a property, `__getattr__` or `__repr__` of
the inspected program, and an attribute that cannot be read so comes back as `MISSING`.
"""

from __future__ import annotations

import _thread
import asyncio
import inspect
import sys
import threading
import types
import weakref
from collections.abc import Callable, Collection, Iterator
from typing import Any, Final

from looseends._safe import safe_copy, safe_list

VERSION: Final = sys.version_info[:2]

MISSING: Final[Any] = type("Missing", (), {"__repr__": lambda self: "<missing>"})()

Task = asyncio.Task[Any]

# Descriptors written in C by the runtime: reading through them runs no code of the inspected program.
_C_DESCRIPTORS = (types.GetSetDescriptorType, types.MemberDescriptorType)


def read_attr(obj: object, name: str) -> Any:
    """`obj.name` read statically: an instance `__dict__` entry, a plain class attribute, or a C-level slot
    or getset; never a property, method or any other descriptor written in Python. MISSING when it cannot
    be read so. How to read each (type, name) is worked out once: this runs on hot paths."""
    kind = type(obj)
    known = _plans.get((id(kind), name))
    if known is None or known[0] is not kind:
        if len(_plans) >= 4096:
            _plans.clear()
        known = _plans[(id(kind), name)] = (kind, _plan(kind, name))
    plan = known[1]
    if plan is _NEVER:
        return MISSING
    try:
        if plan is _GENERIC:
            # No Python descriptor in the way: object's own lookup reads the instance dict (which some C
            # types, asyncio's Future among them, keep without exposing `__dict__`) or a plain class value.
            return object.__getattribute__(obj, name)
        return plan.__get__(obj, kind)  # type: ignore[attr-defined]
    except Exception:
        return MISSING


_GENERIC = object()  # plan: object.__getattribute__ runs no code of the program for this name
_NEVER = object()  # plan: reading it would run the program's code
_plans: dict[tuple[int, str], tuple[type, object]] = {}


def _plan(kind: type, name: str) -> object:
    for klass in kind.__mro__:
        try:
            value = klass.__dict__[name]
        except KeyError:
            continue
        if isinstance(value, _C_DESCRIPTORS):
            return value
        return _NEVER if hasattr(type(value), "__get__") else _GENERIC
    return _GENERIC


def gil_enabled() -> bool:
    """False on a free-threaded build running without the GIL: nothing then pauses other threads."""
    check: Callable[[], bool] | None = getattr(sys, "_is_gil_enabled", None)
    return True if check is None else bool(check())


# Threads ----------------------------------------------------------------------------------------------


def active_threads() -> dict[int, threading.Thread]:
    """Every started `threading.Thread` by ident, copied without taking threading's lock."""
    return safe_copy(threading._active)  # type: ignore[attr-defined]


def current_thread_name() -> str | None:
    """The calling thread's name, read statically (one dict lookup, no lock)."""
    thread = threading._active.get(_thread.get_ident())  # type: ignore[attr-defined]
    return thread_name(thread) if thread is not None else None


def thread_registries() -> tuple[object, ...]:
    """threading's own registries: they hold every thread and say nothing about who owns it."""
    return (threading._active, threading._limbo)  # type: ignore[attr-defined]


# What Thread.__init__ stores for the thread's own call: like a goroutine's function and arguments,
# only the thread itself uses them (run() deletes them when it ends).
THREAD_CALL = ("_target", "_args", "_kwargs")


def thread_name(thread: threading.Thread) -> str | None:
    name = read_attr(thread, "_name")
    return name if isinstance(name, str) else None


def thread_daemon(thread: threading.Thread) -> bool | None:
    daemon = read_attr(thread, "_daemonic")
    return daemon if isinstance(daemon, bool) else None


def thread_native_id(thread: threading.Thread) -> int | None:
    native = read_attr(thread, "_native_id")
    return native if isinstance(native, int) else None


def thread_target(thread: threading.Thread) -> object:
    """The callable the thread runs: its target, or the subclass's own `run`; None for Thread.run."""
    target = read_attr(thread, "_target")
    if target is not MISSING and target is not None:
        return target
    run = inspect.getattr_static(type(thread), "run", None)
    return None if run is threading.Thread.run or run is None else run


def thread_arguments(thread: threading.Thread) -> tuple[object, object]:
    return read_attr(thread, "_args"), read_attr(thread, "_kwargs")


# Synchronisation primitives -------------------------------------------------------------------------

LOCK_TYPE: Final = _thread.LockType
RLOCK_TYPE: Final = _thread.RLock


def lock_held(lock: object) -> bool | None:
    """Whether a C Lock or RLock is held right now (by anyone); None for anything else."""
    if type(lock) is LOCK_TYPE:
        return bool(LOCK_TYPE.locked(lock))
    if type(lock) is RLOCK_TYPE:
        locked = getattr(RLOCK_TYPE, "locked", None)  # 3.14+
        if locked is not None:
            return bool(locked(lock))
        # 3.11-3.13: the C type's own repr says "<locked _thread.RLock object owner=... count=...>".
        return RLOCK_TYPE.__repr__(lock).startswith("<locked")
    return None


def condition_waiters(condition: object) -> Collection[object] | None:
    """The waiter locks of threads parked in `Condition.wait` (a deque), copied; None when unreadable."""
    waiters = read_attr(condition, "_waiters")
    if waiters is MISSING:
        return None
    copied = safe_list(waiters)
    return copied if copied or _empty(waiters) else None


def _empty(container: object) -> bool:
    try:
        return type(container).__len__(container) == 0  # type: ignore[attr-defined,no-any-return]
    except Exception:
        return False


def builtin_len(container: object) -> int | None:
    """len() of a built-in container only (a deque, list, dict): a user's `__len__` is never called."""
    kind = type(container)
    if kind.__module__ not in ("builtins", "collections") or not hasattr(kind, "__len__"):
        return None
    try:
        return int(kind.__len__(container))
    except Exception:
        return None


# asyncio ----------------------------------------------------------------------------------------------


def _asyncio_base(task: object, method: str) -> Callable[..., Any] | None:
    """asyncio's own implementation of `method` for this task, even when a subclass overrides it."""
    kind = type(task)
    known = _methods.get((id(kind), method))
    if known is None or known[0] is not kind:
        if len(_methods) >= 1024:
            _methods.clear()
        known = _methods[(id(kind), method)] = (kind, _find_base(kind, method))
    return known[1]


def _find_base(kind: type, method: str) -> Callable[..., Any] | None:
    for klass in kind.__mro__:
        if klass.__module__ in ("_asyncio", "asyncio.tasks", "asyncio.futures") and method in vars(klass):
            found: Callable[..., Any] = vars(klass)[method]
            return found
    return None


_methods: dict[tuple[int, str], tuple[type, Callable[..., Any] | None]] = {}


def task_call(task: object, method: str, default: Any = MISSING) -> Any:
    """Call asyncio's own `get_coro`, `get_name`, `done`, `get_loop` on a task (never a subclass's)."""
    function = _asyncio_base(task, method)
    if function is None:
        return default
    try:
        return function(task)
    except Exception:
        return default


def task_done(task: object) -> bool:
    return task_call(task, "done", True) is not False


def task_name(task: object) -> str:
    name = task_call(task, "get_name", None)
    return name if isinstance(name, str) else "<task>"


def fut_waiter(task: object) -> object:
    """The future a task is suspended on (None while it is scheduled to run)."""
    waiter = read_attr(task, "_fut_waiter")
    return None if waiter is MISSING else waiter


def cancel_pending(task: object) -> bool:
    """A cancel() is on its way: the task will wake with CancelledError."""
    return read_attr(task, "_must_cancel") is True


def gather_children(future: object) -> list[object] | None:
    """The children of an asyncio.gather future, or None for any other future."""
    children = read_attr(future, "_children")
    return children if isinstance(children, list) else None


def loop_thread_id(loop: object) -> int | None:
    """The ident of the thread running the loop now (None when it is not running)."""
    ident = read_attr(loop, "_thread_id")
    return ident if isinstance(ident, int) else None


def loop_closed(loop: object) -> bool:
    return read_attr(loop, "_closed") is True


_REGISTRIES = [
    name for name in ("_all_tasks", "_scheduled_tasks", "_eager_tasks") if hasattr(asyncio.tasks, name)
]


def task_registries() -> list[Collection[Task]]:
    """asyncio's registries of live tasks: `_all_tasks` (3.11); `_scheduled_tasks` and `_eager_tasks`
    (3.12+). Reading them directly sees the tasks of loops running in other threads, or not at all;
    `asyncio.all_tasks(loop)` filters by one loop."""
    return [getattr(asyncio.tasks, name) for name in _REGISTRIES]


def task_count() -> int:
    """How many tasks the registries hold: it moves when a task is created or finishes."""
    return sum(len(registry) for registry in task_registries())


def live_task_ids() -> set[int]:
    """Ids of every task the registries hold, read without a Python-level loop over a WeakSet."""
    ids: set[int] = set()
    for registry in task_registries():
        refs = read_attr(registry, "data")  # a WeakSet's set of weak references
        if isinstance(refs, set):
            ids.update(map(id, filter(None, map(weakref.ref.__call__, list(refs)))))
        else:
            ids.update(map(id, safe_list(registry)))
    return ids


def all_tasks() -> Iterator[Task]:
    for registry in task_registries():
        yield from safe_list(registry)


CANCEL_ALL_TASKS: Final = (asyncio.runners, "_cancel_all_tasks")  # what asyncio.run calls at shutdown
