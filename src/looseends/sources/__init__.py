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
from collections.abc import Hashable, Sequence
from typing import Protocol

from looseends import _cpython
from looseends.model import Snapshot, Unit
from looseends.sources import _origins, _shutdown, _spawns, _vanished, greenlets  # noqa: F401 - each registers its tracking
from looseends.sources._tracking import creation_mark, is_tracking
from looseends.sources.greenlets import GreenletSource
from looseends.sources.processes import ProcessSource
from looseends.sources.tasks import TaskSource
from looseends.sources.threads import ThreadSource
from looseends.sources.trio_tasks import TrioTaskSource


class Source(Protocol):
    name: str

    def read(self, *, detail: bool = True) -> Sequence[Unit]: ...


DEFAULT_SOURCES: tuple[Source, ...] = (
    ThreadSource(_active=greenlets.threads_by_os_ident),  # gevent's patched threading: the OS ident too
    TaskSource(),
    TrioTaskSource(),
    GreenletSource(),
    ProcessSource(),
)


def take_snapshot(sources: Sequence[Source] = DEFAULT_SOURCES, *, detail: bool = True) -> Snapshot:
    """Read every source once; `detail=False` reads identities only.

    The collector is paused while units are built: a snapshot of 100,000 tasks allocates a few objects
    per task, and the collections that triggers (each traversing every task) cost a quarter of it.
    """
    units: list[Unit] = []
    errors: list[str] = []
    collecting = gc.isenabled()
    gc.disable()
    try:
        for source in sources:
            try:
                units.extend(source.read(detail=detail))
            except Exception as exc:
                errors.append(f"could not read {source.name}: {type(exc).__name__}: {exc}")
    finally:
        if collecting:
            gc.enable()
    return Snapshot(tuple(units), time.monotonic(), tuple(errors))


def fingerprint() -> Hashable:
    """What changes when anything may have started: tracked creations, live thread idents, registered task
    counts. Equal fingerprints around a span, with tracking on throughout, mean nothing new is running,
    so a check needs no look at all. Far cheaper than even an identity-only snapshot."""
    return creation_mark(), frozenset(sys._current_frames()), _cpython.task_count()


_last_identities: list[tuple[Hashable, Snapshot]] = []  # at most one: (fingerprint, identity snapshot)


def identities() -> tuple[Hashable, Snapshot]:
    """The fingerprint and an identity-only snapshot. While tracking is on and the fingerprint has not
    moved since the last call, the last snapshot still holds (nothing started or ended: turning tracking
    on moves the fingerprint), so a run of tests that start nothing pays for one look, not one each."""
    mark = fingerprint()
    if is_tracking() and _last_identities and _last_identities[0][0] == mark:
        return mark, _last_identities[0][1]
    taken = take_snapshot(detail=False)
    _last_identities[:] = [(mark, taken)]
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
