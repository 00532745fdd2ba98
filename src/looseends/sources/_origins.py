"""Creation tracking: remember where each thread and task was started, and by whom.

Installed while at least one check (or the pytest plugin) wants it, removed when the last one leaves.
It wraps `threading.Thread.start`, `_thread.start_new_thread` and `asyncio.BaseEventLoop.create_task`
(so it composes with any task factory, eager tasks included, instead of replacing it). Loops that do
not derive from BaseEventLoop, such as uvloop, get no creation site unless the program enabled
`sys.set_coroutine_origin_tracking_depth`, whose `cr_origin` is then used.

The hot path (every `create_task`) records only code objects and line numbers, plus the creating
thread's and task's names; `Frame`s are built when a report asks. Code objects hold no locals, so
tracking never keeps a frame, its variables or the unit itself alive.
"""

from __future__ import annotations

import _thread
import asyncio
import multiprocessing.process
import os
import subprocess
import sys
import threading
import time
import types
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

from looseends.model import Frame, Origin, Unit, is_library_file
from looseends.sources._safe import safe, safe_copy, safe_list

# Threads: the user's call and a few of its callers (starting a thread costs far more than this).
ORIGIN_DEPTH = 6
# Tasks: walk out of asyncio's helpers (create_task, TaskGroup, gather) to the first user frame and
# stop there. Each frame visited is materialised, which is most of the cost on every create_task.
TASK_HOPS = 4

_lock = threading.Lock()
_users = 0
_restore: list[Callable[[], None]] = []
_getframe = sys._getframe
_monotonic = time.monotonic
_get_ident = _thread.get_ident
_current_thread = threading.current_thread
_get_running_loop = asyncio.events._get_running_loop
_current_task = asyncio.current_task

# (code locations, creating thread's name or ident, creating task's name, created at, during)
Captured = tuple[tuple[tuple[types.CodeType, int], ...], int | str, str | None, float, str | None]


def _capture(skip: int) -> Captured:
    """For threads: up to ORIGIN_DEPTH frames above the `skip`-th caller, and the creator's names."""
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
        _current_thread().name,
        task.get_name() if task is not None else None,
        _monotonic(),
        _during[-1] if _during else None,
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


def _to_origin(captured: Captured) -> Origin:
    locations, thread, task_name, created_at, during = captured
    frames = tuple(
        Frame(code.co_filename, line or code.co_firstlineno, code.co_qualname) for code, line in locations
    )
    thread_words = f"thread {thread if isinstance(thread, str) else _thread_name(thread)}"
    creator = f"task {task_name} in {thread_words}" if task_name is not None else thread_words
    return Origin(frames, creator, created_at, during)


def _thread_name(ident: int) -> str:
    thread = threading._active.get(ident)  # type: ignore[attr-defined]
    name = safe(lambda: str(thread.name), None) if thread is not None else None
    return name if name is not None else f"{ident} (since exited)"


class _OriginTable:
    """What `_capture` recorded, keyed by object identity, still readable while the object is finalised.

    No weak reference per entry (each costs a little on every create_task): an entry is checked by
    a second identity, its coroutine's (or target's) id, and entries of objects no longer alive are
    pruned in bulk, against `alive()`, whenever the table has doubled. A WeakKeyDictionary would also
    drop a pending task's entry before its `__del__` could report it.
    """

    def __init__(self, alive: Callable[[], Iterable[object]]) -> None:
        self._entries: dict[int, tuple[int, Captured | Origin]] = {}
        self._alive = alive
        self._prune_at = 1024

    def put(self, obj: object, partner: object, captured: Captured) -> None:
        entries = self._entries
        entries[id(obj)] = (id(partner), captured)
        if len(entries) >= self._prune_at:
            alive = {id(o) for o in self._alive()}
            for key in [key for key in entries if key not in alive]:
                del entries[key]
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
        origin = _to_origin(recorded)
        self._entries[key] = (entry[0], origin)
        return origin


def _live_tasks() -> list[object]:
    from looseends.sources.tasks import all_task_sets

    return [task for tasks in all_task_sets() for task in safe_list(tasks)]


