"""Sources: the impure readers that turn a live process into `Unit`s.

A source is anything with a `name` and a `read(detail=...)` returning units; a new kind of unit is
one file here and one entry in `DEFAULT_SOURCES`. With `detail=False` a source returns identities
only (kind, key, name, weak reference): enough to compare with a baseline, and far cheaper than
stacks and classification, so a check where nothing leaked pays almost nothing. A source that fails
is recorded in `Snapshot.errors` instead of breaking the snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from looseends.model import Snapshot, Unit
from looseends.sources.processes import ProcessSource
from looseends.sources.tasks import TaskSource
from looseends.sources.threads import ThreadSource


class Source(Protocol):
    name: str

    def read(self, *, detail: bool = True) -> Sequence[Unit]: ...


DEFAULT_SOURCES: tuple[Source, ...] = (ThreadSource(), TaskSource(), ProcessSource())


def take_snapshot(sources: Sequence[Source] = DEFAULT_SOURCES, *, detail: bool = True) -> Snapshot:
    """Read every source once; `detail=False` reads identities only."""
    units: list[Unit] = []
    errors: list[str] = []
    for source in sources:
        try:
            units.extend(source.read(detail=detail))
        except Exception as exc:
            errors.append(f"{source.name}: {type(exc).__name__}: {exc}")
    return Snapshot(tuple(units), time.monotonic(), tuple(errors))


__all__ = ["DEFAULT_SOURCES", "ProcessSource", "Source", "TaskSource", "ThreadSource", "take_snapshot"]
