"""`looseends attach PID`: a dump of a running Python process with no looseends code in it.

Both ways in are tested on every Python that has them: a borrowed waiting thread (all, Linux x86-64)
and sys.remote_exec (3.14+). Targets are real child processes; each is asked at the end which of our
modules it still holds and how many threads it runs, so the attach is seen to leave nothing behind.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from looseends import attach as attach_module
from looseends.attach import AttachError, attach
from looseends.attach import borrowed_thread as attach_borrow
from looseends.attach import ptrace as attach_ptrace
from looseends.attach.memory import Memory
from looseends.frontends import cli

NEW_ENOUGH = sys.version_info >= (3, 14)
BORROWING = attach_ptrace.supported()
ROUTES = [
    pytest.param("thread", marks=pytest.mark.skipif(BORROWING is not None, reason=str(BORROWING))),
    pytest.param(
        "remote-exec", marks=pytest.mark.skipif(not NEW_ENOUGH, reason="sys.remote_exec is new in 3.14")
    ),
]


@pytest.mark.skipif(
    not os.environ.get("LOOSEENDS_REQUIRE_ATTACH"), reason="LOOSEENDS_REQUIRE_ATTACH not set (CI sets it)"
)
def test_ci_can_borrow_a_thread_so_no_attach_test_is_skipped_there() -> None:
    """The attach tests skip where the kernel refuses ptrace; in CI that would pass them untested."""
    assert BORROWING is None, f"CI must be able to attach by a borrowed thread: {BORROWING}"


TARGET = """
import asyncio, ctypes, json, os, queue, sys, threading, time

stop, mode = sys.argv[1], sys.argv[2]
path = list(sys.path)
full = queue.Queue(maxsize=1)
full.put(0)
for n in range(3):
    threading.Thread(target=full.put, args=(n,), name=f"sender-{n}", daemon=True).start()

def stuck():  # a queue only this thread can reach: provably stuck forever
    alone = queue.Queue(maxsize=1)
    alone.put(0)
    alone.put(1)

async def waiters(until_stopped, ready):
    never = asyncio.Event()
    tasks = [asyncio.create_task(never.wait(), name=f"waiter-{n}") for n in range(2)]
    await asyncio.sleep(0)
    ready.set()
    while not (until_stopped and os.path.exists(stop)):
        await asyncio.sleep(0.01 if until_stopped else 3600)

def waiting(thread):  # blocked in Condition.wait (queue.put), as the attach should see it
    frame = sys._current_frames().get(thread.ident)
    return frame is not None and frame.f_code.co_name == "wait"

looping = threading.Event()
threading.Thread(target=stuck, name="stuck", daemon=True).start()
threading.Thread(target=asyncio.run, args=(waiters(False, looping),), name="loop", daemon=True).start()
looping.wait(30)
while not all(waiting(t) for t in threading.enumerate() if t.name.startswith(("sender", "stuck"))):
    time.sleep(0.01)
started = []  # every thread and event loop started from now on: the attach must start none
real_start, real_loop = threading.Thread.start, asyncio.new_event_loop
threading.Thread.start = lambda self: (started.append(self.name), real_start(self))[1]
asyncio.new_event_loop = lambda: (started.append("an event loop"), real_loop())[1]
print(json.dumps({"threads": threading.active_count()}), flush=True)
if mode == "lock":  # the main thread blocked on a lock until a helper sees the stop file
    lock = threading.Lock()
    lock.acquire()
    def release():
        while not os.path.exists(stop):
            time.sleep(0.01)
        lock.release()
    threading.Thread(target=release, name="release", daemon=True).start()
    lock.acquire()
elif mode == "sleep":
    time.sleep(3600)
elif mode == "loop":  # an asyncio loop in the main thread too
    asyncio.run(waiters(True, threading.Event()))
elif mode == "gil-pause":  # blocked in C holding the GIL: nothing can run Python code
    ctypes.PyDLL(None).pause()
