"""Figure 2: snapshot, group and render a dump with many threads and tasks: time, memory, linearity."""

from __future__ import annotations

import asyncio
import statistics
import threading
import time
import tracemalloc
from collections.abc import Callable

from common import ms, table

import looseends
from looseends._cpython import all_tasks
from looseends.report import Report
from looseends.sources import TaskSource, ThreadSource, take_snapshot
from looseends.sources._frames import coroutine_frames

THREAD_COUNTS = (10, 100, 500, 2000)
TASK_COUNTS = (10, 1_000, 10_000, 100_000)


def _dump(sources: list[object]) -> str:
    snapshot = take_snapshot(sources)  # type: ignore[arg-type]
    return Report.from_units(snapshot.units).render()


def _measure(action: Callable[[], object], rounds: int) -> tuple[float, int]:
    seconds = statistics.median(_timed(action) for _ in range(rounds))
    tracemalloc.start()
    action()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return seconds, peak


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def _threads(count: int) -> tuple[float, int]:
    release = threading.Event()
    threads = [threading.Thread(target=release.wait, daemon=True) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        return _measure(lambda: _dump([ThreadSource()]), rounds=5)
    finally:
        release.set()
        for thread in threads:
            thread.join()


def _bare_task_walk() -> None:
    """The floor: list the registered tasks and walk each one's frames once."""
    for task in all_tasks():
        if not task.done():
            coroutine_frames(task.get_coro())


def _tasks(count: int) -> tuple[float, int, float]:
    loop = asyncio.new_event_loop()
    release = asyncio.Event()

    async def worker() -> None:
        await release.wait()

    async def start() -> list[asyncio.Task[None]]:
        tasks = [asyncio.create_task(worker()) for _ in range(count)]
        await asyncio.sleep(0)
        return tasks

    tasks = loop.run_until_complete(start())
    try:
        rounds = 3 if count >= 10_000 else 7
        seconds, peak = _measure(lambda: _dump([TaskSource()]), rounds)
        bare = statistics.median(_timed(_bare_task_walk) for _ in range(rounds))
        return seconds, peak, bare
    finally:
        release.set()
        loop.run_until_complete(asyncio.gather(*tasks))
        loop.close()


def run() -> tuple[str, dict[str, float]]:
    rows = []
    for count in THREAD_COUNTS:
        seconds, peak = _threads(count)
        rows.append(
            [
                f"{count:,} threads",
                ms(seconds),
                f"{seconds / count * 1e6:.1f} µs",
                f"{peak / 1e6:.1f} MB",
                "—",
            ]
        )
    ratio = 0.0
    for count in TASK_COUNTS:
        seconds, peak, bare = _tasks(count)
        ratio = seconds / bare
        rows.append(
            [
                f"{count:,} tasks",
                ms(seconds),
                f"{seconds / count * 1e6:.1f} µs",
                f"{peak / 1e6:.1f} MB",
                f"{ratio:.1f}x",
            ]
        )
    text = table(
        [
            "units",
            "snapshot + group + render",
            "per unit",
            "peak memory (tracemalloc)",
            "÷ bare list-and-walk",
        ],
        rows,
    )
    return text, {"task_ratio_100k": ratio}


if __name__ == "__main__":
    print(run()[0])
    print(looseends.__version__)
