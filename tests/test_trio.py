"""trio: checks settle on trio's clock, trio tasks are units with what they wait on and who started them,
in checks, dumps (from any thread) and the pytest plugin under anyio's trio backend."""

from __future__ import annotations

import threading

import pytest
import trio
import trio.testing

import looseends
from looseends.model import Kind, Unit

from leakfixtures import wait_until


def trio_units(units: tuple[Unit, ...] | list[Unit]) -> dict[str, Unit]:
    return {unit.name: unit for unit in units if unit.kind is Kind.TASK and unit.key[0] == "trio-task"}


def test_a_check_inside_trio_settles_and_reports_leaked_tasks_with_their_wait_and_creator() -> None:
    caught: list[looseends.LeakError] = []

    async def drain(receive: trio.MemoryReceiveChannel[int]) -> None:
        async for _ in receive:
            pass

    async def main() -> None:
        send, receive = trio.open_memory_channel[int](0)
        release = trio.Event()
        async with trio.open_nursery() as nursery:
            try:
                async with looseends.check(timeout=0.3):
                    nursery.start_soon(drain, receive, name="drainer")
                    nursery.start_soon(release.wait, name="waiter")
                    nursery.start_soon(trio.sleep, 0.05, name="straggler")  # done before the deadline
            except looseends.LeakError as error:
                caught.append(error)
            release.set()
            await send.aclose()

    trio.run(main)
    (error,) = caught
    units = trio_units(error.report.units)
    assert set(units) == {"drainer", "waiter"}
    drainer = units["drainer"]
    assert drainer.blocked_on.code == "trio.channel.receive"
    assert drainer.blocked_on.description == (
        "trio MemoryReceiveChannel.receive (buffer empty, max_buffer_size=0, size=0, open_senders=1)"
    )
    assert drainer.origin is not None
    assert drainer.origin.site is not None
    assert drainer.origin.site.source_line() == 'nursery.start_soon(drain, receive, name="drainer")'
    assert drainer.origin.creator is not None
    assert drainer.origin.creator.startswith("task ")
    assert units["waiter"].blocked_on.code == "trio.event.wait"
    text = error.report.render()
    assert ": abandoned receiver" in text
    assert ": event never set" in text
    assert "may still be woken" not in text  # trio waits are never proof candidates: no claim either way


def test_find_async_under_trio_and_a_clean_block() -> None:
    found: list[looseends.Report] = []

    async def main() -> None:
        async with looseends.check(timeout=0.5), trio.open_nursery() as nursery:
            nursery.start_soon(trio.sleep, 0.01)
        found.append(await looseends.find_async(timeout=0.1))

    trio.run(main)
    assert not [unit for unit in found[0].units if unit.key[0] == "trio-task"]  # main itself is the caller's


def test_a_dump_from_another_thread_shows_a_trio_runs_tasks() -> None:
    """Tracking is on when the run starts, so its root is known; the dump is taken in this thread."""
    ready, release = threading.Event(), threading.Event()

    async def parked(event: trio.Event) -> None:
        await event.wait()

    async def main() -> None:
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            for n in range(3):
                nursery.start_soon(parked, stop, name=f"parked-{n}")
            await trio.testing.wait_all_tasks_blocked()
            ready.set()
            await trio.to_thread.run_sync(release.wait)
            stop.set()

    with looseends.track():
        runner = threading.Thread(target=trio.run, args=(main,), name="trio-runner")
        runner.start()
        try:
            assert ready.wait(10)
            wait_until(lambda: len(trio_units(looseends.snapshot().units)) >= 4, what="the trio run's tasks")
            units = trio_units(looseends.snapshot().units)
        finally:
            release.set()
            runner.join(10)
    assert not runner.is_alive()
    parked_units = [unit for name, unit in units.items() if name.startswith("parked-")]
    assert len(parked_units) == 3
    assert {unit.blocked_on.code for unit in parked_units} == {"trio.event.wait"}
    assert {unit.thread for unit in parked_units} == {"trio-runner"}
    report = looseends.Report.from_units(parked_units)
    assert "3 tasks blocked in trio.Event.wait" in report.render(title="looseends dump")


ANYIO_TRIO_SUITE = """
import anyio
import pytest
import trio
import trio.testing


@pytest.fixture(scope="module")
def anyio_backend():
    return "trio"


@pytest.fixture(scope="module")
async def services():
    async with anyio.create_task_group() as tg:
        yield tg
        tg.cancel_scope.cancel()


@pytest.mark.anyio
async def test_leaks_into_the_module_task_group(services):
    send, receive = anyio.create_memory_object_stream(0)
    services.start_soon(receive.receive, name="waits-for-a-message")
    await anyio.wait_all_tasks_blocked()


@pytest.mark.anyio
async def test_leaks_a_system_task():
    trio.lowlevel.spawn_system_task(trio.Event().wait, name="system-waiter")
    await anyio.wait_all_tasks_blocked()


@pytest.mark.anyio
async def test_a_short_job_finishing_after_the_test_is_not_judged(services):
    services.start_soon(anyio.sleep, 0.05, name="short-job")


@pytest.mark.anyio
async def test_clean():
    async with anyio.create_task_group() as tg:
        tg.start_soon(anyio.sleep, 0.01)
"""


def test_the_plugin_under_anyios_trio_backend(pytester: pytest.Pytester) -> None:
    """anyio's runner keeps one trio run across tests; it is paused while a test's check looks, so a task
    that might finish a moment later is not judged, and tasks blocked in a wait are leaks."""
    pytester.makepyfile(test_anyio_trio=ANYIO_TRIO_SUITE)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio", "--looseends")
    result.assert_outcomes(passed=4, errors=2)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaks_into_the_module_task_group*",
            "1 task blocked in anyio MemoryObjectReceiveStream.receive (buffer empty, max_buffer_size=0, "
            "size=0, open_senders=1) for * s: abandoned receiver",
            "*created by test_leaks_into_the_module_task_group at test_anyio_trio.py:22 in task *",
            "*unit: waits-for-a-message (loop in thread MainThread)",
            "*ERROR at teardown of test_leaks_a_system_task*",
            "1 task blocked in trio.Event.wait for * s: event never set",
            "*created by test_leaks_a_system_task at test_anyio_trio.py:28 in task *",
        ]
    )
    assert "short-job" not in result.stdout.str()
