"""gevent: greenlets are units, monkey-patched threads keep their names, and `run` never blames itself.

Monkey-patching changes a whole process, so each case runs in a subprocess of its own.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("gevent", reason="gevent is not installed (the `test` extra brings it)")

LEAKY = """
from gevent import monkey

monkey.patch_all()

import threading

import gevent
import gevent.queue

import looseends

never = threading.Event()
replies = gevent.queue.Queue(maxsize=1)
replies.put(0)


def start_workers():
    for n in range(2):
        threading.Thread(target=never.wait, name=f"patched-{n}", daemon=True).start()


try:
    with looseends.check(timeout=0.2):
        start_workers()
        gevent.spawn(replies.put, 1)
        gevent.spawn(gevent.sleep, 0.05)  # a straggler: done before the deadline
except looseends.LeakError as error:
    print(error.report.render())
print(looseends.Report.from_units(looseends.snapshot().units).render(title="looseends dump"))
never.set()
"""


def line_of(source: str, text: str) -> int:
    """The line of `text` in the program as written to disk (numbers in reports refer to it)."""
    return 1 + next(n for n, line in enumerate(textwrap.dedent(source).splitlines()) if text in line)


def run_python(tmp_path: Path, source: str, *prefix: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "program.py"
    script.write_text(textwrap.dedent(source))
    return subprocess.run(
        [*(prefix or (sys.executable,)), str(script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_patched_threads_and_greenlets_are_caught_with_their_waits_and_creators(tmp_path: Path) -> None:
    done = run_python(tmp_path, LEAKY)
    assert done.returncode == 0, done.stderr
    report, dump = done.stdout.split("looseends dump:")
    assert report.startswith("looseends: 3 leaked units in 2 groups: 2 threads, 1 greenlet")
    assert "2 threads blocked in gevent Event.wait for " in report
    assert ": event never set" in report
    start = line_of(LEAKY, "threading.Thread(target=never.wait")
    assert f"created by start_workers at program.py:{start} in thread MainThread" in report
    assert "units: patched-0, patched-1 (daemon)" in report
    assert "1 greenlet blocked in gevent Queue.put for " in report
    assert ": forgotten sender" in report
    assert f"created by <module> at program.py:{line_of(LEAKY, 'gevent.spawn(replies.put')}" in report
    assert "gevent.sleep" not in report  # the straggler finished in time
    assert "not fully supported" not in done.stderr  # the canary sees patched threads
    # The dump names the real main thread as such, never as an anonymous `_thread`.
    assert "unit: MainThread" in dump
    assert "<_thread" not in dump


def test_looseends_run_under_gevent_reports_a_left_greenlet_and_never_itself(tmp_path: Path) -> None:
    command = (sys.executable, "-m", "looseends", "run")
    clean = run_python(
        tmp_path,
        """
        from gevent import monkey; monkey.patch_all()
        import threading, gevent
        done = threading.Event()
        threading.Thread(target=done.set, name="quick").start()
        done.wait()
        gevent.spawn(gevent.sleep, 0.01).join()
        """,
        *command,
    )
    assert clean.returncode == 0, clean.stderr
    assert "looseends" not in clean.stderr
    source = """
        from gevent import monkey; monkey.patch_all()
        import gevent, gevent.event
        stop = gevent.event.Event()
        gevent.spawn(stop.wait)
        gevent.sleep(0.01)
        """
    leaky = run_python(tmp_path, source, *command)
    assert leaky.returncode == 1
    assert "looseends: the program left 1 greenlet running" in leaky.stderr
    assert "1 greenlet blocked in gevent Event.wait" in leaky.stderr
    assert f"created by <module> at program.py:{line_of(source, 'gevent.spawn(stop.wait)')}" in leaky.stderr
    assert "unit: MainThread" not in leaky.stderr
