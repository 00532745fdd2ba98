"""check(), find() and verify_none(): baseline, settling, ignore rules, options, decorators."""

from __future__ import annotations

import asyncio
import concurrent.futures
import inspect
import re
import sys
import threading
from collections.abc import Callable

import pytest

import looseends

from leakfixtures import DEADLINE, Cleanup, LoopThread, wait_blocked, wait_until

QUICK = 0.05


def test_straggler_that_exits_300_ms_after_the_check_starts_is_not_a_leak() -> None:
    finished = threading.Event()
    with looseends.check() as checked:  # the default settle budget
        straggler = threading.Thread(target=finished.wait, args=(0.3,), name="straggler")
        straggler.start()
    assert not straggler.is_alive()
    assert checked.report is not None
    assert not checked.report


def test_units_started_before_the_check_are_the_baseline(cleanup: Cleanup) -> None:
    never = threading.Event()
    service = threading.Thread(target=never.wait, name="service", daemon=True)
    cleanup.stop(never.set, service)
    service.start()
    with looseends.check(timeout=QUICK):
        pass


def test_a_new_thread_reusing_a_baseline_ident_is_still_a_leak(cleanup: Cleanup) -> None:
    """The baseline holds a live thread; it ends and a new one is given its ident: a new thread, a leak.
    (Threads compared by key alone would call it the baseline's.) The platform decides when idents are
    reused, so a few rounds are tried; Linux reuses the stack, and so the ident, of a joined thread."""
    never = threading.Event()
    cleanup(never.set)
    for _ in range(50):
        release = threading.Event()
        first = threading.Thread(target=release.wait, name="first")
        first.start()
        reused = False
        leaked: list[str] = []
        try:
            with looseends.check(timeout=QUICK):  # the baseline includes `first`
                release.set()
                first.join()
                second = threading.Thread(target=never.wait, name="second", daemon=True)
                second.start()
                reused = second.ident == first.ident
        except looseends.LeakError as leak:
            leaked = [unit.name for unit in leak.report.units]
        assert leaked == ["second"], "a new thread given a baseline thread's ident passed for that thread"
        if reused:
            return
        never.set()
        second.join(DEADLINE)
        never.clear()
    pytest.skip("this platform gave no new thread a finished thread's ident in 50 tries")


def test_joined_threads_and_executor_as_context_manager_are_clean() -> None:
    with looseends.check(timeout=QUICK):
        threads = [threading.Thread(target=sum, args=([1, 2],)) for _ in range(5)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
            assert list(pool.map(abs, [-1, -2, -3])) == [1, 2, 3]


def test_executor_freed_when_its_last_reference_goes_is_a_straggler() -> None:
    def use_pool_and_forget_it() -> None:
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
        assert pool.submit(abs, -1).result() == 1
        # No shutdown: the worker idles until the executor object is collected.

    with looseends.check():
        use_pool_and_forget_it()


def test_find_reports_everything_but_the_caller_and_verify_none_raises(cleanup: Cleanup) -> None:
    never = threading.Event()
    waiter = threading.Thread(target=never.wait, name="lonely", daemon=True)
    cleanup.stop(never.set, waiter)
    waiter.start()
    wait_blocked("lonely", 1, "event.wait")
    report = looseends.find(timeout=QUICK)
    names = {u.name for u in report.units}
    assert "lonely" in names
    assert threading.current_thread().name not in names
    assert "lonely" not in {
        u.name for u in looseends.find(timeout=0, ignore=[looseends.ignore_name("lon*")]).units
    }
    with pytest.raises(looseends.LeakError, match="lonely"):
        looseends.verify_none(timeout=0)
    baseline = looseends.snapshot()
    looseends.verify_none(timeout=0, baseline=baseline)


@pytest.mark.parametrize(
    ("rule", "ignored"),
    [
        (looseends.ignore_top_function("threading.Condition.wait"), True),
        (looseends.ignore_top_function("Condition.wait"), True),
        (looseends.ignore_top_function("queue.Queue.put"), False),
        (looseends.ignore_any_function("threading.Event.wait"), True),
        (looseends.ignore_any_function("nowhere.function"), False),
        (looseends.ignore_created_at("*test_check.py:*"), True),
        (looseends.ignore_created_at("*elsewhere.py:*"), False),
        (looseends.ignore_name("ign-*"), True),
        (looseends.ignore_name("other-*"), False),
        (looseends.ignore_kind("thread"), True),
        (looseends.ignore_kind("task"), False),
        (looseends.ignore_if(lambda unit: unit.blocked_on.code == "event.wait"), True),
        (looseends.ignore_if(lambda unit: 1 / 0 == 0), False),  # a broken predicate hides nothing
    ],
)
def test_ignore_rules(cleanup: Cleanup, rule: looseends.IgnoreRule, ignored: bool) -> None:
    never = threading.Event()
    thread = threading.Thread(target=never.wait, name="ign-1", daemon=True)
    cleanup.stop(never.set, thread)
    checked = looseends.check(timeout=0, ignore=[rule])
    try:
        with checked:
            thread.start()
            wait_blocked("ign-", 1, "event.wait")
    except looseends.LeakError:
        pass
    assert checked.report is not None
    assert (not checked.report) is ignored


def test_leak_error_is_an_assertion_error_carrying_the_report() -> None:
    assert issubclass(looseends.LeakError, AssertionError)
    assert issubclass(looseends.OptionError, ValueError)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"timeout": -1}, "invalid timeout=-1 from looseends.check(): expected a number of seconds >= 0"),
        ({"timeout": "soon"}, "invalid timeout='soon' from looseends.check(): expected a finite number"),
        ({"timeout": float("nan")}, "invalid timeout=nan"),
        ({"ignore": "thread-*"}, "invalid ignore='thread-*'"),
        ({"ignore": [42]}, "invalid ignore=42"),
        ({"kinds": ["thread", "fiber"]}, "invalid kinds="),
        ({"max_groups": 0}, "invalid max_groups=0"),
        ({"builtin_ignores": "yes"}, "invalid builtin_ignores='yes'"),
    ],
)
def test_bad_options_get_a_clear_error(options: dict[str, object], message: str) -> None:
    with pytest.raises(looseends.OptionError, match=re.escape(message)):
        looseends.check(**options)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "call",
    [
        looseends.find,
        looseends.verify_none,
        looseends.check,
        lambda **kw: asyncio.run(looseends.find_async(**kw)),
    ],
)
def test_an_unknown_option_names_the_closest_one(call: Callable[..., object]) -> None:
    """A typo is an OptionError that suggests the real name (and a TypeError, as Python's own is)."""
    with pytest.raises(
        looseends.OptionError,
        match=r"unknown option 'timout' from looseends\.\w+\(\): did you mean timeout\?",
    ) as caught:
        call(timout=1)
    assert isinstance(caught.value, TypeError)


