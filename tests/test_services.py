"""A pool held by a module-level object and started lazily serves the whole run: not a test's leak."""

from __future__ import annotations

import concurrent.futures
import contextlib
import sys
import threading
import types
from collections.abc import Callable

import pytest

import looseends
from looseends.analysis import services
from looseends.analysis.services import module_holding

from leakfixtures import DEADLINE, Cleanup, wait_blocked


class Client:
    """Like an SDK client kept in a module global: its pool starts on first use."""

    def __init__(self) -> None:
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="client-pool")

    def fetch(self, value: int) -> int:
        return self._pool.submit(abs, value).result()


CLIENT = Client()


def test_lazily_started_pool_of_a_module_level_client_is_not_a_leak() -> None:
    with looseends.check(timeout=0.05):
        assert CLIENT.fetch(-3) == 3
        wait_blocked("client-pool", 1, "queue.get")


def test_the_same_pool_held_only_by_the_test_is_a_leak(cleanup: Cleanup) -> None:
    local = Client()
    cleanup(local._pool.shutdown)
    checked = looseends.check(timeout=0.05)
    try:
        with checked:
            assert local.fetch(-3) == 3
            wait_blocked("client-pool", 1, "queue.get")
    except looseends.LeakError:
        pass
    assert checked.report is not None
    assert [g.pattern.code if g.pattern else None for g in checked.report.groups] == ["pool-never-shut-down"]


def test_module_holding_names_the_module_and_ignores_threadings_registries(cleanup: Cleanup) -> None:
    never = threading.Event()
    thread = threading.Thread(target=never.wait, daemon=True)
    cleanup.stop(never.set, thread)
    thread.start()
    services._cache = None
    assert module_holding(thread) is None  # only threading._active holds it
    module = types.ModuleType("fake_service_module")
    module.__file__ = __file__
    sys.modules["fake_service_module"] = module
    try:
        module.WORKER = thread  # type: ignore[attr-defined]
        services._cache = None  # a walk answers for half a second: this thread's holder changed meanwhile
        assert module_holding(thread) == "fake_service_module"
    finally:
        del sys.modules["fake_service_module"]


def test_what_a_rule_ignored_is_said_in_the_report_even_when_it_passes(cleanup: Cleanup) -> None:
    """A thread started at import and kept in a module global is a service: not reported, but never
    silently: the clean verdict says what it ignored, and why."""
    never = threading.Event()
    module = types.ModuleType("fake_module_with_a_worker")
    module.__file__ = __file__
    sys.modules[module.__name__] = module
    before = looseends.snapshot()  # what earlier tests left is not this test's to see
    assert module_holding(threading.current_thread()) is None  # a walk moments before the worker exists
    try:
        with looseends.check(timeout=0.05) as checked:
            module.WORKER = threading.Thread(target=never.wait, name="import-time-worker", daemon=True)  # type: ignore[attr-defined]
            cleanup.stop(never.set, module.WORKER)  # type: ignore[attr-defined]
            module.WORKER.start()  # type: ignore[attr-defined]
            wait_blocked("import-time-worker", 1, "event.wait")
        assert checked.report is not None
        assert not checked.report
        assert [(rule, unit.name) for rule, unit in checked.report.ignored] == [
            ("threads owned by module-level objects (lazily started services)", "import-time-worker")
        ]
        assert checked.report.render().endswith(
            "ignored: 1 thread (threads owned by module-level objects (lazily started services))"
        )
        assert checked.report.to_dict()["ignored"] == [
            {
                "rule": "threads owned by module-level objects (lazily started services)",
                "by_kind": {"thread": 1},
                "names": ["import-time-worker"],
            }
        ]
        report = looseends.verify_none(baseline=before, ignore=[looseends.ignore_name("nothing")])
        assert any(unit.name == "import-time-worker" for _, unit in report.ignored)
    finally:
        del sys.modules[module.__name__]


def test_a_leaked_thread_at_the_address_of_a_service_seen_moments_ago_is_still_a_leak(
    cleanup: Cleanup,
) -> None:
    """A walk remembers what modules reach by address, and an object that dies leaves its address to the
    next of its size. A Thread a module held a moment ago, gone, and a new Thread at its address that
    nobody holds: the new one is a leak (seen in CI: a check passed silently, the leak read as a service)."""
    never = threading.Event()
    thread = _a_thread_where_a_held_one_was(
        lambda target: threading.Thread(target=target, name="reused", daemon=True), never.wait
    )
    if thread is None:
        pytest.skip("this Python's allocator never gave a freed Thread's address to the next Thread")
    cleanup.stop(never.set, thread)
    checked = looseends.check(timeout=0.05)
    with contextlib.suppress(looseends.LeakError), checked:
        thread.start()
        wait_blocked("reused", 1, "event.wait")
    assert checked.report is not None
    assert [unit.name for unit in checked.report.units] == ["reused"]


def _a_thread_where_a_held_one_was(
    make: Callable[[Callable[[], object]], threading.Thread], target: Callable[[], object]
) -> threading.Thread | None:
    """A new Thread at the address of a running one that a user module held when the services walk last
    looked, and that has ended and been freed since."""
    module = types.ModuleType("fake_module_with_a_short_lived_worker")
    module.__file__ = __file__
    sys.modules[module.__name__] = module
    try:
        for _ in range(20):
            release = threading.Event()
            module.WORKER = make(release.wait)  # type: ignore[attr-defined]
            module.WORKER.start()  # type: ignore[attr-defined]
            address = id(module.WORKER)  # type: ignore[attr-defined]
            assert module_holding(module.WORKER) == module.__name__  # type: ignore[attr-defined]
            release.set()
            module.WORKER.join(DEADLINE)  # type: ignore[attr-defined]
            del module.WORKER  # type: ignore[attr-defined]
            thread = make(target)
            if id(thread) == address:
                return thread
    finally:
        del sys.modules[module.__name__]
    return None


def test_the_walk_takes_no_lock_of_threadings() -> None:
    """A dump may run in a signal handler on a thread interrupted inside `Thread.start`, which holds
    threading's registry lock: the walk must not wait for it (it would wait forever)."""
    asked: list[str | None] = []
    go, done = threading.Event(), threading.Event()

    def ask() -> None:
        go.wait(DEADLINE)
        services._cache = None
        asked.append(module_holding(threading.current_thread()))
        done.set()

    helper = threading.Thread(target=ask, name="walker")
    helper.start()  # before the lock is held: starting a thread takes it too
    with threading._active_limbo_lock:  # type: ignore[attr-defined]
        go.set()
        finished = done.wait(DEADLINE)
    helper.join(DEADLINE)
    assert finished, "the walk waited for threading's registry lock"
    assert asked == [None]
