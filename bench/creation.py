"""Figure 3: the cost of creation tracking on Thread.start and create_task (run to completion)."""

from __future__ import annotations

import asyncio
import threading
import time

from common import table, us

from looseends.sources._tracking import tracking

ROUNDS = 15
TASKS = 5_000
THREADS = 300


async def _noop() -> None:
    pass


def _tasks(loop: asyncio.AbstractEventLoop) -> float:
    async def run() -> float:
        start = time.perf_counter()
        for _ in range(TASKS):
            await asyncio.create_task(_noop())
        return (time.perf_counter() - start) / TASKS

    return loop.run_until_complete(run())


def _threads() -> float:
    start = time.perf_counter()
    for _ in range(THREADS):
        thread = threading.Thread(target=int)
        thread.start()
        thread.join()
    return (time.perf_counter() - start) / THREADS


def run() -> tuple[str, dict[str, float]]:
    """Alternate the variants round by round, so drift in the machine hits all of them alike."""
    plain_loop, debug_loop = asyncio.new_event_loop(), asyncio.new_event_loop()
    debug_loop.set_debug(True)  # pyleak's creation tracking turns on asyncio debug mode
    debug_loop.slow_callback_duration = 10
    samples: dict[str, list[float]] = {
        k: [] for k in ("task", "task tracked", "task pyleak", "thread", "thread tracked")
    }
    for _ in range(ROUNDS):
        samples["task"].append(_tasks(plain_loop))
        samples["task pyleak"].append(_tasks(debug_loop))
        samples["thread"].append(_threads())
        with tracking():
            samples["task tracked"].append(_tasks(plain_loop))
            samples["thread tracked"].append(_threads())
    plain_loop.close()
    debug_loop.close()
    best = {k: sorted(v)[len(v) // 2] for k, v in samples.items()}
    rows = [
        [
            "create_task + run to completion",
            us(best["task"]),
            us(best["task tracked"]),
            f"{best['task tracked'] / best['task']:.2f}x",
            us(best["task pyleak"]),
            f"{best['task pyleak'] / best['task']:.2f}x",
        ],
        [
            "Thread.start + join",
            us(best["thread"]),
            us(best["thread tracked"]),
            f"{best['thread tracked'] / best['thread']:.2f}x",
            "—",
            "—",
        ],
    ]
    text = table(
        ["operation", "untracked", "looseends tracking", "ratio", "pyleak tracking (loop debug)", "ratio"],
        rows,
    )
    return text, {"task_ratio": best["task tracked"] / best["task"]}
