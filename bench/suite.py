"""Figure 1: per-test overhead on a generated suite: plain pytest, --looseends, pytest-threadleak, pyleak."""

from __future__ import annotations

import compileall
import concurrent.futures
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import alternating, spread, table

import looseends

FILES = 20
PER_FILE = 100  # 2,000 tests in all
PYLEAK_FILES = 2  # pyleak sleeps after every test: measured on 200 tests, reported per test
RUNS = 11
PYLEAK_RUNS = 3  # 23 s a run: its per-test cost dwarfs the spread

TEST_FILE = """
import asyncio
import threading

import pytest


@pytest.mark.parametrize("n", range({sync}))
def test_sync(n):
    assert sum(range(n)) >= 0


@pytest.mark.parametrize("n", range({threads}))
def test_joined_thread(n):
    out = []
    thread = threading.Thread(target=out.append, args=(n,))
    thread.start()
    thread.join()
    assert out == [n]


@pytest.mark.asyncio
@pytest.mark.parametrize("n", range({tasks}))
async def test_async(n):
    assert await asyncio.create_task(asyncio.sleep(0, result=n)) == n
"""

INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
PYLEAK_CONFTEST = """
import pytest

def pytest_collection_modifyitems(items):
    for item in items:
        item.add_marker(pytest.mark.no_leaks)
"""


def _make_suite(root: Path, files: int, *, pyleak: bool = False) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text(INI)
    if pyleak:
        (root / "conftest.py").write_text(PYLEAK_CONFTEST)
    for index in range(files):
        source = TEST_FILE.format(sync=60, threads=10, tasks=PER_FILE - 70)
        (root / f"test_generated_{index}.py").write_text(source)


def run_pytest(root: Path, *args: str) -> float:
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *args]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args) or 'plain'} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}"
        )
    return elapsed


