"""Proven leaks: a blocked unit whose primitive nothing that may still run can reach is stuck forever.

Go 1.27's goroutineleak profile (Saioc et al., ASPLOS 2025) in Python terms. A thread or task blocked
on a synchronisation primitive (a queue, Event, Lock, Condition, Semaphore, an asyncio Future, Queue,
Event, Lock) can only be woken by code that can reach that primitive. Start from what may still run
(module globals, threads and tasks that are running, sleeping or waiting on I/O or timers), follow
the garbage collector's references, and never through a blocked unit's own frames, coroutines and
Thread or Task object. A blocked unit whose primitive is reached may be woken: its own objects join
the roots, and the walk goes on, to a fixed point. The blocked units left are proven stuck.

Limits: references held by C code and not shown to the collector are invisible, so a proof means
"stuck unless native code holds a reference". The walk visits the whole reachable heap once (a second
or so for a million objects); it runs only when asked, or when a check already found candidates, and
takes no lock the inspected program could need.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import types
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from looseends.model import Kind, Unit, is_library_file, is_own_file
from looseends.sources._ccall import called_object
from looseends.sources._frames import code_key, coroutine_frames, walk_back

# (module, qualified name) of frames whose `self` is the primitive the unit waits on.
_SELF_IS_PRIMITIVE = {
    ("queue", "Queue.put"): "queue",
    ("queue", "Queue.get"): "queue",
    ("queue", "Queue.join"): "queue",
    ("threading", "Event.wait"): "Event",
    ("threading", "Condition.wait"): "Condition",
    ("threading", "Condition.wait_for"): "Condition",
    ("threading", "Semaphore.acquire"): "Semaphore",
    ("threading", "Barrier.wait"): "Barrier",
    ("asyncio.queues", "Queue.put"): "asyncio.Queue",
    ("asyncio.queues", "Queue.get"): "asyncio.Queue",
    ("asyncio.queues", "Queue.join"): "asyncio.Queue",
    ("asyncio.locks", "Event.wait"): "asyncio.Event",
    ("asyncio.locks", "Lock.acquire"): "asyncio.Lock",
    ("asyncio.locks", "Condition.wait"): "asyncio.Condition",
    ("asyncio.locks", "Semaphore.acquire"): "asyncio.Semaphore",
}
# Builtins called from the innermost frame whose receiver is the primitive.
_RECEIVER_IS_PRIMITIVE = {
    "_thread.lock.acquire": "Lock",
    "_thread.RLock.acquire": "RLock",
    "_queue.SimpleQueue.get": "SimpleQueue",
}
# Primitives whose waiter will proceed as soon as it is scheduled.
_IS_FREE: dict[str, Callable[[Any], object]] = {
    "Lock": lambda lock: not lock.locked(),
    "SimpleQueue": lambda items: not items.empty(),
    "Event": lambda event: event.is_set(),
    "asyncio.Event": lambda event: event.is_set(),
    "asyncio.Future": lambda future: future.done(),
}


@dataclass(frozen=True, slots=True)
class Proof:
    """Why a unit is stuck forever."""

    primitive: str  # "queue", "Event", "asyncio.Future", "task 'other'"
    reason: str


@dataclass
class _Blocked:
    unit: Unit
    primitive: object
    label: str
    own: list[object]  # frames, coroutines, the Thread or Task: not paths to the primitive


def prove(units: Iterable[Unit]) -> dict[object, Proof]:
    """Proofs by unit key, for the units among `units` that are provably stuck forever."""
    try:
        blocked = _blocked_units(list(units))
        if not blocked:
            return {}
        stuck = _fixed_point(blocked)
    except Exception:  # a proof is a bonus: never let it break a check
        return {}
    finally:
        gc.collect(0)
    return {
        b.unit.key: Proof(
            b.label,
            f"nothing that may still run can reach the {b.label} it waits on "
            "(unless native code holds a reference)",
        )
        for b in stuck
    }


def _blocked_units(units: Sequence[Unit]) -> list[_Blocked]:
    frames_by_ident = sys._current_frames()
    found = []
    for unit in units:
        target = unit.ref() if unit.ref is not None else None
        if unit.kind is Kind.THREAD and unit.ident in frames_by_ident:
            live = list(walk_back(frames_by_ident[unit.ident]))
            primitive = _thread_primitive(live)
            own: list[object] = [*live, *([target] if target is not None else [])]
        elif unit.kind is Kind.TASK and isinstance(target, asyncio.Task) and not target.done():
            live = coroutine_frames(target.get_coro())
            primitive = _task_primitive(target, live)
            own = [*live, target, target.get_coro()]
        else:
            continue
        if primitive is not None and not _already_free(*primitive):
            found.append(_Blocked(unit, primitive[1], primitive[0], own))
    frames_by_ident.clear()
    return found


def _already_free(label: str, primitive: Any) -> bool:
    """Released (set, unlocked, fed) while its waiter waits for the GIL: the wait is ending, not stuck.

    The waiter's stack still shows the wait until it is scheduled again, so without this a unit
    released an instant before a check could be "proven" stuck.
    """
    is_free = _IS_FREE.get(label)
    try:
        return is_free is not None and bool(is_free(primitive))
    except Exception:  # an odd subclass: no shortcut, let the walk decide
        return False


def _thread_primitive(frames: list[types.FrameType]) -> tuple[str, object] | None:
    found = _self_primitive(frames)
    if found is not None or not frames or is_library_file(frames[0].f_code.co_filename):
        return found
    called = called_object(frames[0])  # the user's own frame calling lock.acquire() and the like
    if called is not None and called[0] in _RECEIVER_IS_PRIMITIVE and not called[2]:
        return _RECEIVER_IS_PRIMITIVE[called[0]], called[1]
    return None


def _self_primitive(frames: list[types.FrameType]) -> tuple[str, object] | None:
    """The outermost known wait in the innermost run of library frames (Queue.put, not Condition.wait)."""
    found = None
    for frame in frames:
        label = _SELF_IS_PRIMITIVE.get(code_key(frame))
        variables = frame.f_locals if label is not None else {}
        if variables.get("timeout") is not None:
            return None  # a timed wait ends by itself: not stuck
        primitive = variables.get("self")
        if label is not None and primitive is not None:
            found = (label, primitive)
        elif not is_library_file(frame.f_code.co_filename):
            break  # the user's code: the wait API (if any) ends here
    return found


def _task_primitive(task: asyncio.Task[object], frames: list[types.FrameType]) -> tuple[str, object] | None:
    found = _self_primitive(frames)
    if found is not None:
        return found
    waiter = getattr(task, "_fut_waiter", None)
    if isinstance(waiter, asyncio.Task):
        return f"task {waiter.get_name()!r}", waiter
    if isinstance(waiter, asyncio.Future) and not getattr(waiter, "_children", None):
        return "asyncio.Future", waiter
    return None  # sleeping, awaiting I/O or a gather: may wake by itself


def _fixed_point(blocked: list[_Blocked]) -> list[_Blocked]:
    excluded = {id(obj) for b in blocked for obj in b.own}
    excluded.add(id(blocked))
    pending: dict[int, list[_Blocked]] = {}
    for b in blocked:
        pending.setdefault(id(b.primitive), []).append(b)
    visited: set[int] = set()
    frontier = _roots(excluded)
    excluded.update((id(frontier), id(visited), id(pending)))
    while True:
        woken = _walk(frontier, visited, excluded, pending)
        if not woken:
            return [b for units in pending.values() for b in units]
        frontier = []
        for unit in woken:  # may be woken: its own objects may wake others
            for obj in unit.own:
                excluded.discard(id(obj))
                frontier.append(obj)


def _walk(
    frontier: list[object], visited: set[int], excluded: set[int], pending: dict[int, list[_Blocked]]
) -> list[_Blocked]:
    woken: list[_Blocked] = []
    get_referents, is_tracked, frame_type = gc.get_referents, gc.is_tracked, types.FrameType
    while frontier:
        obj = frontier.pop()
        key = id(obj)
        if key in visited or key in excluded:
            continue
        visited.add(key)
        if pending and key in pending:  # a primitive that is itself a root (rare: roots are namespaces)
            woken.extend(pending.pop(key))
        if type(obj) is frame_type:
            referents = _frame_referents(obj)
        elif isinstance(obj, types.ModuleType):
            # A module's namespace is all it holds for Python code, and traversing some C modules
            # never returns (3.12.1's _asyncio module_traverse loops over its task list).
            referents = [obj.__dict__]
        else:
            referents = get_referents(obj)
        for referent in referents:
            if pending and id(referent) in pending:  # a primitive may be untracked (a C lock): check first
                woken.extend(pending.pop(id(referent)))
            # Untracked objects (numbers, strings, C locks, tuples of atoms) reach nothing further.
            if is_tracked(referent) or type(referent) is frame_type:
                frontier.append(referent)
    return woken


def _frame_referents(frame: types.FrameType) -> list[object]:
    """An executing frame shows the collector nothing (its thread owns it): read its variables instead."""
    try:
        variables = list(frame.f_locals.values())
    except Exception:
        variables = []
    return [*variables, frame.f_back, frame.f_globals]


def _roots(excluded: set[int]) -> list[object]:
    """Module namespaces and the frames of every thread not blocked on a primitive (ours excluded)."""
    roots: list[object] = [module.__dict__ for module in list(sys.modules.values()) if module is not None]
    me = threading.get_ident()
    for ident, top in sys._current_frames().items():
        frame = _outside_looseends(top) if ident == me else top
        if frame is not None and id(frame) not in excluded:
            roots.append(frame)
    return roots


def _outside_looseends(frame: types.FrameType | None) -> types.FrameType | None:
    while frame is not None and is_own_file(frame.f_code.co_filename):
        frame = frame.f_back
    return frame
