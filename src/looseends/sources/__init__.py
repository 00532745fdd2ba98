"""Sources: the impure readers that turn a live process into `Unit`s.

A source is anything with a `name` and a `read(detail=...)` returning units; a new kind of unit is
one file here and one entry in `DEFAULT_SOURCES`. With `detail=False` a source returns identities
only (kind, key, name, weak reference): enough to compare with a baseline, and far cheaper than
stacks and classification, so a check where nothing leaked pays almost nothing. A source that fails
is recorded in `Snapshot.errors` instead of breaking the snapshot.
"""

from __future__ import annotations

import gc
import sys
import time
import weakref
from collections.abc import Callable, Hashable, Sequence
from typing import Protocol

from looseends import _cpython
from looseends.model import Snapshot, Unit
from looseends.sources import (  # noqa: F401 - each registers its tracking
    _origins,
    _shutdown,
    _spawns,
    _tracking,
    _vanished,
    greenlets,
)
from looseends.sources._kernel import children_listed
from looseends.sources._tracking import is_tracking
from looseends.sources.greenlets import GreenletSource
from looseends.sources.processes import ProcessSource
from looseends.sources.tasks import TaskSource
from looseends.sources.threads import ThreadSource
from looseends.sources.trio_tasks import TrioTaskSource


class Source(Protocol):
    name: str

    def read(self, *, detail: bool = True) -> Sequence[Unit]: ...


THREADS = ThreadSource(_active=greenlets.threads_by_os_ident)  # gevent's patched threading: the OS ident too
TASKS = TaskSource()
DEFAULT_SOURCES: tuple[Source, ...] = (THREADS, TASKS, TrioTaskSource(), GreenletSource(), ProcessSource())


def take_snapshot(
    sources: Sequence[Source] = DEFAULT_SOURCES, *, detail: bool = True, destroyed: bool = False
) -> Snapshot:
    """Read every source once; `detail=False` reads identities only. With `destroyed`, the live summary
    of tasks destroyed while pending comes first, in the same pause of the collector: a collection
    between the two reads would count its tasks twice (still live, and destroyed) or not at all."""
    units, errors = _read(sources, detail, _vanished.destroyed_units if destroyed else None)
    return Snapshot(units, time.monotonic(), errors)


Read = tuple[tuple[Unit, ...], tuple[str, ...]]  # units, and what could not be read


def _read(sources: Sequence[Source], detail: bool, first: Callable[[], list[Unit]] | None = None) -> Read:
    """The collector is paused while units are built: a snapshot of 100,000 tasks allocates a few objects
    per task, and the collections that triggers (each traversing every task) cost a quarter of it."""
    units: list[Unit] = []
    errors: list[str] = []
    collecting = gc.isenabled()
    gc.disable()
    try:
        if first is not None:
            units.extend(first())
        for source in sources:
            try:
                units.extend(source.read(detail=detail))
            except Exception as exc:
                errors.append(f"could not read {source.name}: {type(exc).__name__}: {exc}")
    finally:
        if collecting:
            gc.enable()
    return tuple(units), tuple(errors)


# The sources each part of the fingerprint vouches for, in its order: while tracking is on and a part
# stands still, nothing those sources would show can have started or ended. A thread's start moves its
# part only, so the look after a test that started and joined a thread re-reads the threads alone.
_PART_SOURCES: tuple[tuple[Source, ...], ...] = ((THREADS,), (TASKS,), DEFAULT_SOURCES[2:])


class Alive:
    """Objects alive at one moment, by identity, held weakly: equal to another moment's only when the
    very same objects are alive in both. Equal counts, or equal ids, are not enough: a task that
    finished and a new one made at its freed address look the same to both."""

    __slots__ = ("_refs",)

    def __init__(self, objects: Sequence[object]) -> None:
        self._refs = {id(obj): weakref.ref(obj) for obj in objects}

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Alive) or self._refs.keys() != other._refs.keys():
            return False
        return all(
            (obj := ref()) is not None and obj is other._refs[key]() for key, ref in self._refs.items()
        )

    def __hash__(self) -> int:
        return len(self._refs)


# Most fingerprints (a test's, outside any loop) see no task: one shared value, which the comparison of
# two fingerprints (tuples) finds equal by identity, without asking `Alive.__eq__`.
NO_TASKS = Alive(())


def fingerprint() -> tuple[Hashable, ...]:
    """What changes when anything may have started, whatever made it: live threads (by ident) and tasks
    (by identity), children (from the kernel), and the creation marks of what no cheap registry lists
    (greenlets: their first switch; trio tasks: trio's own spawn hook). Equal fingerprints around a span,
    with tracking on throughout, mean nothing new is running, so a check needs no look at all. Far
    cheaper than even an identity-only snapshot."""
    marks = _tracking.state
    threads = frozenset(sys._current_frames())
    tasks = _cpython.live_tasks()
    return (
        (marks.threads, threads),
        (marks.tasks, Alive(tasks) if tasks else NO_TASKS),
        (marks.others, children_listed(threads)),
    )


# At most one: (fingerprint, identity snapshot, that snapshot's units and errors by part)
_last_identities: list[tuple[tuple[Hashable, ...], Snapshot, tuple[Read, ...]]] = []


def identities(mark: tuple[Hashable, ...] | None = None) -> tuple[Hashable, Snapshot]:
    """The fingerprint and an identity-only snapshot. While tracking is on, the sources of every part of
    the fingerprint that has not moved since the last call are not read again (nothing started or ended:
    turning tracking on moves every part), so a run of tests that start nothing pays for one look, not
    one each, and a test that starts a thread pays for a look at threads. `mark`: the fingerprint, when
    the caller has just taken it."""
    mark = fingerprint() if mark is None else mark
    last = _last_identities[0] if _last_identities and is_tracking() else None
    if last is not None and last[0] == mark:
        return mark, last[1]
    parts: list[Read] = []
    units: list[Unit] = []
    errors: list[str] = []
    for index, sources in enumerate(_PART_SOURCES):
        same = last is not None and last[0][index] == mark[index]
        part = last[2][index] if last is not None and same else _read(sources, False)
        parts.append(part)
        units += part[0]
        errors += part[1]
    taken = Snapshot(tuple(units), time.monotonic(), tuple(errors))
    _last_identities[:] = [(mark, taken, tuple(parts))]
    return mark, taken


__all__ = [
    "DEFAULT_SOURCES",
    "ProcessSource",
    "Source",
    "TaskSource",
    "ThreadSource",
    "fingerprint",
    "identities",
    "take_snapshot",
]
