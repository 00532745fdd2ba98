"""What counts as a leak, judged on the shapes real suites have: the verdict rules and their words."""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import sys
import threading
import time
from pathlib import Path

import pytest

import looseends
from looseends._library import is_own_file

from leakfixtures import DEADLINE, Cleanup, wait_blocked


def test_creation_tracking_leaves_asyncio_debug_tracebacks_as_they_would_be() -> None:
    async def create() -> list[str]:
        async def nothing() -> None:
            pass

        task = asyncio.create_task(nothing())
        files = [entry.filename for entry in task._source_traceback]  # type: ignore[attr-defined]
        await task
        return files

    untracked = asyncio.run(create(), debug=True)
    with looseends.track():
        tracked = asyncio.run(create(), debug=True)
    assert not any(is_own_file(name) for name in tracked)
    assert tracked[-1] == untracked[-1]  # the innermost entry is asyncio's own, as without looseends


class Middleware:
    """Owns an executor it never shuts down, and sits in a reference cycle (as real middleware does)."""

    def __init__(self) -> None:
        self.pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="middleware")
        self.me = self

    def handle(self) -> int:
        return self.pool.submit(pow, 2, 5).result()


def test_an_executor_only_the_collector_would_stop_is_a_leak() -> None:
    gc.disable()  # the host's own collections are rare: here, none happens during the test
    try:
        with pytest.raises(looseends.LeakError) as info, looseends.check(timeout=0.1):
            assert Middleware().handle() == 32
    finally:
        gc.enable()
    group = info.value.report.groups[0]
    assert group.pattern is not None
    assert group.pattern.code == "pool-left-to-the-collector"
    assert "executor never shut down" in info.value.report.render()
    assert "its workers stay until the garbage collector happens to run" in info.value.report.render()


def test_an_executor_freed_when_its_last_reference_goes_is_a_straggler() -> None:
    def handle() -> int:
        pool = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="refcounted")
        return pool.submit(pow, 2, 5).result()  # no cycle: freed on return, its workers told to stop

    with looseends.check(timeout=0.5):
        assert handle() == 32


def test_a_poller_that_leaves_on_its_next_tick_is_no_leak(cleanup: Cleanup) -> None:
    """The issue's supervisor: it polls every 0.5 s and leaves at the tick after its flag drops."""
    running = [True]
    tick = threading.Event()  # never set: the wait's timeout is the poll interval

    def supervise() -> None:
        while running[0]:
            tick.wait(0.5)

    supervisor = threading.Thread(target=supervise, name="supervisor", daemon=True)
    cleanup(lambda: supervisor.join(DEADLINE))
    with looseends.check():  # default settle 0.5 s: it needs up to one more tick
        supervisor.start()
        wait_blocked("supervisor", 1, "event.wait")
        running[0] = False


def test_a_poller_that_never_leaves_says_it_polls_not_that_an_event_is_never_set(cleanup: Cleanup) -> None:
    should_exit = threading.Event()

    def supervise() -> None:
        while not should_exit.wait(0.05):
            pass

    supervisor = threading.Thread(target=supervise, name="stubborn", daemon=True)
    cleanup.stop(should_exit.set, supervisor)
    with pytest.raises(looseends.LeakError) as info, looseends.check(timeout=0.05):
        supervisor.start()
        wait_blocked("stubborn", 1, "event.wait")
    text = info.value.report.render()
    assert "threading.Event.wait (timeout 0.05 s)" in text
    assert "polls and never exits" in text
    assert "event never set" not in text


def test_a_one_shot_sleep_is_not_called_a_loop(cleanup: Cleanup) -> None:
    release = threading.Event()

    def nap() -> None:
        time.sleep(0.2)
        release.wait()

    napper = threading.Thread(target=nap, name="napper", daemon=True)
    cleanup.stop(release.set, napper)
    with pytest.raises(looseends.LeakError) as info, looseends.check(timeout=0.01, timed_extension=0):
        napper.start()
        wait_blocked("napper", 1, "time.sleep")
    assert "loop never stopped" not in info.value.report.render()


