"""Where each thread and task was started, and by whom: the creation capture and its origin tables.

While tracking is on, `threading.Thread.start`, `_thread.start_new_thread` and
`asyncio.BaseEventLoop.create_task` are wrapped (so task factories and eager tasks compose instead of
being replaced). Loops that do not derive from BaseEventLoop, such as uvloop, get no creation site unless
the program enabled `sys.set_coroutine_origin_tracking_depth`, whose `cr_origin` is then used.

The hot path (every `create_task`) records only code objects and line numbers, plus the creating
thread's ident and task's name; `Frame`s are built when a report asks. Code objects hold no locals, so
tracking never keeps a frame, its variables or the unit itself alive.
"""

from __future__ import annotations

import _thread
import asyncio
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from typing import Any

from looseends import _cpython
from looseends.model import Frame, Origin, is_library_file
from looseends.sources import _tracking

# Threads: the user's call and a few of its callers (starting a thread costs far more than this).
ORIGIN_DEPTH = 6
# Tasks: walk out of asyncio's helpers (create_task, TaskGroup, gather) to the first user frame and
# stop there. Each frame visited is materialised, which is most of the cost on every create_task.
TASK_HOPS = 4

_getframe = sys._getframe
_monotonic = time.monotonic
_get_ident = _thread.get_ident
_get_running_loop = asyncio.events._get_running_loop
_current_task = asyncio.current_task

# (code locations, creating thread's name or ident, creating task's name, created at, during)
Captured = tuple[tuple[tuple[types.CodeType, int], ...], int | str, str | None, float, str | None]


def capture(skip: int) -> Captured:
    """Up to ORIGIN_DEPTH frames above the `skip`-th caller, and the creator's names."""
    frame: types.FrameType | None = _getframe(skip + 1)
    locations = []
    for _ in range(ORIGIN_DEPTH):
        if frame is None:
            break
        locations.append((frame.f_code, frame.f_lineno))
        frame = frame.f_back
    loop = _get_running_loop()
    task = _current_task(loop) if loop is not None else None
    return (
        tuple(locations),
        _cpython.current_thread_name() or _get_ident(),  # the name now: the creator may be gone later
        _cpython.task_name(task) if task is not None else None,
        _monotonic(),
        _tracking.current_label(),
    )


_library_modules: dict[str, bool] = {}


def _is_library_module(name: str) -> bool:
    known = _library_modules.get(name)
    if known is None:
        top = name.partition(".")[0]
        known = _library_modules[name] = top in sys.stdlib_module_names or top == "looseends"
    return known


def _task_site_by_frames(skip: int) -> tuple[tuple[types.CodeType, int], ...]:
    """Walk out of library frames to the first user frame (each frame visited is materialised)."""
    frame: types.FrameType | None = _getframe(skip + 1)
    locations = []
    for _ in range(TASK_HOPS):
        if frame is None:
            break
        code = frame.f_code
        locations.append((code, frame.f_lineno))
        if not is_library_file(code.co_filename):
            break
        frame = frame.f_back
    return tuple(locations)


def _task_site_by_module(skip: int) -> tuple[tuple[types.CodeType, int], ...]:
    """3.12+: find the first user frame by module name, which reads no frame object, then read only it."""
    for depth in range(skip + 1, skip + 1 + TASK_HOPS):
        module = _getframemodulename(depth)
        if module is None:  # the stack is shallower than that
            break
        if not _is_library_module(module):
            frame = _getframe(depth)
            return ((frame.f_code, frame.f_lineno),)
    return _task_site_by_frames(skip + 1)


_getframemodulename: Callable[[int], str | None] = getattr(sys, "_getframemodulename", lambda depth: None)
_task_site = _task_site_by_module if hasattr(sys, "_getframemodulename") else _task_site_by_frames


def to_origin(captured: Captured) -> Origin:
    locations, thread, task_name, created_at, during = captured
    frames = tuple(
        Frame(code.co_filename, line or code.co_firstlineno, code.co_qualname) for code, line in locations
    )
    thread_words = f"thread {thread if isinstance(thread, str) else _thread_name(thread)}"
    creator = f"task {task_name} in {thread_words}" if task_name is not None else thread_words
    return Origin(frames, creator, created_at, during)


def _thread_name(ident: int) -> str:
    thread = _cpython.active_threads().get(ident)
    name = _cpython.thread_name(thread) if thread is not None else None
    return name if name is not None else f"{ident} (since exited)"


