"""The README's demo is real: the leaky doJobs is caught with its report and both fixes pass."""

from __future__ import annotations

import pathlib
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"


def run_example(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_demo_catches_both_leaky_versions_and_passes_both_fixes() -> None:
    result = run_example("demo.py")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "6 threads blocked in queue.Queue.put (queue full, maxsize=1, size=1)" in out
    assert "6 tasks blocked in asyncio.Queue.put (queue full, maxsize=1, size=1)" in out
    assert out.count(": forgotten sender") == 2
    assert out.count("looseends: no leaks") == 4
    assert "Task was destroyed" not in result.stderr


def test_leaky_example_exits_non_zero_and_names_the_creation_site() -> None:
    result = run_example("dojobs_threads.py", "leaky")
    assert result.returncode == 1
    assert "created by fan_out at" in result.stdout
    assert "called from do_jobs at" in result.stdout
