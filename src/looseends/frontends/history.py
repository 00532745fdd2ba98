"""The last hour of this process, for the endpoint's page: unit counts by place, sampled in the background.

A leak looks like one place climbing while the others stay flat; a single dump cannot show that. While
`serve()` runs, one daemon thread takes a snapshot every `LOOSEENDS_HISTORY_EVERY` seconds (default 10),
and stops with the server. A mounted ASGI or WSGI app starts no thread of its own (it lives as long as the
host's process, and a thread of ours would outlive every test that made one): every page and unfiltered
dump it serves is a sample, so a `looseends watch` polling it fills the chart. Either way the counts of the
most populous places are kept (a `Growth`, as `looseends watch` keeps them), trimmed to the last hour: at
most MAX_SAMPLES samples of MAX_PLACES places each, whatever the process does.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from looseends.core.growth import Growth, Tally
from looseends.report import Report

__all__ = ["History", "sampling"]

SPAN = 3600.0  # seconds of history kept
DEFAULT_EVERY = 10.0
MIN_EVERY = 0.2  # a faster rate is refused: sampling must stay far below 1 % of a core
MAX_SHARE = 100  # the wait after a sample is at least this many times its CPU time: at most 1 % of a core
MAX_SAMPLES = 720
MAX_PLACES = 40  # per sample; the rest are summed into OTHERS
OTHERS = "other places"
THREAD_NAME = "looseends-history"


def sample_every(environ: dict[str, str] | os._Environ[str] = os.environ) -> float:
    """The sampling period from LOOSEENDS_HISTORY_EVERY; the default for anything that is not a number
    of seconds at least MIN_EVERY (a bad setting must not break the host's endpoint)."""
    try:
        every = float(environ.get("LOOSEENDS_HISTORY_EVERY", DEFAULT_EVERY))
    except ValueError:
        return DEFAULT_EVERY
    return every if MIN_EVERY <= every < float("inf") else DEFAULT_EVERY


@dataclass
class History:
    """Samples of unit counts by place, with their times, bounded in number and in places per sample."""

    every: float = DEFAULT_EVERY
    growth: Growth = field(default_factory=lambda: Growth(min_growth=3, min_blocked=1 << 30))
    times: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, report: Report, now: float | None = None) -> bool:
        """Keep `report` as a sample, unless the latest is younger than half a period (a page reloaded
        in a loop adds nothing). True when kept."""
        now = time.monotonic() if now is None else now
        with self.lock:
            if self.times and now - self.times[-1] < self.every / 2:
                return False
            self.growth.add(report)
            self.growth.samples[-1] = _top(self.growth.samples[-1])
            self.times.append(now)
            while self.times and (now - self.times[0] > SPAN or len(self.times) > MAX_SAMPLES):
                del self.times[0], self.growth.samples[0]
            kept = set().union(*self.growth.samples)
            for key in [key for key in self.growth.latest if key not in kept]:
                del self.growth.latest[key]
            return True

    def view(self) -> tuple[list[float], dict[str, list[int]], dict[str, str]]:
        """Sample times, each place's unit count per sample (0 where absent), and the growing places
        with why: one consistent copy for a page to draw."""
        with self.lock:
            places = set().union(*self.growth.samples) if self.growth.samples else set()
            series = {key: self.growth.series(key) for key in places}
            return list(self.times), series, self.growth.suspects()


def _top(tallies: dict[str, Tally]) -> dict[str, Tally]:
    """The MAX_PLACES places with the most units; the rest as one."""
    if len(tallies) <= MAX_PLACES:
        return tallies
    ranked = sorted(tallies.items(), key=lambda item: -item[1].units)
    rest = Tally(sum(t.units for _, t in ranked[MAX_PLACES:]), sum(t.blocked for _, t in ranked[MAX_PLACES:]))
    return {**dict(ranked[:MAX_PLACES]), OTHERS: rest}


def pause(every: float, spent: float) -> float:
    """The wait after a sample that took `spent` seconds of CPU: the period, or longer, so that sampling
    stays under 1 % of one core however large the process."""
    return max(every, MAX_SHARE * spent)


class _Sampler:
    """One background thread for the process while any `serve()` runs (a lease count); the last to
    leave stops it and waits for it, so a closed server leaves nothing of ours running."""

    def __init__(self) -> None:
        self.history = History(sample_every())
        self._lock = threading.Lock()
        self._users = 0
        self._running: tuple[threading.Event, threading.Thread] | None = None

    def enter(self, take: Callable[[], Report]) -> None:
        with self._lock:
            self._users += 1
            if self._running is None:
                self.history.every = sample_every()
                stop = threading.Event()
                thread = threading.Thread(target=self._run, args=(take, stop), name=THREAD_NAME, daemon=True)
                thread.start()
                self._running = (stop, thread)

    def leave(self) -> None:
        with self._lock:
            self._users -= 1
            running = self._running if self._users == 0 else None
            if running is not None:
                self._running = None
        if running is not None:
            running[0].set()
            running[1].join(5)

    def _run(self, take: Callable[[], Report], stop: threading.Event) -> None:
        """Sample every period; in a process so large that a sample costs more than 1 % of the period in
        CPU, less often: the history never costs the host more than 1 % of one core."""
        while True:
            spent = time.thread_time()
            try:
                self.history.note(take())
            except Exception:  # a failed sample is a gap in the chart, never an error in the host
                pass
            spent = time.thread_time() - spent
            if stop.wait(pause(self.history.every, spent)):
                return


sampling = _Sampler()
