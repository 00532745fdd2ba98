"""CPython's private runtime internals, read in one place, with the version switches beside them.

Everything looseends reads that is not public API is here: threading's registry of threads, asyncio's
registries of tasks, a task's pending future, a Condition's waiters. A new Python should touch this
file only. Every read is static (`read_attr`): it never runs a property, `__getattr__` or `__repr__` of
the inspected program, and an attribute that cannot be read so comes back as `MISSING`.
"""

from __future__ import annotations

import _thread
import asyncio
import functools
import gc
import inspect
import itertools
import sys
import threading
import types
import weakref
from collections.abc import Callable, Collection
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
        if issubclass(type(value), _C_DESCRIPTORS):  # by its type: a class attribute may be a proxy
            return value
        return _NEVER if hasattr(type(value), "__get__") else _GENERIC
    return _GENERIC


def reads_statically(kind: type, name: str) -> bool:
    """Whether `read_attr` can read `name` on instances of `kind` (no Python descriptor in the way)."""
    return _plan(kind, name) is not _NEVER


def module_namespace(obj: object) -> dict[str, Any] | None:
    """A module's namespace, the module known by its type and read statically: `isinstance` asks an
    object that is not one for its `__class__` (a proxy answers by running its own code), `getattr` on
    a module runs its `__getattr__` for a name it lacks, and a lazy module imports itself on any lookup."""
    if not issubclass(type(obj), types.ModuleType):
        return None
    namespace = read_attr(obj, "__dict__")
    return namespace if type(namespace) is dict else None


def module_file(obj: object) -> str | None:
    """A module's `__file__`, read as `module_namespace` reads."""
    namespace = module_namespace(obj)
    path = namespace.get("__file__") if namespace is not None else None
    return path if type(path) is str else None


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


def known_threads() -> list[threading.Thread]:
    """Every Thread threading knows, running or starting (`_active`, `_limbo`), copied without its lock:
    a thread interrupted inside `Thread.start` holds that lock, and a signal handler may be asking."""
    starting: dict[threading.Thread, object] = safe_copy(threading._limbo)  # type: ignore[attr-defined]
    return [*active_threads().values(), *starting]


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


def pool_executor_ref(thread: object) -> Callable[[], object] | None:
    """A ThreadPoolExecutor worker's weak reference to its executor (its first argument), else None.
    Known by type alone: a subclass's call could run the program's code."""
    args = read_attr(thread, "_args")
    if type(args) is tuple and args and type(args[0]) is weakref.ref:
        return args[0]
    return None


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


_PARKED = 2  # PyMutex's "a thread is parked on me" bit (Include/cpython/lock.h, 3.13+)


def lock_parked(lock: object) -> bool | None:
    """Whether a thread is parked waiting for this C Lock or RLock now; None when that cannot be read.

    From 3.14, releasing a lock whose waiter has waited a while hands it straight to that waiter (fair
    handoff): the lock still reads as held, although its waiter only waits for the GIL to go on. Only
    the mutex's parked bit tells the two apart. Before 3.14, a released lock reads as free until its
    waiter takes it, so "held" means "its waiter is still parked"."""
    if type(lock) is not LOCK_TYPE and type(lock) is not RLOCK_TYPE:
        return None
    if VERSION < (3, 14):
        return lock_held(lock)
    offset = _mutex_offset()
    if offset is None:
        return None
    import ctypes

    return bool(ctypes.c_uint8.from_address(id(lock) + offset).value & _PARKED)


@functools.cache
def _mutex_offset() -> int | None:
    """Where a Lock's PyMutex state byte lies (right after the object header), checked on real locks
    before it is trusted: free reads 0, held reads 1, held with a parked thread reads 3."""
    import ctypes

    offset = object.__basicsize__
    if not gil_enabled():
        return None  # free-threaded objects have another header, and proofs are off there anyway

    def state(lock: object) -> int:
        return int(ctypes.c_uint8.from_address(id(lock) + offset).value)

    try:
        for kind in (LOCK_TYPE, RLOCK_TYPE):
            lock = kind()
            if state(lock) != 0:
                return None
            lock.acquire()
            held = state(lock)
            lock.release()
            if held != 1 or state(lock) != 0:
                return None
    except Exception:
        return None
    return offset


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
    """The ident of the thread running the loop (None when it is not running or not known)."""
    ident = read_attr(loop, "_thread_id")  # asyncio's loops keep it; uvloop's do not
    if isinstance(ident, int):
        return ident
    return _foreign_loop_threads.get(id(loop)) if ident is MISSING else None


_foreign_loop_threads: dict[int, int] = {}  # id(loop) -> ident, for loop classes that keep no _thread_id


