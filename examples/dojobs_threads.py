"""The article's doJobs, with threads: a forgotten sender, and the article's two fixes.

Ten workers each do a job and put the result on a queue; the caller stops reading after a timeout.
`queue.Queue(maxsize=1)` behaves like Go's unbuffered channel here: a worker that finishes after the
caller left blocks forever in `put()`. Run it: `python examples/dojobs_threads.py`.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

import looseends


@dataclass(frozen=True)
class Job:
    n: int
    seconds: float


JOBS = [Job(n, 0.01 if n < 3 else 0.4) for n in range(10)]  # three fast jobs, seven slow ones
TIMEOUT = 0.2


def do_job(job: Job) -> int:
    time.sleep(job.seconds)
    return job.n * job.n


def do_jobs(jobs: list[Job], timeout: float) -> list[int]:
    """Leaky: late workers block forever on the full result queue once the caller has gone."""
    return fan_out(jobs, queue.Queue(maxsize=1), timeout)


def do_jobs_buffered(jobs: list[Job], timeout: float) -> list[int]:
    """Fix 1: a buffer big enough for every result, so no worker ever waits for the caller."""
    return fan_out(jobs, queue.Queue(maxsize=len(jobs)), timeout)


def fan_out(jobs: list[Job], results: queue.Queue[int], timeout: float) -> list[int]:
    """A worker thread per job, each putting its result on `results`; collect until the timeout."""

    def worker(job: Job) -> None:
        results.put(do_job(job))

    for job in jobs:
        threading.Thread(target=worker, args=(job,), name=f"worker-{job.n}", daemon=True).start()
    return collect(results, len(jobs), timeout)


def do_jobs_cancellable(jobs: list[Job], timeout: float) -> list[int]:
    """Fix 2: cancellation. Workers give up sending once the caller has given up waiting."""
    results: queue.Queue[int] = queue.Queue(maxsize=1)
    cancelled = threading.Event()

    def worker(job: Job) -> None:
        result = do_job(job)
        while not cancelled.is_set():  # Python's `select { case results <- r: case <-ctx.Done(): }`
            try:
                results.put(result, timeout=0.05)
                return
            except queue.Full:
                continue

    for job in jobs:
        threading.Thread(target=worker, args=(job,), name=f"worker-{job.n}", daemon=True).start()
    try:
        return collect(results, len(jobs), timeout)
    finally:
        cancelled.set()


def collect(results: queue.Queue[int], count: int, timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    out = []
    for _ in range(count):
        try:
            out.append(results.get(timeout=max(0.0, deadline - time.monotonic())))
        except queue.Empty:
            raise TimeoutError(f"gave up after {timeout} s with {len(out)} of {count} results") from None
    return out


def run(variant: str) -> bool:
    """Run one variant under a leak check; print what happened; True when nothing leaked."""
    do = {"leaky": do_jobs, "buffered": do_jobs_buffered, "cancellable": do_jobs_cancellable}[variant]
    print(f"--- threads, {variant}: {do.__doc__.splitlines()[0] if do.__doc__ else ''}")
    try:
        with looseends.check():
            try:
                do(JOBS, TIMEOUT)
            except TimeoutError as exc:
                print(f"do_jobs: {exc}")
    except looseends.LeakError as leak:
        print(leak)
        return False
    print("looseends: no leaks")
    return True


if __name__ == "__main__":
    import sys

    clean = True
    for variant in sys.argv[1:] or ["leaky", "buffered", "cancellable"]:
        clean = run(variant) and clean
    sys.exit(0 if clean else 1)
