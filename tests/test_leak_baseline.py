"""A baseline entry matches the same leak however a run happened to see it.

A forgotten task in a garbage cycle is read live in one run (its wait known) and destroyed by the
collector in another, sometimes with its coroutine closed first, so its wait cannot be read ("unread").
Seen on 3.15 in CI: the Django runner's baseline recorded such a task as `asyncio.future`, and the next
run, which read it live in `asyncio.event.wait`, failed the test as a new leak and called the entry fixed.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from looseends.analysis.leak_baseline import UNKNOWN_WAIT, LeakBaseline, keys_of
from looseends.model import BlockedOn, Frame, Kind, Origin, Unit
from looseends.sources.tasks import UNREAD

OWNER = "shop.tests.IsolatedTests.test_forgets_a_task"
SITE = Frame("shop/tests.py", 39, "IsolatedTests.test_forgets_a_task", "shop.tests")


def task(code: str, *, unread: bool = False, name: str = "forgotten") -> Unit:
    detail = {UNREAD: 1} if unread else {}
    return Unit(
        kind=Kind.TASK,
        key=("task", name),
        name=name,
        blocked_on=BlockedOn(code, code, detail),
        origin=Origin((SITE,)),
    )


def baseline(tmp_path: Path, *units: Unit) -> LeakBaseline:
    return LeakBaseline(tmp_path / "leaks.json", keys_of(OWNER, units))


def test_an_unread_wait_is_written_as_unknown() -> None:
    (key,) = keys_of(OWNER, [task("asyncio.future", unread=True)])
    assert key[3] == UNKNOWN_WAIT


def test_a_leak_recorded_unread_matches_it_read_live_and_is_not_fixed(tmp_path: Path) -> None:
    recorded = baseline(tmp_path, task("asyncio.future", unread=True))
    live = [task("asyncio.event.wait")]
    assert recorded.split(OWNER, live) == (live, [], [])
    assert recorded.progress(keys_of(OWNER, live), lambda owner: True) == (0, 0)


def test_a_leak_recorded_live_matches_it_unread(tmp_path: Path) -> None:
    recorded = baseline(tmp_path, task("asyncio.event.wait"))
    unread = [task("asyncio.future", unread=True)]
    assert recorded.split(OWNER, unread) == (unread, [], [])
    assert recorded.progress(keys_of(OWNER, unread), lambda owner: True) == (0, 0)


def test_an_unread_wait_still_counts_units(tmp_path: Path) -> None:
    recorded = baseline(tmp_path, task("asyncio.event.wait"))
    two = [task("asyncio.future", unread=True), task("asyncio.event.wait", name="another")]
    known, new, over = recorded.split(OWNER, two)
    assert known == []
    assert new == two
    assert len(over) == 1
    assert "allows 1 tasks created in shop.tests.IsolatedTests.test_forgets_a_task" in over[0]
    assert "(whatever they wait on); this run found 2" in over[0]


def test_known_waits_still_tell_two_leaks_apart(tmp_path: Path) -> None:
    recorded = baseline(tmp_path, task("asyncio.event.wait"))
    other = [task("asyncio.queue.get")]
    assert recorded.split(OWNER, other) == ([], other, [])
    assert recorded.progress(keys_of(OWNER, other), lambda owner: True) == (1, 0)


def test_an_entry_gone_from_a_run_is_fixed_whatever_its_wait(tmp_path: Path) -> None:
    recorded = baseline(tmp_path, task("asyncio.future", unread=True))
    assert recorded.progress(Counter(), lambda owner: True) == (1, 0)