def count_instructions(root: Path, *args: str) -> int:
    """Instructions one pytest run executes, counted by valgrind: unlike wall time on a shared VM
    (identical runs differ by 15 %), the same run gives the same count to a fraction of a percent."""
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    command += [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly", *args]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}
    done = subprocess.run(command, cwd=root, capture_output=True, text=True, env=env, check=False)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if done.returncode != 0 or found is None:
        raise RuntimeError(f"valgrind run failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


# Per-test instructions are measured on the mix and on one kind of test at a time; the mix once more with
# the collector off on both sides, since merely importing looseends (more long-lived objects) changes how
# often pytest's own full collections run, which moves the plain run's cost as well.
KINDS = {
    "the mix above": None,
    "the mix, collector off on both sides": None,
    "a test that starts nothing": {"sync": PER_FILE, "threads": 0, "tasks": 0},
    "a test that starts a thread and joins it": {"sync": 0, "threads": PER_FILE, "tasks": 0},
    "an async test (pytest-asyncio), creating one task": {"sync": 0, "threads": 0, "tasks": PER_FILE},
}
GC_OFF = "import gc\n\ngc.disable()\n"


def _kind_suite(root: Path, kind: str, files: int) -> None:
    counts = KINDS[kind]
    if counts is None:
        _make_suite(root, files)
        if "collector off" in kind:
            (root / "conftest.py").write_text(GC_OFF)
        return
    root.mkdir(parents=True, exist_ok=True)
    (root / "pytest.ini").write_text(INI)
    for index in range(files):
        (root / f"test_generated_{index}.py").write_text(TEST_FILE.format(**counts))


def instructions_per_test() -> tuple[str, dict[str, float]] | None:
    """Per-test instructions, plain and --looseends: the slope between a 200- and a 600-test suite (100 and
    300 for one kind), so the one-off costs (interpreter, imports, collection setup) cancel out. None
    without valgrind. Two runs at a time: valgrind runs one thread."""
    if shutil.which("valgrind") is None:
        return None
    compileall.compile_dir(Path(looseends.__file__).parent, quiet=1)
    modes = {
        "plain pytest": ("-p", "no:looseends", "-p", "no:threadleak"),
        "--looseends": ("--looseends", "-p", "no:threadleak"),
    }
    jobs = {}
    with tempfile.TemporaryDirectory() as tmp, concurrent.futures.ThreadPoolExecutor(2) as pool:
        for number, kind in enumerate(KINDS):
            sizes = (2, 6) if KINDS[kind] is None else (1, 3)
            for files in sizes:
                root = Path(tmp) / f"{number}-{files}"
                _kind_suite(root, kind, files)
                for mode, args in modes.items():
                    jobs[kind, mode, files] = pool.submit(count_instructions, root, *args)
        counts = {key: job.result() for key, job in jobs.items()}
    rows, ratios = [], {}
    for kind in KINDS:
        small, big = (2, 6) if KINDS[kind] is None else (1, 3)
        tests = (big - small) * PER_FILE
        per = {mode: (counts[kind, mode, big] - counts[kind, mode, small]) / tests for mode in modes}
        ratios[kind] = per["--looseends"] / per["plain pytest"]
        extra = per["--looseends"] - per["plain pytest"]
        rows.append(
            [kind, f"{per['plain pytest'] / 1e6:.3f} M", f"{extra / 1e3:+.0f} K", f"{ratios[kind]:.3f}x"]
        )
    header = ["per test, instructions (valgrind)", "plain pytest", "--looseends adds", "÷ plain"]
    return table(header, rows), {
        "instruction_ratio": ratios["the mix above"],
        "by_kind": max(ratios.values()),
    }


def run() -> tuple[str, dict[str, float]]:
    # Installed packages carry bytecode (pip compiles them); an editable checkout run with
    # PYTHONDONTWRITEBYTECODE would recompile looseends in every pytest process and bill that to it.
    compileall.compile_dir(Path(looseends.__file__).parent, quiet=1)
    with tempfile.TemporaryDirectory() as tmp:
        full, small, leaky = Path(tmp) / "full", Path(tmp) / "small", Path(tmp) / "pyleak"
        _make_suite(full, FILES)
        _make_suite(small, PYLEAK_FILES)
        _make_suite(leaky, PYLEAK_FILES, pyleak=True)
        variants = {
            "plain pytest": ("-p", "no:looseends", "-p", "no:threadleak"),
            "--looseends": ("--looseends", "-p", "no:threadleak"),
            "pytest-threadleak --threadleak": ("-p", "no:looseends", "--threadleak"),
        }
        pytest = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
        # Whole processes in turn, the order rotating each round, one warm-up round discarded.
        times = alternating(
            {name: [*pytest, *args] for name, args in variants.items()},
            RUNS,
            cwd=str(full),
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        small_plain = statistics.median(
            run_pytest(small, "-p", "no:looseends", "-p", "no:threadleak") for _ in range(PYLEAK_RUNS)
        )
        small_pyleak = statistics.median(
            run_pytest(leaky, "-p", "no:looseends", "-p", "no:threadleak") for _ in range(PYLEAK_RUNS)
        )
    count = FILES * PER_FILE
    plain = statistics.median(times["plain pytest"])
    rows = []
    for name, samples in times.items():
        seconds = statistics.median(samples)
        rows.append(
            [
                name,
                spread(samples),
                f"{(seconds - plain) / count * 1e3:+.3f} ms",
                f"{seconds / plain:.3f}x",
            ]
        )
    pyleak_per_test = (small_pyleak - small_plain) / (PYLEAK_FILES * PER_FILE)
    rows.append(
        [
            "pyleak `no_leaks` marker on every test (200-test run, per test)",
            f"{small_pyleak:.2f} s for 200",
            f"{pyleak_per_test * 1e3:+.3f} ms",
            f"{(plain + pyleak_per_test * count) / plain:.2f}x (projected to {count})",
        ]
    )
    header = [
        "run of 2,000 tests (1,200 sync, 200 joining a thread, 600 async)",
        "wall time, alternated (median, range)",
        "per test",
        "÷ plain",
    ]
    looseends_ratio = statistics.median(times["--looseends"]) / plain
    threadleak_ratio = statistics.median(times["pytest-threadleak --threadleak"]) / plain
    return table(header, rows), {"looseends_ratio": looseends_ratio, "threadleak_ratio": threadleak_ratio}