def _live_threads() -> list[object]:
    return list(safe_copy(threading._active).values())  # type: ignore[attr-defined]


_thread_origins = _OriginTable(_live_threads)
_task_origins = _OriginTable(_live_tasks)
_raw_origins: dict[int, Captured] = {}  # ident -> origin, for threads started with _thread directly
_during: list[str] = []  # labels of the checks running now, innermost last
# pid -> (origin, command line) for children started while tracking; pruned when the table doubles.
_process_origins: dict[int, tuple[Captured, str]] = {}
_spawns = 0  # children started while tracking: a process scan is only needed when this moved
_creations = 0  # threads, tasks and children started while tracking (see creation_count)
# Pending tasks that vanished while tracking was on, destroyed by the collector or cancelled when their
# loop shut down (asyncio.run, asyncio.Runner, pytest-asyncio, IsolatedAsyncioTestCase): leaks that no
# later snapshot can see, described just before they vanished.
_vanished: list[Unit] = []
MAX_VANISHED = 10_000
DESTROYED_PENDING = "Task was destroyed but it is pending!"  # asyncio's message from Task.__del__


def thread_origin(thread: threading.Thread) -> Origin | None:
    return _thread_origins.get(thread, type(thread))


def raw_thread_origin(ident: int) -> Origin | None:
    captured = _raw_origins.get(ident)
    return _to_origin(captured) if captured is not None else None


def process_origin(pid: int) -> Origin | None:
    entry = _process_origins.get(pid)
    return _to_origin(entry[0]) if entry is not None else None


def process_command(pid: int) -> str | None:
    entry = _process_origins.get(pid)
    return entry[1] if entry is not None else None


def spawn_count() -> int:
    return _spawns


def creation_count() -> int:
    """Moves whenever tracking sees a thread, task or child process start (or tracking restarts): while
    it stands still, nothing new can have started through the tracked paths."""
    return _creations


def is_tracking() -> bool:
    return _users > 0


def _record_spawn(pid: object, command: object, skip: int) -> None:
    global _spawns, _creations
    _spawns += 1
    _creations += 1
    if not isinstance(pid, int) or pid <= 0:
        return
    if len(_process_origins) > 4096:  # children long gone: their pids may come back for others
        _process_origins.clear()
    _process_origins[pid] = (_capture(skip + 1), _command_text(command))


def _command_text(command: object) -> str:
    if isinstance(command, str | bytes):
        text = command.decode(errors="replace") if isinstance(command, bytes) else command
    elif isinstance(command, list | tuple):
        text = " ".join(str(part) for part in command)
    else:
        text = repr(command)
    return text if len(text) <= 120 else text[:117] + "..."


def task_origin(task: asyncio.Task[Any]) -> Origin | None:
    origin = _task_origins.get(task, task.get_coro())
    if origin is not None:
        return origin
    raw = getattr(task.get_coro(), "cr_origin", None)
    if not raw:
        return None
    return Origin(tuple(Frame(filename, lineno, function) for filename, lineno, function in raw))


def take_vanished(start: float, wanted: Callable[[Unit], bool]) -> list[Unit]:
    """Remove and return the vanished tasks created at or after `start` (monotonic) that `wanted` accepts.

    Taking them means a vanished task is reported by one check only, the innermost one that saw it.
    """
    taken = [
        unit
        for unit in list(_vanished)
        if unit.origin is not None
        and unit.origin.created_at is not None
        and unit.origin.created_at >= start
        and wanted(unit)
    ]
    for unit in taken:
        _vanished.remove(unit)
    return taken


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


def _patch(owner: object, name: str, replacement: object) -> None:
    original = getattr(owner, name)
    setattr(owner, name, replacement)
    _restore.append(lambda: setattr(owner, name, original))


