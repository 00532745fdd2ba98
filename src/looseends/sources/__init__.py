"""Sources: the impure readers that turn a live process into `Unit`s.

A source is anything with a `name` and a `read()` returning units; a new kind of unit is one file
here and one entry in `DEFAULT_SOURCES`. A source that fails is recorded in `Snapshot.errors`
instead of breaking the snapshot.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Protocol

from looseends.model import Snapshot, Unit
from looseends.sources.tasks import TaskSource
from looseends.sources.threads import ThreadSource


class Source(Protocol):
    name: str

    def read(self) -> Sequence[Unit]: ...


DEFAULT_SOURCES: tuple[Source, ...] = (ThreadSource(), TaskSource())


def take_snapshot(sources: Sequence[Source] = DEFAULT_SOURCES) -> Snapshot:
    """Read every source once."""
    units: list[Unit] = []
    errors: list[str] = []
    for source in sources:
        try:
            units.extend(source.read())
        except Exception as exc:
            errors.append(f"{source.name}: {type(exc).__name__}: {exc}")
    return Snapshot(tuple(units), time.monotonic(), tuple(errors))


__all__ = ["DEFAULT_SOURCES", "Source", "TaskSource", "ThreadSource", "take_snapshot"]
