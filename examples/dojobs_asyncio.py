"""The article's doJobs, with asyncio tasks: a forgotten sender, and the article's two fixes.

Ten worker tasks each do a job and put the result on an `asyncio.Queue(maxsize=1)`; the caller stops
reading after a timeout, so the late workers wait in `put()` forever. `asyncio.run` would cancel them
silently at exit and hide the bug; the check runs before that. Run it: `python examples/dojobs_asyncio.py`.
"""

from __future__ import annotations

import asyncio
import sys

import looseends

# The asyncio docs' idiom: keep a reference to every background task so it is not collected mid-flight.
background: set[asyncio.Task[None]] = set()

SECONDS = [0.01 if n < 3 else 0.4 for n in range(10)]  # three fast jobs, seven slow ones
TIMEOUT = 0.2


async def do_job(n: int) -> int:
    await asyncio.sleep(SECONDS[n])
    return n * n


async def do_jobs(count: int, timeout: float) -> list[int]:
    """Leaky: late workers wait forever on the full result queue once the caller has gone."""
    return await fan_out(count, asyncio.Queue(maxsize=1), timeout)


async def do_jobs_buffered(count: int, timeout: float) -> list[int]:
    """Fix 1: a buffer big enough for every result, so no worker ever waits for the caller."""
    return await fan_out(count, asyncio.Queue(maxsize=count), timeout)


async def fan_out(count: int, results: asyncio.Queue[int], timeout: float) -> list[int]:
    """A fire-and-forget worker task per job, each putting its result on `results`; collect till timeout."""

    async def worker(n: int) -> None:
        await results.put(await do_job(n))

    for n in range(count):
        task = asyncio.create_task(worker(n), name=f"worker-{n}")
        background.add(task)
        task.add_done_callback(background.discard)
    return await collect(results, count, timeout)


async def do_jobs_cancellable(count: int, timeout: float) -> list[int]:
    """Fix 2: cancellation. The workers are cancelled when the caller gives up waiting."""
    results: asyncio.Queue[int] = asyncio.Queue(maxsize=1)

    async def worker(n: int) -> None:
        await results.put(await do_job(n))

    workers = [asyncio.create_task(worker(n), name=f"worker-{n}") for n in range(count)]
    try:
        return await collect(results, count, timeout)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)


async def collect(results: asyncio.Queue[int], count: int, timeout: float) -> list[int]:
    out: list[int] = []
    try:
        async with asyncio.timeout(timeout):
            while len(out) < count:
                out.append(await results.get())
    except TimeoutError:
        raise TimeoutError(f"gave up after {timeout} s with {len(out)} of {count} results") from None
    return out


async def run(variant: str) -> bool:
    """Run one variant under a leak check; print what happened; True when nothing leaked."""
    do = {"leaky": do_jobs, "buffered": do_jobs_buffered, "cancellable": do_jobs_cancellable}[variant]
    print(f"--- asyncio, {variant}: {do.__doc__.splitlines()[0] if do.__doc__ else ''}")
    try:
        async with looseends.check():
            try:
                await do(len(SECONDS), TIMEOUT)
            except TimeoutError as exc:
                print(f"do_jobs: {exc}")
    except looseends.LeakError as leak:
        print(leak)
        return False
    print("looseends: no leaks")
    return True


async def main(variants: list[str]) -> bool:
    return all([await run(v) for v in variants])


if __name__ == "__main__":
    sys.exit(0 if asyncio.run(main(sys.argv[1:] or ["leaky", "buffered", "cancellable"])) else 1)
