"""Task records made late: the accelerator keeps a task's record in C and makes its tuple only when the
table is read or full. Whatever the timing, each task's record must say what was true when it was created,
and a task born at a dead one's address must never show the dead one's record."""

from __future__ import annotations

import asyncio
import gc
import sys
import threading
import time
import weakref
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from looseends.model import Origin
from looseends.sources import _origins
from looseends.sources._origins import task_created_at, task_origin
from looseends.sources._tracking import tracking

try:
    import looseends.sources._speedups as speedups
except ImportError:
    speedups = None  # type: ignore[assignment]

WITNESSES = 32  # tasks whose records wait in C, some of them behind the one a flush is making
NO_REUSE = "this allocator never gave a freed task's address to the next task (under ASan it does not)"
FIRSTS = 64  # tasks that die together, so the allocator has their addresses at hand for the next
ATTEMPTS = 200  # tries at getting a freed task's address for the next task; the allocator gives it at once


async def _parked(release: asyncio.Event) -> None:
    await release.wait()


def _line_of(task: asyncio.Task[Any]) -> int | None:
    origin = task_origin(task)
    return None if origin is None or not origin.frames else origin.frames[0].lineno


def _marked(text: str) -> int:
    """The line of this file that ends with the comment `text`."""
    with open(__file__, encoding="utf-8") as lines:
        return next(number for number, line in enumerate(lines, 1) if line.rstrip().endswith(f"# {text}"))


def _at_a_dead_tasks_address(
    first: Callable[[], asyncio.Task[Any]], second: Callable[[], asyncio.Task[Any]], *, read_first: bool
) -> Origin | None:
    """The record of a task made by `second` at the address of one made by `first`, finished and freed
    (None if the allocator never gave it: ASan's quarantine does not). `read_first`: the first tasks'
    records are read (so made tuples) before. Many first tasks die together, so the allocator has their
    addresses at hand for the next."""

    async def attempts() -> Origin | None:
        for _ in range(ATTEMPTS):
            tasks = [first() for _ in range(FIRSTS)]
            if read_first:
                assert all(task_origin(task) is not None for task in tasks)
            addresses = {id(task) for task in tasks}
            await asyncio.gather(*tasks)
            del tasks
            await asyncio.sleep(0)  # the done callbacks run and let go of them
            gc.collect()
            again = second()
            reused = id(again) in addresses
            origin = task_origin(again)
            await again
            if reused:
                return origin or Origin((), creator="none: the record was lost")
        return None

    with tracking():
        return asyncio.run(attempts())


def _sleeper() -> Coroutine[Any, Any, None]:
    return asyncio.sleep(0)


def test_every_live_task_keeps_its_own_record_past_a_full_table() -> None:
    """More live tasks than the C table holds: each record names its own line, test and moment."""

    async def main() -> list[tuple[asyncio.Task[Any], float, float]]:
        release = asyncio.Event()
        made = []
        for _ in range(1500):
            before = time.monotonic()
            task = asyncio.create_task(_parked(release))  # the creation line
            made.append((task, before, time.monotonic()))
        with tracking("a later check"):  # records already noted keep the label they had
            lines = {_line_of(task) for task, _, _ in made}
            origins = [task_origin(task) for task, _, _ in made]
        release.set()
        await asyncio.gather(*(task for task, _, _ in made))
        assert lines == {_marked("the creation line")}
        assert all(origin is not None and origin.during == "the check" for origin in origins)
        return made

    with tracking("the check"):
        made = asyncio.run(main())
    for task, before, after in made:
        created = task_created_at(task)
        assert created is not None
        assert before - EARLY <= created <= after


# The accelerator reads a task's creation time from the coarse clock, last set at a tick: it may read a
# tick early, a little more when a tick comes late.
EARLY = 2 * getattr(speedups, "TASK_CLOCK_RESOLUTION", 0.0)


def test_a_task_born_at_a_dead_tasks_address_shows_its_own_record() -> None:
    def first() -> asyncio.Task[Any]:
        return asyncio.create_task(_sleeper())  # the first line

    def second() -> asyncio.Task[Any]:
        return asyncio.create_task(_sleeper())  # the second line

    for read_first in (False, True):
        origin = _at_a_dead_tasks_address(first, second, read_first=read_first)
        if origin is None:
            pytest.skip(NO_REUSE)
        assert origin.frames[0].lineno == _marked("the second line")


def _library_chain(depth: int) -> Callable[[], asyncio.Task[Any]]:
    """A task created `depth` calls deep inside code that looks like the standard library's: a creation
    site with no user frame near, longer than the accelerator keeps waiting in C."""
    source = "def f0():\n    return asyncio.create_task(asyncio.sleep(0))\n" + "".join(
        f"def f{i}():\n    return f{i - 1}()\n" for i in range(1, depth)
    )
    namespace: dict[str, Any] = {"asyncio": asyncio}
    exec(compile(source, threading.__file__, "exec"), namespace)
    return namespace[f"f{depth - 1}"]  # type: ignore[no-any-return]


