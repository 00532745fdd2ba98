"""The C accelerator makes exactly the records the Python code makes, never raises, and is built in CI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from looseends import _cpython
from looseends.sources import _origins
from looseends.sources._tracking import tracking

try:
    import looseends.sources._speedups as speedups
except ImportError:
    speedups = None  # type: ignore[assignment]

needs_speedups = pytest.mark.skipif(
    speedups is None, reason="the C accelerator is not built (no C compiler or no Python headers at install)"
)


@pytest.mark.skipif(
    not os.environ.get("LOOSEENDS_REQUIRE_SPEEDUPS"), reason="LOOSEENDS_REQUIRE_SPEEDUPS not set (CI sets it)"
)
def test_ci_builds_the_accelerator_and_tracking_uses_it() -> None:
    assert speedups is not None, "CI must build looseends.sources._speedups (a compiler and Python's headers)"
    with tracking():
        assert type(threading.Thread.__dict__["start"]).__name__ == "Tracked"
        assert type(asyncio.BaseEventLoop.__dict__["create_task"]).__name__ == "Tracked"


def _without_time(record: tuple[Any, ...]) -> tuple[Any, ...]:
    """The record with its locations as lines: a caller's offset differs by the inline caches of its call
    depending on whether it called into C or Python, never its line."""
    partner, thread, task_name, created_at, during = record[:5]
    assert isinstance(created_at, float)
    locations = record[5:]
    pairs = zip(locations[::2], locations[1::2], strict=True)
    lines = tuple((code, _origins.line_at(code, offset)) for code, offset in pairs)
    return partner, thread, task_name, during, lines


def _no_start(thread: threading.Thread) -> None:
    """Stands in for Thread.start: the wrappers are compared, not threads started."""


def _started_here(start: Callable[[threading.Thread], None], thread: threading.Thread) -> tuple[Any, ...]:
    _origins._thread_origins.entries.pop(id(thread), None)  # a stale record of an object gone at this id
    start(thread)  # the user's line: a wrapper adds no frame of its own to the record
    return _origins._thread_origins.entries.pop(id(thread))


def _start_wrappers() -> tuple[Callable[[threading.Thread], None], ...]:
    return speedups.tracked_start(_no_start), _origins._tracked_start(_no_start)


@needs_speedups
def test_a_thread_record_is_the_same_from_c_and_from_python() -> None:
    thread = threading.Thread(target=int, name="unstarted")
    with tracking("the check"):
        made = [_without_time(_started_here(start, thread)) for start in _start_wrappers()]
    assert made[0] == made[1]
    partner, creator, task_name, during, locations = made[0]
    assert (partner, creator, task_name, during) == (id(threading.Thread), "MainThread", None, "the check")
    assert locations[0][0] is _started_here.__code__  # the caller of start, then its callers
    assert len(locations) == _origins.ORIGIN_DEPTH


class _NameByProperty(threading.Thread):
    """A Thread class whose `_name` is a property: reading it runs the program's code (threading itself
    reads it too, so it must work)."""

    reads = 0

    @property  # type: ignore[override]
    def _name(self) -> str:
        _NameByProperty.reads += 1
        return "by-property"

    @_name.setter
    def _name(self, value: str) -> None:
        pass


@needs_speedups
def test_a_creator_thread_whose_name_would_run_code_is_named_by_its_ident() -> None:
    records: list[tuple[Any, ...]] = []
    reads: list[int] = []

    def body() -> None:
        target = threading.Thread(target=int)
        before = _NameByProperty.reads
        records.extend(_without_time(_started_here(start, target)) for start in _start_wrappers())
        reads.append(_NameByProperty.reads - before)

    creator = _NameByProperty(target=body)
    with tracking():
        creator.start()
        creator.join(timeout=30)
    assert len(records) == 2
    assert records[0] == records[1]
    assert records[0][1] == creator.ident
    assert reads == [0]


def _stock_create_task() -> Callable[..., Any]:
    return asyncio.BaseEventLoop.create_task  # type: ignore[return-value]


def _created_here(create_task: Callable[..., Any], loop: Any, coro: Any) -> tuple[Any, Any]:
    task = create_task(loop, coro)  # the user's line
    record = _origins._task_origins.forget(task)
    return task, record if record is not None and record[0] == id(coro) else None  # not a stale one


async def _sleeper() -> None:
    await asyncio.sleep(0)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def _create_task_wrappers(**hooks: Any) -> tuple[Callable[..., Any], ...]:
    original = _stock_create_task()
    stock = "debug_hook" in hooks
    return speedups.tracked_create_task(original, **hooks), _origins._tracked_create_task(
        original, stock=stock
    )


@needs_speedups
def test_a_task_record_is_the_same_from_c_and_from_python(loop: asyncio.AbstractEventLoop) -> None:
    names: list[str] = []

    async def main() -> list[tuple[int, tuple[Any, ...]]]:
        names.append(asyncio.current_task().get_name())  # type: ignore[union-attr]
        made = []
        for create_task in _create_task_wrappers(debug_hook=_origins._without_own_frames):
            coro = _sleeper()
            task, record = _created_here(create_task, loop, coro)
            made.append((id(coro), _without_time(record)))
            await task
        return made

    with tracking("the check"):
        made = loop.run_until_complete(main())
    (c_coro, c_record), (py_coro, py_record) = made
    assert c_record[1:] == py_record[1:]
    assert (c_record[0], py_record[0]) == (c_coro, py_coro)
    _, thread, task_name, during, locations = c_record
    assert (thread, task_name, during) == (threading.get_ident(), names[0], "the check")
    assert [code.co_name for code, _ in locations] == ["_created_here", "main"]  # user frames only


@needs_speedups
def test_each_creating_thread_is_recorded_as_itself_and_a_patched_get_ident_is_seen_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The accelerator keeps the last creating thread's ident: another thread, or gevent patching
    `_thread.get_ident` after tracking began, must never be recorded as that one."""
    import _thread

    start = speedups.tracked_start(_no_start)
    creators: list[Any] = []

    def create() -> None:
        creators.append(_started_here(start, threading.Thread(target=int))[1])

    with tracking():
        create()
        helper = threading.Thread(target=create, name="helper")
        helper.start()
        helper.join(timeout=30)
        create()
        monkeypatch.setattr(_thread, "get_ident", lambda: 424242)  # as gevent's monkey-patching does
        create()
        monkeypatch.undo()
        create()
    assert creators == ["MainThread", "helper", "MainThread", 424242, "MainThread"]