def note_loop_thread(loop: object, ident: int) -> None:
    if _foreign_loop_threads.get(id(loop)) != ident:
        if len(_foreign_loop_threads) > 1024:
            _foreign_loop_threads.clear()
        _foreign_loop_threads[id(loop)] = ident
        if TASKS_PER_THREAD:
            remember_loop(loop)


def loop_classes() -> list[type[Any]]:
    """Event loop classes whose methods tracking wraps: asyncio's base, and uvloop's when it is loaded
    (uvloop's loop does not derive from BaseEventLoop)."""
    classes: list[type[Any]] = [asyncio.BaseEventLoop]
    uvloop = sys.modules.get("uvloop")
    loop_class = getattr(uvloop, "Loop", None) if uvloop is not None else None
    if isinstance(loop_class, type) and not issubclass(loop_class, asyncio.BaseEventLoop):
        classes.append(loop_class)
    return classes


def loop_closed(loop: object) -> bool:
    return read_attr(loop, "_closed") is True


_REGISTRIES = [
    name for name in ("_all_tasks", "_scheduled_tasks", "_eager_tasks") if hasattr(asyncio.tasks, name)
]


# 3.14 moved native tasks out of the Python-level registries into a list per thread (cpython gh-128002):
# only `asyncio.all_tasks(loop)` reaches them, one loop at a time, from any thread.
TASKS_PER_THREAD: Final = VERSION >= (3, 14)


def task_registries() -> list[Collection[Task]]:
    """asyncio's Python-level registries of live tasks: `_all_tasks` (3.11); `_scheduled_tasks` and
    `_eager_tasks` (3.12+). Through 3.13 they hold every task of every loop in every thread; from 3.14,
    only tasks that are not asyncio's native ones (see `all_tasks`)."""
    return [getattr(asyncio.tasks, name) for name in _REGISTRIES]


# The registries' sizes, bound once (asyncio never rebinds them), in C: a WeakSet's own __len__ is Python
# code; the set of weak references under it grows with every new task just as the WeakSet does.
def _size(registry: Collection[Task]) -> Callable[[], int]:
    references = read_attr(registry, "data") if isinstance(registry, weakref.WeakSet) else None
    return references.__len__ if isinstance(references, set) else registry.__len__


_REGISTRY_SIZES: Final = tuple(_size(registry) for registry in task_registries())


def task_count() -> int:
    """How many tasks there are: it moves when a task is created or finishes (fingerprints compare it).

    On 3.14+ it counts the tasks of the loops already known (remembered when they were seen running, or
    when they started to run while tracking was on) and this thread's, without known_loops()'s walk of
    every thread's stack: a fingerprint is taken twice per checked test, and the first identity read
    made while tracking is on does that walk and remembers what it finds."""
    count = 0
    for size in _REGISTRY_SIZES:
        count += size()
    if TASKS_PER_THREAD:
        running = asyncio.events._get_running_loop()
        loops = safe_list(_loops)
        if running is not None and all(loop is not running for loop in loops):  # never a loop's __eq__
            loops.append(running)
        for loop in loops:
            count += len(_loop_tasks(loop))
    return count


def live_tasks() -> list[Task]:
    """The tasks `task_count` counts, themselves: for a fingerprint that tells a new task from an old
    one at the same address (a count, or ids, cannot)."""
    tasks: list[Task] = []
    for listed in _REGISTRY_LISTS:
        tasks += listed()
    if TASKS_PER_THREAD:
        running = asyncio.events._get_running_loop()
        loops = safe_list(_loops)
        if running is not None and all(loop is not running for loop in loops):
            loops.append(running)
        for loop in loops:
            tasks += _loop_tasks(loop)
    return tasks


def _lister(registry: Collection[Task]) -> Callable[[], list[Task]]:
    """A registry's live tasks, listed in C: a WeakSet's own iterator is a Python generator under a
    guard, per task; its set of weak references (never rebound) is copied and each reference called."""
    refs = read_attr(registry, "data") if isinstance(registry, weakref.WeakSet) else None
    if isinstance(refs, set):
        return lambda: list(filter(None, map(weakref.ref.__call__, safe_list(refs)))) if refs else []
    return lambda: safe_list(registry)


_REGISTRY_LISTS: Final = tuple(_lister(registry) for registry in task_registries())


def live_task_ids() -> set[int]:
    """Ids of every live task."""
    ids: set[int] = set()
    for listed in _REGISTRY_LISTS:
        ids.update(map(id, listed()))
    if TASKS_PER_THREAD:
        for loop in known_loops():
            ids.update(map(id, _loop_tasks(loop)))
    return ids


