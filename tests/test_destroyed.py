"""Tasks the collector destroys while pending, in a running service: a leak that must not hide by being
collected. Every dump counts each one exactly once (live, or destroyed), says what it waited on while
that could still be read, never calls it live or gives it an age, and `watch` flags its place."""

from __future__ import annotations

import asyncio
import gc

import pytest

import looseends
from looseends.core.growth import Growth
from looseends.model import Unit

pytestmark = pytest.mark.looseends_allow(reason="leaks tasks on purpose, for the collector to destroy")


async def analytics(done: asyncio.Event) -> None:
    await done.wait()  # nobody sets it


async def seen_before_collected(done: asyncio.Event) -> None:
    await done.wait()


async def never_seen(done: asyncio.Event) -> None:
    await done.wait()


def _at(units: tuple[Unit, ...], function: str) -> tuple[int, int]:
    """(live, destroyed) units created by a coroutine of `function`, by their creation site's caller."""
    live = destroyed = 0
    for unit in units:
        site = unit.origin.site if unit.origin is not None else None
        if site is None or site.function != f"{function}_leaks":
            continue
        if unit.destroyed:
            destroyed += unit.count
        else:
            live += unit.count
    return live, destroyed


def analytics_leaks() -> None:
    asyncio.get_running_loop().create_task(analytics(asyncio.Event()))


def seen_before_collected_leaks() -> None:
    asyncio.get_running_loop().create_task(seen_before_collected(asyncio.Event()))


def never_seen_leaks() -> None:
    asyncio.get_running_loop().create_task(never_seen(asyncio.Event()))


def test_every_dump_counts_each_leaked_task_once_live_or_destroyed() -> None:
    """A dump's own allocations can start a collection between its live read and its destroyed summary:
    both are read in one pause of the collector, so the sum is exact in every dump."""

    async def main() -> list[tuple[int, int]]:
        sums = []
        with looseends.track():
            before = sum(_at(looseends.snapshot().units, "analytics"))
            for made in range(1, 41):
                analytics_leaks()
                await asyncio.sleep(0)
                if made % 3 == 0:
                    gc.collect()
                live, destroyed = _at(looseends.snapshot().units, "analytics")
                sums.append((made, live + destroyed - before))
        return sums

    for made, counted in asyncio.run(main()):
        assert counted == made


def test_a_destroyed_task_keeps_the_wait_it_had_when_last_seen_and_is_not_live() -> None:
    async def main() -> looseends.Report:
        with looseends.track():
            for _ in range(5):
                seen_before_collected_leaks()
            await asyncio.sleep(0)
            looseends.snapshot()  # a dump sees them waiting
            gc.collect()  # the collector closes their coroutines, then destroys them
            dump = looseends.snapshot()
        return looseends.Report.from_units(dump.units, now=dump.taken_at)

    report = asyncio.run(main())
    group = next(
        g
        for g in report.groups
        if g.destroyed and g.stack and g.stack[-1].function == "seen_before_collected"
    )
    assert group.blocked_on.code == "asyncio.event.wait"
    assert group.ages(report.now) == []  # gone: no age that keeps growing
    text = report.render(title="looseends dump")
    assert "destroyed while pending (the last" in text
    assert "one of them, as last read: blocked in asyncio.Event.wait" in text
    live = looseends.Report(tuple(g for g in report.groups if not g.destroyed), report.now)
    assert text.splitlines()[0].startswith(f"looseends dump: {live.summary('live')}")
    assert "tasks destroyed while pending" in text.splitlines()[0]


def test_a_task_destroyed_before_any_dump_saw_it_names_its_coroutine_and_claims_no_wait() -> None:
    async def main() -> looseends.Report:
        with looseends.track():
            never_seen_leaks()
            await asyncio.sleep(0)
            gc.collect()
            dump = looseends.snapshot()
        return looseends.Report.from_units(dump.units, now=dump.taken_at)

    report = asyncio.run(main())
    group = next(
        g for g in report.groups if g.destroyed and g.origin and g.origin.site.function == "never_seen_leaks"
    )  # type: ignore[union-attr]
    assert group.stack[0].function == "never_seen"  # its coroutine's function, where it was defined
    assert "no longer shows" in group.blocked_on.description  # not "a bare Future (no Python frames)"


def test_watch_flags_a_place_whose_tasks_are_collected_while_pending() -> None:
    """The live count rises and falls as the collector runs; made-and-not-finished never falls, and
    tasks destroyed pending are proven leaks."""

    async def main() -> Growth:
        growth = Growth(min_growth=1, min_blocked=50)
        with looseends.track():
            for sample in range(6):
                for _ in range(4):
                    analytics_leaks()
                await asyncio.sleep(0)
                if sample % 2:
                    gc.collect()
                dump = looseends.snapshot()
                growth.add(looseends.Report.from_units(dump.units, now=dump.taken_at))
        return growth

    growth = asyncio.run(main())
    suspects = growth.suspects()
    key = next(key for key in suspects if "analytics_leaks" in key or "test_destroyed.py" in key)
    assert "destroyed while pending during the watch" in suspects[key]
    made = growth.series(key)
    assert made == sorted(made)  # never backwards
