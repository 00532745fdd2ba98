"""Thread leaks: the right count, blocked-on and creation site for each pattern."""

from __future__ import annotations

import _thread
import concurrent.futures
import queue
import socketserver
import sys
import threading
import time
from collections.abc import Callable

import pytest

import looseends
from looseends.model import Kind
from looseends.sources.threads import ThreadSource

from leakfixtures import Cleanup, drain, wait_blocked, wait_until

QUICK = 0.05  # settle budget for checks that are expected to fail


def leaked(body: Callable[[], object]) -> looseends.Report:
    """Run `body()` inside a check that must fail; return its report."""
    with pytest.raises(looseends.LeakError) as info, looseends.check(timeout=QUICK):
        body()
    return info.value.report


def test_forgotten_sender_threads_grouped_with_queue_state_and_site(cleanup: Cleanup) -> None:
    results: queue.Queue[int] = queue.Queue(maxsize=1)
    results.put(0)  # full: nobody reads any more
    senders = [
        threading.Thread(target=results.put, args=(n,), name=f"sender-{n}", daemon=True) for n in range(6)
    ]
    cleanup.stop(drain(results, *senders), *senders)

    def start_senders() -> None:
        for thread in senders:
            thread.start()
        wait_blocked("sender-", 6, "queue.put")

    report = leaked(start_senders)
    assert len(report.groups) == 1
    group = report.groups[0]
    assert group.count == 6
    assert group.kind is Kind.THREAD
    assert group.blocked_on.code == "queue.put"
    assert group.blocked_on.detail == {"maxsize": 1, "size": 1}
    assert group.pattern is not None
    assert group.pattern.code == "forgotten-sender"
    assert group.origin is not None
    assert group.origin.site is not None
    assert group.origin.site.function.endswith("<locals>.start_senders")
    assert group.origin.site.source_line() == "thread.start()"
    assert group.origin.creator == "thread MainThread"
    text = report.render()
    assert "6 threads blocked in queue.Queue.put (queue full, maxsize=1, size=1)" in text
    assert ": forgotten sender" in text
    for n in range(6):
        assert text.count(f"sender-{n}") == 1  # one paragraph, each name once


def test_abandoned_receiver(cleanup: Cleanup) -> None:
    jobs: queue.Queue[int | None] = queue.Queue()
    receiver = threading.Thread(target=jobs.get, name="receiver", daemon=True)
    cleanup.stop(lambda: jobs.put(None), receiver)

    def start() -> None:
        receiver.start()
        wait_blocked("receiver", 1, "queue.get")

    group = leaked(start).groups[0]
    assert group.blocked_on.description == "queue.Queue.get (queue empty, maxsize=0, size=0)"
    assert group.pattern is not None
    assert group.pattern.code == "abandoned-receiver"


def test_event_wait_forever(cleanup: Cleanup) -> None:
    never = threading.Event()
    waiter = threading.Thread(target=never.wait, name="waiter")
    cleanup.stop(never.set, waiter)

    def start() -> None:
        waiter.start()
        wait_blocked("waiter", 1, "event.wait")

    group = leaked(start).groups[0]
    assert group.pattern is not None
    assert group.pattern.code == "event-never-set"
    assert group.units[0].daemon is False


def test_lock_never_released_is_found_inside_c_acquire(cleanup: Cleanup) -> None:
    lock = threading.Lock()
    lock.acquire()

    def take_lock() -> None:
        lock.acquire()  # blocks in C: the innermost Python frame is this one
        lock.release()

    locker = threading.Thread(target=take_lock, name="locker", daemon=True)
    cleanup.stop(lock.release, locker)

    def start() -> None:
        locker.start()
        wait_blocked("locker", 1, "lock.acquire")

    group = leaked(start).groups[0]
    assert group.blocked_on.description == "threading.Lock.acquire"
    assert group.pattern is not None
    assert group.pattern.code == "lock-never-released"
    assert group.stack[0].function.endswith("<locals>.take_lock")


