"""Figure 4: time to verdict: a clean check, a straggler's release, a leak's failure."""

from __future__ import annotations

import statistics
import threading
import time

from common import ms, table, us

import looseends
from looseends.sources._tracking import tracking

ROUNDS = 200


def _clean_check() -> float:
    start = time.perf_counter()
    with looseends.check():
        pass
    return time.perf_counter() - start


def _clean_check_in_a_session() -> float:
    """As the pytest plugin runs them: tracking stays on for the session, checks come and go."""
    with tracking("bench session"):
        with looseends.check():  # the first check after tracking starts looks once
            pass
        return _clean_check()


def _straggler_release() -> float:
    """Seconds between a straggler's last line and the check returning."""
    ended: list[float] = []
    go = threading.Event()

    def straggler() -> None:
        go.wait(0.05)
        ended.append(time.perf_counter())

    with looseends.check():
        threading.Thread(target=straggler).start()
    returned = time.perf_counter()
    return returned - ended[0]


def _leak_failure() -> float:
    release = threading.Event()
    thread = threading.Thread(target=release.wait, daemon=True)
    checked = looseends.check()
    checked.__enter__()
    thread.start()
    start = time.perf_counter()
    try:
        checked.__exit__(None, None, None)
    except looseends.LeakError:
        pass
    elapsed = time.perf_counter() - start
    release.set()
    thread.join()
    return elapsed


def run() -> tuple[str, dict[str, float]]:
    clean = statistics.median(_clean_check() for _ in range(ROUNDS))
    in_session = statistics.median(_clean_check_in_a_session() for _ in range(ROUNDS))
    straggler = statistics.median(_straggler_release() for _ in range(20))
    leak = statistics.median(_leak_failure() for _ in range(5))
    rows = [
        ["a clean `with looseends.check():` on its own (installs and removes tracking)", us(clean)],
        ["the same inside a session that keeps tracking on (the pytest plugin's case)", us(in_session)],
        ["a straggler's exit → the check returns (capped back-off)", ms(straggler)],
        ["a leaking block → LeakError, default settings (0.5 s settle)", ms(leak)],
    ]
    return table(["what", "median"], rows), {
        "clean": clean,
        "in_session": in_session,
        "straggler": straggler,
        "leak": leak,
    }
