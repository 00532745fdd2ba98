"""The baseline is just another ignore rule: whatever was alive when it was taken (goleak's IgnoreCurrent)."""

from __future__ import annotations

from looseends.analysis.ignore import IgnoreRule
from looseends.model import Snapshot, Unit

__all__ = ["ignore_current"]


def ignore_current(snapshot: Snapshot) -> IgnoreRule:
    """Units of `snapshot` that are still the same object later (a reused thread ident is not)."""
    known = {unit.key: unit for unit in snapshot.units}

    def matches(unit: Unit) -> bool:
        before = known.get(unit.key)
        return before is not None and before.same_object(unit)

    return IgnoreRule(f"alive at the baseline ({len(known)} units)", matches)
