"""Odd threads, closing loops, churn, odd objects: a snapshot never raises, never deadlocks, keeps nothing
alive, and runs none of the program's code."""

from __future__ import annotations

import _thread
import asyncio
import contextlib
import gc
import importlib.util
import sys
import threading
import traceback
import types
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar, NoReturn

import pytest

import looseends
from looseends.sources.tasks import TaskSource
from looseends.sources.threads import ThreadSource

from leakfixtures import DEADLINE, Cleanup, start_thread_on_a_lock_nobody_holds, wait_blocked, wait_until


class Boom(Exception):
    pass


class CursedThread(threading.Thread):
    """A thread whose name and repr raise."""

    @property  # type: ignore[override]
    def name(self) -> str:
        raise Boom("name")

    @name.setter
    def name(self, value: str) -> None:
        pass

    def __repr__(self) -> str:
        raise Boom("repr")


def test_threads_whose_name_or_repr_raises(cleanup: Cleanup) -> None:
    release = threading.Event()
    thread = CursedThread(target=release.wait)
    cleanup.stop(release.set, thread)
    thread.start()
    units = [u for u in looseends.snapshot().units if u.ident == thread.ident]
    assert len(units) == 1
    assert units[0].name == thread._name  # read as stored: the property (the program's code) never runs
    assert units[0].blocked_on.code == "event.wait"
    assert thread._name in looseends.snapshot().render(debug=2)


def test_dummy_threads_from_underscore_thread(cleanup: Cleanup) -> None:
    release = threading.Event()
    registered = threading.Event()
    done = threading.Event()

    def foreign() -> None:
        threading.current_thread()  # registers a _DummyThread for this ident
        registered.set()
        release.wait()
        done.set()

    _thread.start_new_thread(foreign, ())
    cleanup(lambda: (release.set(), done.wait(DEADLINE)))
    assert registered.wait(DEADLINE)
    dummies = [u for u in looseends.snapshot().units if u.name.startswith("Dummy-")]
    assert dummies
    assert dummies[0].daemon is True


def test_source_failures_are_reported_not_raised() -> None:
    class Broken:
        name = "broken"

        def read(self, *, detail: bool = True) -> list[looseends.Unit]:
            raise RuntimeError("cannot read")

    snapshot = looseends.snapshot(sources=[Broken(), ThreadSource()])
    assert snapshot.errors == ("could not read broken: RuntimeError: cannot read",)
    assert len(snapshot) >= 1
    assert "warning: could not read broken" in snapshot.render()


def test_fake_sources_with_odd_frames_and_task_sets() -> None:
    units = ThreadSource(_current_frames=lambda: {}, _active=lambda: {}).read()
    assert units == []
    assert TaskSource(_tasks=lambda: []).read() == []


def test_loops_closing_while_snapshots_run(cleanup: Cleanup) -> None:
    stop = threading.Event()
    errors: list[BaseException] = []

    def churn_loops() -> None:
        while not stop.is_set():
            loop = asyncio.new_event_loop()
            try:
                tasks = [loop.create_task(asyncio.sleep(0.001)) for _ in range(20)]
                loop.run_until_complete(asyncio.sleep(0))
                for task in tasks:
                    task.cancel()
                loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)
            finally:
                loop.close()

    churner = threading.Thread(target=churn_loops, name="churner")
    cleanup.stop(stop.set, churner)
    churner.start()
    for _ in range(200):
        snapshot = looseends.snapshot()
        assert snapshot.errors == ()
        snapshot.render(debug=2)
    assert errors == []


def test_hundreds_of_threads_starting_and_stopping_while_snapshots_run(cleanup: Cleanup) -> None:
    stop = threading.Event()

    def spawner() -> None:
        while not stop.is_set():
            batch = [threading.Thread(target=lambda: None) for _ in range(50)]
            for thread in batch:
                thread.start()
            for thread in batch:
                thread.join()

    spawners = [threading.Thread(target=spawner, name=f"spawner-{n}") for n in range(4)]
    cleanup.stop(stop.set, *spawners)
    for thread in spawners:
        thread.start()
    with looseends.check(timeout=DEADLINE, ignore=[looseends.ignore_name("spawner-*")]):
        for _ in range(100):
            snapshot = looseends.snapshot()
            assert snapshot.errors == ()
            assert len(snapshot) >= 1


def test_snapshots_keep_no_frames_or_locals_alive(cleanup: Cleanup) -> None:
    class Payload:
        pass

    release = threading.Event()
    holder: list[weakref.ref[Payload]] = []

    def worker() -> None:
        payload = Payload()
        holder.append(weakref.ref(payload))
        release.wait()
        del payload

    thread = threading.Thread(target=worker, name="holder")
    cleanup.stop(release.set, thread)
    with looseends.check(timeout=0) as checked:
        thread.start()
        wait_until(lambda: bool(holder))
        kept = looseends.snapshot()
        kept.render(debug=2)
        kept.units[0].blocked_on  # noqa: B018 - touch the data
        release.set()
        thread.join(DEADLINE)
    gc.collect()
    assert holder[0]() is None
    assert checked.report is not None
    assert not checked.report
    del kept


