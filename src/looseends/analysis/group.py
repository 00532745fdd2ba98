"""Grouping: units with the same kind, stack, wait and creation site are one paragraph of a report."""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass

from looseends.analysis.patterns import Pattern, pattern_for
from looseends.model import BlockedOn, Frame, Kind, Origin, Unit

__all__ = ["Group", "group_units"]


@dataclass(frozen=True, slots=True)
class Group:
    """Identical units: one representative stack and origin, every member's name and age."""

    kind: Kind
    blocked_on: BlockedOn
    pattern: Pattern | None
    stack: tuple[Frame, ...]
    origin: Origin | None
    units: tuple[Unit, ...]
    count: int  # units it stands for: the members' counts summed (Go profile records stand for many)

    @property
    def destroyed(self) -> bool:
        """Tasks that no longer exist: the collector destroyed them while pending (a dump's summary)."""
        return self.units[0].destroyed

    def ages(self, now: float) -> list[float]:
        return [age for unit in self.units if (age := unit.age(now)) is not None]

    def during(self) -> list[str]:
        """The checks (tests) during which members were created, in first-seen order."""
        seen: dict[str, None] = {}
        for unit in self.units:
            if unit.origin is not None and unit.origin.during is not None:
                seen.setdefault(unit.origin.during)
        return list(seen)


def _signature(unit: Unit) -> Hashable:
    site = unit.origin.site if unit.origin is not None else None
    return (
        unit.kind,
        unit.blocked_on.code,
        unit.blocked_on.description,
        unit.blocked_on.context,
        unit.stack,
        (site.filename, site.lineno) if site is not None else None,
        unit.proof is not None,
        unit.blocked_on.detail.get("vanished"),  # a vanished task is never one group with live ones
        unit.destroyed,
    )


def group_units(units: Iterable[Unit]) -> list[Group]:
    """Groups, largest first; ties keep the order units were seen in."""
    buckets: dict[Hashable, list[Unit]] = {}
    for unit in units:
        buckets.setdefault(_signature(unit), []).append(unit)
    groups = [
        Group(
            kind=members[0].kind,
            blocked_on=members[0].blocked_on,
            pattern=pattern_for(members[0].blocked_on),
            stack=members[0].stack,
            origin=members[0].origin,
            units=tuple(members),
            count=sum(unit.count for unit in members),
        )
        for members in buckets.values()
    ]
    groups.sort(key=lambda g: -g.count)
    return groups
