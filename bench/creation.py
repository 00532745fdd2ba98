"""Figure 3: the cost of creation tracking on Thread.start and create_task (run to completion)."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from common import table, us

from looseends.sources._tracking import tracking

ROUNDS = 15
TASKS = 5_000
THREADS = 300


async def _noop() -> None:
    pass


def _tasks(loop: asyncio.AbstractEventLoop) -> float:
    async def run() -> float:
        start = time.perf_counter()
        for _ in range(TASKS):
            await asyncio.create_task(_noop())
        return (time.perf_counter() - start) / TASKS

    return loop.run_until_complete(run())


def _threads() -> float:
    start = time.perf_counter()
    for _ in range(THREADS):
        thread = threading.Thread(target=int)
        thread.start()
        thread.join()
    return (time.perf_counter() - start) / THREADS


# Run under valgrind: `kind` tracked-or-not, `count` times. The slope between two counts is the cost of
# one operation, start-up and imports cancelled out.
COUNTED = """
import asyncio, sys, threading
from looseends.sources._tracking import tracking
kind, tracked, count = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3])
async def noop():
    pass
async def tasks():
    for _ in range(count):
        await asyncio.create_task(noop())
def threads():
    for _ in range(count):
        thread = threading.Thread(target=int)
        thread.start()
        thread.join()
def body():
    asyncio.run(tasks()) if kind == "task" else threads()
if tracked:
    with tracking():
        body()
else:
    body()
"""
SIZES = {"task": (1_000, 5_000), "thread": (200, 1_000)}


def _count(script: Path, kind: str, tracked: bool, count: int) -> int:
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    command += [sys.executable, str(script), kind, "1" if tracked else "0", str(count)]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
    return int(done.stderr.rsplit("I   refs:", 1)[1].split()[0].replace(",", ""))


def _implementation() -> str:
    """Which wrappers track creations in this interpreter: the C accelerator's, or the Python ones."""
    from looseends.sources import _origins

    return "Python wrappers" if _origins.wrap_start is _origins._tracked_start else "C accelerator"


def instructions() -> tuple[str, dict[str, float]] | None:
    """Instructions per operation, untracked and tracked (valgrind; deterministic where wall time is not).
    None without valgrind."""
    if shutil.which("valgrind") is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "counted.py"
        script.write_text(COUNTED)
        per_op = {}
        for kind, (small, big) in SIZES.items():
            for tracked in (False, True):
                low, high = (_count(script, kind, tracked, n) for n in (small, big))
                per_op[kind, tracked] = (high - low) / (big - small)
    rows = [
        [
            label,
            f"{per_op[kind, False] / 1e3:.1f} K",
            f"{per_op[kind, True] / 1e3:.1f} K",
            f"{per_op[kind, True] / per_op[kind, False]:.2f}x",
        ]
        for kind, label in (("task", "create_task + run to completion"), ("thread", "Thread.start + join"))
    ]
    header = ["operation, instructions (valgrind)", "untracked", f"tracked ({_implementation()})", "ratio"]
    facts = {f"{kind}_instruction_ratio": per_op[kind, True] / per_op[kind, False] for kind in SIZES}
    return table(header, rows), facts


def run() -> tuple[str, dict[str, float]]:
    """Alternate the variants round by round, so drift in the machine hits all of them alike."""
    plain_loop, debug_loop = asyncio.new_event_loop(), asyncio.new_event_loop()
    debug_loop.set_debug(True)  # pyleak's creation tracking turns on asyncio debug mode
    debug_loop.slow_callback_duration = 10
    samples: dict[str, list[float]] = {
        k: [] for k in ("task", "task tracked", "task pyleak", "thread", "thread tracked")
    }
    for _ in range(ROUNDS):
        samples["task"].append(_tasks(plain_loop))
        samples["task pyleak"].append(_tasks(debug_loop))
        samples["thread"].append(_threads())
        with tracking():
            samples["task tracked"].append(_tasks(plain_loop))
            samples["thread tracked"].append(_threads())
    plain_loop.close()
    debug_loop.close()
    best = {k: sorted(v)[len(v) // 2] for k, v in samples.items()}
    rows = [
        [
            "create_task + run to completion",
            us(best["task"]),
            us(best["task tracked"]),
            f"{best['task tracked'] / best['task']:.2f}x",
            us(best["task pyleak"]),
            f"{best['task pyleak'] / best['task']:.2f}x",
        ],
        [
            "Thread.start + join",
            us(best["thread"]),
            us(best["thread tracked"]),
            f"{best['thread tracked'] / best['thread']:.2f}x",
            "—",
            "—",
        ],
    ]
    text = table(
        ["operation", "untracked", "looseends tracking", "ratio", "pyleak tracking (loop debug)", "ratio"],
        rows,
    )
    facts = {
        "task_ratio": best["task tracked"] / best["task"],
        "thread_ratio": best["thread tracked"] / best["thread"],
    }
    return text, facts