def test_snapshot_from_inside_a_running_loop_sees_its_own_tasks() -> None:
    async def main() -> set[str]:
        never = asyncio.Event()
        tasks = [asyncio.create_task(never.wait(), name=f"own-{n}") for n in range(3)]
        await asyncio.sleep(0)
        names = {u.name for u in looseends.snapshot().units}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return names

    assert {"own-0", "own-1", "own-2"} <= asyncio.run(main())


class _Proxy:
    """Like a framework's request proxy kept in a module global: asking it anything runs its code."""

    asked: ClassVar[list[str]] = []

    @property  # type: ignore[misc]
    def __class__(self) -> type:
        return self._answer()

    def __getattr__(self, name: str) -> object:
        return self._answer()

    def _answer(self) -> NoReturn:
        self.asked.append("".join(traceback.format_stack(limit=5)[:2]))  # where it was asked, if it was
        raise RuntimeError("working outside of a request")


def test_the_walk_asks_nothing_of_the_programs_objects_and_imports_no_lazy_module(
    tmp_path: Path, cleanup: Cleanup
) -> None:
    """A leaking check reads every module and module global (the services walk, the proof's walk, the
    creation sites' module names): it must run none of the program's code, such as a proxy's `__class__`
    (which `isinstance` asks for), a module's `__getattr__`, or a lazy module's import on first read."""
    (tmp_path / "lazily_imported.py").write_text("raise RuntimeError('imported by the walk')\n")
    spec = importlib.util.spec_from_file_location("lazily_imported", tmp_path / "lazily_imported.py")
    assert spec is not None
    assert spec.loader is not None
    spec.loader = importlib.util.LazyLoader(spec.loader)
    lazy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lazy)
    holder = types.ModuleType("fake_module_with_a_proxy")
    holder.__file__ = __file__
    holder.request = _Proxy()  # type: ignore[attr-defined]
    fileless = types.ModuleType("fake_module_with_a_getattr")  # PEP 562: asked for what it lacks
    fileless.__getattr__ = _Proxy().__getattr__  # type: ignore[method-assign]
    sys.modules.update({"lazily_imported": lazy, holder.__name__: holder, fileless.__name__: fileless})
    try:
        never = threading.Event()
        thread = threading.Thread(target=never.wait, name="beside-a-proxy", daemon=True)
        cleanup.stop(never.set, thread)
        checked = looseends.check(timeout=0.05)
        with contextlib.suppress(looseends.LeakError), checked:
            thread.start()
            wait_blocked("beside-a-proxy", 1, "event.wait")
    finally:
        del sys.modules["lazily_imported"], sys.modules[holder.__name__], sys.modules[fileless.__name__]
    assert checked.report is not None
    assert [unit.name for unit in checked.report.units] == ["beside-a-proxy"]
    assert _Proxy.asked == []
    assert type(lazy).__name__ == "_LazyModule"  # still not imported


@contextlib.contextmanager
def _tuples_being_built() -> Iterator[list[BaseException]]:
    """Two threads building tuples with `tuple(generator)` at a 1 µs switch interval: what their calls
    raised, if anything. Before 3.14 such a tuple is tracked while it fills, and its resize fails (the
    call raises SystemError) if anything else holds it then."""
    errors: list[BaseException] = []
    stop = threading.Event()

    def build() -> None:
        while not stop.is_set():
            try:
                tuple(str(n) for n in range(200))  # each item runs Python code: the thread may switch
            except BaseException as exc:  # what the program would see
                errors.append(exc)
                return

    builders = [threading.Thread(target=build, name=f"builder-{n}") for n in range(2)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        for thread in builders:
            thread.start()
        yield errors
    finally:
        stop.set()
        sys.setswitchinterval(interval)
        for thread in builders:
            thread.join(DEADLINE)


def _needs_the_accelerator(why: str) -> None:
    try:
        import looseends.sources._speedups  # noqa: F401
    except ImportError:
        pytest.skip(f"the C accelerator is not built: {why}")


def test_a_snapshot_in_a_gevent_process_never_breaks_a_tuple_another_thread_is_building() -> None:
    """With gevent imported, a snapshot looks for greenlets among every object the collector tracks, which
    include a tuple another thread's `tuple(generator)` is still filling: had the scan held it while that
    thread ran, the thread's resize would have failed and its call raised SystemError."""
    pytest.importorskip("gevent.hub", reason="gevent is not installed (the `dev` extra has it)")
    _needs_the_accelerator("in Python the scan holds every object for a moment")
    with _tuples_being_built() as errors:
        for _ in range(100):
            looseends.snapshot()
    assert errors == []


def test_a_proof_never_breaks_a_tuple_another_thread_is_building(cleanup: Cleanup) -> None:
    """A proof accounts for every reference to what leads to the primitive, over every object the
    collector tracks: that list is never held while another thread runs."""
    _needs_the_accelerator("in Python the proof's accounting holds every object while it runs")
    from looseends.analysis.reachability import prove

    start_thread_on_a_lock_nobody_holds(cleanup, "tb-acquire")
    units = [u for u in looseends.snapshot().units if u.name == "tb-acquire"]
    with _tuples_being_built() as errors:
        proven = sum(len(prove(units)) for _ in range(30))
    assert errors == []
    assert proven == 30  # each accounting ran to the end, over the builders' objects too
