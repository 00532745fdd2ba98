"""Shared helpers: medians of repeated runs, machine facts, markdown tables."""

from __future__ import annotations

import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence


def median_of(runs: int, measure: Callable[[], float]) -> float:
    return statistics.median(measure() for _ in range(runs))


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def machine() -> str:
    return (
        f"{platform.platform()}, {os.cpu_count()} CPUs, Python {platform.python_version()} "
        f"({sys.implementation.name})"
    )


def table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:.1f} µs"


def alternating(
    commands: dict[str, Sequence[str]],
    runs: int,
    *,
    cwd: str | None = None,
    env: dict[str, str] | None = None,
) -> dict[str, list[float]]:
    """Wall seconds of whole-process runs, the commands taken in turn (the order rotating each round),
    so drift in a shared machine hits every command alike. One warm-up round first, discarded."""
    import subprocess

    names = list(commands)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(runs + 1):
        order = names[round_number % len(names) :] + names[: round_number % len(names)]
        for name in order:
            start = time.perf_counter()
            done = subprocess.run(
                commands[name], cwd=cwd, env=env, capture_output=True, text=True, check=False
            )
            elapsed = time.perf_counter() - start
            if done.returncode not in (0, 1):
                raise RuntimeError(f"{name} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
            if round_number:
                times[name].append(elapsed)
    return times


def spread(samples: Sequence[float]) -> str:
    """`1.23 s (1.20-1.31)`: the median and the range."""
    return f"{statistics.median(samples):.3f} s ({min(samples):.3f}-{max(samples):.3f})"


def ratio(samples: Sequence[float], base: Sequence[float]) -> float:
    return statistics.median(samples) / statistics.median(base)
