"""Pending tasks that vanish while tracking is on: leaks that no later snapshot can see.

A task still pending when the garbage collector destroys it ("Task was destroyed but it is pending!")
could never have been woken. A task still pending when its runner shuts the loop down (`asyncio.run`,
`asyncio.Runner`, pytest-asyncio, `IsolatedAsyncioTestCase`) is cancelled silently. Both are described
just before they vanish, once each (a task cancelled at shutdown and later destroyed is one unit), and a
check takes the ones created during it.

The hooks run inside the host's calls, and a destructor may run them at any moment in any thread: they
take no lock, and every change to the shared record is one atomic dict operation.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import Any

from looseends import _cpython
from looseends.model import DESTROYED_LAST, Unit
from looseends.sources import _collection, _reported, _tracking
from looseends.sources._origins import task_created_at
from looseends.sources.tasks import (
    CANCELLED_AT_SHUTDOWN,
    DESTROYED,
    STOPPED_BY_DESIGN,
    UNREAD,
    handles_its_cancellation,
    live_unit,
    pending_tasks,
    vanished_unit,
)

DESTROYED_PENDING = "Task was destroyed but it is pending!"  # asyncio's message from Task.__del__
DESTROYED_PROOF = "destroyed by the garbage collector while pending: nothing could reach it"
MAX_VANISHED = 10_000

# Proofs for tasks about to be cancelled at shutdown: given a way to look at them (twice, a step apart),
# the keys of those proven stuck and why. Handed in by the check that wants proofs (a Taker's `prover`):
# the composing layer owns the proofs, and a check with prove=False hands none.
ShutdownProver = Callable[[Callable[[], Sequence[Unit]]], Mapping[Hashable, str]]

_vanished: dict[int, tuple[Unit, float]] = {}  # one by one, with when, for the checks running now
# The live summary of tasks destroyed while pending, by creation site and wait: a fire-and-forget leak in a
# service shows as a count that keeps growing (dumps, watch, Prometheus). Bounded by MAX_PLACES.
MAX_PLACES = 256
_destroyed: dict[str, tuple[int, float, float, Unit]] = {}  # by creation site
_numbers = itertools.count()


@dataclass(frozen=True)
class Taker:
    """A check running now: what it will report (created since it began, and no ignore rule of its
    matches) and how to prove it stuck, if it wants proofs (`prover`; None: no proofs). A loop's
    shutdown proves only what some taker will report, and only if one of them hands a prover.

    A task made by a call tracking does not wrap (`asyncio.Task(...)`, a C library's) has no creation
    time: it is the check's when it was not alive at the start (`knew`: the keys of the tasks alive
    then) and vanished after it."""

    since: float
    wants: Callable[[Unit], bool]
    prover: ShutdownProver | None
    knew: Callable[[Hashable], bool] = lambda key: True  # without a baseline: claim nothing

    def made_during(self, unit: Unit, vanished_at: float) -> bool:
        created = unit.origin.created_at if unit.origin is not None else None
        if created is not None:
            return created >= self.since
        return vanished_at >= self.since and not self.knew(unit.key)

    def may_take(self, unit: Unit, vanished_at: float) -> bool:
        """Whether this check could still take a task that vanished at `vanished_at`."""
        return self.made_during(unit, vanished_at) and self.wants(unit)


_takers: dict[int, Taker] = {}


def taking(taker: Taker) -> Callable[[], None]:
    """Register a running check's interest until the returned undo is called."""
    _takers[id(taker)] = taker

    def undo() -> None:
        _takers.pop(id(taker), None)

    return undo


def take_vanished(taker: Taker, wanted: Callable[[Unit], bool]) -> list[Unit]:
    """Remove and return the vanished tasks made during `taker`'s check that `wanted` accepts.

    Taking them means a vanished task is reported by one check only, the innermost one that saw it.
    """
    taken = []
    for number in list(_vanished):
        entry = _vanished.get(number)
        if (
            entry is not None
            and taker.made_during(*entry)
            and wanted(entry[0])
            and _vanished.pop(number, None) is not None
        ):
            taken.append(entry[0])
    return taken


def vanished_since(taker: Taker) -> bool:
    """Whether any task made during `taker`'s check vanished: what a check that sees nothing else new
    still has to report."""
    return bool(_vanished) and any(taker.made_during(*entry) for entry in list(_vanished.values()))


def mark_reported(units: Sequence[Unit]) -> None:
    """Tasks a check has reported while pending: when the collector destroys them later, that is the same
    leak, not a new one for whichever check is still running then."""
    for unit in units:
        task = unit.ref() if unit.ref is not None else None
        if isinstance(task, asyncio.Task):
            _reported.guard(task, _cpython.task_call(task, "get_coro", None))


def destroyed_units() -> list[Unit]:
    """The live summary: one unit per creation site, standing for every task destroyed there."""
    now = time.monotonic()
    units = []
    for place, (count, first, last, sample) in list(_destroyed.items()):
        detail = {**sample.blocked_on.detail, "destroyed_first_s_ago": round(now - first, 1)}
        detail[DESTROYED_LAST] = round(now - last, 1)
        blocked = replace(sample.blocked_on, detail=detail)
        key = ("destroyed", place)
        units.append(
            replace(sample, key=key, name="destroyed while pending", blocked_on=blocked, count=count)
        )
    return units


