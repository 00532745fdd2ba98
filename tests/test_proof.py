"""Proven leaks: stuck forever by reachability, and never a false "proven" while a live unit can wake it.

Leaks are built inside helper functions that return, as real leaks are: the test keeps only weak
references and unblock handles, so the test's own frame does not make the primitive reachable.
"""

from __future__ import annotations

import asyncio
import gc
import queue
import sys
import threading
import time
import weakref
from collections.abc import Callable

import pytest

import looseends
from looseends.analysis.reachability import prove

from leakfixtures import (
    Cleanup,
    LoopThread,
    start_thread_on_a_lock_nobody_holds,
    units_named,
    wait_blocked,
    wait_until,
)

MODULE_QUEUE: queue.Queue[int] = queue.Queue(maxsize=1)


def proofs_for(prefix: str) -> dict[str, str]:
    units = [u for u in looseends.snapshot().units if u.name.startswith(prefix)]
    proofs = prove(units)
    return {u.name: proofs[u.key].reason for u in units if u.key in proofs}


def start_forgotten_senders(count: int) -> tuple[Callable[[], None], list[threading.Thread]]:
    results: queue.Queue[int] = queue.Queue(maxsize=1)
    results.put(0)
    threads = [
        threading.Thread(target=results.put, args=(n,), name=f"fs-{n}", daemon=True) for n in range(count)
    ]
    for thread in threads:
        thread.start()
    ref = weakref.ref(results)

    def unblock() -> None:
        q = ref()
        while q is not None and any(t.is_alive() for t in threads):
            try:
                q.get(timeout=0.01)
            except queue.Empty:
                pass

    return unblock, threads


def test_forgotten_senders_threads_are_proven(cleanup: Cleanup) -> None:
    unblock, threads = start_forgotten_senders(3)
    cleanup.stop(unblock, *threads)
    wait_blocked("fs-", 3, "queue.put")
    proofs = proofs_for("fs-")
    assert sorted(proofs) == ["fs-0", "fs-1", "fs-2"]
    assert "the queue it waits on" in proofs["fs-0"]


def test_abandoned_receiver_is_proven_but_a_module_level_queue_is_not(cleanup: Cleanup) -> None:
    def start_receiver() -> tuple[Callable[[], None], threading.Thread]:
        jobs: queue.Queue[int] = queue.Queue()
        receiver = threading.Thread(target=jobs.get, name="ar-local", daemon=True)
        receiver.start()
        ref = weakref.ref(jobs)
        return (lambda: ref() and ref().put(0)), receiver  # type: ignore[union-attr]

    unblock, receiver = start_receiver()
    cleanup.stop(unblock, receiver)  # unblock, then join: no straggler left for the teardown check
    MODULE_QUEUE.put(0)
    global_worker = threading.Thread(target=MODULE_QUEUE.put, args=(1,), name="ar-global", daemon=True)
    cleanup.stop(MODULE_QUEUE.get, global_worker)
    global_worker.start()
    wait_blocked("ar-local", 1, "queue.get")
    wait_blocked("ar-global", 1, "queue.put")
    proofs = proofs_for("ar-")
    assert list(proofs) == ["ar-local"]


def test_consumer_with_a_live_producer_is_not_proven(cleanup: Cleanup) -> None:
    stop = threading.Event()

    def start() -> None:
        items: queue.Queue[int] = queue.Queue()

        def producer() -> None:
            while not stop.wait(0.01):  # alive, holding the queue, producing nothing yet
                pass
            items.put(0)  # and, at the end, the item the consumer waited for

        threading.Thread(target=items.get, name="lp-consumer", daemon=True).start()
        threading.Thread(target=producer, name="lp-producer", daemon=True).start()

    start()
    cleanup(stop.set)
    wait_blocked("lp-consumer", 1, "queue.get")
    assert proofs_for("lp-") == {}
    stop.set()
    wait_until(lambda: not units_named("lp-"), what="the consumer to get its item")


