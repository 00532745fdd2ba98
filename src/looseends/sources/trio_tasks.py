"""trio tasks: every task of every trio run looseends has seen, read from trio's own task tree.

trio keeps its run in a thread-local, so another thread cannot ask for it: looseends learns each run's
root task when a snapshot or a check happens inside the run, and, while tracking is on, from trio's own
instrument API. `trio.run` and `trio.lowlevel.start_guest_run` (anyio's trio backend, pytest's anyio
plugin) are wrapped to add a `task_spawned` instrument, which also records where each task was started
(the `start_soon` line) and by which task; a check begun inside a run adds it to that run.

Everything is read statically (`_cpython.read_attr`): no trio property runs during a snapshot. All of
trio's internals that looseends reads are in this module; trio's own tasks (the run's init task and its
`run_sync_soon` task) are not the program's and are skipped.
"""

from __future__ import annotations

import functools
import sys
import types
import weakref
from _thread import get_ident as _get_ident
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

from looseends import _cpython
from looseends._cpython import MISSING, read_attr
from looseends._safe import safe
from looseends.model import PAUSED, BlockedOn, Kind, Origin, Unit
from looseends.sources import _tracking
from looseends.sources._frames import code_key, coroutine_frames, to_frame
from looseends.sources._origins import Record, task_record, to_origin
from looseends.sources._waits import classify

__all__ = ["TrioTaskSource", "current_task_key", "live_tasks"]

MAX_TASKS = 100_000  # per run: a tree walk stops there, so a runaway program cannot stall a snapshot
MAX_ORIGINS = 100_000

# trio's own tasks: the run's init task and its run_sync_soon task.
_TRIO_OWN = frozenset({("trio._core._run", "Runner.init"), ("trio._core._entry_queue", "EntryQueue.task")})

# id(root task) -> (weak reference to it, the thread running its run: ident and name)
_roots: dict[int, tuple[weakref.ref[Any], int, str]] = {}
# id(task) -> record of its spawn (the partner id is its coroutine's)
_origins: dict[int, Record] = {}


def _trio() -> Any:
    """trio if the program imported it; looseends never imports it."""
    return sys.modules.get("trio")


def _learn_root(root: object) -> None:
    if root is not None and id(root) not in _roots:
        try:
            _roots[id(root)] = (weakref.ref(root), _get_ident(), _cpython.current_thread_name() or "?")
        except TypeError:  # not weakly referenceable: not a trio task after all
            pass


def _learn_current_root(trio: Any) -> None:
    """Inside a trio run (this thread's), remember its root task."""
    lowlevel = getattr(trio, "lowlevel", None)
    if lowlevel is not None and safe(lowlevel.in_trio_run, False):
        _learn_root(safe(lowlevel.current_root_task, None))


def _live_roots() -> list[tuple[object, int, str]]:
    found = []
    for key, (ref, ident, thread) in _roots.copy().items():  # C-level copy: others may add meanwhile
        root = ref()
        if root is None or read_attr(root, "coro") is MISSING:
            _roots.pop(key, None)
        else:
            found.append((root, ident, thread))
    return found


def _children(task: object) -> Iterator[object]:
    nurseries = read_attr(task, "_child_nurseries")
    for nursery in list(nurseries) if isinstance(nurseries, list) else ():
        children = read_attr(nursery, "_children")
        yield from frozenset(children) if isinstance(children, set) else ()


def _tasks(root: object) -> Iterator[object]:
    """Every task of the run under `root`, parents before children, at most MAX_TASKS."""
    pending, seen = [root], 0
    while pending and seen < MAX_TASKS:
        task = pending.pop()
        seen += 1
        yield task
        pending.extend(_children(task))


def live_tasks() -> list[object]:
    """Every task of every known run: for proofs, what they may still touch when they next run."""
    return [task for root, _, _ in _live_roots() for task in _tasks(root)]


def current_task_key() -> tuple[object, ...] | None:
    """The calling trio task's unit key (a checker never reports itself); None outside a trio task."""
    trio = _trio()
    if trio is None or not safe(trio.lowlevel.in_trio_task, False):
        return None
    task = safe(trio.lowlevel.current_task, None)
    return ("trio-task", id(task)) if task is not None else None


def _is_trio_own(task: object) -> bool:
    frame = getattr(read_attr(task, "coro"), "cr_frame", None)
    return frame is not None and code_key(frame) in _TRIO_OWN


class TrioTaskSource:
    """Reads the tasks of every trio run seen so far (none, at no cost, when trio is not imported)."""

    name = "trio tasks"

    def read(self, *, detail: bool = True) -> list[Unit]:
        trio = _trio()
        if trio is None:
            return []
        _learn_current_root(trio)
        in_a_task = safe(trio.lowlevel.in_trio_task, False)
        units: list[Unit] = []
        for root, ident, thread in _live_roots():
            # The run lives in this thread and this look is not made by one of its tasks: the run cannot
            # take a step until the caller returns (anyio's pytest plugin between two calls into its run).
            paused = ident == _get_ident() and not in_a_task
            for task in _tasks(root):
                if _is_trio_own(task):
                    continue
                unit = _task_unit(task, thread, paused) if detail else _identity(task)
                if unit is not None:
                    units.append(unit)
        return units


