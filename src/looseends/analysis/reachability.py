"""Proven leaks: a blocked unit whose primitive nothing that may still run can reach is stuck forever.

Go 1.27's goroutineleak profile (Saioc et al., ASPLOS 2025) in Python terms; docs/proofs.md has the
argument in full. Only a unit waiting, untimed, on an in-process primitive (queue, lock, Event,
Condition, Semaphore, Barrier, SimpleQueue, an asyncio primitive, Future or task) whose state says the
wait still cannot end is a candidate. Everything else that may run is a root: module globals, the frames
of every other thread (running, sleeping, in I/O or select: an idle event loop's thread reaches its whole
loop), every other pending task, every trio task and suspended greenlet. From the roots the walk
follows the collector's references, never through a candidate's own frames and coroutines, nor the call
a thread was started with (its target and arguments: like a goroutine's function, only the thread itself
uses them), nor threading's registry of all threads. A candidate whose primitive is reached may be
woken: its objects join the roots, to a fixed point. The candidates left are stuck forever.

The walk runs while other threads run, so a caller confirms a proof on two looks (analysis.settle).
Free-threaded builds running without the GIL get no proofs. References held by C code and not shown to
the collector are invisible: a proof means "stuck unless native code holds a reference".
"""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import types
from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass, field

from looseends import _cpython
from looseends._library import is_own_file
from looseends.analysis.unseen import MAX_OBJECTS, UNREADABLE_FRAMES, Abandoned, unseen_holders
from looseends.model import Kind, Unit
from looseends.sources import greenlets, trio_tasks
from looseends.sources._frames import coroutine_frames, to_frame, walk_back
from looseends.sources._waits import find_wait, primitive_of

__all__ = ["prove"]

CLOSED_LOOP = "its event loop is closed: it can never run again"
DESTROYED = "destroyed by the garbage collector while pending: nothing could reach it"


@dataclass(frozen=True, slots=True)
class Proof:
    """Why a unit is stuck forever."""

    primitive: str  # "queue", "Event", "asyncio.Future", "task 'other'", "event loop"
    reason: str


def unreachable(primitive: str) -> Proof:
    return Proof(
        primitive,
        f"nothing that may still run can reach the {primitive} it waits on "
        "(unless native code holds a reference)",
    )


@dataclass
class _Candidate:
    unit: Unit
    primitive: object
    label: str
    own: list[object]  # its frames and coroutines: never a path to anything while it is blocked
    holder: object  # its Thread or Task: walked without `hidden` until it may be woken
    hidden: set[int] = field(default_factory=set)


class Proofs(dict[Hashable, Proof]):
    """Proofs by unit key; `abandoned` says why the walk gave up, when it did (nothing is proven then)."""

    abandoned: str | None = None


def prove(units: Iterable[Unit]) -> Proofs:
    """Proofs by unit key, for the units among `units` that are provably stuck forever now."""
    if not _cpython.gil_enabled():
        return Proofs()
    collecting = gc.isenabled()
    gc.disable()  # a collection mid-walk would run finalizers: the program's code, at our frames
    try:
        closed, candidates = _candidates(list(units))
        stuck = _fixed_point(candidates) if candidates else []
    except Abandoned as exc:
        given_up = Proofs()
        given_up.abandoned = str(exc)
        return given_up
    except Exception:  # a proof is a bonus: never let it break a check
        return Proofs()
    finally:
        if collecting:
            gc.enable()
    found = Proofs((c.unit.key, unreachable(c.label)) for c in stuck)
    found.update({key: Proof("event loop", CLOSED_LOOP) for key in closed})
    return found


def _candidates(units: Sequence[Unit]) -> tuple[list[Hashable], list[_Candidate]]:
    frames_by_ident = sys._current_frames()
    closed: list[Hashable] = []
    found = []
    try:
        for unit in units:
            target = unit.ref() if unit.ref is not None else None
            if unit.kind is Kind.THREAD and unit.ident in frames_by_ident:
                candidate = _thread_candidate(unit, list(walk_back(frames_by_ident[unit.ident])), target)
            elif unit.kind is Kind.TASK and isinstance(target, asyncio.Future):
                if _task_on_closed_loop(target):
                    closed.append(unit.key)
                    continue
                candidate = _task_candidate(unit, target)
            else:
                continue
            if candidate is not None:
                found.append(candidate)
    finally:
        frames_by_ident.clear()
    return closed, found