def _summarise(unit: Unit) -> None:
    """Count it under its creation site. What it waited on is kept from a task whose wait was read (when it
    was destroyed, or by the last snapshot): the collector may close a coroutine before its task's
    finalizer runs, leaving nothing to read."""
    site = unit.origin.site if unit.origin is not None else None
    key = site.location if site is not None else "?"
    now = time.monotonic()
    known = _destroyed.get(key)
    if known is not None:
        sample = (
            unit
            if UNREAD in known[3].blocked_on.detail and UNREAD not in unit.blocked_on.detail
            else known[3]
        )
        _destroyed[key] = (known[0] + 1, known[1], now, sample)
    elif len(_destroyed) < MAX_PLACES:
        _destroyed[key] = (1, now, now, unit)


def _record(task: asyncio.Task[Any], how: str, proof: str | None, unit: Unit | None = None) -> None:
    """Describe a vanishing task once: one reported already (while pending, or cancelled at its loop's
    shutdown) is not recorded again when the collector destroys it."""
    coro = _cpython.task_call(task, "get_coro", None)
    destroyed = how == DESTROYED
    seen = _reported.release(task, coro) if destroyed else _reported.guarded(task, coro)
    watched = _tracking.state.checks > 0  # without a check running, only the live summary is kept
    if (seen and not destroyed) or not (destroyed or watched):
        return
    found = vanished_unit(task, how, proof, unit)
    if found is None:
        return
    if destroyed:
        _summarise(found)  # the live summary counts every one, reported before or not
    if watched and not seen and (len(_vanished) < MAX_VANISHED or _drop_unwanted()):
        if not destroyed:
            _reported.guard(task, coro)
        _vanished[next(_numbers)] = (found, time.monotonic())


def _drop_unwanted() -> bool:
    """Make room by dropping what no running check can take (tasks older than every check, or judged by
    checks that have ended): a full record must never turn away a new leak. Whether room was made."""
    takers = list(_takers.values())
    for number, entry in list(_vanished.items()):
        if not any(taker.may_take(*entry) for taker in takers):
            _vanished.pop(number, None)
    return len(_vanished) < MAX_VANISHED


def _record_shutdown(loop: asyncio.AbstractEventLoop) -> None:
    if _tracking.state.checks == 0:  # nobody will take them: no proofs, no records
        return
    takers = list(_takers.values())
    first = min((t.since for t in takers), default=None)
    # A task made before every running check began is none of theirs: not even described. One whose
    # making no wrapper saw is described, and judged by the checks' baselines.
    tasks = [
        task
        for task in pending_tasks(loop)
        if first is not None and ((made := task_created_at(task)) is None or made >= first)
    ]
    if not tasks:
        return
    now = time.monotonic()

    def reported(unit: Unit) -> bool:
        return any(t.made_during(unit, now) and t.wants(unit) for t in takers)

    def look() -> list[Unit]:
        return [unit for task in tasks if (unit := live_unit(task)) is not None and reported(unit)]

    # Proofs walk the heap: only for what a check will report, and only if one asked for proofs. A loop
    # closed with nothing reportable pending (a test runner's own task) costs no walk.
    wanted = look()
    prover = next((t.prover for t in takers if t.prover is not None), None)
    proofs: Mapping[Hashable, str] = prover(look) if prover is not None and wanted else {}
    for unit in wanted:
        task = unit.ref() if unit.ref is not None else None
        if isinstance(task, asyncio.Task):
            how = STOPPED_BY_DESIGN if handles_its_cancellation(task) else CANCELLED_AT_SHUTDOWN
            _record(task, how, proofs.get(unit.key), unit)


def _clear() -> None:
    _vanished.clear()
    _destroyed.clear()


def _recording_handler(original: Callable[..., Any]) -> Callable[..., Any]:
    def call_exception_handler(self: Any, context: dict[str, Any]) -> None:
        try:
            task = context.get("task")
            if context.get("message") == DESTROYED_PENDING and isinstance(task, asyncio.Task):
                _record(task, DESTROYED, DESTROYED_PROOF)
        except Exception:  # recording is ours: it must never change what the host's call does
            pass
        original(self, context)

    return call_exception_handler


def _install_loops(stack: ExitStack) -> None:
    """asyncio's loop, and uvloop's as soon as it is loaded (tracking may have begun before)."""
    for loop_class in _cpython.loop_classes():
        if not _tracking.is_patched(loop_class, "call_exception_handler"):
            handler = _recording_handler(loop_class.call_exception_handler)
            _tracking.patch(stack, loop_class, "call_exception_handler", handler)


def _install(stack: ExitStack) -> None:

    module, name = _cpython.CANCEL_ALL_TASKS
    original_cancel_all = getattr(module, name)

    def cancel_all_tasks(loop: asyncio.AbstractEventLoop) -> None:
        try:
            _record_shutdown(loop)
        except Exception:
            pass
        original_cancel_all(loop)

    _tracking.patch(stack, module, name, cancel_all_tasks)
    _collection.install(stack)
    _reported.install(stack)
    stack.callback(_clear)


_tracking.register(_install)
_tracking.register(_install_loops, again_on_entry=True)