class _OriginTable:
    """What `capture` recorded, keyed by object identity, still readable while the object is finalised.

    No weak reference per entry (each costs a little on every create_task): an entry is checked by
    a second identity, its coroutine's (or its class's) id, and entries of objects no longer alive are
    pruned in bulk, against `alive()`, whenever the table has doubled. A WeakKeyDictionary would also
    drop a pending task's entry before its `__del__` could report it.

    Any thread may put while another prunes or reads: every step is one atomic dict operation (a store,
    `get`, `pop`, or `list(dict)` of int keys, which runs no Python code), never a Python-level iteration
    of the shared dict, so no caller ever sees "changed size during iteration".
    """

    def __init__(self, alive: Callable[[], Iterable[object]]) -> None:
        self._entries: dict[int, tuple[int, Captured | Origin]] = {}
        self._alive = alive
        self._prune_at = 1024
        self._pruning = threading.Lock()

    def put(self, obj: object, partner: object, captured: Captured) -> None:
        entries = self._entries
        entries[id(obj)] = (id(partner), captured)
        if len(entries) >= self._prune_at and self._pruning.acquire(blocking=False):
            try:
                self._prune()
            finally:
                self._pruning.release()

    def _prune(self) -> None:
        entries = self._entries
        before = {key: entries.get(key) for key in list(entries)}  # keys first: later puts are kept
        alive = {id(o) for o in self._alive()}
        for key, entry in before.items():
            if key not in alive and entries.get(key) is entry:
                entries.pop(key, None)
        self._prune_at = max(1024, 2 * len(entries))

    def get(self, obj: object, partner: object) -> Origin | None:
        """The origin, built from the capture on first read and kept (snapshots read the same ones often)."""
        key = id(obj)
        entry = self._entries.get(key)
        if entry is None or entry[0] != id(partner):
            return None
        recorded = entry[1]
        if isinstance(recorded, Origin):
            return recorded
        origin = to_origin(recorded)
        self._entries[key] = (entry[0], origin)
        return origin


_thread_origins = _OriginTable(lambda: _cpython.active_threads().values())
_task_origins = _OriginTable(_cpython.all_tasks)
_raw_origins: dict[int, Captured] = {}  # ident -> origin, for threads started with _thread directly


def thread_origin(thread: threading.Thread) -> Origin | None:
    return _thread_origins.get(thread, type(thread))


def raw_thread_origin(ident: int) -> Origin | None:
    captured = _raw_origins.get(ident)
    return to_origin(captured) if captured is not None else None


def task_origin(task: asyncio.Task[Any]) -> Origin | None:
    coro = _cpython.task_call(task, "get_coro", None)
    origin = _task_origins.get(task, coro)
    if origin is not None:
        return origin
    raw = _cpython.read_attr(coro, "cr_origin")
    if not isinstance(raw, tuple) or not raw:
        return None
    return Origin(tuple(Frame(filename, lineno, function) for filename, lineno, function in raw))


def _install(stack: ExitStack) -> None:
    original_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        if _tracking.is_tracking():
            _thread_origins.put(self, type(self), capture(1))
        original_start(self)
        _tracking.noted()

    original_raw = _thread.start_new_thread

    def start_new_thread(function: Callable[..., object], args: tuple[Any, ...], kwargs: Any = None) -> int:
        if not _tracking.is_tracking():
            return original_raw(function, args, kwargs or {})
        captured = capture(1)

        def run(*a: Any, **kw: Any) -> object:
            ident = _get_ident()
            _raw_origins[ident] = captured
            try:
                return function(*a, **kw)
            finally:
                _raw_origins.pop(ident, None)

        ident = original_raw(run, args, kwargs or {})
        _tracking.noted()
        return ident

    original_create_task = asyncio.BaseEventLoop.create_task

    def create_task(self: asyncio.BaseEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        # Inlined on purpose: this runs on every task creation (see bench/).
        creator = _current_task(self)
        captured = (
            _task_site(1),
            _get_ident(),
            _cpython.task_name(creator) if creator is not None else None,
            _monotonic(),
            _tracking.current_label(),
        )
        task = original_create_task(self, coro, **kwargs)
        _tracking.noted()
        _task_origins.put(task, _cpython.task_call(task, "get_coro", None), captured)
        return task

    _tracking.patch(stack, threading.Thread, "start", start)
    _tracking.patch(stack, _thread, "start_new_thread", start_new_thread)
    _tracking.patch(stack, asyncio.BaseEventLoop, "create_task", create_task)


_tracking.register(_install)
