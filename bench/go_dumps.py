"""Figure 5: parse and group a large Go goroutine dump (100,000 goroutines built from real blocks)."""

from __future__ import annotations

import re
import statistics
import time
import tracemalloc
from pathlib import Path

from common import ms, table

from looseends.report import Report
from looseends.sources.go_dumps import parse_go_dump

DATA = Path(__file__).resolve().parent.parent / "tests" / "data" / "go" / "stack_all.txt"
COUNT = 100_000


def _dump() -> str:
    """The real dump's goroutine blocks, renumbered and repeated to COUNT goroutines."""
    blocks = DATA.read_text().strip().split("\n\n")
    out = []
    for n in range(COUNT):
        out.append(re.sub(r"^goroutine \d+", f"goroutine {n + 1}", blocks[n % len(blocks)]))
    return "\n\n".join(out) + "\n"


def _parse_and_group(text: str) -> Report:
    return Report.from_units(parse_go_dump(text).units)


def run() -> tuple[str, dict[str, float]]:
    text = _dump()
    size = len(text.encode())
    seconds = statistics.median(_timed(lambda: _parse_and_group(text)) for _ in range(3))
    tracemalloc.start()
    report = _parse_and_group(text)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    rows = [
        [
            f"{COUNT:,} goroutines, {size / 1e6:.1f} MB of text",
            ms(seconds),
            f"{size / 1e6 / seconds:.1f} MB/s",
            f"{peak / 1e6:.0f} MB",
            f"{len(report.groups)} groups",
        ]
    ]
    facts = {"seconds": seconds, "mb_per_second": size / 1e6 / seconds, "memory_ratio": peak / size}
    return table(["dump", "parse + group", "throughput", "peak memory", "result"], rows), facts


def _timed(action: object) -> float:
    start = time.perf_counter()
    action()  # type: ignore[operator]
    return time.perf_counter() - start
