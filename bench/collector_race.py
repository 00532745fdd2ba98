"""Forgotten tasks that another thread's garbage collections destroy are never a silent all-clear.

Each round forgets a pending task under `looseends.check()` (the task and what it waits on are a garbage
cycle nothing else holds); a thread collects throughout, a few times a millisecond, so the task is often
destroyed in another thread while the check ends. Two CPU-busy threads run alongside at a 1 µs switch
interval. Every round must raise `LeakError` (the task reported live, or as destroyed while pending); a
round that passes is a silent all-clear. Automatic collections are off, so only that thread collects.

    python bench/collector_race.py --rounds 2000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import sys
import threading
import time
from collections.abc import Iterator

from race import busy_neighbours

import looseends


@contextlib.contextmanager
def collecting_neighbour(every: float = 0.001) -> Iterator[None]:
    """A thread that runs young and full collections every `every` seconds, automatic ones off."""
    stop = threading.Event()

    def collect() -> None:
        while not stop.wait(every):
            gc.collect(0)
            gc.collect()

    enabled = gc.isenabled()
    gc.disable()
    thread = threading.Thread(target=collect, name="collector", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        if enabled:
            gc.enable()


async def forgotten() -> None:
    await asyncio.get_running_loop().create_future()


async def rounds(count: int) -> int:
    """The number of rounds whose check passed."""
    silent = 0
    for _ in range(count):
        try:
            async with looseends.check(timeout=0.02):
                asyncio.create_task(forgotten())  # noqa: RUF006 - the leak under test
                for _ in range(3):
                    await asyncio.sleep(0)
        except looseends.LeakError:
            continue
        silent += 1
    return silent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    started = time.monotonic()
    with busy_neighbours(), collecting_neighbour():
        silent = asyncio.run(rounds(args.rounds))
    print(
        f"{args.rounds} rounds in {time.monotonic() - started:.1f} s: "
        f"{args.rounds - silent} leaks reported, {silent} silent all-clear"
    )
    return 1 if silent else 0


if __name__ == "__main__":
    sys.exit(main())
