"""Where each thread and task was started, and by whom: the creation capture and its origin tables.

While tracking is on, `threading.Thread.start`, `_thread.start_new_thread` and the `create_task` of
`asyncio.BaseEventLoop` (and of uvloop's loop, once it is loaded) are wrapped, so task factories and eager
tasks compose instead of being replaced. Tasks made by other means get a creation site only when the
program enabled `sys.set_coroutine_origin_tracking_depth`, whose `cr_origin` is then used. The wrappers of
`Thread.start` and `create_task` are made in C (`_speedups.c`) when it is built, in Python otherwise: the
same records either way.

The hot path (every `create_task`) stores one flat tuple of atoms and code objects: the partner's id,
the creating thread and task, the time, the check running, then code objects and instruction offsets
(`f_lasti`: a frame's line number costs a walk of its code's line table, longest in the big library
functions a stack passes through; the offset is turned into a line only when a report asks). A tuple
of such untracked objects soon leaves the collector's sight, so a table of 100,000 pending tasks costs
collections nothing. `Frame`s are built when a report asks. Code objects hold no locals, so tracking
never keeps a frame, its variables or the unit itself alive.
"""

from __future__ import annotations

import _thread
import asyncio
import concurrent.futures
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from typing import Any

from looseends import _cpython, _heap
from looseends._library import installed_module, is_library_file, is_own_file
from looseends.model import Frame, Origin
from looseends.sources import _tracking
from looseends.sources._frames import module_of_file

# Walk out of library helpers (asyncio's create_task, TaskGroup, gather; anyio's start_soon; an executor
# starting its worker) to the first user frame, and keep up to CALLERS of its callers while they are user
# code: a helper of the user's own that creates the task shows who called it.
TASK_HOPS = 10
CALLERS = 2
# A prune keeps records younger than this whatever `alive` says: a Thread's record is made before
# `start` registers it anywhere, and the put that makes a table due for pruning may be that very record's.
PRUNE_GRACE = 1.0

_getframe = sys._getframe
_monotonic = time.monotonic
_get_ident = _thread.get_ident
_get_running_loop = asyncio.events._get_running_loop
_current_task = asyncio.current_task
_CTask: Any = asyncio.Task  # the C implementation where there is one: its get_name runs no Python code

# A record: (partner id, creating thread's name or ident, creating task's name, created at, during,
# *locations), the locations (code, offset, code, offset, ...) innermost first, as the walk returned them:
# one flat tuple per creation. After its first read: (partner id, Origin).
Record = tuple[Any, ...]
Locations = tuple[Any, ...]  # code, offset, code, offset, ... (each a frame's f_lasti)


# Threads, jobs and children: the user's call and a few of its callers, library or not (starting a thread
# costs far more than reading six frames; a pool's worker shows which pool method started it).
ORIGIN_DEPTH = 6


def _locations(skip: int, depth: int) -> Locations:
    frame: types.FrameType | None = _getframe(skip + 1)
    found: list[object] = []
    for _ in range(depth):
        if frame is None:
            break
        found += (frame.f_code, frame.f_lasti)
        frame = frame.f_back
    return tuple(found)


def capture(partner: object, skip: int) -> Record:
    """For threads, jobs and children: up to ORIGIN_DEPTH frames above the `skip`-th caller, and the
    creator."""
    loop = _get_running_loop()
    task = _current_task(loop) if loop is not None else None
    return (
        id(partner),
        _cpython.current_thread_name() or _get_ident(),  # the name now: the creator may be gone later
        _cpython.task_name(task) if task is not None else None,
        _monotonic(),
        _tracking.current_label(),
        *_locations(skip + 1, ORIGIN_DEPTH),
    )


_library_modules: dict[str, bool] = {}
_getframemodulename: Callable[[int], str | None] = getattr(sys, "_getframemodulename", lambda depth: None)


def _is_library_module(name: str) -> bool:
    known = _library_modules.get(name)
    if known is None:
        top = name.partition(".")[0]
        library = top in sys.stdlib_module_names or top == "looseends" or installed_module(name)
        known = _library_modules[name] = library
    return known


