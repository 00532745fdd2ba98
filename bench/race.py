"""Figure 7: hand-offs that end on their own are never leaks, and never "proven stuck".

Each round parks a waiter on a primitive (a thread on a Queue, Condition, Event, Lock, RLock, Semaphore
or Barrier; a task on the asyncio equivalents; an executor's short job), releases it and returns without
joining: the waiter finishes by itself a moment later. The round runs under `looseends.check()` (a
`LeakError` is a false leak), and right after the release it asks for proofs of the waiter being stuck,
at the moment the waiter has been notified but may not have run yet (a proof is a false proof). Two
CPU-busy threads run alongside, and the switch interval is 1 µs, so the scheduler interleaves as badly as
it can. `--pytest` runs the same hand-offs as tests under `pytest --looseends`.

    python bench/race.py --rounds 1000            # check() and proofs
    python bench/race.py --rounds 200 --pytest    # the pytest plugin
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import contextlib
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path

import looseends
from looseends.analysis.settle import confirmed_proofs
from looseends.core.find import proofs
from looseends.model import Unit
from looseends.sources import take_snapshot
from looseends.sources._frames import walk_back
from looseends.sources._waits import classify_or_running

DEADLINE = 10.0
Release = Callable[[], object]


def _parked(thread: threading.Thread, code: str) -> None:
    """Wait (bounded, no fixed sleep) until `thread` is blocked in the wait `code`."""
    deadline = time.monotonic() + DEADLINE
    while True:
        frame = sys._current_frames().get(thread.ident or -1)
        if frame is not None and classify_or_running(list(walk_back(frame))).code == code:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{thread.name} never blocked in {code}")
        time.sleep(0)


def _waiter(name: str, target: Callable[[], object], code: str) -> threading.Thread:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    _parked(thread, code)
    return thread


# Thread hand-offs: each builds its primitive in its own frame, parks a waiter and returns the release.


def queue_put(name: str) -> Release:
    import queue

    items: queue.Queue[int] = queue.Queue(maxsize=1)
    items.put(0)
    _waiter(name, lambda: items.put(1), "queue.put")
    return items.get


def queue_get(name: str) -> Release:
    import queue

    items: queue.Queue[int] = queue.Queue()
    _waiter(name, items.get, "queue.get")
    return lambda: items.put(0)


def condition_notify(name: str) -> Release:
    condition = threading.Condition()

    def wait() -> None:
        with condition:
            condition.wait()

    _waiter(name, wait, "condition.wait")

    def notify() -> None:
        with condition:
            condition.notify()

    return notify


def condition_notify_all(name: str) -> Release:
    condition = threading.Condition()

    def wait() -> None:
        with condition:
            condition.wait()

    for n in range(2):
        _waiter(f"{name}-{n}", wait, "condition.wait")

    def notify_all() -> None:
        with condition:
            condition.notify_all()

    return notify_all


def event_set(name: str) -> Release:
    event = threading.Event()
    _waiter(name, event.wait, "event.wait")
    return event.set


def lock_release(name: str) -> Release:
    lock = threading.Lock()
    lock.acquire()

    def take() -> None:
        lock.acquire()
        lock.release()

    _waiter(name, take, "lock.acquire")
    return lock.release


def rlock_release(name: str) -> Release:
    lock = threading.RLock()
    lock.acquire()

    def take() -> None:
        with lock:
            pass

    _waiter(name, take, "rlock.acquire")
    return lock.release


def semaphore_release(name: str) -> Release:
    semaphore = threading.Semaphore(0)
    _waiter(name, semaphore.acquire, "semaphore.acquire")
    return semaphore.release


def barrier_wait(name: str) -> Release:
    barrier = threading.Barrier(2)
    _waiter(name, barrier.wait, "barrier.wait")
    return barrier.wait


def executor_shutdown_no_wait(name: str) -> Release:
    executor = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix=name)
    for n in range(3):
        executor.submit(pow, n, 2)
    return lambda: executor.shutdown(wait=False)


THREAD_HANDOFFS: dict[str, Callable[[str], Release]] = {
    "queue.put": queue_put,
    "queue.get": queue_get,
    "condition.notify": condition_notify,
    "condition.notify_all": condition_notify_all,
    "event.set": event_set,
    "lock.release": lock_release,
    "rlock.release": rlock_release,
    "semaphore.release": semaphore_release,
    "barrier.wait": barrier_wait,
    "executor.shutdown(wait=False)": executor_shutdown_no_wait,
}


# Task hand-offs: the same, on the running loop.


async def _parked_task(task: asyncio.Task[object], code: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not any(u.blocked_on.code == code for u in take_snapshot().units if u.name == task.get_name()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{task.get_name()} never blocked in {code}")
        await asyncio.sleep(0)


async def _task(name: str, waiting: Awaitable[object], code: str) -> None:
    task = asyncio.get_running_loop().create_task(waiting, name=name)  # type: ignore[arg-type]
    _background.add(task)
    task.add_done_callback(_background.discard)
    await _parked_task(task, code)


_background: set[asyncio.Task[object]] = set()  # the asyncio docs' idiom for fire-and-forget tasks


async def finished() -> None:
    """Let released tasks end before the loop does (a task cancelled at loop shutdown is a leak)."""
    deadline = time.monotonic() + DEADLINE
    while _background and time.monotonic() < deadline:
        await asyncio.sleep(0)


async def async_queue_put(name: str) -> Release:
    items: asyncio.Queue[int] = asyncio.Queue(maxsize=1)
    items.put_nowait(0)
    await _task(name, items.put(1), "asyncio.queue.put")
    return items.get_nowait


async def async_queue_get(name: str) -> Release:
    items: asyncio.Queue[int] = asyncio.Queue()
    await _task(name, items.get(), "asyncio.queue.get")
    return lambda: items.put_nowait(0)


async def async_event_set(name: str) -> Release:
    event = asyncio.Event()
    await _task(name, event.wait(), "asyncio.event.wait")
    return event.set


async def async_lock_release(name: str) -> Release:
    lock = asyncio.Lock()
    await lock.acquire()

    async def take() -> None:
        async with lock:
            pass

    await _task(name, take(), "asyncio.lock.acquire")
    return lock.release


async def async_condition_notify(name: str) -> Release:
    condition = asyncio.Condition()

    async def wait() -> None:
        async with condition:
            await condition.wait()

    await _task(name, wait(), "asyncio.condition.wait")

    async def notify() -> None:
        async with condition:
            condition.notify()

    return lambda: asyncio.get_running_loop().create_task(notify())


async def async_semaphore_release(name: str) -> Release:
    semaphore = asyncio.Semaphore(0)
    await _task(name, semaphore.acquire(), "asyncio.semaphore.acquire")
    return semaphore.release


TASK_HANDOFFS: dict[str, Callable[[str], Awaitable[Release]]] = {
    "asyncio.Queue.put": async_queue_put,
    "asyncio.Queue.get": async_queue_get,
    "asyncio.Event.set": async_event_set,
    "asyncio.Lock.release": async_lock_release,
    "asyncio.Condition.notify": async_condition_notify,
    "asyncio.Semaphore.release": async_semaphore_release,
}


# Rounds ---------------------------------------------------------------------------------------------


@contextlib.contextmanager
def busy_neighbours(count: int = 2, switch_interval: float = 1e-6) -> Iterator[None]:
    """CPU-busy threads and the smallest switch interval, for as long as the block runs."""
    stop = threading.Event()

    def spin() -> None:
        n = 0
        while not stop.is_set():
            n += 1

    threads = [threading.Thread(target=spin, name=f"busy-{n}", daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    interval = sys.getswitchinterval()
    sys.setswitchinterval(switch_interval)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)
        stop.set()
        for thread in threads:
            thread.join(DEADLINE)


def _proven_now(name: str, tally: Tally, scenario: str) -> None:
    """Ask for proofs (confirmed on two looks, as checks and dumps make them) that a unit named `name*` is
    stuck, right after its release; count the rounds where the waiter still showed its wait then."""
    looks: list[list[Unit]] = []

    def look() -> list[Unit]:
        looks.append([u for u in take_snapshot().units if u.name.startswith(name)])
        return looks[-1]

    proven = len(confirmed_proofs(look, proofs))
    tally.count(tally.false_proofs, scenario, proven)
    tally.count(tally.raced, scenario, int(any(u.blocked_on.code != "running" for u in looks[0])))


class Tally:
    def __init__(self) -> None:
        self.rounds = 0
        self.false_leaks: dict[str, int] = {}
        self.false_proofs: dict[str, int] = {}
        self.raced: dict[str, int] = {}  # rounds whose waiter still showed its wait when proofs were tried

    def count(self, table: dict[str, int], scenario: str, n: int = 1) -> None:
        if n:
            table[scenario] = table.get(scenario, 0) + n


def thread_round(scenario: str, tally: Tally, n: int) -> None:
    name = f"race-{n}"
    try:
        with looseends.check():
            THREAD_HANDOFFS[scenario](name)()  # release, keeping no reference to the primitive
            _proven_now(name, tally, scenario)
    except looseends.LeakError:
        tally.count(tally.false_leaks, scenario)
    tally.rounds += 1


async def task_round(scenario: str, tally: Tally, n: int) -> None:
    name = f"race-task-{n}"
    try:
        async with looseends.check():
            (await TASK_HANDOFFS[scenario](name))()
            _proven_now(name, tally, scenario)
    except looseends.LeakError:
        tally.count(tally.false_leaks, scenario)
    tally.rounds += 1


def run_checks(rounds: int) -> Tally:
    """`rounds` rounds in all, spread evenly over every hand-off."""
    tally = Tally()
    scenarios = [*THREAD_HANDOFFS, *TASK_HANDOFFS]
    per = max(1, rounds // len(scenarios))
    with busy_neighbours():
        for scenario in THREAD_HANDOFFS:
            for n in range(per):
                thread_round(scenario, tally, n)

        async def tasks() -> None:
            for scenario in TASK_HANDOFFS:
                for n in range(per):
                    await task_round(scenario, tally, n)

        asyncio.run(tasks())
    return tally


PLUGIN_TESTS = """
import asyncio
import sys