def all_tasks() -> list[Task]:
    """Every task looseends can see, once each: the registries, and on 3.14+ the pending tasks of every
    known loop."""
    found: dict[int, Task] = {}
    for listed in _REGISTRY_LISTS:
        found.update(zip(map(id, tasks := listed()), tasks, strict=True))
    if TASKS_PER_THREAD:
        for loop in known_loops():
            tasks = _loop_tasks(loop)
            found.update(zip(map(id, tasks), tasks, strict=True))
    return list(found.values())


def loop_tasks(loop: object) -> list[Task]:
    """One loop's tasks, done ones too. Before 3.14, the registries' tasks whose loop (read by asyncio's
    own get_loop, never a subclass's) is `loop`: `asyncio.all_tasks(loop)` walks a WeakSet in Python and
    calls every task's own get_loop and done, at each loop's shutdown (every async test). From 3.14,
    asyncio's listing in C."""
    if TASKS_PER_THREAD:
        return _loop_tasks(loop)
    return [task for task in live_tasks() if task_call(task, "get_loop", None) is loop]


def _loop_tasks(loop: object) -> list[Task]:
    try:
        return list(asyncio.all_tasks(loop))  # type: ignore[arg-type]
    except Exception:  # a loop closing mid-read, an odd loop class
        return []


# Event loops --------------------------------------------------------------------------------------------

_loops: weakref.WeakSet[object] = weakref.WeakSet()  # loops seen running (while tracking, or in a stack)


def remember_loop(loop: object) -> None:
    try:
        _loops.add(loop)
    except TypeError:  # a loop class without weak references: found again from stacks while it runs
        pass


def _loop_codes() -> dict[types.CodeType, str]:
    """Code of the frames whose `self` is a running loop ("loop") or an asyncio.Runner ("runner")."""
    codes = {
        asyncio.BaseEventLoop.run_forever.__code__: "loop",
        asyncio.BaseEventLoop.run_until_complete.__code__: "loop",
        asyncio.Runner.run.__code__: "runner",
        asyncio.Runner.close.__code__: "runner",
    }
    return codes


_LOOP_CODES = _loop_codes()


def known_loops() -> list[object]:
    """Loops seen running while tracking, plus every loop running (or being run by an asyncio.Runner) in
    any thread now, plus this thread's own. A loop that is neither, such as one stopped before tracking
    began and never run again, is not known: its tasks are not seen on 3.14+ (docs/versions.md)."""
    found: dict[int, object] = {id(loop): loop for loop in safe_list(_loops)}
    frames = sys._current_frames()
    try:
        for top in frames.values():
            frame: types.FrameType | None = top
            while frame is not None:
                role = _LOOP_CODES.get(frame.f_code)
                if role is not None:
                    owner = _frame_self(frame)
                    loop = read_attr(owner, "_loop") if role == "runner" else owner
                    if loop is not None and loop is not MISSING:
                        found[id(loop)] = loop
                frame = frame.f_back
    finally:
        frames.clear()
    running = asyncio.events._get_running_loop()
    if running is not None:
        found[id(running)] = running
    for loop in found.values():
        if loop not in _loops:
            remember_loop(loop)
    return list(found.values())


def _frame_self(frame: types.FrameType) -> object:
    found = frame_variable(frame, "self")
    return None if found is MISSING else found


# A frame's variables, one at a time. Before 3.13, `frame.f_locals` leaves a dict of every variable on the
# frame (PEP 667): whatever the program deletes after a snapshot stays alive until the frame next refreshes
# it or ends, a socket it meant to close by dropping it, a finished job's arguments. So they are read
# without it: 3.13's `f_locals` is a view onto the frame, 3.12 has PyFrame_GetVar (one C call, by ctypes
# when the accelerator is not built), 3.11 only the accelerator's read of its frame layout (handed in by
# `sources._origins`, which loads the accelerator: this module is below it).
_variable_readers: list[Callable[[types.FrameType, str, object], object]] = []
_guest = [False]  # inside another process by attach: load no extension module it has not loaded itself


def as_a_guest() -> None:
    """Inside someone else's process (attach): ctypes is used only if the program has loaded it, since
    loading `_ctypes` maps files into it that stay after we leave; without it 3.12 reads as 3.11 does
    without the accelerator."""
    _guest[0] = True
    _variable_readers.clear()


def frame_variable(frame: types.FrameType, name: str, *, ends_with_wait: bool = False) -> Any:
    """The variable `name` of `frame`, or MISSING. `ends_with_wait`: the frame is a wait API's own, which
    ends when the wait does; on 3.11 without the accelerator only such a frame is read, through `f_locals`
    (its copy dies with it); any other frame reads as MISSING there: claim less rather than hold more."""
    if VERSION >= (3, 13) or not owns_its_variables(frame):
        try:
            return frame.f_locals.get(name, MISSING)
        except Exception:
            return MISSING
    read = _reader()
    if read is _copying_read and not ends_with_wait:
        return MISSING
    try:
        return read(frame, name, MISSING)
    except Exception:
        return MISSING