def _site_by_frames(skip: int) -> Locations:
    """Walk out of library frames to the first user frame (each frame visited is materialised): it and
    its user callers; without one within TASK_HOPS, the library frames walked."""
    frame: types.FrameType | None = _getframe(skip + 1)
    found: list[object] = []
    for _ in range(TASK_HOPS):
        if frame is None:
            break
        code = frame.f_code
        if not is_library_file(code.co_filename):
            return (code, frame.f_lasti, *_user_callers(frame.f_back))
        found += (code, frame.f_lasti)
        frame = frame.f_back
    return tuple(found)


def _user_callers(caller: types.FrameType | None) -> Locations:
    """Up to CALLERS callers, while they are user code (reports show only those)."""
    found: list[object] = []
    for _ in range(CALLERS):
        if caller is None or is_library_file(caller.f_code.co_filename):
            break
        found += (caller.f_code, caller.f_lasti)
        caller = caller.f_back
    return tuple(found)


def _site_by_module(skip: int) -> Locations:
    """3.12+: find the first user frame by module name, which reads no frame object, then read only it
    (and its callers, only if they are user code: reports show no others)."""
    known = _library_modules.get
    for depth in range(skip + 1, skip + 1 + TASK_HOPS):
        module = _getframemodulename(depth)
        if module is None:  # the stack is shallower than that
            break
        library = known(module)
        if library is None:
            library = _is_library_module(module)
        if not library:
            frame = _getframe(depth)
            caller = _getframemodulename(depth + 1)
            if caller is None or known(caller) or _is_library_module(caller):
                return (frame.f_code, frame.f_lasti)
            return (frame.f_code, frame.f_lasti, *_user_callers(frame.f_back))
    return _site_by_frames(skip + 1)


_creation_site = _site_by_module if hasattr(sys, "_getframemodulename") else _site_by_frames


def task_record(partner: object, creator: str | None, skip: int) -> Record:
    """A task of another event loop (trio), recorded as asyncio's are: the creating line found by walking
    out of library code from the `skip`-th caller, two of its callers, the creating task's name."""
    return (
        id(partner),
        _cpython.current_thread_name() or _get_ident(),
        creator,
        _monotonic(),
        _tracking.current_label(),
        *_creation_site(skip + 1),
    )


def to_origin(record: Record) -> Origin:
    thread, task_name, created_at, during = record[1:5]
    locations = record[5:]
    frames = tuple(
        Frame(code.co_filename, line_at(code, offset), code.co_qualname, module_of_file(code.co_filename))
        for code, offset in zip(locations[::2], locations[1::2], strict=True)
    )
    thread_words = f"thread {thread if isinstance(thread, str) else _thread_name(thread)}"
    creator = f"task {task_name} in {thread_words}" if task_name is not None else thread_words
    return Origin(frames, creator, created_at, during)


def line_at(code: types.CodeType, offset: int) -> int:
    """The line of the instruction at `offset` (a frame's f_lasti), as the frame's f_lineno was then."""
    for start, end, line in code.co_lines():
        if start <= offset < end:
            return line if line is not None else code.co_firstlineno
    return code.co_firstlineno


def _thread_name(ident: int) -> str:
    thread = _cpython.active_threads().get(ident)
    name = _cpython.thread_name(thread) if thread is not None else None
    return name if name is not None else f"{ident} (since exited)"