def test_a_long_site_stored_at_once_is_not_overwritten_by_an_older_waiting_one() -> None:
    deep = _library_chain(_origins.TASK_HOPS + 2)

    def first() -> asyncio.Task[Any]:
        return asyncio.create_task(_sleeper())

    origin = _at_a_dead_tasks_address(first, deep, read_first=False)
    if origin is None:
        pytest.skip(NO_REUSE)
    assert len(origin.frames) == _origins.TASK_HOPS
    assert [frame.function for frame in origin.frames[:3]] == ["create_task", "f0", "f1"]


def test_a_finaliser_run_while_records_are_made_may_create_and_read_tasks() -> None:
    """Making a record can free the one it replaces, and with it what only that held: a code object, whose
    weak reference's callback runs the program's code, which may create a task and read records, its own
    and one still waiting, in the middle of the records being made."""
    if speedups is None:
        pytest.skip("the C accelerator is not built: without it records never wait, nothing is flushed")
    made: list[asyncio.Task[Any]] = []
    read: list[tuple[bool, Origin | None, list[Origin | None]]] = []
    watches: list[weakref.ref[Any]] = []
    witness: list[asyncio.Task[Any]] = []
    release = asyncio.Event()

    def on_freed(_: object) -> None:
        inside = not speedups.flush_tasks()  # False: a flush is under way
        task = asyncio.get_event_loop().create_task(_sleeper())
        made.append(task)
        read.append((inside, task_origin(task), [task_origin(each) for each in witness[-WITNESSES:]]))

    def creator() -> Callable[[], asyncio.Task[Any]]:
        namespace: dict[str, Any] = {"asyncio": asyncio}
        source = "def make():\n    return asyncio.create_task(asyncio.sleep(0))\n"
        exec(compile(source, __file__, "exec"), namespace)
        return namespace["make"]  # type: ignore[no-any-return]

    async def main() -> bool:
        reused = False
        for _ in range(ATTEMPTS):
            makers = [creator() for _ in range(FIRSTS)]
            watches.extend(weakref.ref(make.__code__, on_freed) for make in makers)
            first = [make() for make in makers]
            assert all(task_created_at(task) is not None for task in first)  # tuples holding the codes
            addresses = {id(task) for task in first}
            await asyncio.gather(*first)
            del first, makers
            gc.collect()  # each make's code now lives in its first task's record only
            await asyncio.sleep(0)
            second = asyncio.create_task(_sleeper())  # waits in C, as do the witnesses
            witness.extend(asyncio.create_task(_parked(release)) for _ in range(WITNESSES))  # witness line
            if id(second) in addresses:
                reused = True
                task_created_at(second)  # its record replaces a first's, freeing a code, mid-flush
            await second
            if any(inside for inside, _, _ in read):
                break
        release.set()
        await asyncio.gather(*made, *witness)
        return reused

    with tracking():
        reused = asyncio.run(main())
    if not reused:
        pytest.skip(NO_REUSE)
    assert made, "no code object was freed while tracking"
    assert any(inside for inside, _, _ in read), "no finaliser ran during a flush"
    assert all(own is not None for _, own, _ in read)
    line = _marked("witness line")
    assert all(seen is not None and seen.frames[0].lineno == line for _, _, seen_ in read for seen in seen_)


def test_records_made_from_many_threads_while_another_reads_are_each_their_tasks_own() -> None:
    """Loops on four threads create tasks (some finishing, their addresses reused at once) while a fifth
    thread reads their records and prunes the table, with the smallest switch interval: every task read
    back shows its own creation line and creating thread. (Only records: a whole snapshot in a process
    that imported gevent scans the heap, which the Python fallback cannot do without a moment's hazard
    to a tuple being built, docs/security.md; tests/test_robustness.py covers that scan.)"""
    wrong: list[str] = []
    stop = threading.Event()
    latest: list[asyncio.Task[Any]] = []

    def create(rounds: int) -> None:
        async def main() -> None:
            creator = f"task {asyncio.current_task().get_name()} in thread {threading.current_thread().name}"  # type: ignore[union-attr]
            racing, short = _marked("the racing line"), _marked("the short line")
            for _ in range(rounds):
                release = asyncio.Event()
                made = [(asyncio.create_task(_parked(release)), racing) for _ in range(40)]  # the racing line
                made += [(asyncio.create_task(_sleeper()), short) for _ in range(40)]  # the short line
                latest[:] = [task for task, _ in made]
                for task, line in made:
                    origin = task_origin(task)
                    read = None if origin is None else (origin.frames[0].lineno if origin.frames else None)
                    if (read, None if origin is None else origin.creator) != (line, creator):
                        wrong.append(f"{task.get_name()}: {origin}")
                release.set()
                await asyncio.gather(*(task for task, _ in made))

        try:
            asyncio.run(main())
        except Exception as exc:  # the test's finding, not a crash of the thread
            wrong.append(repr(exc))

    def read() -> None:
        while not stop.is_set():
            for task in list(latest):
                task_origin(task)
            _origins._task_origins.prune()

    creators = [threading.Thread(target=create, args=(60,), name=f"creator-{n}") for n in range(4)]
    reader = threading.Thread(target=read)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with tracking():
            reader.start()
            for thread in creators:
                thread.start()
            for thread in creators:
                thread.join(120)
            stop.set()
            reader.join(120)
    finally:
        sys.setswitchinterval(interval)
    assert not any(thread.is_alive() for thread in [*creators, reader])
    assert wrong == []