def test_rlock_and_sleep_inside_c(cleanup: Cleanup) -> None:
    rlock = threading.RLock()
    rlock.acquire()
    stop = threading.Event()

    def sleeper() -> None:
        while not stop.is_set():
            time.sleep(0.01)

    rlocker = threading.Thread(target=rlock.acquire, name="rlocker", daemon=True)
    sleeping = threading.Thread(target=sleeper, name="sleeper", daemon=True)
    cleanup.stop(rlock.release, rlocker)
    cleanup.stop(stop.set, sleeping)

    def start() -> None:
        rlocker.start()
        sleeping.start()
        wait_blocked("sleeper", 1, "time.sleep")
        wait_blocked("rlocker", 1, "rlock.acquire")  # called by Thread.run (library code) straight into C

    by_name = {g.units[0].name: g for g in leaked(start).groups}
    assert by_name["sleeper"].blocked_on.code == "time.sleep"
    pattern = by_name["sleeper"].pattern
    assert pattern is not None
    assert pattern.code == "loop-never-stopped"
    assert by_name["rlocker"].blocked_on.description == "threading.RLock.acquire"


def test_timer_never_cancelled(cleanup: Cleanup) -> None:
    timer = threading.Timer(3600, print)
    timer.name = "timer"
    cleanup.stop(timer.cancel, timer)

    def start() -> None:
        timer.start()
        wait_blocked("timer", 1, "event.wait")

    group = leaked(start).groups[0]
    assert group.blocked_on.context == "threading.Timer"
    assert group.pattern is not None
    assert group.pattern.code == "timer-never-cancelled"


def test_thread_pool_executor_never_shut_down(cleanup: Cleanup) -> None:
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="pool")
    cleanup(pool.shutdown)

    def start() -> None:
        assert list(pool.map(abs, [1, -2, 3])) == [1, 2, 3]
        wait_blocked("pool", 1, "queue.get")

    group = leaked(start).groups[0]
    assert group.blocked_on.context == "ThreadPoolExecutor worker"
    assert group.pattern is not None
    assert group.pattern.code == "pool-never-shut-down"
    assert group.origin is not None
    assert group.origin.site is not None
    assert "pool.map" in group.origin.site.source_line()


def test_socketserver_serve_forever_never_shut_down(cleanup: Cleanup) -> None:
    server = socketserver.TCPServer(("127.0.0.1", 0), socketserver.BaseRequestHandler)
    cleanup(server.server_close)
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="server")
    cleanup.stop(server.shutdown, serving)

    def start() -> None:
        serving.start()
        wait_blocked("server", 1, "selector.select")

    group = leaked(start).groups[0]
    assert group.pattern is not None
    assert group.pattern.code == "server-never-shut-down"


def test_thread_join_on_a_stuck_thread(cleanup: Cleanup) -> None:
    never = threading.Event()
    stuck = threading.Thread(target=never.wait, name="stuck", daemon=True)
    joiner = threading.Thread(target=stuck.join, name="joiner", daemon=True)
    cleanup.stop(never.set, stuck, joiner)

    def start() -> None:
        stuck.start()
        joiner.start()
        wait_blocked("joiner", 1, "thread.join")

    joined = next(g for g in leaked(start).groups if g.units[0].name == "joiner")
    assert joined.blocked_on.description == "threading.Thread.join (thread 'stuck')"
    assert joined.pattern is not None
    assert joined.pattern.code == "wait-on-stuck-unit"


def test_raw_thread_started_with_underscore_thread_is_found(cleanup: Cleanup) -> None:
    release = threading.Event()
    done = threading.Event()

    def raw() -> None:
        release.wait()
        done.set()

    cleanup(lambda: (release.set(), done.wait(10)))

    def start() -> None:
        _thread.start_new_thread(raw, ())
        wait_until(
            lambda: any(
                u.name.startswith("<_thread") and u.blocked_on.code == "event.wait"
                for u in looseends.snapshot().units
            )
        )

    group = leaked(start).groups[0]
    assert group.units[0].name.startswith("<_thread ")
    assert group.units[0].target is not None
    assert group.units[0].target.endswith("<locals>.raw")
    assert group.origin is not None
    assert group.origin.site is not None
    assert group.origin.site.source_line() == "_thread.start_new_thread(raw, ())"


