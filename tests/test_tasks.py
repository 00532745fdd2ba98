"""asyncio task leaks: every loop in every thread, full await chains, what each task awaits."""

from __future__ import annotations

import asyncio
import gc
import subprocess
import sys
import threading
from collections.abc import Callable

import pytest

import looseends
from looseends import _cpython
from looseends.model import Kind
from looseends.sources import tasks

from leakfixtures import HeldCollection, LoopThread, wait_until

QUICK = 0.05


async def settle_tasks() -> None:
    """Let freshly created tasks reach their first await (one loop iteration each)."""
    for _ in range(3):
        await asyncio.sleep(0)


def test_forgotten_sender_tasks() -> None:
    async def main() -> looseends.Report:
        results: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        await results.put(0)
        senders = []

        async def sender(n: int) -> None:
            await results.put(n)

        with pytest.raises(looseends.LeakError) as info:
            async with looseends.check(timeout=QUICK):
                for n in range(6):
                    senders.append(asyncio.create_task(sender(n), name=f"sender-{n}"))
                await settle_tasks()
        for task in senders:
            task.cancel()
        await asyncio.gather(*senders, return_exceptions=True)
        return info.value.report

    report = asyncio.run(main())
    assert len(report.groups) == 1
    group = report.groups[0]
    assert group.kind is Kind.TASK
    assert group.count == 6
    assert group.blocked_on.code == "asyncio.queue.put"
    assert group.blocked_on.detail == {"maxsize": 1, "size": 1}
    assert group.pattern is not None
    assert group.pattern.code == "forgotten-sender"
    # The whole await chain: the user's coroutine, then asyncio.Queue.put inside it.
    assert [f.qualified_name for f in group.stack][:1] == ["asyncio.queues.Queue.put"]
    assert group.stack[1].function.endswith("<locals>.sender")
    assert group.origin is not None
    assert group.origin.site is not None
    assert "asyncio.create_task(sender(n)" in group.origin.site.source_line()
    assert group.origin.creator is not None
    assert group.origin.creator.startswith("task Task-")
    assert {u.thread for u in group.units} == {"MainThread"}


def test_fire_and_forget_task_sleeping_in_a_loop() -> None:
    async def heartbeat() -> None:
        while True:
            await asyncio.sleep(3600)

    async def main() -> looseends.Report:
        with pytest.raises(looseends.LeakError) as info:
            async with looseends.check(timeout=QUICK):
                task = asyncio.create_task(heartbeat(), name="heartbeat")
                await settle_tasks()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return info.value.report

    group = asyncio.run(main()).groups[0]
    assert group.blocked_on.code == "asyncio.sleep"
    assert group.blocked_on.detail == {"delay": 3600, "loop": 1}
    assert group.pattern is not None
    assert group.pattern.code == "loop-never-stopped"


def test_asyncio_wait_leaves_pending_tasks() -> None:
    async def main() -> looseends.Report:
        never = asyncio.Event()

        async def slow() -> None:
            await never.wait()

        with pytest.raises(looseends.LeakError) as info:
            async with looseends.check(timeout=QUICK):
                tasks = [asyncio.create_task(slow(), name=f"slow-{n}") for n in range(3)]
                _, pending = await asyncio.wait(tasks, timeout=0.01)
                assert len(pending) == 3
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return info.value.report

    group = asyncio.run(main()).groups[0]
    assert group.count == 3
    assert group.blocked_on.code == "asyncio.event.wait"
    assert group.pattern is not None
    assert group.pattern.code == "event-never-set"


def test_task_awaiting_another_task_and_gather() -> None:
    async def main() -> looseends.Report:
        never = asyncio.Event()
        inner = asyncio.create_task(never.wait(), name="inner")

        async def waits_for_task() -> None:
            await inner

        async def waits_for_gather() -> None:
            await asyncio.gather(never.wait(), never.wait())

        with pytest.raises(looseends.LeakError) as info:
            async with looseends.check(timeout=QUICK):
                outer = asyncio.create_task(waits_for_task(), name="outer")
                gatherer = asyncio.create_task(waits_for_gather(), name="gatherer")
                await settle_tasks()
        for task in (outer, gatherer, inner):
            task.cancel()
        await asyncio.gather(outer, gatherer, inner, return_exceptions=True)
        return info.value.report

    by_name = {g.units[0].name: g for g in asyncio.run(main()).groups}
    assert by_name["outer"].blocked_on.description == "awaiting task 'inner'"
    assert by_name["outer"].blocked_on.code == "asyncio.task"
    assert by_name["gatherer"].blocked_on.code == "asyncio.gather"
    assert by_name["gatherer"].blocked_on.detail == {"children": 2, "pending": 2}
    assert "inner" not in by_name  # started before the check: the baseline


