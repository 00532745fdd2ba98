"""Prometheus metrics (extra: `pip install looseends[prometheus]`): live units by kind and blocked-on, and
the largest groups. Label values come from a fixed vocabulary (kinds, blocked-on codes) plus at most
`top_groups` creation sites, so cardinality stays bounded however many units a service has.

    looseends.frontends.prometheus.register()   # then expose prometheus_client's registry as usual
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from looseends.errors import LooseEndsError, OptionError
from looseends.model import Frame, Snapshot, first_user_frame
from looseends.report import Report
from looseends.selection import Selection
from looseends.sources import take_snapshot

__all__ = ["LooseEndsCollector", "register"]

MAX_TOP_GROUPS = 50


def _client() -> Any:
    try:
        import prometheus_client.core
    except ImportError:
        raise LooseEndsError(
            "Prometheus metrics need prometheus_client: pip install 'looseends[prometheus]'"
        ) from None
    return prometheus_client.core


def _with_destroyed() -> Snapshot:
    return take_snapshot(destroyed=True)


class LooseEndsCollector:
    """A custom collector: each scrape takes one snapshot (no locks, no stacks kept)."""

    def __init__(
        self,
        *,
        top_groups: int = 10,
        _snapshot: Callable[[], Snapshot] = _with_destroyed,
    ) -> None:
        if (
            isinstance(top_groups, bool)
            or not isinstance(top_groups, int)
            or not 0 <= top_groups <= MAX_TOP_GROUPS
        ):
            raise OptionError(f"invalid top_groups={top_groups!r}: expected 0 to {MAX_TOP_GROUPS}")
        self._core = _client()
        self._top = top_groups
        self._snapshot = _snapshot

    def describe(self) -> list[Any]:
        return []  # metric names are fixed, but describing would scrape at registration: skip that

    def collect(self) -> Iterator[Any]:
        taken = Selection().select(self._snapshot())  # the service's units, not looseends' own
        live = Report(tuple(group for group in taken.groups if not group.destroyed), taken.now)
        destroyed_units = [unit for group in taken.groups if group.destroyed for unit in group.units]
        units = self._core.GaugeMetricFamily(
            "looseends_units",
            "Live threads, tasks and processes by what they are blocked on",
            labels=["kind", "blocked_on"],
        )
        counts: dict[tuple[str, str], int] = {}
        for unit in live.units:
            key = (str(unit.kind), unit.blocked_on.code)
            counts[key] = counts.get(key, 0) + unit.count
        for (kind, code), count in sorted(counts.items()):
            units.add_metric([kind, code], count)
        yield units
        groups = self._core.GaugeMetricFamily(
            "looseends_group_units",
            "Units in the largest groups of identical stacks, by where they are stuck",
            labels=["kind", "blocked_on", "where"],
        )
        for group in live.groups[: self._top]:
            user = [frame for frame in group.stack if not frame.is_library]
            site = group.origin.site if group.origin is not None else None
            frame = user[0] if user else site or first_user_frame(group.stack)
            where = _where(frame)
            groups.add_metric([str(group.kind), group.blocked_on.code, where], group.count)
        yield groups
        destroyed = self._core.CounterMetricFamily(
            "looseends_tasks_destroyed_pending",
            "asyncio tasks the garbage collector destroyed while still pending, by where they were created",
            labels=["blocked_on", "where"],
        )
        for unit in sorted(destroyed_units, key=lambda unit: -unit.count)[:MAX_TOP_GROUPS]:
            site = unit.origin.site if unit.origin is not None else None
            where = _where(site)
            destroyed.add_metric([unit.blocked_on.code, where], unit.count)
        yield destroyed
        yield self._places(taken)

    def _places(self, taken: Report) -> Any:
        """Units by where they were created: pending now, or destroyed while pending since tracking
        began. A fire-and-forget leak's live count falls each time the collector runs; this never does."""
        places = self._core.GaugeMetricFamily(
            "looseends_place_units",
            "Units by where they were created, pending now or destroyed while pending: a leak cannot hide "
            "by being collected",
            labels=["kind", "where"],
        )
        counts: dict[tuple[str, str], int] = {}
        for group in taken.groups:
            site = group.origin.site if group.origin is not None else None
            if site is not None:
                key = (str(group.kind), _where(site))
                counts[key] = counts.get(key, 0) + group.count
        for (kind, where), count in sorted(counts.items(), key=lambda item: -item[1])[: self._top]:
            places.add_metric([kind, where], count)
        return places


def _where(frame: Frame | None) -> str:
    """A label value: the same on every machine that runs the same code (no library paths)."""
    if frame is None:
        return "?"
    return frame.place if frame.is_library else f"{frame.function} {frame.place}"


def register(registry: Any = None, *, top_groups: int = 10) -> LooseEndsCollector:
    """Register a collector with `registry` (prometheus_client's default REGISTRY when None)."""
    collector = LooseEndsCollector(top_groups=top_groups)
    if registry is None:
        import prometheus_client

        registry = prometheus_client.REGISTRY
    registry.register(collector)
    return collector
