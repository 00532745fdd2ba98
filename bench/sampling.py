"""Figure 14: what the web page's history costs the host: CPU time of one sample (snapshot, group, note)
in a process holding 200 blocked threads and 1,000 pending tasks, as a share of one core at the default
period. The sampler also stretches its period so that a sample never costs more than 1 % of a core.
And the page itself with 2,000 groups and an hour of samples: its size, the time to build it, and the
time headless Chromium takes to load and render it over a blank page's (alternated, median of 7).

    cd bench && python sampling.py
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

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


def page_render() -> str:
    """The page's size, build time and render time in Chromium, with 2,000 groups."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from looseends.frontends.html_page import page
    from test_web_page import report_of, units_at

    history = History(DEFAULT_EVERY)
    places = [units_at(place, 1 + place % 7) for place in range(2000)]
    for step in range(360):  # an hour at the default period
        history.note(report_of(*places), now=step * DEFAULT_EVERY)
    started = time.perf_counter()
    body = page(report_of(*places), *history.view(), "http://127.0.0.1:6061/debug/looseends/")
    built = time.perf_counter() - started
    size = len(body.encode()) / 1024
    line = f"2,000 groups, an hour of samples: {size:.1f} KB, built in {built * 1000:.0f} ms"
    chromium = shutil.which("chromium")
    if chromium is None:
        return line + "; Chromium not installed: render time not measured"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--dump-dom"]
    with tempfile.TemporaryDirectory() as folder:
        big, blank = Path(folder, "page.html"), Path(folder, "blank.html")
        big.write_text(body)
        blank.write_text("<!doctype html><title>blank</title>")
        times: dict[Path, list[float]] = {big: [], blank: []}
        for _ in range(7):
            for path in (big, blank):
                started = time.perf_counter()
                loaded = [chromium, *flags, path.as_uri()]
                subprocess.run(loaded, capture_output=True, check=True, timeout=120)
                times[path].append(time.perf_counter() - started)
    render = statistics.median(times[big]) - statistics.median(times[blank])
    return line + f"; rendered by headless Chromium in {render * 1000:.0f} ms more than a blank page"


if __name__ == "__main__":
    print(run()[0])
    print(page_render())