def test_task_on_a_loop_running_in_another_thread(loop_thread: LoopThread) -> None:
    never = asyncio.Event()  # held here, so the task stays reachable until the loop is closed

    async def stuck() -> None:
        await never.wait()

    async def start() -> None:
        asyncio.get_running_loop().create_task(stuck(), name="remote")

    with pytest.raises(looseends.LeakError) as info, looseends.check(timeout=QUICK):
        loop_thread.run(start())
        wait_until(
            lambda: any(
                u.name == "remote" and u.blocked_on.code == "asyncio.event.wait"
                for u in looseends.snapshot().units
            )
        )
    groups = {g.units[0].name: g for g in info.value.report.groups}
    remote = groups["remote"]
    assert remote.kind is Kind.TASK
    assert remote.units[0].thread == "loop-thread"
    assert remote.origin is not None
    assert remote.origin.site is not None
    assert "create_task(stuck()" in remote.origin.site.source_line()
    assert "loop-thread" not in groups  # the loop's thread existed before the check


def test_task_awaiting_a_future_nobody_else_holds_is_reported_and_proven_stuck() -> None:
    async def main() -> looseends.Report:
        async def forgotten() -> None:
            await asyncio.get_running_loop().create_future()  # nothing else can ever set it

        gc.disable()  # the program's own collection would destroy it first (the next test's case)
        try:
            with pytest.raises(looseends.LeakError) as info:
                async with looseends.check(timeout=QUICK):
                    asyncio.create_task(forgotten(), name="forgotten")  # noqa: RUF006 - the leak under test
                    await settle_tasks()
        finally:
            gc.enable()
        return info.value.report

    group = asyncio.run(main()).groups[0]
    assert group.units[0].name == "forgotten"
    assert group.blocked_on.code == "asyncio.future"
    assert "stuck forever (proven): nothing that may still run can reach the asyncio.Future" in (
        asyncio.run(main()).render()
    )


def _forgotten_and_destroyed(destroy: Callable[[], object]) -> looseends.Report:
    """The report of a check whose body forgets a pending task (a garbage cycle), then calls `destroy`."""

    async def main() -> looseends.Report:
        async def forgotten() -> None:
            await asyncio.get_running_loop().create_future()

        with pytest.raises(looseends.LeakError) as info:
            async with looseends.check(timeout=QUICK):
                asyncio.create_task(forgotten(), name="collected")  # noqa: RUF006 - the leak under test
                await settle_tasks()
                destroy()
        return info.value.report

    return asyncio.run(main())


def test_a_task_the_collector_destroys_during_a_check_is_reported_as_destroyed() -> None:
    report = _forgotten_and_destroyed(gc.collect)  # the program's own collection destroys it while pending
    group = report.groups[0]
    assert group.units[0].name == "collected"
    assert group.blocked_on.detail["vanished"] == tasks.DESTROYED
    assert group.units[0].proof == "destroyed by the garbage collector while pending: nothing could reach it"
    assert "then: destroyed while pending" in report.render()


def test_a_task_another_threads_collection_is_destroying_as_a_check_ends_is_reported(
    held_collection: HeldCollection,
) -> None:
    """A collection takes a task out of asyncio's registry before its finalizer records it as destroyed:
    a check that ends in between, while another thread collects, must wait for that collection, not pass.
    Held for a moment longer than such a check takes, and less than it waits."""
    held_collection.hold_for = 0.3
    report = _forgotten_and_destroyed(held_collection.hold)
    assert report.groups[0].units[0].name == "collected"
    assert report.groups[0].blocked_on.detail["vanished"] == tasks.DESTROYED


def test_idle_event_loop_thread_is_reported_as_such() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="forgotten-loop", daemon=True)
    try:
        with pytest.raises(looseends.LeakError) as info, looseends.check(timeout=QUICK):
            thread.start()
            wait_until(
                lambda: any(
                    u.name == "forgotten-loop" and u.blocked_on.code == "selector.select"
                    for u in looseends.snapshot().units
                )
            )
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
    group = info.value.report.groups[0]
    assert group.blocked_on.context == "asyncio event loop"
    assert group.pattern is not None
    assert group.pattern.code == "event-loop-never-stopped"


def test_no_false_alarm_for_cancelled_and_awaited_tasks_and_task_group() -> None:
    async def main() -> None:
        async with looseends.check(timeout=QUICK):
            task = asyncio.create_task(asyncio.sleep(3600))
            await settle_tasks()
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            async with asyncio.TaskGroup() as group:
                for n in range(5):
                    group.create_task(asyncio.sleep(0.001 * n))

    asyncio.run(main())


def test_tasks_of_a_closed_loop_are_reported_without_error() -> None:
    loop = asyncio.new_event_loop()
    never = loop.create_future()

    async def orphan(future: asyncio.Future[None]) -> None:
        await future

    task = loop.create_task(orphan(never), name="orphan")
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()  # the task stays pending forever
    unit = next(u for u in looseends.snapshot().units if u.name == "orphan")
    assert unit.blocked_on.code == "asyncio.loop-closed"
    task._log_destroy_pending = False  # type: ignore[attr-defined]  # asyncio's own switch for this message
    del task, never
    gc.collect()  # a test that leaves a task pending on a closed loop cleans it up itself