class _OriginTable:
    """Records keyed by object identity, still readable while the object is finalised.

    No weak reference per entry (each costs a little on every create_task): a record is checked by a
    second identity, its coroutine's (or class's) id, and records of objects no longer alive are pruned
    in bulk, against `alive()`, whenever the table has doubled. A WeakKeyDictionary would also drop a
    pending task's record before its `__del__` could report it.

    Any thread may put while another prunes or reads: every step is one atomic dict operation (a store,
    `get`, `pop`, or a C-level copy of the dict), never a Python-level iteration of the shared dict, so no
    caller ever sees "changed size during iteration".

    The C accelerator lets task records wait in C until the table is read (`drain` makes them), so every
    read and write here drains first; `entries` is read only through these methods.
    """

    def __init__(self, alive: Callable[[], Iterable[int]]) -> None:
        self.entries: dict[int, Record] = {}
        self.prune_at = [1024]  # a list, so hot wrappers can bind it and see it change
        self.drain: Callable[[], bool] | None = None  # False: a drain is under way (we run inside it)
        self.waiting: Callable[[int], Record | None] = lambda key: None
        self.forget_if_same: Callable[[dict[int, Record], int, Record], None] = _forget_if_same
        self._built: dict[int, tuple[Record, Origin]] = {}  # origins read before, by the record read
        self._alive = alive
        self._pruning = threading.Lock()

    def put(self, obj: object, record: Record) -> None:
        if self.drain is not None:
            self.drain()  # older records first, as they were made
        self.entries[id(obj)] = record
        if len(self.entries) >= self.prune_at[0]:
            self.prune()

    def record(self, obj: object) -> Record | None:
        key = id(obj)
        if self.drain is not None and not self.drain():  # a finaliser run by a drain: read what waits
            waiting = self.waiting(key)
            if waiting is not None:
                return waiting
        return self.entries.get(key)

    def forget(self, obj: object) -> Record | None:
        """Drop the record at `obj`'s address (left by an object gone since, or a test's own)."""
        if self.drain is not None:
            self.drain()
        return self.entries.pop(id(obj), None)

    def prune(self) -> None:
        """Drop records of objects no longer alive; one pruner at a time, the others go on. A record is
        dropped only if it is still the one looked at (`forget_if_same`): another thread may have put a
        new object's record at that address meanwhile."""
        if not self._pruning.acquire(blocking=False):
            return
        try:
            if self.drain is not None:
                self.drain()
            entries = self.entries
            before = entries.copy()  # first: records put while we look are kept
            alive = set(self._alive())
            recent = _monotonic() - PRUNE_GRACE
            for key, record in before.items():
                if key not in alive and not _made_after(record, recent):
                    self.forget_if_same(entries, key, record)
            for key in [key for key in self._built.copy() if key not in alive]:
                self._built.pop(key, None)
            self.prune_at[0] = max(1024, 2 * len(entries))
        finally:
            self._pruning.release()

    def get(self, obj: object, partner: object) -> Origin | None:
        """The origin, built from the record on first read and kept beside it (snapshots read the same
        ones often); the table itself is never written here, so no new record can be overwritten."""
        key = id(obj)
        record = self.record(obj)
        if record is None or record[0] != id(partner):
            return None
        built = self._built.get(key)
        if built is not None and built[0] is record:
            return built[1]
        origin = to_origin(record)
        self._built[key] = (record, origin)
        return origin


def _made_after(record: Record, moment: float) -> bool:
    made = record[3]  # every record: (partner, thread, creator, created at, during, ...)
    return isinstance(made, float) and made > moment


def _forget_if_same(entries: dict[int, Record], key: int, record: Record) -> None:
    """Without the accelerator a test and a delete are two steps: a record put between them is put back
    (a reader may miss it for that moment; it is never lost)."""
    taken = entries.pop(key, None)
    if taken is not None and taken is not record:
        entries.setdefault(key, taken)


_thread_origins = _OriginTable(lambda: map(id, _cpython.known_threads()))
_task_origins = _OriginTable(_cpython.live_task_ids)
_raw_origins: dict[int, Record] = {}  # ident -> record, for threads started with _thread directly


def thread_origin(thread: threading.Thread) -> Origin | None:
    return _thread_origins.get(thread, type(thread))


def raw_thread_origin(ident: int) -> Origin | None:
    record = _raw_origins.get(ident)
    return to_origin(record) if record is not None else None


def task_created_at(task: asyncio.Task[Any]) -> float | None:
    """When the task was created (monotonic), read from its record without building its origin: None
    when creation tracking did not see it made."""
    record = _task_origins.record(task)
    if record is None or record[0] != id(_cpython.task_call(task, "get_coro", None)):
        return None
    created = record[3]
    return created if isinstance(created, float) else None


def task_origin(task: asyncio.Task[Any]) -> Origin | None:
    coro = _cpython.task_call(task, "get_coro", None)
    origin = _task_origins.get(task, coro)
    if origin is not None:
        return origin
    raw = _cpython.read_attr(coro, "cr_origin")
    if not isinstance(raw, tuple) or not raw:
        return None
    return Origin(tuple(Frame(filename, lineno, function) for filename, lineno, function in raw))