SERVICE_AND_LEAK = """
import asyncio

cleaned = []


async def service():
    # A per-loop service written to be stopped by the loop's shutdown: it handles its own cancellation.
    try:
        await asyncio.sleep(3600)
    except BaseException:
        cleaned.append("service")
        raise


async def forgotten():
    try:
        await asyncio.Event().wait()
    except Exception:  # does not catch a cancellation: nothing here knows how this task will stop
        pass


async def main():
    background.add(asyncio.create_task(service(), name="service"))
    background.add(asyncio.create_task(forgotten(), name="forgotten"))
    await asyncio.sleep(0)


background = set()
"""


def test_a_task_that_handles_its_own_cancellation_is_stopped_by_design_not_leaked(tmp_path: Path) -> None:
    module = tmp_path / "shapes.py"
    module.write_text(SERVICE_AND_LEAK)
    sys.path.insert(0, str(tmp_path))
    try:
        import shapes  # type: ignore[import-not-found]

        with pytest.raises(looseends.LeakError) as info, looseends.check(timeout=0.05):
            asyncio.run(shapes.main())
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("shapes", None)
    report = info.value.report
    assert [unit.name for unit in report.units] == ["forgotten"]
    assert [unit.name for unit in report.by_design] == ["service"]
    assert shapes.cleaned == ["service"]  # the loop's shutdown did stop it, as designed
    full = report.render(full=True)
    assert "not leaks: 1 task stopped by design at loop shutdown" in full
    assert "service" not in report.render()  # the one-liner is for the verbose output only


LEAKS_THROUGH_ANYIO = """
import asyncio
import anyio

background = set()


async def forever():
    await anyio.Event().wait()


async def run_group():
    async with anyio.create_task_group() as group:  # anyio's own wrapper has a finally and except
        group.start_soon(forever)


async def main():
    send, receive = anyio.create_memory_object_stream(1)
    background.add(send)
    background.add(asyncio.create_task(receive.receive(), name="receiving"))  # anyio waits in try/finally
    background.add(asyncio.create_task(run_group(), name="grouped"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
"""


def test_a_librarys_own_cleanup_is_no_evidence_that_the_program_meant_a_task_to_stop(tmp_path: Path) -> None:
    """anyio runs every task inside a wrapper with `finally` and `except BaseException`, and its streams
    wait inside a `try/finally`: left pending at loop shutdown, those tasks are leaks all the same."""
    pytest.importorskip("anyio", reason="anyio is not installed")
    module = tmp_path / "through_anyio.py"
    module.write_text(LEAKS_THROUGH_ANYIO)
    sys.path.insert(0, str(tmp_path))
    try:
        import through_anyio  # type: ignore[import-not-found]

        with pytest.raises(looseends.LeakError) as info, looseends.check(timeout=0.05):
            asyncio.run(through_anyio.main())
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("through_anyio", None)
    report = info.value.report
    leaked = sorted(unit.name for unit in report.units)
    assert "receiving" in leaked
    assert "grouped" in leaked
    assert report.by_design == ()


OWN_WRAPPERS = """
import asyncio

background = set()


class Handle:  # the shape of anyio's task wrapper, written in the program's own code
    def __init__(self, coro):
        self._coro = coro

    async def run(self):
        try:
            return await self._coro
        except BaseException:
            raise
        finally:
            self._coro = None


def wrapped(func, *args):
    async def wrapper():  # the shape of a runner's wrapper: a closure over what it was handed
        try:
            return await func(*args)
        finally:
            pass

    return wrapper()


class Group:  # a context manager whose exit handles the cancellation of whoever waits in it
    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        try:
            await asyncio.Event().wait()
        except BaseException:
            raise


async def in_a_group():
    async with Group():
        pass


class Service:
    async def _receive(self):
        await asyncio.Event().wait()

    async def serve(self):  # the program's own handler around its own call: it knows how it stops
        try:
            await self._receive()
        finally:
            pass


async def main():
    background.add(asyncio.create_task(Handle(asyncio.Event().wait()).run(), name="handled"))
    background.add(asyncio.create_task(wrapped(asyncio.sleep, 3600), name="closure"))
    background.add(asyncio.create_task(in_a_group(), name="exiting"))
    background.add(asyncio.create_task(Service().serve(), name="service"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
"""


