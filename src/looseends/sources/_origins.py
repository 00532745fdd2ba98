"""Creation tracking: remember where each thread and task was started, and by whom.

Installed while at least one check (or the pytest plugin) wants it, removed when the last one leaves.
It wraps `threading.Thread.start`, `_thread.start_new_thread` and `asyncio.BaseEventLoop.create_task`
(so it composes with any task factory, eager tasks included, instead of replacing it). Loops that do
not derive from BaseEventLoop, such as uvloop, fall back to the coroutine's `cr_origin`, which
`sys.set_coroutine_origin_tracking_depth` fills in the threads that turned tracking on.

Only code locations are stored (file, line, function, module), keyed weakly by the thread or task,
so tracking never keeps a frame, its locals or the unit itself alive.
"""

from __future__ import annotations

import _thread
import asyncio
import collections
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from looseends.model import Frame, Origin, Unit
from looseends.sources._frames import to_frame, walk_back

# Enough to reach the user's call through Thread.start / TaskGroup.create_task / gather helpers.
ORIGIN_DEPTH = 12

_lock = threading.Lock()
_users = 0
_restore: list[Callable[[], None]] = []


class _OriginTable:
    """Origins keyed weakly by object, still readable while the object is being finalised.

    A WeakKeyDictionary cannot do the latter: the collector clears weak references to cyclic garbage
    before running finalisers, so a task's `__del__` could no longer find its own origin. Entries of
    objects just cleared are kept in a short list that only `dying()` consults.
    """

    def __init__(self, recent: int = 256) -> None:
        self._live: dict[int, tuple[weakref.ref[Any], Origin]] = {}
        self._recently_dead: collections.deque[tuple[int, Origin]] = collections.deque(maxlen=recent)

    def put(self, obj: object, origin: Origin) -> None:
        key = id(obj)

        def gone(_: object) -> None:
            entry = self._live.pop(key, None)
            if entry is not None:
                self._recently_dead.append((key, entry[1]))

        self._live[key] = (weakref.ref(obj, gone), origin)

    def get(self, obj: object) -> Origin | None:
        entry = self._live.get(id(obj))
        return entry[1] if entry is not None and entry[0]() is obj else None

    def dying(self, obj: object) -> Origin | None:
        key = id(obj)
        return next((origin for k, origin in reversed(self._recently_dead) if k == key), None)


_thread_origins = _OriginTable()
_task_origins = _OriginTable()
_raw_origins: dict[int, Origin] = {}  # ident -> origin for threads started with _thread directly
_during: list[str] = []  # labels of the checks running now, innermost last
# Pending tasks the garbage collector destroyed while tracking was on: leaks no snapshot can see later.
_destroyed: list[Unit] = []
MAX_DESTROYED = 10_000
DESTROYED_PENDING = "Task was destroyed but it is pending!"  # asyncio's message from Task.__del__


def capture(skip: int = 1, creator: str | None = None) -> Origin:
    """The caller's stack as code locations (`skip` frames above this one are dropped)."""
    frame = sys._getframe(skip + 1)
    frames = tuple(to_frame(f) for f in walk_back(frame, ORIGIN_DEPTH))
    return Origin(frames, creator, time.monotonic(), _during[-1] if _during else None)


def current_unit_name() -> str:
    """`thread NAME` or `task NAME in thread NAME`: the unit running this code."""
    thread = threading.current_thread()
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    thread_words = f"thread {thread.name}"
    return f"task {task.get_name()} in {thread_words}" if task is not None else thread_words


def thread_origin(thread: threading.Thread) -> Origin | None:
    return _thread_origins.get(thread)


def raw_thread_origin(ident: int) -> Origin | None:
    return _raw_origins.get(ident)


def task_origin(task: asyncio.Task[Any]) -> Origin | None:
    origin = _task_origins.get(task) or _task_origins.dying(task)
    if origin is not None:
        return origin
    coro = task.get_coro()
    raw = getattr(coro, "cr_origin", None)
    if not raw:
        return None
    return Origin(tuple(Frame(filename, lineno, function) for filename, lineno, function in raw))


def destroyed_since(start: float) -> list[Unit]:
    """Pending tasks destroyed by the collector that were created at or after `start` (monotonic)."""
    return [
        unit
        for unit in list(_destroyed)
        if unit.origin is not None and unit.origin.created_at is not None and unit.origin.created_at >= start
    ]


@contextmanager
def tracking(label: str | None = None) -> Iterator[None]:
    """Track creations while the block runs; `label` is recorded as `Origin.during`."""
    global _users
    with _lock:
        if _users == 0:
            _install()
        _users += 1
    if label is not None:
        _during.append(label)
    try:
        yield
    finally:
        if label is not None and label in _during:
            _during.remove(label)
        with _lock:
            _users -= 1
            if _users == 0:
                _uninstall()


def _install() -> None:
    original_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        _thread_origins.put(self, capture(creator=current_unit_name()))
        original_start(self)

    threading.Thread.start = start  # type: ignore[method-assign]
    _restore.append(lambda: setattr(threading.Thread, "start", original_start))

    original_raw = _thread.start_new_thread

    def start_new_thread(function: Callable[..., object], args: tuple[Any, ...], kwargs: Any = None) -> int:
        origin = capture(creator=current_unit_name())

        def run(*a: Any, **kw: Any) -> object:
            ident = _thread.get_ident()
            _raw_origins[ident] = origin
            try:
                return function(*a, **kw)
            finally:
                _raw_origins.pop(ident, None)

        return original_raw(run, args, kwargs or {})

    _thread.start_new_thread = start_new_thread
    _restore.append(lambda: setattr(_thread, "start_new_thread", original_raw))

    original_create_task = asyncio.BaseEventLoop.create_task

    def create_task(self: asyncio.BaseEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        origin = capture(creator=current_unit_name())
        task = original_create_task(self, coro, **kwargs)
        try:
            _task_origins.put(task, origin)
        except TypeError:  # a custom factory returned something that is not weak-referenceable
            pass
        return task

    asyncio.BaseEventLoop.create_task = create_task  # type: ignore[method-assign]
    _restore.append(lambda: setattr(asyncio.BaseEventLoop, "create_task", original_create_task))

    from looseends.sources.tasks import destroyed_unit  # tasks.py reads origins: import late

    original_handler = asyncio.BaseEventLoop.call_exception_handler

    def call_exception_handler(self: asyncio.BaseEventLoop, context: dict[str, Any]) -> None:
        task = context.get("task")
        if context.get("message") == DESTROYED_PENDING and isinstance(task, asyncio.Task):
            unit = destroyed_unit(task)
            if unit is not None and len(_destroyed) < MAX_DESTROYED:
                _destroyed.append(unit)
        original_handler(self, context)

    asyncio.BaseEventLoop.call_exception_handler = call_exception_handler  # type: ignore[method-assign]
    _restore.append(lambda: setattr(asyncio.BaseEventLoop, "call_exception_handler", original_handler))
    _restore.append(_destroyed.clear)

    previous_depth = sys.get_coroutine_origin_tracking_depth()
    sys.set_coroutine_origin_tracking_depth(max(previous_depth, ORIGIN_DEPTH))
    _restore.append(lambda: sys.set_coroutine_origin_tracking_depth(previous_depth))


def _uninstall() -> None:
    while _restore:
        _restore.pop()()