def test_an_unknown_option_far_from_any_lists_them_all() -> None:
    with pytest.raises(
        looseends.OptionError, match=r"unknown option 'colour'.*\(options: builtin_ignores, ignore, kinds, "
    ):
        looseends.check(colour="red")  # type: ignore[call-arg]


def test_decorator_preserves_signature_and_checks_each_call(cleanup: Cleanup) -> None:
    never = threading.Event()

    @looseends.check(timeout=QUICK)
    def leaky(count: int, *, name: str = "deco") -> int:
        thread = threading.Thread(target=never.wait, name=f"{name}-{count}", daemon=True)
        cleanup.stop(never.set, thread)
        thread.start()
        return count

    @looseends.check(timeout=QUICK)
    async def clean(value: int) -> int:
        await asyncio.sleep(0)
        return value

    assert list(inspect.signature(leaky).parameters) == ["count", "name"]
    assert list(inspect.signature(clean).parameters) == ["value"]
    assert inspect.iscoroutinefunction(clean)
    with pytest.raises(looseends.LeakError, match="deco-1"):
        leaky(1)
    with pytest.raises(looseends.LeakError, match="deco-2") as second:
        leaky(2)
    assert "deco-1" not in str(second.value)  # each call has its own baseline
    assert asyncio.run(clean(7)) == 7


def test_body_exception_wins_and_carries_the_leak_as_a_note(cleanup: Cleanup) -> None:
    never = threading.Event()
    thread = threading.Thread(target=never.wait, name="noted", daemon=True)
    cleanup.stop(never.set, thread)
    with pytest.raises(KeyError) as info, looseends.check(timeout=QUICK):
        thread.start()
        raise KeyError("boom")
    assert any("noted" in note for note in info.value.__notes__)


def test_tracking_is_put_back_as_it_was_after_the_last_check() -> None:
    from looseends.sources import _tracking

    before = (threading.Thread.start, asyncio.BaseEventLoop.create_task, _tracking.state.users)
    with looseends.check(timeout=0), looseends.check(timeout=0):
        assert _tracking.state.users == before[2] + 2
        stock = inspect.unwrap(threading.Thread.start)
        assert stock.__module__ == "threading"
        assert threading.Thread.start is not stock  # tracked
    assert (threading.Thread.start, asyncio.BaseEventLoop.create_task, _tracking.state.users) == before


def test_watch_verdict_with_extra_identities_still_honours_the_baseline(cleanup: Cleanup) -> None:
    from looseends.analysis.settle import run_sync
    from looseends.core.watch import Watch
    from looseends.options import build_options

    never = threading.Event()
    old = threading.Thread(target=never.wait, name="old", daemon=True)
    new = threading.Thread(target=never.wait, name="new", daemon=True)
    cleanup.stop(never.set, old, new)
    old.start()
    watch = Watch(build_options(source="test", timeout=0))
    watch.start()
    try:
        new.start()
        report = run_sync(watch.verdict(also_ignore=lambda unit: unit.name == "nothing"))
    finally:
        watch.stop()
    assert [u.name for u in report.units] == ["new"]


