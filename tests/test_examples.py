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


def test_the_leaky_service_is_watched_into_one_growing_suspect() -> None:
    """docs/http.md and docs/cli.md's walk-through: the service serves its dump; `watch` flags the
    forgotten senders, which grow with every request, and nothing else."""
    service = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "leaky_service.py"), "0", "1000", "0.05"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert service.stdout is not None
        url = service.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        watched = subprocess.run(
            [sys.executable, "-m", "looseends", "watch", url, "--interval", "0.3", "--samples", "4"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        service.kill()
        service.wait(10)
    assert watched.returncode == 1, watched.stdout + watched.stderr
    assert "looseends watch: 1 suspect place(s)" in watched.stdout
    assert "threads created at " in watched.stdout
    source = (EXAMPLES / "leaky_service.py").read_text().splitlines()
    site = 1 + next(n for n, line in enumerate(source) if "threading.Thread(target=replies.put" in line)
    assert f"leaky_service.py:{site}: grew from " in watched.stdout
    assert ": forgotten sender" in watched.stdout