def test_creator_names_the_starting_thread(cleanup: Cleanup) -> None:
    never = threading.Event()
    grandchild = threading.Thread(target=never.wait, name="grandchild", daemon=True)
    cleanup.stop(never.set, grandchild)

    def start() -> None:
        parent = threading.Thread(target=grandchild.start, name="parent")
        parent.start()
        parent.join()
        wait_blocked("grandchild", 1, "event.wait")

    group = leaked(start).groups[0]
    assert group.origin is not None
    assert group.origin.creator == "thread parent"


def test_identity_reads_reuse_units_only_for_the_same_thread_object_and_name() -> None:
    """Checks after a test that joined its thread read identities again; units of unchanged threads are
    the same objects (cheap to compare), but a renamed thread or a new Thread under a reused ident is not."""
    me = threading.current_thread()
    ident = threading.get_ident()
    active: dict[int, threading.Thread] = {ident: me}
    source = ThreadSource(_current_frames=lambda: {ident: sys._getframe()}, _active=lambda: active)
    first = source.read(detail=False)
    again = source.read(detail=False)
    assert [unit.ident for unit in first] == [ident]
    assert again[0] is first[0]

    stand_in = threading.Thread(name=me.name)  # another Thread object that the same ident now belongs to
    active[ident] = stand_in
    reused = source.read(detail=False)[0]
    assert reused is not first[0]
    assert reused.ref is not None
    assert reused.ref() is stand_in
    assert not first[0].same_object(reused)

    stand_in.name = "renamed"
    renamed = source.read(detail=False)[0]
    assert renamed is not reused
    assert renamed.name == "renamed"
    assert renamed.same_object(reused)


def _start_and_join() -> None:
    done = threading.Thread(target=int)
    done.start()
    done.join()


@pytest.fixture
def unregistered(cleanup: Cleanup) -> Callable[[str], threading.Thread]:
    """A running thread, and a way to take it out of `threading._active` as threading itself does twice in
    every thread's life: `start()` returns before the thread is moved there from `_limbo`, and a thread
    leaves it before its last frames end. Put back at teardown."""
    registry: dict[int, threading.Thread] = threading._active  # type: ignore[attr-defined]
    lock = threading._active_limbo_lock  # type: ignore[attr-defined]
    never = threading.Event()
    thread = threading.Thread(target=never.wait, name="between-registries", daemon=True)
    thread.start()
    ident = thread.ident
    assert ident is not None

    def restore() -> None:
        with lock:
            threading._limbo.pop(thread, None)  # type: ignore[attr-defined]
            registry[ident] = thread

    cleanup.stop(lambda: (restore(), never.set()), thread)

    def take_out(where: str) -> threading.Thread:
        with lock:
            del registry[ident]
            if where == "limbo":
                threading._limbo[thread] = thread  # type: ignore[attr-defined]
        return thread

    take_out.restore = restore  # type: ignore[attr-defined]
    return take_out


@pytest.mark.parametrize("where", ["limbo", "gone"])
def test_a_thread_outside_threadings_registry_is_still_its_thread_object(
    unregistered: Callable[[str], threading.Thread], where: str
) -> None:
    thread = unregistered(where)
    for detail in (False, True):
        unit = next(u for u in ThreadSource().read(detail=detail) if u.ident == thread.ident)
        assert unit.key == ("thread", thread.ident)
        assert unit.name == "between-registries"
        assert unit.ref is not None
        assert unit.ref() is thread


def test_a_thread_started_just_before_a_check_is_not_its_leak(
    unregistered: Callable[[str], threading.Thread],
) -> None:
    """`start()` returns before threading registers the thread: a check begun at once must not take the
    registered thread it sees at its end for a new one (seen in CI as another test's thread)."""
    unregistered("limbo")
    with looseends.check(timeout=QUICK):
        unregistered.restore()  # type: ignore[attr-defined]
        _start_and_join()  # something did move: the check must look


def test_a_thread_leaving_threadings_registry_during_a_check_is_not_a_new_leak(
    unregistered: Callable[[str], threading.Thread],
) -> None:
    with looseends.check(timeout=QUICK):
        unregistered("gone")
        _start_and_join()
