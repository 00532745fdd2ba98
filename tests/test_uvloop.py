"""uvloop, the loop most uvicorn services run on: its tasks found, their creation sites recorded, and the
ones cancelled or destroyed at its shutdown captured, as on asyncio's own loop."""

from __future__ import annotations

import asyncio
import threading

import pytest

import looseends

uvloop = pytest.importorskip("uvloop", reason="uvloop is not installed (pip install uvloop)")

QUICK = 0.05


def test_a_task_leaked_on_a_uvloop_loop_driven_by_run_until_complete_is_found_with_its_creator() -> None:
    loop = uvloop.new_event_loop()
    event = asyncio.Event()

    async def start() -> None:
        loop.create_task(event.wait(), name="uv-leak")

    try:
        with pytest.raises(looseends.LeakError) as info, looseends.check(timeout=QUICK):
            loop.run_until_complete(start())
        group = info.value.report.groups[0]
        assert group.units[0].name == "uv-leak"
        assert group.blocked_on.code == "asyncio.event.wait"
        assert group.origin is not None
        assert group.origin.site is not None
        assert "loop.create_task(event.wait()" in group.origin.site.source_line()
        assert group.ages(info.value.report.now)
    finally:
        loop.run_until_complete(asyncio.sleep(0))
        event.set()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()


def test_tasks_uvloop_run_cancels_at_exit_are_leaks_with_their_creation_sites() -> None:
    async def main() -> None:
        asyncio.create_task(asyncio.Event().wait(), name="uv-cancelled")  # noqa: RUF006 - the leak
        await asyncio.sleep(0)

    with pytest.raises(looseends.LeakError) as info, looseends.check(timeout=QUICK):
        uvloop.run(main())
    group = info.value.report.groups[0]
    assert group.units[0].name == "uv-cancelled"
    assert group.blocked_on.detail["vanished"].startswith("cancelled by its runner")
    assert group.origin is not None
    assert group.origin.site is not None
    assert "asyncio.create_task(asyncio.Event().wait()" in group.origin.site.source_line()
    assert group.units[0].thread == threading.current_thread().name


PYTEST_ASYNCIO_ON_UVLOOP = """
import asyncio
import pytest
import uvloop


@pytest.fixture(scope="session")
def event_loop_policy():
    return uvloop.EventLoopPolicy()


@pytest.mark.asyncio
async def test_leaves_a_task():
    asyncio.create_task(asyncio.Event().wait(), name="left-on-uvloop")
    await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_clean():
    await asyncio.sleep(0)
"""


def test_pytest_asyncio_on_uvloop_catches_a_leaked_task(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    pytester.makepyfile(test_uv=PYTEST_ASYNCIO_ON_UVLOOP)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--looseends", "-W", "ignore")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaves_a_task*",
            "looseends: 1 leaked unit in 1 group: 1 task",
            "*then: cancelled by its runner when the event loop shut down*",
            "*created by test_leaves_a_task at test_uv.py:*",
        ]
    )