@needs_speedups
def test_a_file_is_judged_again_after_configure(loop: asyncio.AbstractEventLoop) -> None:
    """Files' verdicts are cached; configure() (a new judge) forgets them all."""
    (create_task,) = _create_task_wrappers(debug_hook=_origins._without_own_frames)[:1]

    async def recorded() -> list[str]:
        coro = _sleeper()
        task, record = _created_here(create_task, loop, coro)
        await task
        assert record is not None
        return [code.co_name for code in record[5::2]]

    users = ["_created_here", "recorded"]  # this file is the user's: its frames, up to the library's
    with tracking():
        assert loop.run_until_complete(recorded()) == users
        try:
            _origins._configure_speedups(speedups, judge=lambda filename: True)  # every file a library's
            library_only = loop.run_until_complete(recorded())
        finally:
            _origins._configure_speedups(speedups)
        assert loop.run_until_complete(recorded()) == users
    # No user frame: the frames walked, this file's and asyncio's alike.
    assert library_only[:2] == users
    assert len(library_only) == _origins.TASK_HOPS


@needs_speedups
def test_the_rare_paths_call_their_hooks(loop: asyncio.AbstractEventLoop) -> None:
    called: list[object] = []
    loop.set_debug(True)
    debug = speedups.tracked_create_task(_stock_create_task(), debug_hook=called.append)
    other = speedups.tracked_create_task(_stock_create_task(), thread_hook=called.append)
    plain = speedups.tracked_create_task(_stock_create_task())  # no hook: nothing read, nothing called

    async def main() -> None:
        for create_task in (plain, debug, other):
            task, _ = _created_here(create_task, loop, _sleeper())
            await task
            called.append(task)

    with tracking():
        loop.run_until_complete(main())
        outside, _ = _created_here(other, loop, _sleeper())  # no task running: no thread to learn
        loop.run_until_complete(outside)
    first, second, third = called[0], called[2], called[4]
    assert called == [first, second, second, loop, third]


