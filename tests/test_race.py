"""Hand-offs that end on their own are never leaks and never proven stuck: the race harness, short.

`bench/race.py` parks a waiter, releases it and lets it finish by itself, with two CPU-busy threads and a
1 µs switch interval; proofs are asked for right after each release. `make bench` runs 10,000 rounds.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

RACE = Path(__file__).resolve().parent.parent / "bench" / "race.py"


def run_race(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(RACE), *args], capture_output=True, text=True, timeout=600, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_handoffs_under_check_give_no_false_leak_and_no_false_proof() -> None:
    out = run_race("--rounds", "320")
    assert "false leaks 0, false proofs 0" in out
    rounds, raced = (int(part.split()[-1]) for part in out.split(",")[:2])
    assert rounds == 320
    assert raced > rounds // 2  # the proofs really were tried while the waiters still showed their waits


def test_handoffs_under_the_pytest_plugin_all_pass() -> None:
    out = run_race("--pytest", "--rounds", "160")
    assert "160 passed" in out
    assert "error" not in out