def start_lock_waiter(name: str) -> tuple[weakref.ref[threading.Lock], threading.Lock]:
    """A thread blocked on a held Lock; the caller may keep the lock or only a weak reference."""
    lock = threading.Lock()
    lock.acquire()

    def take() -> None:
        lock.acquire()

    threading.Thread(target=take, name=name, daemon=True).start()
    return weakref.ref(lock), lock


def test_lock_nobody_else_holds_is_proven_and_one_still_held_is_not(cleanup: Cleanup) -> None:
    forgotten = start_lock_waiter("lk-forgotten")[0]
    held_ref, held = start_lock_waiter("lk-held")  # our frame still holds this one: it may be released
    cleanup(lambda: [ref().release() for ref in (forgotten, held_ref) if ref() is not None])  # type: ignore[union-attr]
    wait_blocked("lk-forgotten", 1, "lock.acquire")
    wait_blocked("lk-held", 1, "lock.acquire")
    proofs = proofs_for("lk-")
    assert list(proofs) == ["lk-forgotten"]
    assert "the Lock it waits on" in proofs["lk-forgotten"]
    assert held is held_ref()


def test_lock_released_before_its_waiter_is_scheduled_is_not_proven(cleanup: Cleanup) -> None:
    """The waiter's stack still shows acquire() until it gets the GIL back: ending, not stuck."""
    forgotten = start_lock_waiter("lr-waiter")[0]
    cleanup(lambda: lock.release() if (lock := forgotten()) is not None and lock.locked() else None)
    units = wait_blocked("lr-waiter", 1, "lock.acquire")
    interval = sys.getswitchinterval()
    sys.setswitchinterval(60.0)  # the woken waiter cannot take the GIL until this thread blocks
    try:
        forgotten().release()  # type: ignore[union-attr]
        proofs = prove(units)
    finally:
        sys.setswitchinterval(interval)
    assert proofs == {}
    wait_until(lambda: not units_named("lr-"), what="the waiter to take its lock and finish")


