"""Wall-clock figures: whole processes, the variants alternated, medians and ranges.

Users feel wall time, which instruction counts do not show (allocation, cache misses, page faults,
start-up). Each figure here runs every variant as a fresh process, in turn, round after round
(`common.alternating`), so drift on a shared machine hits all variants alike.

    cd bench && python wall.py [--runs N]
"""

from __future__ import annotations

import argparse
import compileall
import statistics
import sys
import tempfile
from pathlib import Path

from common import alternating, ratio, spread, table
from creation import COUNTED

import looseends

TASKS = 200_000
THREADS = 20_000
ONE_TEST = "def test_nothing():\n    pass\n"


def _ratio_row(name: str, samples: list[float], base: list[float]) -> list[str]:
    return [name, spread(base), spread(samples), f"{ratio(samples, base):.3f}x"]


def creation(runs: int) -> tuple[str, dict[str, float]]:
    """200,000 tasks created and run to completion, and 20,000 threads started and joined, each in a
    process of its own, tracking off and on (looseends imported in both)."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "create.py"
        script.write_text(COUNTED)
        python = [sys.executable, str(script)]
        peaks: dict[str, list[float]] = {}
        times = alternating(
            {
                "task": [*python, "task", "0", str(TASKS)],
                "task tracked": [*python, "task", "1", str(TASKS)],
                "thread": [*python, "thread", "0", str(THREADS)],
                "thread tracked": [*python, "thread", "1", str(THREADS)],
            },
            runs,
            peaks=peaks,
        )
    rows = [
        _ratio_row(f"{TASKS:,} tasks: create_task + run to completion", times["task tracked"], times["task"]),
        _ratio_row(f"{THREADS:,} threads: Thread.start + join", times["thread tracked"], times["thread"]),
    ]
    for row, kind in zip(rows, ("task", "thread"), strict=True):
        untracked, tracked = (statistics.median(peaks[name]) for name in (kind, f"{kind} tracked"))
        row.append(f"{untracked:.1f} / {tracked:.1f}")
    header = [
        "whole process, alternated (median, range)", "untracked", "tracked", "÷ untracked",
        "peak RSS, MiB (untracked / tracked)",
    ]  # fmt: skip
    facts = {
        "task_wall_ratio": ratio(times["task tracked"], times["task"]),
        "thread_wall_ratio": ratio(times["thread tracked"], times["thread"]),
    }
    return table(header, rows), facts


def start_up(runs: int) -> tuple[str, dict[str, float]]:
    """A one-test pytest run with and without --looseends: what turning the checks on costs a run
    before any test (imports, hooks, the session's baseline). Bytecode is compiled first, as pip does
    for an installed package."""
    compileall.compile_dir(Path(looseends.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "test_one.py").write_text(ONE_TEST)
        pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_one.py"]
        times = alternating(
            {"plain": [*pytest, "-p", "no:looseends"], "--looseends": [*pytest, "--looseends"]},
            runs,
            cwd=tmp,
        )
    added = statistics.median(times["--looseends"]) - statistics.median(times["plain"])
    rows = [_ratio_row("one-test pytest run", times["--looseends"], times["plain"])]
    rows[0].append(f"{added * 1000:+.1f} ms")
    header = ["whole process, alternated (median, range)", "plain pytest", "--looseends", "÷ plain", "added"]
    return table(header, rows), {"start_up_added": added}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=11)
    arguments = parser.parse_args()
    for figure in (creation, start_up):
        text, facts = figure(arguments.runs)
        print(text, facts, sep="\n", end="\n\n", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