def _install() -> None:
    global _spawns, _creations
    _spawns += 1  # spawns went unnoticed while tracking was off: cached process lists are stale
    _creations += 1
    original_start = threading.Thread.start

    def start(self: threading.Thread) -> None:
        global _creations
        _creations += 1
        _thread_origins.put(self, type(self), _capture(1))
        original_start(self)

    original_raw = _thread.start_new_thread

    def start_new_thread(function: Callable[..., object], args: tuple[Any, ...], kwargs: Any = None) -> int:
        global _creations
        _creations += 1
        captured = _capture(1)

        def run(*a: Any, **kw: Any) -> object:
            ident = _thread.get_ident()
            _raw_origins[ident] = captured
            try:
                return function(*a, **kw)
            finally:
                _raw_origins.pop(ident, None)

        return original_raw(run, args, kwargs or {})

    original_create_task = asyncio.BaseEventLoop.create_task

    def create_task(self: asyncio.BaseEventLoop, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        # Inlined on purpose: this runs on every task creation (see bench/).
        global _creations
        _creations += 1
        creator = _current_task(self)
        captured = (
            _task_site(1),
            _get_ident(),
            creator.get_name() if creator is not None else None,
            _monotonic(),
            _during[-1] if _during else None,
        )
        task = original_create_task(self, coro, **kwargs)
        try:
            _task_origins.put(task, task.get_coro(), captured)
        except AttributeError:  # a custom factory returned something that is not a Task
            pass
        return task

    from looseends.sources import tasks  # tasks.py reads origins: import late

    def record(task: asyncio.Task[Any], how: str) -> None:
        unit = tasks.vanished_unit(task, how)
        if unit is not None and len(_vanished) < MAX_VANISHED:
            _vanished.append(unit)

    original_handler = asyncio.BaseEventLoop.call_exception_handler

    def call_exception_handler(self: asyncio.BaseEventLoop, context: dict[str, Any]) -> None:
        task = context.get("task")
        if context.get("message") == DESTROYED_PENDING and isinstance(task, asyncio.Task):
            record(task, tasks.DESTROYED)
        original_handler(self, context)

    original_cancel_all = asyncio.runners._cancel_all_tasks  # type: ignore[attr-defined]

    def cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
        for task in tasks.pending_tasks(loop):
            record(task, tasks.CANCELLED_AT_SHUTDOWN)
        original_cancel_all(loop)

    original_popen_init = subprocess.Popen.__init__

    def popen_init(self: subprocess.Popen[Any], args: Any, *rest: Any, **kwargs: Any) -> None:
        original_popen_init(self, args, *rest, **kwargs)
        _record_spawn(getattr(self, "pid", None), args, 1)

    original_process_start = multiprocessing.process.BaseProcess.start

    def process_start(self: multiprocessing.process.BaseProcess) -> None:
        original_process_start(self)
        _record_spawn(self.pid, f"python (multiprocessing {self.name})", 1)

    original_fork = os.fork

    def fork() -> int:
        # 3.12+ warns when a multi-threaded process forks; re-issue it at the caller, not at this wrapper.
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            pid = original_fork()
        for warning in caught:
            warnings.warn(warning.message, warning.category, stacklevel=2)
        if pid > 0:
            _record_spawn(pid, "python (os.fork)", 1)
        return pid

    def spawner(original: Callable[..., int]) -> Callable[..., int]:
        def spawn(path: Any, argv: Any, *args: Any, **kwargs: Any) -> int:
            pid = original(path, argv, *args, **kwargs)
            _record_spawn(pid, argv, 1)
            return pid

        return spawn

    _patch(subprocess.Popen, "__init__", popen_init)
    _patch(multiprocessing.process.BaseProcess, "start", process_start)
    _patch(os, "fork", fork)
    for name in ("posix_spawn", "posix_spawnp"):
        if hasattr(os, name):
            _patch(os, name, spawner(getattr(os, name)))
    _patch(threading.Thread, "start", start)
    _patch(_thread, "start_new_thread", start_new_thread)
    _patch(asyncio.BaseEventLoop, "create_task", create_task)
    _patch(asyncio.BaseEventLoop, "call_exception_handler", call_exception_handler)
    _patch(asyncio.runners, "_cancel_all_tasks", cancel_all_tasks)
    _restore.append(_vanished.clear)


def _uninstall() -> None:
    while _restore:
        _restore.pop()()
