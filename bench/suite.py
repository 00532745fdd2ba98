"""Figure 1: per-test overhead on a generated suite: plain pytest, --looseends, pytest-threadleak, pyleak."""

from __future__ import annotations

import compileall
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import table

import looseends

FILES = 20
PER_FILE = 100  # 2,000 tests in all
PYLEAK_FILES = 2  # pyleak sleeps after every test: measured on 200 tests, reported per test
RUNS = 5

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


def instructions_per_test() -> tuple[str, dict[str, float]] | None:
    """Per-test instructions, plain and --looseends: the slope between a 200- and a 600-test suite, so
    the one-off costs (interpreter, imports, collection setup) cancel out. None without valgrind."""
    if shutil.which("valgrind") is None:
        return None
    compileall.compile_dir(Path(looseends.__file__).parent, quiet=1)
    sizes = (2, 6)  # files of PER_FILE tests
    counts: dict[str, list[int]] = {"plain pytest": [], "--looseends": []}
    with tempfile.TemporaryDirectory() as tmp:
        for files in sizes:
            root = Path(tmp) / f"suite{files}"
            _make_suite(root, files)
            counts["plain pytest"].append(
                count_instructions(root, "-p", "no:looseends", "-p", "no:threadleak")
            )
            counts["--looseends"].append(count_instructions(root, "--looseends", "-p", "no:threadleak"))
    tests = (sizes[1] - sizes[0]) * PER_FILE
    per_test = {name: (big - small) / tests for name, (small, big) in counts.items()}
    fixed = {name: small - per_test[name] * sizes[0] * PER_FILE for name, (small, _) in counts.items()}
    plain = per_test["plain pytest"]
    rows = [
        [
            name,
            f"{per_test[name] / 1e6:.3f} M",
            f"{per_test[name] / plain:.3f}x",
            f"{fixed[name] / 1e9:.2f} G",
        ]
        for name in counts
    ]
    header = ["same mix, instructions (valgrind)", "per test", "÷ plain", "one-off (start, imports)"]
    return table(header, rows), {"instruction_ratio": per_test["--looseends"] / plain}


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
        for args in variants.values():  # warm-up, discarded: the first run pays for a cold file cache
            run_pytest(full, *args)
        times: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(RUNS):  # interleaved, so drift in the machine hits every variant alike
            for name, args in variants.items():
                times[name].append(run_pytest(full, *args))
        small_plain = statistics.median(
            run_pytest(small, "-p", "no:looseends", "-p", "no:threadleak") for _ in range(RUNS)
        )
        small_pyleak = statistics.median(
            run_pytest(leaky, "-p", "no:looseends", "-p", "no:threadleak") for _ in range(RUNS)
        )
    count = FILES * PER_FILE
    plain = statistics.median(times["plain pytest"])
    rows = []
    for name, samples in times.items():
        seconds = statistics.median(samples)
        rows.append(
            [
                name,
                f"{seconds:.2f} s",
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
        "wall time",
        "per test",
        "÷ plain",
    ]
    looseends_ratio = statistics.median(times["--looseends"]) / plain
    return table(header, rows), {"looseends_ratio": looseends_ratio}