def test_a_wrapper_that_passes_through_what_it_was_handed_is_no_evidence_even_in_the_programs_own_code(
    tmp_path: Path,
) -> None:
    """In anyio's own repository its task wrapper is the program's code; it runs every task, so its
    handler says nothing of how one will stop; nor does a context manager's exit, which handles whoever
    waits in it. A handler around the program's own call still does."""
    module = tmp_path / "own_wrappers.py"
    module.write_text(OWN_WRAPPERS)
    sys.path.insert(0, str(tmp_path))
    try:
        import own_wrappers  # type: ignore[import-not-found]

        with pytest.raises(looseends.LeakError) as info, looseends.check(timeout=0.05):
            asyncio.run(own_wrappers.main())
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("own_wrappers", None)
    report = info.value.report
    assert sorted(unit.name for unit in report.units) == ["closure", "exiting", "handled"]
    assert [unit.name for unit in report.by_design] == ["service"]


def test_a_task_created_through_a_library_helper_names_the_users_line() -> None:
    import anyio

    async def main() -> looseends.Report:
        never = anyio.Event()
        with pytest.raises(looseends.LeakError) as info:
            async with looseends.check(timeout=0.05):
                group = anyio.create_task_group()
                await group.__aenter__()
                group.start_soon(never.wait, name="via-start-soon")  # anyio, an installed package
                await anyio.sleep(0)
        never.set()
        await group.__aexit__(None, None, None)
        return info.value.report

    report = anyio.run(main)
    origin = report.groups[0].origin
    assert origin is not None
    assert origin.site is not None
    assert origin.site.filename == __file__  # not anyio's start_soon: the test's own line
    assert "group.start_soon(never.wait" in origin.site.source_line()


def test_a_task_created_by_the_users_own_helper_shows_who_called_it() -> None:
    def spawn(coro: object) -> asyncio.Task[object]:
        return asyncio.get_running_loop().create_task(coro)  # type: ignore[arg-type]

    async def main() -> looseends.Report:
        event = asyncio.Event()
        with pytest.raises(looseends.LeakError) as info:
            async with looseends.check(timeout=0.05):
                task = spawn(event.wait())
                await asyncio.sleep(0)
        event.set()
        await task
        return info.value.report

    report = asyncio.run(main())
    group = report.groups[0]
    assert group.origin is not None
    assert [f.function.rsplit(".", 1)[-1] for f in group.origin.user_frames][:2] == ["spawn", "main"]
    data = report.to_dict()["groups"][0]["created_by"]  # type: ignore[index]
    assert data["site"]["module"] == "test_verdicts"


def test_a_pool_gone_in_the_collection_is_excused_only_when_no_line_of_the_program_started_it() -> None:
    """asgiref's async_to_sync (behind every Django async test, tests/test_django.py) makes an executor
    per call and never shuts it down; with no frame of the program on the creating stack the program has
    nothing to fix. The same pool with the program's line on that stack is its leak."""
    from concurrent.futures import thread as pool_module

    from looseends.analysis.ignore import BUILTIN_IGNORES
    from looseends.model import BlockedOn, Frame, Kind, Origin, Unit

    library = Frame(
        pool_module.__file__, 199, "ThreadPoolExecutor._adjust_thread_count", "concurrent.futures.thread"
    )
    program = Frame(__file__, 1, "handle", "tests.test_verdicts")
    gone = BlockedOn("queue.get", "queue.SimpleQueue.get", {"gone": "collected"}, "ThreadPoolExecutor worker")

    def excused(frames: tuple[Frame, ...], blocked_on: BlockedOn = gone) -> list[str]:
        unit = Unit(Kind.THREAD, ("thread", 1), "pool_0", blocked_on=blocked_on, origin=Origin(frames))
        return [rule.description for rule in BUILTIN_IGNORES if rule.matches(unit)]

    assert excused((library,)) == ["gone in a collection, started by library code alone"]
    assert excused((library, program)) == []
    assert excused(()) == []  # creation not seen: nothing says who started it
    assert (
        excused((library,), BlockedOn("queue.get", "queue.SimpleQueue.get", {}, "ThreadPoolExecutor worker"))
        == []
    )