@needs_speedups
def test_asyncios_own_shutdown_tasks_are_not_recorded(loop: asyncio.AbstractEventLoop) -> None:
    with tracking():
        for create_task in _create_task_wrappers(debug_hook=_origins._without_own_frames):
            coro = loop.shutdown_asyncgens()
            assert coro.cr_code in _cpython.HOUSEKEEPING
            task, record = _created_here(create_task, loop, coro)
            assert record is None
            loop.run_until_complete(task)


def _failing(*args: object) -> None:
    raise RuntimeError("the host's own error")


@needs_speedups
def test_the_hosts_errors_pass_through_untouched_and_move_no_mark() -> None:
    from looseends.sources._tracking import state

    start = speedups.tracked_start(_failing)
    create_task = speedups.tracked_create_task(_failing, debug_hook=_failing)
    with tracking():
        marks = (state.threads, state.tasks)
        for call in (lambda: start(threading.Thread()), lambda: create_task(None, None), start):
            with pytest.raises((RuntimeError, TypeError)):
                call()
        assert (state.threads, state.tasks) == marks
        with pytest.raises(TypeError):
            speedups.tracked_start(_no_start)()  # type: ignore[call-arg]


@needs_speedups
def test_a_tracked_method_binds_like_a_function_and_says_what_it_wraps() -> None:
    class Owner:
        def method(self) -> object:
            return self

    tracked = speedups.tracked_start(Owner.method)
    Owner.method = tracked  # type: ignore[method-assign]
    owner = Owner()
    assert owner.method() is owner
    assert Owner.method is tracked
    assert tracked.__wrapped__ is Owner.__dict__["method"].__wrapped__  # type: ignore[attr-defined]
    assert repr(tracked).startswith("<looseends tracked <function ")
    assert (
        tracked.__qualname__
        == "test_a_tracked_method_binds_like_a_function_and_says_what_it_wraps.<locals>.Owner.method"
    )
    with pytest.raises(AttributeError):
        tracked.no_such_attribute  # noqa: B018


@needs_speedups
def test_configure_refuses_what_it_cannot_use() -> None:
    with pytest.raises(TypeError):
        speedups.configure()  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="depths"):
        _origins._configure_speedups(speedups, thread_depth=1000)
    with pytest.raises(TypeError, match="slot"):
        _origins._configure_speedups(speedups, state=object())
    with pytest.raises(TypeError, match="thread_module a module"):
        _origins._configure_speedups(speedups, thread_module=object())
    with pytest.raises(TypeError, match="at most one of"):
        speedups.tracked_create_task(_no_start, debug_hook=print, thread_hook=print)
    _origins._configure_speedups(speedups)  # as it was


AUDITED = """
import asyncio, sys, looseends
events, recording = [], []

def hook(event, args):
    if recording and event == "object.__getattr__":
        events.append(args[1])

async def job():
    pass

async def main():
    recording.append(True)
    for _ in range(50):
        await asyncio.create_task(job())
    recording.clear()

sys.addaudithook(hook)
asyncio.run(main())
untracked = list(events)
events.clear()
with looseends.track():
    asyncio.run(main())
print(untracked, events)
"""


@needs_speedups
def test_creating_a_task_runs_none_of_the_programs_audit_hooks() -> None:
    """A coroutine's `cr_code` attribute raises an audit event, which runs the program's hooks: the
    accelerator reads the code from the object, so a tracked task creation raises none."""
    done = subprocess.run(
        [sys.executable, "-c", AUDITED], capture_output=True, text=True, timeout=60, check=True
    )
    untracked, tracked = done.stdout.strip().split("] [")
    assert tracked.rstrip("]") == untracked.lstrip("[")  # no event of ours among the program's


@needs_speedups
def test_a_task_made_just_after_a_check_began_reads_as_made_during_it(
    loop: asyncio.AbstractEventLoop,
) -> None:
    """Tasks are stamped with the coarse clock (a tick behind the precise one): a task made a moment
    after a check began must still not read as made before it (the check would skip it), and one made a
    moment before must not read as made after."""

    async def main() -> list[tuple[float, float | None, float | None]]:
        made = []
        for _ in range(20):
            before = asyncio.create_task(_sleeper())
            began = _origins.check_began()
            after = asyncio.create_task(_sleeper())
            made.append((began, _origins.task_created_at(before), _origins.task_created_at(after)))
            await asyncio.gather(before, after)
        return made

    with tracking("the check"):
        made = loop.run_until_complete(main())
    assert all(before is not None and before < began for began, before, _ in made)
    assert all(after is not None and after >= began for began, _, after in made)