def _unchanged(unit: Unit, live: Sequence[types.FrameType]) -> bool:
    """The unit is still where the look saw it: a unit that moved on (woke, ran) is judged by a later look."""
    return tuple(to_frame(f) for f in live) == unit.stack


def _thread_candidate(unit: Unit, live: list[types.FrameType], thread: object) -> _Candidate | None:
    found = find_wait(live)
    if found is None or found.wait.code != unit.blocked_on.code or not _unchanged(unit, live):
        return None
    primitive = primitive_of(found, live)
    if primitive is None:
        return None
    hidden: set[int] = set()
    if isinstance(thread, threading.Thread):
        hidden = {id(_cpython.read_attr(thread, name)) for name in _cpython.THREAD_CALL}
    return _Candidate(unit, primitive[1], primitive[0], list(live), thread, hidden)


def _task_on_closed_loop(task: asyncio.Future[object]) -> bool:
    return not _cpython.task_done(task) and _cpython.loop_closed(_cpython.task_call(task, "get_loop"))


def _task_candidate(unit: Unit, task: asyncio.Future[object]) -> _Candidate | None:
    if _cpython.task_done(task) or _cpython.cancel_pending(task):
        return None
    waiter = _cpython.fut_waiter(task)
    if not isinstance(waiter, asyncio.Future) or _cpython.task_done(waiter):
        return None  # scheduled to run, or its future is done and it wakes at the next loop turn
    coro = _cpython.task_call(task, "get_coro", None)
    live = coroutine_frames(coro)
    if not _unchanged(unit, live):
        return None
    found = find_wait(live)
    primitive: tuple[str, object] | None
    if found is not None:
        primitive = primitive_of(found, live)  # asyncio.Queue.put and the like; None for sleeps and I/O
    elif isinstance(waiter, asyncio.Task):
        primitive = (f"task {_cpython.task_name(waiter)!r}", waiter)
    elif _cpython.gather_children(waiter) is None:
        primitive = ("asyncio.Future", waiter)
    else:
        primitive = None  # a gather: its children may finish by themselves
    if primitive is None:
        return None
    own: list[object] = [*live, *_coroutine_chain(coro)]
    return _Candidate(unit, primitive[1], primitive[0], own, task, {id(coro), id(waiter)})


def _coroutine_chain(coro: object) -> list[object]:
    chain: list[object] = []
    while isinstance(coro, types.CoroutineType | types.GeneratorType | types.AsyncGeneratorType):
        chain.append(coro)
        coro = _cpython.read_attr(coro, _AWAITED[type(coro)])
    return chain


_AWAITED = {
    types.CoroutineType: "cr_await",
    types.GeneratorType: "gi_yieldfrom",
    types.AsyncGeneratorType: "ag_await",
}


def _fixed_point(candidates: list[_Candidate]) -> list[_Candidate]:
    excluded = {id(obj) for c in candidates for obj in c.own}
    excluded.update(id(registry) for registry in _cpython.thread_registries())
    excluded.update((id(candidates), id(excluded)))
    holders = {id(c.holder): c for c in candidates if c.holder is not None}
    pending: dict[int, list[_Candidate]] = {}
    for c in candidates:
        pending.setdefault(id(c.primitive), []).append(c)
    visited: set[int] = set()
    frontier = _roots(candidates, excluded)
    excluded.update((id(frontier), id(visited), id(pending), id(holders)))
    while True:
        woken = _walk(frontier, visited, excluded, pending, holders)
        if not woken:
            woken = _held_unseen(candidates, pending, visited, excluded)
            if not woken:
                return [c for waiting in pending.values() for c in waiting]
        frontier = []
        for c in woken:  # may be woken: everything it holds may wake others
            for obj in c.own:
                excluded.discard(id(obj))
                frontier.append(obj)
            if holders.pop(id(c.holder), None) is not None:
                visited.discard(id(c.holder))  # walk it again, in full this time
                frontier.append(c.holder)


def _held_unseen(
    candidates: list[_Candidate], pending: dict[int, list[_Candidate]], visited: set[int], excluded: set[int]
) -> list[_Candidate]:
    """The candidates left whose primitive something the walk cannot see may reach (analysis.unseen):
    they may be woken. Raises Abandoned when the heap is past the accounting's bound."""
    primitives = {key: waiting[0].primitive for key, waiting in pending.items()}
    frames = [obj for c in candidates if c.unit.kind is Kind.THREAD for obj in c.own]
    innermost = [c.own[0] for c in candidates if c.unit.kind is Kind.THREAD and c.own]
    ours = {id(c) for c in candidates} | {id(vars(c)) for c in candidates}
    ours |= {id(c.own) for c in candidates} | {id(c.hidden) for c in candidates}
    ours |= {id(waiting) for waiting in pending.values()} | {id(candidates), id(frames), id(innermost)}
    ours |= excluded
    held = unseen_holders(primitives, visited, ours, frames, innermost)  # type: ignore[arg-type]
    return [c for key in held for c in pending.pop(key)]


