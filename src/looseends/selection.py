"""Selecting the units a dump shows: by kind, by blocked-on code (a glob), only proven ones.

Shared by the endpoint (from its query string) and the command line (from its flags, over Go dumps too).
looseends' own work never shows: the endpoint's threads come and go with requests, and the thread
answering a dump or a scrape is busy with exactly that.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from looseends.analysis.glob import glob_match
from looseends.model import RUNNING, Kind, Snapshot, Unit
from looseends.report import Report

__all__ = ["Selection", "parse_kinds"]

OWN_THREADS = "looseends-http"  # serve()'s thread and its request threads


@dataclass(frozen=True, slots=True)
class Selection:
    kinds: frozenset[Kind] | None = None
    blocked_on: str | None = None  # a glob over blocked-on codes, such as queue.*
    proven: bool = False

    def select(self, snapshot: Snapshot) -> Report:
        units = [
            _beyond_the_answer(unit)
            for unit in snapshot.units
            if not unit.name.startswith(OWN_THREADS)
            and not (unit.kind is Kind.TASK and _answering_this_dump(unit))
            and (self.kinds is None or unit.kind in self.kinds)
            and (self.blocked_on is None or glob_match(unit.blocked_on.code, self.blocked_on))
            and (not self.proven or unit.proof is not None)
        ]
        return Report.from_units(units, now=snapshot.taken_at, errors=snapshot.errors, max_groups=10_000)


_ANSWERING = frozenset({"looseends.frontends.mounts", "looseends.frontends.prometheus"})


def _answering_this_dump(unit: Unit) -> bool:
    """The mounted app's own request task waiting for the dump it is taking, or the thread running a
    Prometheus scrape."""
    return any(frame.module in _ANSWERING for frame in unit.stack)


def _beyond_the_answer(unit: Unit) -> Unit:
    """A thread caught inside our answering code (the event loop's thread starting the dump's thread, a
    scrape) is the program's thread all the same: shown running, with the frames outside our code. A
    dump never drops a unit of the program's: that would be an all-clear for it."""
    if unit.kind is not Kind.THREAD or not _answering_this_dump(unit):
        return unit
    outermost = max(n for n, frame in enumerate(unit.stack) if frame.module in _ANSWERING)
    return replace(unit, stack=unit.stack[outermost + 1 :], blocked_on=RUNNING)


def parse_kinds(text: str) -> frozenset[Kind]:
    """`thread,task` -> the kinds; ValueError naming the accepted ones otherwise."""
    try:
        return frozenset(Kind(part.strip()) for part in text.split(",") if part.strip())
    except ValueError:
        raise ValueError(f"kind={text!r}: expected {', '.join(str(k) for k in Kind)}") from None