def test_asyncio_forgotten_sender_event_and_task_cycle_are_proven(loop_thread: LoopThread) -> None:
    # Strong references from the start, so the collector cannot destroy them before the proof.
    held: list[asyncio.Task[object]] = []

    async def start() -> None:
        results: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
        await results.put(0)
        loop = asyncio.get_running_loop()
        for n in range(2):
            held.append(loop.create_task(results.put(n), name=f"ap-sender-{n}"))
        held.append(loop.create_task(asyncio.Event().wait(), name="ap-event"))
        # A cycle: each task waits for the other's "done" future, set only when the other finishes.
        done_a, done_b = loop.create_future(), loop.create_future()

        async def wait_for(other: asyncio.Future[None], mine: asyncio.Future[None]) -> None:
            await other
            mine.set_result(None)

        held.append(loop.create_task(wait_for(done_b, done_a), name="ap-cycle-a"))
        held.append(loop.create_task(wait_for(done_a, done_b), name="ap-cycle-b"))
        del done_a, done_b

    loop_thread.run(start())
    wait_until(lambda: len(units_named("ap-")) == 5)
    wait_until(
        lambda: all(
            u.blocked_on.code != "running" for u in looseends.snapshot().units if u.name.startswith("ap-")
        )
    )
    held_refs = [weakref.ref(t) for t in held]

    async def cancel_them() -> None:
        tasks = [t for t in (r() for r in held_refs) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # Proven stuck means unreachable: the collector would destroy them; hold it off until we cancel them.
    gc.disable()
    try:
        held.clear()  # the loop's own structures are what remain
        proofs = proofs_for("ap-")
        loop_thread.run(cancel_them())
    finally:
        gc.enable()
    assert sorted(proofs) == ["ap-cycle-a", "ap-cycle-b", "ap-event", "ap-sender-0", "ap-sender-1"]
    assert "asyncio.Queue" in proofs["ap-sender-0"]
    assert "asyncio.Event" in proofs["ap-event"]
    assert "asyncio.Future" in proofs["ap-cycle-a"]


def test_sleeping_and_running_units_are_never_proven(cleanup: Cleanup) -> None:
    stop = threading.Event()
    sleeper = threading.Thread(target=stop.wait, args=(60,), name="sl-timed", daemon=True)
    cleanup.stop(stop.set, sleeper)
    sleeper.start()
    wait_blocked("sl-timed", 1, "event.wait")
    # Event.wait with a timeout still blocks on the Event; our test frame holds `stop`: reachable.
    assert proofs_for("sl-") == {}


def test_a_check_reports_the_proof_and_does_not_wait_out_its_timeout(cleanup: Cleanup) -> None:
    unblock, threads = start_forgotten_senders(2)
    cleanup.stop(unblock, *threads)
    wait_blocked("fs-", 2, "queue.put")
    # Were it to settle until its 600 s deadline, this test would hit the suite's 120 s faulthandler.
    only_senders = looseends.ignore_if(lambda u: not u.name.startswith("fs-"))
    report = looseends.find(timeout=600, ignore=[only_senders])
    assert report.groups[0].count == 2
    assert report.groups[0].units[0].proof is not None
    assert "stuck forever (proven): nothing that may still run can reach the queue" in report.render()


def test_snapshot_can_list_only_proven_leaks(cleanup: Cleanup) -> None:
    unblock, threads = start_forgotten_senders(2)
    cleanup.stop(unblock, *threads)
    wait_blocked("fs-", 2, "queue.put")
    proven = looseends.snapshot(proven=True)
    assert {u.name for u in proven.units} >= {"fs-0", "fs-1"}
    assert all(u.proof for u in proven.units)
    assert "stuck forever (proven)" in proven.render()


# What should be proven, and the cases that must never be ------------------------------------------------

MODULE_EVENT = asyncio.Event()


def test_tasks_cancelled_at_shutdown_are_proven_before_the_cancel() -> None:
    """asyncio.run cancels leftovers silently; those nothing else could wake are proven first."""

    async def main() -> None:
        local_event = asyncio.Event()
        for n in range(2):
            asyncio.create_task(local_event.wait(), name=f"sd-local-{n}")  # noqa: RUF006 - the leak
        asyncio.create_task(MODULE_EVENT.wait(), name="sd-global")  # noqa: RUF006 - a global reaches it
        for _ in range(3):
            await asyncio.sleep(0)

    with pytest.raises(looseends.LeakError) as info, looseends.check(timeout=0.05):
        asyncio.run(main())
    groups = {
        g.units[0].name.rsplit("-", 1)[0] if "local" in g.units[0].name else g.units[0].name: g
        for g in info.value.report.groups
    }
    local, shared = groups["sd-local"], groups["sd-global"]
    assert local.count == 2
    assert local.units[0].proof is not None
    assert "the asyncio.Event it waits on" in local.units[0].proof
    assert shared.units[0].proof is None
    text = info.value.report.render()
    assert "stuck forever (proven): nothing that may still run can reach the asyncio.Event" in text
    assert "then: cancelled by its runner when the event loop shut down" in text
    assert "not proven stuck: something that could still run could reach what it waited on" in text
    assert "may still be woken" not in text  # the loop is gone: nothing can wake anything any more


def test_tasks_destroyed_while_pending_say_the_collector_proved_them() -> None:
    async def main() -> looseends.Report:
        async def forgotten() -> None:
            await asyncio.get_running_loop().create_future()

        with pytest.raises(looseends.LeakError) as info:
            async with looseends.check(timeout=0.05):
                asyncio.create_task(forgotten(), name="gc-forgotten")  # noqa: RUF006 - the leak
                for _ in range(3):
                    await asyncio.sleep(0)
                gc.collect()  # the program's own collection
        return info.value.report

    report = asyncio.run(main())
    assert report.groups[0].units[0].proof == (
        "destroyed by the garbage collector while pending: nothing could reach it"
    )
    assert "may still be woken" not in report.render()


def test_two_tasks_awaiting_each_other_are_proven() -> None:
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(lambda loop, context: None)  # they are destroyed pending at the end
    box: dict[str, asyncio.Task[None]] = {}

    async def first() -> None:
        await box["second"]

    async def second() -> None:
        await box["first"]

    async def start() -> None:
        box["first"] = asyncio.create_task(first(), name="cy-first")
        box["second"] = asyncio.create_task(second(), name="cy-second")
        for _ in range(3):
            await asyncio.sleep(0)

    loop.run_until_complete(start())
    refs = [weakref.ref(task) for task in box.values()]
    gc.disable()  # only their cycle holds them now: the collector would reap them during the snapshot
    box.clear()
    try:
        units = [u for u in looseends.snapshot().units if u.name.startswith("cy-")]
        assert {u.blocked_on.code for u in units} == {"asyncio.task"}
        proofs = prove(units)
        assert {units_by_key.name for units_by_key in units if units_by_key.key in proofs} == {
            "cy-first",
            "cy-second",
        }
        assert (
            "the task 'cy-second' it waits on"
            in proofs[next(u.key for u in units if u.name == "cy-first")].reason
        )
    finally:
        # They can never be cancelled (cancel() would recurse): the collector reaps them, quietly.
        for task in filter(None, (ref() for ref in refs)):
            task._log_destroy_pending = False  # type: ignore[attr-defined]
            del task
        gc.enable()
        loop.close()
        gc.collect()
    assert all(ref() is None for ref in refs)


def test_a_thread_whose_target_is_the_lock_itself_is_proven(cleanup: Cleanup) -> None:
    start_thread_on_a_lock_nobody_holds(cleanup, "bm-acquire")
    proofs = proofs_for("bm-")
    assert list(proofs) == ["bm-acquire"]
    assert "the Lock it waits on" in proofs["bm-acquire"]


def test_an_idle_worker_whose_owner_holds_its_queue_is_not_proven(cleanup: Cleanup) -> None:
    """anyio's worker threads wait on a queue that lives on the Thread object, which the loop side keeps:
    the thread's own object is a path to what it waits on."""

    class Worker(threading.Thread):
        def __init__(self) -> None:
            super().__init__(name="iw-worker", daemon=True)
            self.jobs: queue.Queue[object] = queue.Queue()

        def run(self) -> None:
            while self.jobs.get() is not None:
                pass

    idle: list[Worker] = [Worker()]  # the owner's list of idle workers, as anyio keeps one per loop

    def stop() -> None:
        idle[0].jobs.put(None)
        idle[0].join(10)

    cleanup(stop)
    idle[0].start()
    wait_blocked("iw-worker", 1, "queue.get")
    assert proofs_for("iw-") == {}


def test_a_running_thread_is_never_proven(cleanup: Cleanup) -> None:
    stop = threading.Event()

    def spin() -> None:
        while not stop.is_set():
            pass

    runner = threading.Thread(target=spin, name="rn-spin", daemon=True)
    cleanup.stop(stop.set, runner)
    runner.start()
    units = [u for u in looseends.snapshot().units if u.name == "rn-spin"]
    assert units[0].blocked_on.code == "running"
    assert prove(units) == {}


def test_a_task_on_a_closed_loop_is_proven_and_says_one_thing() -> None:
    loop = asyncio.new_event_loop()
    never = loop.create_future()

    async def orphan(future: asyncio.Future[None]) -> None:
        await future

    task = loop.create_task(orphan(never), name="cl-orphan")
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    try:
        report = looseends.find(timeout=0.05, ignore=[looseends.ignore_if(lambda u: u.name != "cl-orphan")])
        text = report.render()
        assert "stuck forever (proven): its event loop is closed: it can never run again" in text
        assert "may still be woken" not in text
    finally:
        task._log_destroy_pending = False  # type: ignore[attr-defined]
        del task, never
        gc.collect()


def test_a_task_seen_by_both_capture_paths_is_one_unit() -> None:
    """Cancelled at shutdown, then destroyed by the collector: the same task, recorded once."""
    from looseends.sources import _tracking, _vanished
    from looseends.sources.tasks import CANCELLED_AT_SHUTDOWN, DESTROYED

    loop = asyncio.new_event_loop()
    task = loop.create_task(asyncio.Event().wait(), name="tw-twice")
    loop.run_until_complete(asyncio.sleep(0))
    started = time.monotonic() - 60
    with _tracking.tracking():
        _vanished._record(task, CANCELLED_AT_SHUTDOWN, None)
        _vanished._record(task, DESTROYED, _vanished.DESTROYED_PROOF)
        taker = _vanished.Taker(started, lambda unit: True, None, lambda key: False)
        taken = _vanished.take_vanished(taker, lambda unit: unit.name == "tw-twice")
    task.cancel()
    loop.run_until_complete(asyncio.gather(task, return_exceptions=True))
    loop.close()
    assert len(taken) == 1
    assert taken[0].blocked_on.detail["vanished"] == CANCELLED_AT_SHUTDOWN


def test_a_loop_shutdown_walks_nothing_unless_a_check_will_report_and_prove_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Proofs walk the heap: at a loop's shutdown only for tasks a running check will report, and only
    when it asked for proofs. A test runner closing a loop with its own ignored task pays nothing."""
    from looseends.core import find as find_module
    from looseends.sources import _vanished

    walks: list[int] = []
    real = find_module.shutdown_proofs
    monkeypatch.setattr(find_module, "shutdown_proofs", lambda look: walks.append(1) or real(look))
    monkeypatch.setattr(_vanished, "_takers", {})  # the suite's own checks would take these tasks too

    async def forget(name: str) -> None:
        asyncio.get_running_loop().create_task(asyncio.Event().wait(), name=name)
        await asyncio.sleep(0)

    with looseends.check(timeout=0.05, ignore=[looseends.ignore_name("runner-*")]):
        asyncio.run(forget("runner-task"))
    assert walks == []
    with pytest.raises(looseends.LeakError) as unproven, looseends.check(timeout=0.05, prove=False):
        asyncio.run(forget("forgotten"))
    assert walks == []  # prove=False is honoured at loop shutdown too
    assert unproven.value.report.units[0].proof is None
    with pytest.raises(looseends.LeakError) as proven, looseends.check(timeout=0.05):
        asyncio.run(forget("forgotten"))
    assert walks == [1]
    assert proven.value.report.units[0].proof is not None


def test_a_walk_past_its_bound_says_it_gave_up_rather_than_may_still_be_woken(
    cleanup: Cleanup, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A heap past the walk's bound proves nothing, and the report says why, not that something may
    still wake the unit: nobody looked."""
    from looseends.analysis import reachability, unseen

    monkeypatch.setattr(unseen, "MAX_OBJECTS", 10)
    monkeypatch.setattr(reachability, "MAX_OBJECTS", 10)
    unblock, threads = start_forgotten_senders(2)
    cleanup.stop(unblock, *threads)
    wait_blocked("fs-", 2, "queue.put")
    only_senders = looseends.ignore_if(lambda u: not u.name.startswith("fs-"))
    report = looseends.find(timeout=0.2, ignore=[only_senders], prove=True)
    text = report.render()
    assert report.groups[0].units[0].proof is None
    assert "not proven: walk abandoned after 10 objects" in text
    assert "may still be woken" not in text


def test_the_former_name_of_proven_still_works_and_says_so() -> None:
    with pytest.warns(DeprecationWarning, match=r"snapshot\(proven=\.\.\.\)"):
        dump = looseends.snapshot(proven_only=True)
    assert all(unit.proof is not None for unit in dump.units)