def _walk(
    frontier: list[object],
    visited: set[int],
    excluded: set[int],
    pending: dict[int, list[_Candidate]],
    holders: dict[int, _Candidate],
) -> list[_Candidate]:
    woken: list[_Candidate] = []
    get_referents, is_tracked, frame_type = gc.get_referents, gc.is_tracked, types.FrameType
    module_type = types.ModuleType  # checked here first: the call below is for modules, not every object
    while frontier:
        obj = frontier.pop()
        key = id(obj)
        if not _first_visit(key, visited, excluded):
            continue
        if pending and key in pending:  # a primitive that is itself a root (a task awaited by a root)
            woken.extend(pending.pop(key))
        if type(obj) is frame_type:
            referents = _frame_referents(obj)
        elif issubclass(type(obj), module_type) and (namespace := _cpython.module_namespace(obj)) is not None:
            # A module's namespace is all it holds for Python code, and traversing some C modules
            # never returns (3.12.1's _asyncio module_traverse loops over its task list).
            referents = [namespace]
        elif key in holders:
            referents = _holder_referents(obj, holders[key].hidden)
        else:
            referents = get_referents(obj)
        for referent in referents:
            if pending and id(referent) in pending:  # a primitive may be untracked (a C lock): check first
                woken.extend(pending.pop(id(referent)))
            # Untracked objects (numbers, strings, C locks, tuples of atoms) reach nothing further.
            if is_tracked(referent) or type(referent) is frame_type:
                frontier.append(referent)
    return woken


def _first_visit(key: int, visited: set[int], excluded: set[int]) -> bool:
    """Mark an object visited; False if it was, or is not to be walked. Bounded: a heap past
    MAX_OBJECTS is not proven anything (Abandoned) rather than stall its caller."""
    if key in visited or key in excluded:
        return False
    visited.add(key)
    if len(visited) > MAX_OBJECTS:
        raise Abandoned(f"walk abandoned after {MAX_OBJECTS:,} objects")
    return True


def _holder_referents(holder: object, hidden: set[int]) -> list[object]:
    """A blocked unit's Thread or Task, without what only the unit itself uses."""
    try:
        own_dict = object.__getattribute__(holder, "__dict__")
    except AttributeError:
        own_dict = None
    out: list[object] = []
    for referent in gc.get_referents(holder):
        if id(referent) in hidden:
            continue
        if referent is own_dict and type(own_dict) is dict:
            out.extend(value for value in own_dict.values() if id(value) not in hidden)
        else:
            out.append(referent)
    return out


def _frame_referents(frame: types.FrameType) -> list[object]:
    """An executing frame shows the collector nothing (its thread owns it): read its variables instead."""
    variables = _cpython.frame_variables(frame)
    if variables is None:
        raise Abandoned(UNREADABLE_FRAMES)
    return [*(value for _, value in variables), frame.f_back, frame.f_globals]


def _roots(candidates: list[_Candidate], excluded: set[int]) -> list[object]:
    """Module namespaces, the frames of every thread that is not a candidate (ours from the caller's frame
    on), every pending task that is not one, every trio task and every suspended greenlet."""
    roots: list[object] = [module for module in list(sys.modules.values()) if module is not None]
    me = threading.get_ident()
    for ident, top in sys._current_frames().items():
        frame = _outside_looseends(top) if ident == me else top
        if frame is not None and id(frame) not in excluded:
            roots.append(frame)
    blocked = {id(c.holder) for c in candidates}
    roots.extend(
        task for task in _cpython.all_tasks() if id(task) not in blocked and not _cpython.task_done(task)
    )
    roots.extend(trio_tasks.live_tasks())  # never candidates: trio and gevent waits are not provable
    roots.extend(greenlets.suspended_frames())
    return roots


def _outside_looseends(frame: types.FrameType | None) -> types.FrameType | None:
    while frame is not None and is_own_file(frame.f_code.co_filename):
        frame = frame.f_back
    return frame