import pytest

sys.path.insert(0, {bench!r})
import race

per = {per}


@pytest.fixture(scope="session", autouse=True)
def neighbours():
    with race.busy_neighbours():
        yield


@pytest.mark.parametrize("n", range(per))
@pytest.mark.parametrize("scenario", list(race.THREAD_HANDOFFS))
def test_thread_handoff(scenario, n):
    race.THREAD_HANDOFFS[scenario](f"race-{{n}}")()


@pytest.mark.parametrize("n", range(per))
@pytest.mark.parametrize("scenario", list(race.TASK_HANDOFFS))
def test_task_handoff(scenario, n):
    async def main():
        (await race.TASK_HANDOFFS[scenario](f"race-task-{{n}}"))()
        await race.finished()

    asyncio.run(main())
"""


def run_plugin(rounds: int) -> tuple[int, str]:
    """The hand-offs as `rounds` tests under `pytest --looseends`: (exit status, summary line)."""
    per = max(1, rounds // (len(THREAD_HANDOFFS) + len(TASK_HANDOFFS)))
    with tempfile.TemporaryDirectory() as folder:
        tests = Path(folder) / "test_handoffs.py"
        tests.write_text(textwrap.dedent(PLUGIN_TESTS.format(bench=str(Path(__file__).parent), per=per)))
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "--looseends", "-q", "-p", "no:cacheprovider", str(tests)],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=3600,
        )
    lines = done.stdout.strip().splitlines()
    return done.returncode, lines[-1] if lines else done.stderr.strip()[-500:]


def run(rounds: int = 10_000, plugin_rounds: int = 1_000) -> tuple[str, dict[str, float]]:
    started = time.perf_counter()
    tally = run_checks(rounds)
    checked = time.perf_counter() - started
    status, summary = run_plugin(plugin_rounds)
    leaks, proven = sum(tally.false_leaks.values()), sum(tally.false_proofs.values())
    raced = sum(tally.raced.values())
    text = (
        "| hand-offs | rounds | still waiting when proofs were tried | false leaks | false proofs | time |\n"
        "|---|---|---|---|---|---|\n"
        f"| `check()` + proofs right after the release, {len(THREAD_HANDOFFS)} thread and "
        f"{len(TASK_HANDOFFS)} task kinds | {tally.rounds:,} | {raced:,} | {leaks} | {proven} | "
        f"{checked:.0f} s |\n"
        f"| `pytest --looseends`, one test per hand-off | {plugin_rounds:,} | - | "
        f"{'0' if status == 0 else 'see below'} | - | `{summary}` |"
    )
    if tally.false_leaks or tally.false_proofs or status != 0:
        text += f"\n\nfalse leaks by kind: {tally.false_leaks}; false proofs: {tally.false_proofs}"
    return text, {"false_leaks": leaks, "false_proofs": proven, "plugin_status": status}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=1000)
    parser.add_argument("--pytest", action="store_true", help="run the hand-offs under pytest --looseends")
    args = parser.parse_args()
    if args.pytest:
        status, summary = run_plugin(args.rounds)
        print(f"pytest --looseends: {summary}")
        return status
    tally = run_checks(args.rounds)
    print(
        f"rounds {tally.rounds}, still waiting when proofs were tried {sum(tally.raced.values())}, "
        f"false leaks {tally.false_leaks or 0}, false proofs {tally.false_proofs or 0}"
    )
    return 1 if tally.false_leaks or tally.false_proofs else 0


if __name__ == "__main__":
    sys.exit(main())