def test_a_check_where_nothing_started_takes_no_look_at_the_end(monkeypatch: pytest.MonkeyPatch) -> None:
    from looseends.core import find as find_module

    looks: list[bool] = []
    real_look = find_module._look
    monkeypatch.setattr(find_module, "_look", lambda detail: looks.append(detail) or real_look(detail))
    with looseends.check(timeout=QUICK) as checked:
        assert sum(range(10)) == 45
    assert checked.report is not None
    assert not checked.report
    assert looks == []  # the fingerprint did not move: the clean verdict cost no snapshot
    with looseends.check(timeout=QUICK):
        thread = threading.Thread(target=sum, args=([1],))
        thread.start()
        thread.join()
    assert looks == [False]  # something started: one identity look proves it gone


def test_a_thread_started_behind_trackings_back_is_still_caught(cleanup: Cleanup) -> None:
    import _thread

    untracked_start = _thread.start_new_thread  # bound before check() installs tracking
    never = threading.Event()
    cleanup(never.set)
    with pytest.raises(looseends.LeakError, match="1 thread"), looseends.check(timeout=QUICK):
        ident = untracked_start(never.wait, ())
        wait_until(lambda: ident in sys._current_frames(), what="the untracked thread to run")


def test_a_child_forked_behind_trackings_back_is_still_caught(cleanup: Cleanup) -> None:
    """A fork in C that no wrapper or audit hook sees: only the kernel's list of children, in the
    fingerprint, moves. The child exits at once; unwaited for, it stays listed (a zombie)."""
    import ctypes
    import os

    fork = ctypes.PyDLL(None).fork  # holds the GIL across the call: the child can run os._exit
    with pytest.raises(looseends.LeakError, match="1 process"), looseends.check(timeout=QUICK):
        pid = fork()
        if pid == 0:
            os._exit(0)
        cleanup(lambda: os.waitpid(pid, 0))


def test_a_task_built_without_create_task_is_still_caught(loop_thread: LoopThread) -> None:
    built = threading.Event()
    held: list[asyncio.Task[None]] = []  # referenced, as a real service would; cancelled at teardown

    async def forever() -> None:
        await asyncio.Event().wait()

    def build() -> None:  # a plain callback on the loop: no task is created through create_task
        held.append(asyncio.Task(forever(), loop=loop_thread.loop, name="hand-built"))
        built.set()

    with pytest.raises(looseends.LeakError, match="hand-built"), looseends.check(timeout=QUICK):
        loop_thread.loop.call_soon_threadsafe(build)
        assert built.wait(DEADLINE)


def test_checks_that_start_nothing_share_one_baseline_look(monkeypatch: pytest.MonkeyPatch) -> None:
    import looseends.sources as sources
    from looseends.sources._tracking import tracking

    looks: list[list[str]] = []
    real = sources._read
    monkeypatch.setattr(sources, "_read", lambda s, d: looks.append([x.name for x in s]) or real(s, d))
    with tracking("a session, as the pytest plugin keeps one"):
        for _ in range(3):
            with looseends.check(timeout=QUICK):
                pass
        looks.clear()  # the first check may have had to look: the baseline was cold
        moved = threading.Thread(target=sum, args=([1],))  # a start: the last baseline no longer holds
        moved.start()
        moved.join()
        for _ in range(3):
            with looseends.check(timeout=QUICK):
                pass
    assert looks == [["threads"]]  # one look, and only at what moved


def test_baseline_is_looked_at_again_after_anything_may_have_started(cleanup: Cleanup) -> None:
    with looseends.check(timeout=QUICK):
        pass
    never = threading.Event()
    service = threading.Thread(target=never.wait, name="between-checks", daemon=True)
    cleanup.stop(never.set, service)
    service.start()  # tracking is off between the checks: nothing counts this start
    with looseends.check(timeout=QUICK):  # a stale baseline would call the service this check's leak
        worker = threading.Thread(target=sum, args=([1],))
        worker.start()
        worker.join()


def test_a_watch_stands_for_its_other_ids_exactly_while_it_runs() -> None:
    from looseends.core.watch import Watch, checked_now
    from looseends.options import build_options

    options = build_options(source="test")
    outer, inner = Watch(options, "a", stands_for=("mod.Case.test",)), Watch(options, "b", ("mod.Case.test",))
    assert not checked_now("mod.Case.test")
    outer.start()
    inner.start()
    assert checked_now("mod.Case.test")
    inner.stop()
    assert checked_now("mod.Case.test")  # the outer one still runs
    outer.stop()
    outer.stop()  # twice: no count below nothing
    assert not checked_now("mod.Case.test")
