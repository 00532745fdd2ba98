"""Figure 14: what the web page's history costs the host: CPU time of one sample (snapshot, group, note)
in a process holding 200 blocked threads and 1,000 pending tasks, as a share of one core at the default
period. The sampler also stretches its period so that a sample never costs more than 1 % of a core.

    cd bench && python sampling.py
"""

from __future__ import annotations

import asyncio
import statistics
import threading
import time

from common import table

import looseends
from looseends.frontends.history import DEFAULT_EVERY, History
from looseends.frontends.http_app import sample_report

THREADS, TASKS, ROUNDS = 200, 1000, 31


def run() -> tuple[str, dict[str, float]]:
    stop = threading.Event()
    ready = threading.Event()

    async def hold() -> None:
        event = asyncio.Event()
        tasks = [asyncio.create_task(event.wait()) for _ in range(TASKS)]
        ready.set()
        await asyncio.to_thread(stop.wait)
        event.set()
        await asyncio.gather(*tasks)

    with looseends.track():
        threads = [threading.Thread(target=stop.wait, daemon=True) for _ in range(THREADS)]
        threads.append(threading.Thread(target=asyncio.run, args=(hold(),), daemon=True))
        for thread in threads:
            thread.start()
        ready.wait(30)
        history = History(DEFAULT_EVERY)
        spent = []
        for round_ in range(ROUNDS):
            cpu = time.thread_time()
            history.note(sample_report(), now=round_ * DEFAULT_EVERY)
            spent.append(time.thread_time() - cpu)
        stop.set()
        for thread in threads:
            thread.join(30)
    median = statistics.median(spent)
    share = 100 * median / DEFAULT_EVERY
    rows = [
        [
            f"{THREADS} threads and {TASKS:,} tasks",
            f"{median * 1000:.1f} ms ({min(spent) * 1000:.1f}-{max(spent) * 1000:.1f})",
            f"{DEFAULT_EVERY:.0f} s",
            f"{share:.2f} %",
        ]
    ]
    text = table(["a process with", "CPU per sample (median, range)", "period", "share of one core"], rows)
    return text, {"share": share}


if __name__ == "__main__":
    print(run()[0])
