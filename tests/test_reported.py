"""A task reported once is not reported again when the collector destroys it, and that guard ends with
the task: kept by address alone, it would hide the next task given the same address (a silent all-clear,
seen once in CI as a forgotten task the collector destroyed mid-check and nobody reported)."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading

import pytest

import looseends
from looseends.sources import _reported, tasks
from looseends.sources._tracking import tracking

pytestmark = pytest.mark.looseends_allow(reason="leaks tasks on purpose, for the collector to destroy")

QUICK = 0.05


class Holder:
    """Anything weakly referable stands in for a task: the guard only needs its identity and lifetime."""


def _reported_then_finished(loop: asyncio.AbstractEventLoop) -> tuple[int, int]:
    """Report a pending task in a check, then let it finish and be freed; its (task, coroutine) ids."""

    async def forgotten() -> None:
        await asyncio.get_running_loop().create_future()

    async def main() -> tuple[int, int]:
        with pytest.raises(looseends.LeakError):
            async with looseends.check(timeout=QUICK):
                task = asyncio.create_task(forgotten())
                await asyncio.sleep(0)
        ids = id(task), id(task.get_coro())
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return ids

    return loop.run_until_complete(main())


def test_a_reported_task_that_finishes_leaves_no_guard_for_the_next_task_at_its_address() -> None:
    loop = asyncio.new_event_loop()
    with tracking():
        ids = _reported_then_finished(loop)
        gc.collect()  # the task is freed (a frame's variables may have held it until it returned)
        assert ids[0] not in _reported._guards
        assert ids[0] not in _reported._dying
    loop.close()


def test_a_task_reported_while_pending_and_destroyed_later_is_not_reported_again() -> None:
    async def forgotten() -> None:
        await asyncio.get_running_loop().create_future()

    async def main() -> looseends.Report | None:
        try:
            async with looseends.check(timeout=QUICK):  # the outer check must not report it again
                with pytest.raises(looseends.LeakError):
                    async with looseends.check(timeout=QUICK):
                        asyncio.create_task(forgotten(), name="reported-once")  # noqa: RUF006 - the leak
                        await asyncio.sleep(0)
                gc.collect()  # destroyed while pending, after the inner check reported it
        except looseends.LeakError as error:
            return error.report
        return None

    with tracking():
        again = asyncio.run(main())
    assert again is None, again.render() if again is not None else ""


def test_the_guard_holds_while_its_object_lives_and_goes_with_it_by_either_path() -> None:
    with tracking():
        kept, coro = Holder(), Holder()
        _reported.guard(kept, coro)
        assert _reported.guarded(kept, coro)
        assert not _reported.guarded(kept, Holder())  # another coroutine: another task at that address
        assert _reported.release(kept, coro)  # freed by reference count: the weak reference still answers
        assert not _reported.release(kept, coro)  # once

        released: list[bool] = []
        cyclic = Finalized(coro, released)
        _reported.guard(cyclic, coro)
        del cyclic
        gc.collect()  # the collector clears the weak reference before the finalizer runs
        assert released == [True]
        assert not _reported._guards
        assert not _reported._dying  # nothing outlives the collection that freed it


class Finalized:
    """In a reference cycle, so the collector frees it; its finalizer asks for its guard, as asyncio's
    Task.__del__ (through the loop's exception handler) does for a task destroyed while pending."""

    def __init__(self, coro: object, released: list[bool]) -> None:
        self.coro, self.released, self.cycle = coro, released, self

    def __del__(self) -> None:
        self.released.append(_reported.release(self, self.coro))


def test_guards_stay_exact_while_threads_guard_and_free_objects_under_constant_switching() -> None:
    """Guards are written from destructors in any thread, in the middle of collections: every change is
    one atomic dict operation. Thousands of rounds, the switch interval at its smallest, and a thread
    collecting throughout: no error, and every guard ends with its object."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def collect() -> None:
        while not stop.is_set():
            gc.collect(0)

    def churn() -> None:
        try:
            for _ in range(3000):
                obj, coro = Holder(), Holder()
                obj.self = obj  # type: ignore[attr-defined]  # half freed by the collector
                _reported.guard(obj, coro)
                if not _reported.guarded(obj, coro):
                    raise AssertionError("a live object's guard was lost")
                if id(obj) % 2:
                    obj.self = None  # type: ignore[attr-defined]  # the other half by reference count
                del obj
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    with tracking():
        collector = threading.Thread(target=collect)
        workers = [threading.Thread(target=churn) for _ in range(4)]
        try:
            collector.start()
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(60)
        finally:
            stop.set()
            collector.join(60)
            sys.setswitchinterval(interval)
        gc.collect()
        assert not errors, errors
        assert not _reported._guards
        assert not _reported._dying


def test_a_full_record_of_vanished_tasks_makes_room_for_a_new_leak(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tasks that vanish during a check but are none of its business (made before it) are recorded, and
    nobody takes them: once the record is full, they must give way, or every later leak of that kind
    would be turned away and its check would pass."""
    from looseends.sources import _vanished

    monkeypatch.setattr(_vanished, "MAX_VANISHED", 3)
    monkeypatch.setattr(_vanished, "_takers", {})  # the session's and this test's checks would take them

    async def forgotten() -> None:
        await asyncio.get_running_loop().create_future()

    async def main() -> looseends.Report:
        older = [asyncio.create_task(forgotten()) for _ in range(5)]
        await asyncio.sleep(0)
        with pytest.raises(looseends.LeakError) as info:
            async with looseends.check(timeout=QUICK):
                older.clear()
                gc.collect()  # five destroyed while pending, none made during this check
                asyncio.create_task(forgotten(), name="turned-away")  # noqa: RUF006 - the leak under test
                await asyncio.sleep(0)
                gc.collect()
        return info.value.report

    with tracking():
        report = asyncio.run(main())
    assert [unit.name for group in report.groups for unit in group.units] == ["turned-away"]


def test_a_task_destroyed_between_the_last_look_and_the_verdict_is_one_leak(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A collection can run at any allocation: right after the look a verdict is written from, it may
    destroy a forgotten task that look saw alive. The task is then both a leak of that look and a task
    destroyed while pending: one leak, reported as what became of it (seen on 3.15 as two entries)."""
    from looseends.core import watch as watch_module

    original = watch_module.mark_reported
    held: list[asyncio.Task[None]] = []  # alive through every look, the check's own collection included

    def collect_first(units: object) -> None:
        held.clear()
        gc.collect()  # as if an allocation had started a collection just after the last look
        original(units)  # type: ignore[arg-type]

    monkeypatch.setattr(watch_module, "mark_reported", collect_first)

    async def forgotten() -> None:
        await asyncio.get_running_loop().create_future()

    async def main() -> looseends.Report:
        with pytest.raises(looseends.LeakError) as info:
            async with looseends.check(timeout=QUICK):
                held.append(asyncio.create_task(forgotten(), name="between"))
                await asyncio.sleep(0)
        return info.value.report

    report = asyncio.run(main())
    assert not held
    units = [unit for group in report.groups for unit in group.units if unit.name == "between"]
    assert len(units) == 1, report.render()
    assert units[0].blocked_on.detail["vanished"] == tasks.DESTROYED