# Jobs submitted to a ThreadPoolExecutor, by their future: a worker stuck in a job shows who submitted it.
# A weak key: the record lives exactly as long as the job's future.
_job_origins: weakref.WeakKeyDictionary[object, Record] = weakref.WeakKeyDictionary()


def job_origin(future: object) -> Origin | None:
    try:
        record = _job_origins.get(future)
    except TypeError:  # not weakly referenceable: not a future we recorded
        return None
    return to_origin(record) if record is not None else None


def _install(stack: ExitStack) -> None:
    original_start = threading.Thread.start
    start = wrap_start(original_start)

    original_raw = _thread.start_new_thread

    def start_new_thread(function: Callable[..., object], args: tuple[Any, ...], kwargs: Any = None) -> int:
        if not _tracking.is_tracking():
            return original_raw(function, args, kwargs or {})
        record = capture(None, 1)

        def run(*a: Any, **kw: Any) -> object:
            ident = _get_ident()
            _raw_origins[ident] = record
            try:
                return function(*a, **kw)
            finally:
                _raw_origins.pop(ident, None)

        ident = original_raw(run, args, kwargs or {})
        _tracking.noted("threads")
        return ident

    original_submit = concurrent.futures.ThreadPoolExecutor.submit

    def submit(self: concurrent.futures.ThreadPoolExecutor, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        future = original_submit(self, fn, *args, **kwargs)
        try:
            _job_origins[future] = capture(fn, 1)
        except TypeError:
            pass
        return future

    _tracking.patch(stack, threading.Thread, "start", start)
    _tracking.patch(stack, _thread, "start_new_thread", start_new_thread)
    _tracking.patch(stack, concurrent.futures.ThreadPoolExecutor, "submit", submit)
    if _cpython.TASKS_PER_THREAD:  # only asyncio.all_tasks(loop) finds tasks: remember every loop that runs
        original_run_forever = asyncio.BaseEventLoop.run_forever

        def run_forever(self: asyncio.BaseEventLoop) -> None:
            _cpython.remember_loop(self)
            original_run_forever(self)

        _tracking.patch(stack, asyncio.BaseEventLoop, "run_forever", run_forever)


def _install_loops(stack: ExitStack) -> None:
    """asyncio's loop, and uvloop's as soon as it is loaded (tracking may have begun before)."""
    for loop_class in _cpython.loop_classes():
        if not _tracking.is_patched(loop_class, "create_task"):
            stock = loop_class is asyncio.BaseEventLoop
            wrapper = wrap_create_task(loop_class.create_task, stock=stock)
            _tracking.patch(stack, loop_class, "create_task", wrapper)


def _tracked_start(original_start: Callable[[threading.Thread], None]) -> Callable[[threading.Thread], None]:
    """Thread.start recording where each thread is started (the Python twin of `_speedups.tracked_start`).
    Every name it needs is a closure variable (a free variable costs one load, a default a dict lookup)."""
    state, sequence, advance = _tracking.state, _tracking.sequence, next

    def start(self: threading.Thread) -> None:
        tracked = state.users > 0  # a wrapper left behind by someone else's later patch records nothing
        if tracked:
            _note_thread(self)
        original_start(self)
        if tracked:
            state.threads = advance(sequence)

    start.__wrapped__ = original_start  # type: ignore[attr-defined]
    return start


def _tracked_create_task(original: Callable[..., Any], *, stock: bool) -> Callable[..., Any]:
    """A loop class's create_task that creates the task as before, then records where it was created (the
    stack is the caller's again, even after an eager task's first step); the Python twin of
    `_speedups.tracked_create_task`."""
    state = _tracking.state

    def create_task(self: Any, coro: Any, **kwargs: Any) -> asyncio.Task[Any]:
        task: asyncio.Task[Any] = original(self, coro, **kwargs) if kwargs else original(self, coro)
        if state.users:
            creator = _note_task(self, coro, task)
            if stock:
                if self._debug:
                    _without_own_frames(task)
            elif creator is not None:
                _loop_thread(self)
        return task

    create_task.__wrapped__ = original  # type: ignore[attr-defined]
    return create_task


def _loop_thread(loop: Any) -> None:
    """A task of this loop (not asyncio's: uvloop) created another: the loop runs on this thread, which
    such loops keep nowhere we can read."""
    _cpython.note_loop_thread(loop, _get_ident())


def _without_own_frames(task: object) -> None:
    """In debug mode, asyncio's "created at" traceback of a task must not point in here."""
    traceback = _cpython.read_attr(task, "_source_traceback")
    if isinstance(traceback, list):
        traceback[:] = [entry for entry in traceback if not is_own_file(getattr(entry, "filename", ""))]


def _note_task(loop: Any, coro: Any, task: asyncio.Task[Any]) -> Any:
    """Record where `task` was just created by `loop.create_task` (called from its wrapper); return the
    creating task. Never raises: the host's call goes on."""
    try:
        if type(coro) is types.CoroutineType and coro.cr_code in _cpython.HOUSEKEEPING:
            _task_origins.forget(task)  # a record of a dead task at its address
            return None  # a loop closing: two per test, always awaited by the runner
        creator = _current_task(loop)
        site = _creation_site(2)
        _tracking.state.tasks = next(_tracking.sequence)
        record = (
            id(coro),
            _get_ident(),
            None if creator is None else _cpython.task_name(creator),
            _monotonic(),
            _tracking.current_label(),
            *site,
        )
        _task_origins.put(task, record)
        return creator
    except Exception:
        return None


def _note_thread(thread: threading.Thread) -> None:
    """Record where `thread` is being started (called from Thread.start's wrapper)."""
    try:
        _thread_origins.put(thread, capture(type(thread), 2))
    except Exception:
        pass


def _configure_speedups(module: Any, **changes: Any) -> None:
    """Hand the C module everything its records read, once (`changes`: for tests)."""
    what = {
        "state": _tracking.state,
        "sequence": _tracking.sequence,
        "running_loop": _get_running_loop,
        "current_task": _current_task,
        "current_tasks": _cpython.CURRENT_TASKS,
        "c_task": _CTask,
        "task_name": _cpython.task_name,
        "housekeeping": tuple(_cpython.HOUSEKEEPING),
        "judge": is_library_file,
        "active": threading._active,  # type: ignore[attr-defined]
        "thread_module": _thread,
        "name_judge": lambda kind: _cpython.reads_statically(kind, "_name"),
        "task_table": _task_origins,
        "thread_table": _thread_origins,
        "task_hops": TASK_HOPS,
        "user_callers": CALLERS,
        "thread_depth": ORIGIN_DEPTH,
    }
    module.configure(**{**what, **changes})


# When a check begins (time.monotonic()): the accelerator also makes it the earliest creation time of any
# task made after, since it stamps tasks with the coarse clock (`_speedups.check_began`).
check_began: Callable[[], float] = time.monotonic
Start = Callable[[threading.Thread], None]
wrap_start: Callable[[Start], Start] = _tracked_start
wrap_create_task: Callable[..., Callable[..., Any]] = _tracked_create_task
try:
    import looseends.sources._speedups as _speedups
except ImportError:  # not built (no C compiler or headers at install): the same wrappers, in Python
    pass
else:
    _configure_speedups(_speedups)
    _task_origins.drain = _speedups.flush_tasks
    _task_origins.waiting = _speedups.waiting_task_record
    _task_origins.forget_if_same = _thread_origins.forget_if_same = _speedups.forget_if_same
    _cpython.use_accelerated_frame_reads(_speedups.frame_variable)
    _cpython.use_accelerated_instances(_speedups.tracked_instances)
    _heap.use_accelerated(_speedups.heap_accounts)
    check_began = _speedups.check_began

    def wrap_start(original: Start) -> Start:
        return _speedups.tracked_start(original)

    def wrap_create_task(original: Callable[..., Any], *, stock: bool) -> Callable[..., Any]:
        if not stock:
            return _speedups.tracked_create_task(original, thread_hook=_loop_thread)
        # A task's debug-mode "created at" traceback passes no frame of this wrapper (written in C), only
        # of the run_forever wrapper that 3.14+ needs: trimmed only there, no per-task read elsewhere.
        trim = _without_own_frames if _cpython.TASKS_PER_THREAD else None
        return _speedups.tracked_create_task(original, debug_hook=trim)


_tracking.register(_install)
_tracking.register(_install_loops, again_on_entry=True)