elif mode == "gil-poll":  # the same for two seconds, then on
    ctypes.PyDLL(None).poll(None, 0, 2000)
    while not os.path.exists(stop):
        time.sleep(0.01)
else:
    while not os.path.exists(stop):
        time.sleep(0.01)  # the target's own pace: a main thread that runs Python now and then
ours = sorted(m for m in sys.modules if m.partition(".")[0] in ("looseends", "psutil"))
started = [name for name in started if name != "release"]  # the lock mode's own releaser
end = {"threads": threading.active_count(), "ours": ours, "path": sys.path == path, "started": started}
print(json.dumps(end), flush=True)
"""
Target = tuple[subprocess.Popen[str], Path, int]


def _other_python() -> str | None:
    """Another supported Python on this machine (pyenv's, or on PATH), for attaching across versions."""
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    for version in ("3.11", "3.12", "3.13", "3.14", "3.15"):
        if version == here:
            continue
        on_path = shutil.which(f"python{version}")
        pyenv = sorted(Path.home().glob(f".pyenv/versions/{version}*/bin/python{version}"))
        for found in [*([on_path] if on_path else []), *map(str, pyenv)]:  # a pyenv shim may not run
            if subprocess.run([found, "-c", "pass"], capture_output=True, check=False).returncode == 0:
                return found
    return None


OTHER_PYTHON = _other_python()


@pytest.fixture
def target(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Target]:
    mode = getattr(request, "param", "busy")
    python = OTHER_PYTHON if mode == "other-python" else sys.executable
    script = tmp_path / "target.py"
    script.write_text(TARGET)
    stop = tmp_path / "stop"
    process = subprocess.Popen(
        [str(python), str(script), str(stop), mode],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        threads = json.loads(process.stdout.readline())["threads"]
        if getattr(request, "param", "busy") in ("lock", "sleep"):  # wait until it waits
            deadline = time.monotonic() + 30
            while attach_ptrace.waiting_call(process.pid, process.pid) not in ("futex", "clock_nanosleep"):
                assert time.monotonic() < deadline, "the target's main thread never blocked"
                time.sleep(0.01)  # another process's state: nothing to wait on
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


def _spy_on_borrow(monkeypatch: pytest.MonkeyPatch) -> list[attach_borrow.Borrowed]:
    borrowed: list[attach_borrow.Borrowed] = []
    real = attach_module.borrow

    def borrow(*args: object) -> attach_borrow.Borrowed:
        borrowed.append(real(*args))  # type: ignore[arg-type]
        return borrowed[-1]

    monkeypatch.setattr(attach_module, "borrow", borrow)
    return borrowed


def _groups(report: object) -> dict[tuple[str, str], int]:
    """Units by kind and what they wait on (a group is one stack: the stuck thread has its own)."""
    counts: dict[tuple[str, str], int] = {}
    for unit in report.units:  # type: ignore[attr-defined]
        counts[unit.kind.value, unit.blocked_on.code] = (
            counts.get((unit.kind.value, unit.blocked_on.code), 0) + 1
        )
    return counts


def _main(report: object) -> object:
    return next(u for u in report.units if u.name == "MainThread")  # type: ignore[attr-defined]


def _stop_and_check(process: subprocess.Popen[str], stop: Path, threads_before: int) -> None:
    """The target goes on to its end holding nothing of ours: no module, no thread; its sys.path as it was."""
    stop.touch()
    assert process.stdout is not None
    end = json.loads(process.stdout.readline())
    assert end == {"threads": threads_before, "ours": [], "path": True, "started": []}
    assert process.wait(30) == 0


@pytest.mark.parametrize("via", ROUTES)
def test_attach_reports_a_running_process_and_leaves_nothing_behind(
    target: Target, via: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    process, stop, threads_before = target
    borrowed = _spy_on_borrow(monkeypatch)
    report = _attach_or_skip(process.pid, via=via)
    groups = _groups(report)
    assert groups[("thread", "queue.put")] == 4  # three senders and the stuck one
    assert groups[("task", "asyncio.event.wait")] == 2
    files = [frame.filename for frame in _main(report).stack]  # type: ignore[attr-defined]
    assert files[-1].endswith("target.py")  # where the main thread was: its own code, maybe a call inside
    assert not any(name == "<string>" or "/looseends/" in name for name in files)  # not the attach's
    if via == "thread":  # the pages it mapped are gone again
        assert len(borrowed) == 1
        maps = Path(f"/proc/{process.pid}/maps").read_text()
        assert f"{borrowed[0].region:x}-" not in maps
    _stop_and_check(process, stop, threads_before)


@pytest.mark.skipif(BORROWING is not None, reason=str(BORROWING))
@pytest.mark.parametrize("target", ["lock"], indirect=True)
def test_a_main_thread_blocked_on_a_lock_is_read_and_left_waiting(target: Target) -> None:
    process, stop, threads_before = target
    report = _attach_or_skip(process.pid, via="thread", proven=True)
    proven = {(unit.name, unit.blocked_on.code) for unit in report.units}  # type: ignore[attr-defined]
    # An attach ships no C and loads no ctypes a target has not loaded (this one has): 3.11 cannot read a
    # frame variable without leaving a copy, so it proves nothing.
    if sys.version_info >= (3, 12):
        assert proven == {("stuck", "queue.put")}  # only the provable one; the main lock has a releaser
    else:
        assert proven == set()
    report = _attach_or_skip(process.pid, via="thread")
    assert _main(report).blocked_on.code == "lock.acquire"  # type: ignore[attr-defined]
    assert process.poll() is None
    _stop_and_check(process, stop, threads_before)  # the releaser has ended by then


@pytest.mark.skipif(BORROWING is not None, reason=str(BORROWING))
@pytest.mark.parametrize("target", ["sleep"], indirect=True)
def test_a_main_thread_in_time_sleep_goes_back_to_sleep(target: Target) -> None:
    process, _, _ = target
    for _ in range(3):
        report = _attach_or_skip(process.pid, via="thread")
        main = _main(report)
        assert main.blocked_on.code == "time.sleep"  # type: ignore[attr-defined]
        assert 3000 < main.blocked_on.detail["timeout"] <= 3600  # type: ignore[attr-defined]
    # Still sleeping, in the same system call (clock_nanosleep), not woken early.
    assert Path(f"/proc/{process.pid}/task/{process.pid}/syscall").read_text().split()[0] == "230"
    assert process.poll() is None


@pytest.mark.skipif(BORROWING is not None, reason=str(BORROWING))
@pytest.mark.parametrize("target", ["loop"], indirect=True)
def test_asyncio_loops_in_the_main_thread_and_another(target: Target) -> None:
    process, stop, threads_before = target
    report = _attach_or_skip(process.pid, via="thread")
    assert _groups(report)[("task", "asyncio.event.wait")] == 4
    loops = {unit.thread for unit in report.units if unit.name.startswith("waiter")}  # type: ignore[attr-defined]
    assert loops == {"MainThread", "loop"}
    _stop_and_check(process, stop, threads_before)


@pytest.mark.skipif(BORROWING is not None, reason=str(BORROWING))
@pytest.mark.parametrize("target", ["gil-pause"], indirect=True)
def test_a_thread_holding_the_gil_is_not_entered(target: Target) -> None:
    process, _, _ = target
    with pytest.raises(AttachError, match=r"none could run the snapshot|waits for the GIL"):
        _attach_or_skip(process.pid, via="thread", timeout=0.5)
    assert process.poll() is None


@pytest.mark.skipif(BORROWING is not None, reason=str(BORROWING))
@pytest.mark.parametrize("target", ["gil-poll"], indirect=True)
def test_waiting_for_the_gil_times_out_and_the_target_ends_on_its_own(
    target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    process, stop, threads_before = target
    borrowed = _spy_on_borrow(monkeypatch)
    with pytest.raises(
        AttachError,
        match=r"waits for the GIL, which another thread holds \(or the snapshot is slow\). It was left",
    ):
        _attach_or_skip(process.pid, via="thread", timeout=0.3)
    # When the GIL comes (two seconds), the snapshot runs, finds the attach gone and ends, its pages too.
    deadline = time.monotonic() + 30
    with Memory(process.pid) as memory:
        while not attach_borrow.returned(borrowed[0], memory):
            assert time.monotonic() < deadline, "the borrowed thread never came back"
            time.sleep(0.05)  # polling another process's memory: nothing to wait on
    _stop_and_check(process, stop, threads_before)


@pytest.mark.skipif(BORROWING is not None, reason=str(BORROWING))
@pytest.mark.parametrize("target", ["sleep"], indirect=True)
def test_a_thread_traced_by_someone_else_is_a_refusal_that_names_the_tracer(target: Target) -> None:
    process, _, _ = target
    waiting, _ = attach_module._candidates(process.pid)
    assert waiting  # other threads wait: the main thread is not needed
    assert process.pid not in waiting
    with contextlib.ExitStack() as held:
        for tid in waiting:  # every waiting thread held, as a debugger would
            held.enter_context(attach_ptrace.seized(process.pid, tid))
        with pytest.raises(AttachError, match=rf"its thread \d+ is already traced by process {os.getpid()}"):
            attach(process.pid, via="thread")
    assert _main(attach(process.pid, via="thread")).blocked_on.code == "time.sleep"  # type: ignore[attr-defined]


@pytest.mark.skipif(BORROWING is not None, reason=str(BORROWING))
@pytest.mark.skipif(OTHER_PYTHON is None, reason="no other Python 3.11-3.15 on this machine (pyenv or PATH)")
@pytest.mark.parametrize("target", ["other-python"], indirect=True)
def test_a_target_on_another_python_version(target: Target) -> None:
    process, stop, threads_before = target
    report = _attach_or_skip(process.pid)  # the default way in across versions: a borrowed thread
    assert _groups(report)[("thread", "queue.put")] == 4
    senders = next(g for g in report.groups if g.count == 3)  # type: ignore[attr-defined]
    assert senders.units[0].stack[0].is_library  # its threading.py, not ours: folded all the same
    _stop_and_check(process, stop, threads_before)


FRAMEWORK_TARGETS = {
    "gevent": """
from gevent import monkey; monkey.patch_all()
import gevent, gevent.queue, json, os, sys
full = gevent.queue.Queue(maxsize=1)
full.put(0)
senders = [gevent.spawn(full.put, n) for n in range(3)]
gevent.sleep(0)
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    gevent.sleep(0.01)
ours = sorted(m for m in sys.modules if m.partition(".")[0] in ("looseends", "psutil"))
print(json.dumps(ours), flush=True)
""",
    "uvloop": """
import asyncio, json, os, sys, uvloop
async def main():
    never = asyncio.Event()
    waiters = [asyncio.create_task(never.wait(), name=f"waiter-{n}") for n in range(3)]
    await asyncio.sleep(0)
    print("ready", flush=True)
    while not os.path.exists(sys.argv[1]):
        await asyncio.sleep(0.01)
    ours = sorted(m for m in sys.modules if m.partition(".")[0] in ("looseends", "psutil"))
    print(json.dumps(ours), flush=True)
uvloop.run(main())
""",
}


@pytest.mark.skipif(BORROWING is not None, reason=str(BORROWING))
@pytest.mark.parametrize("framework", ["gevent", "uvloop"])
def test_a_gevent_or_uvloop_service(framework: str, tmp_path: Path) -> None:
    pytest.importorskip(framework, reason=f"{framework} is not installed")
    script, stop = tmp_path / "target.py", tmp_path / "stop"
    script.write_text(FRAMEWORK_TARGETS[framework])
    process = subprocess.Popen([sys.executable, str(script), str(stop)], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        report = _attach_or_skip(process.pid, via="thread")
        if framework == "gevent":  # the hub's greenlets, read from inside its own (borrowed) thread
            assert sum(1 for unit in report.units if unit.kind.value == "greenlet") == 3  # type: ignore[attr-defined]
        else:
            assert _groups(report)[("task", "asyncio.event.wait")] == 3
        stop.touch()
        assert json.loads(process.stdout.readline()) == []
        assert process.wait(30) == 0
    finally:
        process.kill()
        process.wait(10)


@pytest.mark.skipif(BORROWING is not None, reason=str(BORROWING))
def test_a_process_that_never_waits_is_refused_untouched() -> None:
    spinning = subprocess.Popen(
        [sys.executable, "-c", "print(1, flush=True)\nwhile True: pass"], stdout=subprocess.PIPE
    )
    try:
        assert spinning.stdout is not None
        spinning.stdout.readline()
        with pytest.raises(
            AttachError,
            match=rf"no thread of process {spinning.pid} waited where it can be borrowed within 1 s",
        ):
            attach(spinning.pid, via="thread", timeout=1)
        assert spinning.poll() is None
    finally:
        spinning.kill()
        spinning.wait(10)


@pytest.mark.skipif(BORROWING is not None, reason=str(BORROWING))
def test_a_target_that_exits_before_it_answers_is_said_so() -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)
    borrowed = attach_borrow.Borrowed(gone.pid, gone.pid, region=0x10000, size=4096)
    channel = attach_module.Channel(gone.pid)

    class Unreadable:  # the memory of a process that is gone
        def read(self, address: int, size: int) -> bytes:
            raise OSError("gone")

    with pytest.raises(AttachError, match=rf"process {gone.pid} exited before it answered"):
        attach_module._wait(channel, borrowed, Unreadable(), deadline=time.monotonic() + 10)  # type: ignore[arg-type]


@pytest.mark.skipif(not NEW_ENOUGH, reason="sys.remote_exec is new in Python 3.14")
@pytest.mark.parametrize("target", ["sleep"], indirect=True)
def test_remote_exec_with_a_main_thread_blocked_in_c_is_a_clear_timeout(target: Target) -> None:
    process, _, _ = target
    with pytest.raises(AttachError, match=r"did not answer within 0.5 s: its main thread ran no Python code"):
        _attach_or_skip(process.pid, timeout=0.5, via="remote-exec")
    assert process.poll() is None


@pytest.mark.skipif(NEW_ENOUGH, reason="only Pythons before 3.14 lack sys.remote_exec")
def test_remote_exec_before_314_is_refused_with_the_reason(target: Target) -> None:
    process, _, _ = target
    with pytest.raises(AttachError, match=r"--via remote-exec needs the same Python 3.14\+ on both sides"):
        attach(process.pid, via="remote-exec")
    assert process.poll() is None


def test_refusals_are_one_line(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    sleeper = subprocess.Popen(["sleep", "30"])
    try:
        assert cli.main(["attach", str(sleeper.pid)], out=io.StringIO()) == 2
        assert f"process {sleeper.pid} (sleep) is not a CPython interpreter" in capsys.readouterr().err
    finally:
        sleeper.kill()
        sleeper.wait(10)
    assert cli.main(["attach", str(sleeper.pid)], out=io.StringIO()) == 2
    assert f"no process {sleeper.pid}" in capsys.readouterr().err
    monkeypatch.setattr(attach_ptrace.platform, "machine", lambda: "aarch64")
    assert (
        attach_ptrace.supported()
        == "borrowing a thread is built for Linux on x86-64 only; this is Linux aarch64"
    )