COUNTED_TASKS = """
import asyncio, gc, looseends

calls = []

class Counted(asyncio.Task):
    def get_loop(self):
        calls.append("get_loop")
        return super().get_loop()

    def done(self):
        calls.append("done")
        return super().done()

background = set()

async def main():
    loop = asyncio.get_running_loop()
    loop.set_task_factory(lambda loop, coro, **kwargs: Counted(coro, loop=loop, **kwargs))
    background.add(asyncio.create_task(asyncio.Event().wait(), name="counted"))
    await asyncio.sleep(0)

asyncio.run(main())
unchecked = sorted(calls)
calls.clear()
background.clear()  # the first run's task, done, would be listed (and asked) by asyncio itself
gc.collect()
try:
    with looseends.check(timeout=0.05):
        asyncio.run(main())
except looseends.LeakError as leak:
    assert "counted" in str(leak), leak
else:
    raise AssertionError("the cancelled task was not reported")
print(unchecked == sorted(calls), unchecked, sorted(calls))
"""


@pytest.mark.xfail(
    _cpython.TASKS_PER_THREAD,
    reason="3.14+: asyncio.all_tasks(loop), the only listing of a loop's native tasks, calls a Task "
    "subclass's get_loop and done itself (docs/security.md)",
    strict=True,
)
def test_a_loops_shutdown_reads_its_tasks_without_calling_their_methods() -> None:
    """The tasks a loop's shutdown cancels are read with asyncio's own methods, never a subclass's: a
    checked run calls the subclass's get_loop and done exactly as often as an unchecked one (in a process
    of its own: here the suite's own checks run throughout)."""
    done = subprocess.run(
        [sys.executable, "-c", COUNTED_TASKS], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("True"), done.stdout


def test_tasks_that_asyncio_run_cancels_at_exit_are_still_leaks() -> None:
    async def main() -> None:
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        await queue.put(0)
        for n in range(3):
            background.add(asyncio.create_task(queue.put(n), name=f"cancelled-{n}"))
        await settle_tasks()

    background: set[asyncio.Task[None]] = set()
    with pytest.raises(looseends.LeakError) as info, looseends.check(timeout=QUICK):
        asyncio.run(main())  # cancels the three senders silently on the way out
    group = info.value.report.groups[0]
    assert group.count == 3
    assert group.blocked_on.code == "asyncio.queue.put"  # what they waited on before the cancellation
    assert group.blocked_on.detail["vanished"] == tasks.CANCELLED_AT_SHUTDOWN
    assert "then: cancelled by its runner when the event loop shut down" in info.value.report.render()
    assert group.origin is not None
    assert group.origin.site is not None
    assert "asyncio.create_task(queue.put(n)" in group.origin.site.source_line()


def test_runner_that_ends_cleanly_reports_nothing() -> None:
    async def main() -> int:
        task = asyncio.create_task(asyncio.sleep(0))
        await task
        return 1

    with looseends.check(timeout=QUICK), asyncio.Runner() as runner:
        assert runner.run(main()) == 1


def test_same_stack_different_objects_keep_their_own_facts() -> None:
    """Verdicts are worked out once per stack only when they read no object: queue sizes differ here."""

    async def main() -> list[looseends.Unit]:
        small: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        large: asyncio.Queue[int] = asyncio.Queue(maxsize=2)
        await small.put(0)
        for n in range(2):
            await large.put(n)
        ready = asyncio.Event()

        async def send(queue: asyncio.Queue[int]) -> None:
            await queue.put(9)

        async def idle() -> None:
            await ready.wait()

        started = [asyncio.create_task(send(q), name=f"same-stack-{q.maxsize}") for q in (small, large)]
        started += [asyncio.create_task(idle(), name=f"same-idle-{n}") for n in range(2)]
        await settle_tasks()
        units = [u for u in looseends.snapshot().units if u.name.startswith("same-")]
        for task in started:
            task.cancel()
        await asyncio.gather(*started, return_exceptions=True)
        return units

    units = {u.name: u for u in asyncio.run(main())}
    assert units["same-stack-1"].stack == units["same-stack-2"].stack
    assert units["same-stack-1"].blocked_on.detail == {"maxsize": 1, "size": 1}
    assert units["same-stack-2"].blocked_on.detail == {"maxsize": 2, "size": 2}
    assert units["same-idle-0"].blocked_on is units["same-idle-1"].blocked_on  # read once, shared


def test_a_task_on_a_stopped_loop_is_classified_as_on_a_running_one() -> None:
    loop = asyncio.new_event_loop()
    event = asyncio.Event()

    async def start() -> None:
        loop.create_task(event.wait(), name="on-a-stopped-loop")  # noqa: RUF006 - released below

    loop.run_until_complete(start())
    loop.run_until_complete(asyncio.sleep(0))  # it reached its wait; the loop stops again
    try:
        unit = next(u for u in looseends.snapshot().units if u.name == "on-a-stopped-loop")
        assert unit.blocked_on.code == "asyncio.event.wait"
    finally:
        event.set()
        loop.run_until_complete(asyncio.sleep(0))
        loop.close()
