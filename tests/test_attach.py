"""`looseends attach PID`: a dump of a running Python process with no looseends code in it.

Python 3.14+ gets in through `sys.remote_exec`; earlier Pythons are refused with the reason. Targets
are real child processes; each is asked at the end which of our modules it still holds and how many
threads it runs, so the attach is seen to leave nothing behind.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from looseends.frontends import cli
from looseends.frontends.attach import AttachError, attach

NEW_ENOUGH = sys.version_info >= (3, 14)
TARGET = """
import asyncio, json, os, queue, sys, threading, time

full = queue.Queue(maxsize=1)
full.put(0)
for n in range(3):
    threading.Thread(target=full.put, args=(n,), name=f"sender-{n}", daemon=True).start()

def loop_thread():
    async def main():
        never = asyncio.Event()
        tasks = [asyncio.create_task(never.wait(), name=f"waiter-{n}") for n in range(2)]
        await asyncio.sleep(3600)
    asyncio.run(main())

threading.Thread(target=loop_thread, name="loop", daemon=True).start()
stop = sys.argv[1]
print(json.dumps({"threads": threading.active_count()}), flush=True)
if sys.argv[2] == "blocked":
    time.sleep(3600)  # the main thread in C: no safe point until it returns
while not os.path.exists(stop):
    time.sleep(0.01)  # the target's own pace: a main thread that runs Python now and then
ours = sorted(m for m in sys.modules if m.partition(".")[0] in ("looseends", "psutil"))
print(json.dumps({"threads": threading.active_count(), "ours": ours}), flush=True)
"""


@pytest.fixture
def target(
    tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[tuple[subprocess.Popen[str], Path, int]]:
    script = tmp_path / "target.py"
    script.write_text(TARGET)
    stop = tmp_path / "stop"
    process = subprocess.Popen(
        [sys.executable, str(script), str(stop), getattr(request, "param", "busy")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        threads = json.loads(process.stdout.readline())["threads"]
        yield process, stop, threads
    finally:
        process.kill()
        process.wait(10)


def _attach_or_skip(pid: int, **options: object) -> object:
    try:
        return attach(pid, **options)  # type: ignore[arg-type]
    except AttachError as exc:
        if "the kernel refused" in str(exc):
            pytest.skip(f"ptrace is not permitted here: {exc}")
        raise


@pytest.mark.skipif(not NEW_ENOUGH, reason="sys.remote_exec is new in Python 3.14")
def test_attach_reports_a_running_process_and_leaves_nothing_behind(
    target: tuple[subprocess.Popen[str], Path, int],
) -> None:
    process, stop, threads_before = target
    report = _attach_or_skip(process.pid)
    groups = {(g.kind.value, g.blocked_on.code): g.count for g in report.groups}  # type: ignore[attr-defined]
    assert groups[("thread", "queue.put")] == 3
    assert groups[("task", "asyncio.event.wait")] == 2
    main = next(u for u in report.units if u.name == "MainThread")  # type: ignore[attr-defined]
    files = [frame.filename for frame in main.stack]
    assert files[-1].endswith("target.py")  # where the main thread was: its own code, maybe a call inside
    assert not any(name == "<string>" or "/looseends/" in name for name in files)  # not the attach's
    stop.touch()
    assert process.stdout is not None
    after = json.loads(process.stdout.readline())
    assert after == {"threads": threads_before, "ours": []}
    assert process.wait(30) == 0


@pytest.mark.skipif(not NEW_ENOUGH, reason="sys.remote_exec is new in Python 3.14")
@pytest.mark.parametrize("target", ["blocked"], indirect=True)
def test_a_main_thread_blocked_in_c_is_a_clear_timeout_and_the_target_runs_on(
    target: tuple[subprocess.Popen[str], Path, int],
) -> None:
    process, _, _ = target
    with pytest.raises(AttachError, match=r"did not answer within 0.5 s: its main thread ran no Python code"):
        _attach_or_skip(process.pid, timeout=0.5)
    assert process.poll() is None


@pytest.mark.skipif(NEW_ENOUGH, reason="only Pythons before 3.14 lack sys.remote_exec")
def test_before_314_attach_is_refused_with_the_reason(
    target: tuple[subprocess.Popen[str], Path, int],
) -> None:
    process, _, _ = target
    with pytest.raises(AttachError, match=r"attach needs Python 3.14\+ here \(sys.remote_exec, PEP 768\)"):
        attach(process.pid)
    assert process.poll() is None


def test_refusals_are_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        assert cli.main(["attach", str(sleeper.pid)], out=io.StringIO()) == 2
        assert f"process {sleeper.pid} (sleep) is not a Python interpreter" in capsys.readouterr().err
    finally:
        sleeper.kill()
        sleeper.wait(10)
    assert cli.main(["attach", str(sleeper.pid)], out=io.StringIO()) == 2
    assert f"no process {sleeper.pid}" in capsys.readouterr().err