def _name(task: object) -> str:
    name = read_attr(task, "name")
    return name if isinstance(name, str) else "<trio task>"


def _identity(task: object) -> Unit:
    return Unit(kind=Kind.TASK, key=("trio-task", id(task)), name=_name(task), ref=weakref.ref(task))


def _task_unit(task: object, thread: str, paused: bool) -> Unit | None:
    return safe(functools.partial(_read_task, task, thread, paused), None)


def _read_task(task: object, thread: str, paused: bool) -> Unit | None:
    """Callers guard with `safe`: a task finishing mid-read may fail anywhere here. None for a task whose
    coroutine has returned: trio reaps it at its next step."""
    coro = read_attr(task, "coro")
    live = coroutine_frames(coro)
    scheduled = read_attr(task, "_next_send_fn") not in (None, MISSING)  # runnable, or not started yet
    if not live and not scheduled:
        return None
    stack = tuple(to_frame(frame) for frame in live)
    blocked_on = SCHEDULED if scheduled else classify(live, stack) or _unrecognised(live)
    live.clear()
    if paused and (scheduled or blocked_on.code == "trio.sleep"):
        blocked_on = BlockedOn(
            blocked_on.code,
            f"{blocked_on.description}, in a trio run paused while this thread looks",
            {**blocked_on.detail, PAUSED: 1},
            blocked_on.context,
        )
    return Unit(
        kind=Kind.TASK,
        key=("trio-task", id(task)),
        name=_name(task),
        stack=stack,
        blocked_on=blocked_on,
        origin=_origin(task, coro),
        thread=thread,
        ref=weakref.ref(task),
    )


SCHEDULED = BlockedOn("running", "running (scheduled to run)")


def _unrecognised(frames: list[types.FrameType]) -> BlockedOn:
    """Suspended in trio's scheduler trap, in a wait looseends has no entry for; else running."""
    if frames and code_key(frames[0])[0].startswith("trio."):
        return BlockedOn("trio.wait", "suspended in trio (wait_task_rescheduled)")
    return SCHEDULED


def _origin(task: object, coro: object) -> Origin | None:
    record = _origins.get(id(task))
    if record is None or record[0] != id(coro):
        return None
    return to_origin(record)


# Tracking --------------------------------------------------------------------------------------------


class _Spawns:
    """trio's instrument hooks (duck-typed: trio.abc.Instrument is only imported with trio). Never
    raises: trio would drop the instrument, and the host's run must not notice."""

    def task_spawned(self, task: object) -> None:
        try:
            if read_attr(task, "_parent_nursery") is None:
                _learn_root(task)
            if _tracking.state.users:
                _record_spawn(task)
        except Exception:
            pass


def _record_spawn(task: object) -> None:
    trio = _trio()
    current = safe(trio.lowlevel.current_task, None) if trio is not None else None
    if len(_origins) >= MAX_ORIGINS:
        _origins.clear()
    creator = _name(current) if current is not None else None
    _origins[id(task)] = task_record(read_attr(task, "coro"), creator, skip=2)  # from trio's own frames
    _tracking.noted("others")


_SPAWNS: Any = None  # the one instrument, made once trio is loaded


def _instrument(trio: Any) -> Any:
    global _SPAWNS
    if _SPAWNS is None:
        _SPAWNS = type("LooseEndsSpawns", (_Spawns, trio.abc.Instrument), {})()
    return _SPAWNS


def _with_instrument(original: Callable[..., Any], trio: Any) -> Callable[..., Any]:
    """`trio.run` / `start_guest_run` that also install looseends' instrument in the new run."""

    @functools.wraps(original)
    def run(*args: Any, **kwargs: Any) -> Any:
        kwargs["instruments"] = (*kwargs.get("instruments", ()), _instrument(trio))
        return original(*args, **kwargs)

    return run


def _install(stack: ExitStack) -> None:
    """Runs whenever tracking is entered, and when trio is imported while it is on."""
    trio = _trio()
    if trio is None:
        return
    for owner, name in ((trio, "run"), (trio.lowlevel, "start_guest_run")):
        if not _tracking.is_patched(owner, name):
            _tracking.patch(stack, owner, name, _with_instrument(getattr(owner, name), trio))
    if safe(trio.lowlevel.in_trio_run, False):  # a check begun inside a run: instrument that run too
        _learn_current_root(trio)
        safe(lambda: trio.lowlevel.add_instrument(_instrument(trio)), None)


_tracking.register(_install, again_on_entry=True)