def frame_variables(frame: types.FrameType) -> list[tuple[str, object]] | None:
    """Every bound variable of `frame`, by name; None where they cannot be read without leaving a copy
    on the frame (3.11 without the accelerator): a proof that needs them all must then give up. A module
    or class body's variables are its namespace, which the frame holds itself: read as they are."""
    if VERSION >= (3, 13) or not owns_its_variables(frame):
        try:
            return list(frame.f_locals.items())
        except Exception:
            return None
    read = _reader()
    if read is _copying_read:
        return None
    code = frame.f_code
    found = []
    for name in dict.fromkeys((*code.co_varnames, *code.co_cellvars, *code.co_freevars)):
        try:
            value = read(frame, name, MISSING)
        except Exception:
            return None
        if value is not MISSING:
            found.append((name, value))
    return found


def owns_its_variables(frame: types.FrameType) -> bool:
    """A function's frame keeps its variables itself, and `f_locals` before 3.13 copies them (so would a
    class body's with cells); a module's live in its namespace dict, which the frame refers to: its
    `f_locals` is that dict, no copy, and a count of references must see it."""
    code = frame.f_code
    return bool(code.co_flags & inspect.CO_OPTIMIZED or code.co_cellvars or code.co_freevars)


def _copying_read(frame: types.FrameType, name: str, default: object) -> object:
    return frame.f_locals.get(name, default)


def tracked_instances(kind: type) -> list[Any]:
    """The objects the collector tracks whose type is `kind` or a subclass (by type: nothing is asked of
    them). `gc.get_objects()` also returns objects other threads are still building, and a tuple that
    `tuple(generator)` is filling must not have its count raised when it is resized (the program's call
    would raise SystemError): the accelerator picks them in C, never holding the rest while another
    thread runs; without it the list of all is held for one pass in C-level iterators, a narrow window."""
    return _instance_finders[0](kind)


def _instances_in_python(kind: type) -> list[Any]:
    everything = gc.get_objects()
    try:
        return list(
            itertools.compress(everything, map(issubclass, map(type, everything), itertools.repeat(kind)))
        )
    finally:
        everything.clear()


_instance_finders: list[Callable[[type], list[Any]]] = [_instances_in_python]


def use_accelerated_instances(find: Callable[[type], list[Any]]) -> None:
    """The accelerator's finder (`sources._speedups.tracked_instances`), handed in where it is imported."""
    _instance_finders[:] = [find]


def use_accelerated_frame_reads(read: Callable[[types.FrameType, str, object], object]) -> None:
    """The accelerator's reader (`sources._speedups.frame_variable`), handed in where it is imported."""
    _variable_readers[:] = [read]


def _reader() -> Callable[[types.FrameType, str, object], object]:
    if not _variable_readers:
        _variable_readers.append(_variable_reader())
    return _variable_readers[0]


def _variable_reader() -> Callable[[types.FrameType, str, object], object]:
    if VERSION < (3, 12) or (_guest[0] and "_ctypes" not in sys.modules):
        return _copying_read
    import ctypes

    # A function object of our own: `ctypes.pythonapi.PyFrame_GetVar` is shared, and its argument types are
    # not ours to set (an attach runs inside someone else's process).
    get_var = ctypes.PYFUNCTYPE(ctypes.py_object, ctypes.py_object, ctypes.py_object)(
        ("PyFrame_GetVar", ctypes.pythonapi)
    )

    def read_by_ctypes(frame: types.FrameType, name: str, default: object) -> object:
        try:
            return get_var(frame, name)  # one C call: the frame cannot change under it
        except NameError:  # unbound, or no such variable
            return default

    return read_by_ctypes


# asyncio's own housekeeping coroutines, which its runners (asyncio.run, asyncio.Runner) await to completion
# as they close a loop: their tasks are never leaks, and where they were created says nothing.
HOUSEKEEPING: Final = frozenset(
    {
        asyncio.BaseEventLoop.shutdown_asyncgens.__code__,
        asyncio.BaseEventLoop.shutdown_default_executor.__code__,
    }
)

# Before 3.12, asyncio.current_task is Python code reading this dict (loop -> its running task); the C
# accelerator reads it directly. From 3.12 current_task is C, and the dict may not say (3.14 keeps the
# running task per thread).
CURRENT_TASKS: Final[dict[Any, Any] | None] = asyncio.tasks._current_tasks if VERSION < (3, 12) else None  # type: ignore[attr-defined]

CANCEL_ALL_TASKS: Final = (asyncio.runners, "_cancel_all_tasks")  # what asyncio.run calls at shutdown
