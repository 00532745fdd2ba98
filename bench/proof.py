"""Figure 6: the cost of a reachability proof on a heap of a million objects."""

from __future__ import annotations

import gc
import queue
import statistics
import threading
import time
import weakref

from common import ms, table

import looseends
from looseends.analysis.reachability import prove

HEAP = 1_000_000


def _senders(count: int) -> tuple[list[threading.Thread], queue.Queue[int]]:
    results: queue.Queue[int] = queue.Queue(maxsize=1)
    results.put(0)
    threads = [threading.Thread(target=results.put, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def run() -> tuple[str, dict[str, float]]:
    heap = [[n] for n in range(HEAP)]  # a million GC-tracked objects reachable from this frame
    threads, results = _senders(5)
    ref_results = weakref.ref(results)
    del results  # only the blocked senders hold the queue now
    deadline = time.monotonic() + 10
    units = []
    while time.monotonic() < deadline:
        units = [u for u in looseends.snapshot().units if u.blocked_on.code == "queue.put"]
        if len(units) == 5:
            break
        threading.Event().wait(0.01)
    tracked = len(gc.get_objects())
    timings = []
    proven = 0
    for _ in range(3):
        start = time.perf_counter()
        proven = len(prove(units))
        timings.append(time.perf_counter() - start)
    seconds = statistics.median(timings)
    while any(t.is_alive() for t in threads) and (q := ref_results()) is not None:
        try:
            q.get_nowait()
        except queue.Empty:
            threading.Event().wait(0.001)
        del q
    del heap
    rows = [[f"{tracked:,} GC-tracked objects, 5 forgotten senders", ms(seconds), f"{proven} of 5"]]
    return table(["heap", "prove() (whole reachable heap walked once)", "proven"], rows), {"seconds": seconds}
