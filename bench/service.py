"""Figure 10: a live asyncio service creating tasks as fast as it can: tracking off, on, and on with
serve() answering a dump every second (the production set-up the endpoint is for).

Each variant runs in a fresh process for DURATION seconds: a loop keeps WIDTH tasks in flight, each
awaiting one loop turn and finishing; the figure is tasks completed per second (median of ROUNDS, and range).

    cd bench && python service.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import textwrap

from common import table

DURATION = 3.0
WIDTH = 100
ROUNDS = 7
HOST = textwrap.dedent(
    """
    import asyncio, sys, threading, time, urllib.request
    import looseends

    variant, duration, width = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    if variant != "off":
        looseends.track()
    stop = threading.Event()
    if variant == "serve":
        live = looseends.serve()

        def scrape():
            while not stop.wait(1.0):  # one dump a second, as a watcher or a person would
                urllib.request.urlopen(live.url + "dump?format=json", timeout=10).read()

        threading.Thread(target=scrape, name="scraper", daemon=True).start()

    async def job():
        await asyncio.sleep(0)

    async def main():
        done = 0
        end = time.monotonic() + duration
        while time.monotonic() < end:
            await asyncio.gather(*(asyncio.create_task(job()) for _ in range(width)))
            done += width
        return done / duration

    print(asyncio.run(main()))
    stop.set()
    """
)
VARIANTS = {
    "tracking off": "off",
    "tracking on (looseends.track())": "track",
    "tracking on, serve() answering a dump every second": "serve",
}


def _rate(variant: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", HOST, variant, str(DURATION), str(WIDTH)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return float(done.stdout.strip().splitlines()[-1])


def run() -> tuple[str, dict[str, float]]:
    rates: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for _ in range(ROUNDS):  # interleaved, so drift in the machine hits every variant alike
        for name, variant in VARIANTS.items():
            rates[name].append(_rate(variant))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    base = medians["tracking off"]
    rows = [
        [
            name,
            f"{medians[name]:,.0f} ({min(values):,.0f}-{max(values):,.0f})",
            f"{medians[name] / base:.2f}x",
        ]
        for name, values in rates.items()
    ]
    head = ["a service creating tasks", f"tasks completed per second (median of {ROUNDS}, range)", "÷ off"]
    text = table(head, rows)
    return text, {name: rate / base for name, rate in medians.items()}


if __name__ == "__main__":
    print(run()[0])
