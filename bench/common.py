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
    peaks: dict[str, list[float]] | None = None,
) -> dict[str, list[float]]:
    """Wall seconds of whole-process runs, the commands taken in turn (the order rotating each round),
    so drift in a shared machine hits every command alike. One warm-up round first, discarded. `peaks`,
    when given, gets each run's peak resident memory in MiB (the kernel's own count for that child)."""
    names = list(commands)
    times: dict[str, list[float]] = {name: [] for name in names}
    for round_number in range(runs + 1):
        order = names[round_number % len(names) :] + names[: round_number % len(names)]
        for name in order:
            elapsed, peak = _run(name, commands[name], cwd, env)
            if round_number:
                times[name].append(elapsed)
                if peaks is not None:
                    peaks.setdefault(name, []).append(peak)
    return times


def _run(
    name: str, command: Sequence[str], cwd: str | None, env: dict[str, str] | None
) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one run; the child is reaped with wait4 for its own usage."""
    import subprocess
    import tempfile

    with tempfile.TemporaryFile() as output:
        start = time.perf_counter()
        child = subprocess.Popen(command, cwd=cwd, env=env, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(child.pid, 0)
        elapsed = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode not in (0, 1):
            output.seek(0)
            raise RuntimeError(f"{name} failed:\n{output.read()[-4000:].decode(errors='replace')}")
    return elapsed, usage.ru_maxrss / 1024


def spread(samples: Sequence[float]) -> str:
    """`1.23 s (1.20-1.31)`: the median and the range."""
    return f"{statistics.median(samples):.3f} s ({min(samples):.3f}-{max(samples):.3f})"


def ratio(samples: Sequence[float], base: Sequence[float]) -> float:
    return statistics.median(samples) / statistics.median(base)
