"""What an attach may never do to its target, each tried on a real process of the shape that once went
wrong: run a file someone planted, lose or delay a signal, overflow a small stack, collide with another
attach, replace `__main__`, fail on another user's process, or on a process that refuses writable code.

bench/attach_probe.py does the same at scale, killing attachers at random moments (figures in
docs/attach.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from looseends.attach import AttachError, attach, borrowed_thread, ptrace
from looseends.attach.memory import Mapping
from looseends.report import Report

BORROWING = ptrace.supported()
NEEDS_BORROWING = pytest.mark.skipif(BORROWING is not None, reason=str(BORROWING))
NEW_ENOUGH = sys.version_info >= (3, 14)
ENDING = """
ours = sorted(m for m in sys.modules if m.partition(".")[0] in ("looseends", "psutil"))
print(json.dumps({"ours": ours}), flush=True)
"""


# Every target has Python's usual Ctrl-C, however the suite was started: a shell's background job inherits
# SIGINT ignored, and Python then installs no KeyboardInterrupt handler.
USUAL_CTRL_C = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler)\n"


@contextlib.contextmanager
def started(source: str, *args: str, stdin: int | None = None) -> Iterator[subprocess.Popen[str]]:
    """A target running `source`, once it printed "ready"; killed at the end whatever happened. What it
    wrote to stderr is in `errors` afterwards."""
    process = subprocess.Popen(
        [sys.executable, "-c", USUAL_CTRL_C + source, *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line == "ready\n", (line, process.stderr.read() if process.stderr else "")
        yield process
    finally:
        process.kill()
        errors.append(process.communicate(timeout=30)[1])


errors: list[str] = []


def _waits(pid: int, tid: int, calls: tuple[str, ...]) -> None:
    deadline = time.monotonic() + 30
    while ptrace.waiting_call(pid, tid) not in calls:
        assert time.monotonic() < deadline, f"thread {tid} never waited in {calls}"
        time.sleep(0.01)  # another process's state: nothing to wait on


def _attach_in_background(pid: int, **options: object) -> tuple[threading.Thread, list[object]]:
    result: list[object] = []

    def run() -> None:
        try:
            result.append(attach(pid, **options))  # type: ignore[arg-type]
        except AttachError as exc:
            result.append(exc)

    thread = threading.Thread(target=run, name="attacher")
    thread.start()
    return thread, result


@contextlib.contextmanager
def _held(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[threading.Event, threading.Event]]:
    """Pause the next attach while it holds a thread of its target, stopped under ptrace: `held` is set
    then, and the attach goes on when `go` is. The window a signal or a Ctrl-C lands in on its own only
    by chance, made certain."""
    held, go = threading.Event(), threading.Event()
    original = borrowed_thread.mappings

    def pausing(pid: int) -> list[Mapping]:
        if not held.is_set():
            held.set()
            go.wait(30)
        return original(pid)

    monkeypatch.setattr(borrowed_thread, "mappings", pausing)
    try:
        yield held, go
    finally:
        go.set()


def _line(process: subprocess.Popen[str], seconds: float) -> str | None:
    """The target's next line of output, or None if it wrote none within `seconds`."""
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], seconds)
    return process.stdout.readline() if ready else None


SIGINT_IN_SLEEP = """
import json, sys, threading, time
if sys.argv[1] == "threads":
    threading.Thread(target=threading.Event().wait, daemon=True, name="idle").start()
print("ready", flush=True)
try:
    time.sleep(3600)
except KeyboardInterrupt:
    print(json.dumps({"caught": time.monotonic()}), flush=True)
    threading.Event().wait()  # still there for the attach to finish
"""


def _ctrl_c_while_held(
    target: subprocess.Popen[str], monkeypatch: pytest.MonkeyPatch, *, lands_at_once: bool
) -> None:
    """Ctrl-C the target while an attach holds one of its threads. When the main thread is not the one
    held, the program's `except` runs at once, the attach still holding the other; when it is, the
    signal waits, blocked, until the thread is let go, then interrupts the wait as the kernel would
    (EINTR) and raises in the program's own frame, not inside the snapshot."""
    with _held(monkeypatch) as (held, go):
        attacher, result = _attach_in_background(target.pid)
        assert held.wait(30), result
        os.kill(target.pid, signal.SIGINT)
        early = _line(target, 30 if lands_at_once else 0.5)
        assert (early is not None) == lands_at_once, early
        go.set()
        attacher.join(60)
    assert not attacher.is_alive()
    assert isinstance(result[0], Report), result  # the attach itself went through
    line = early if early is not None else _line(target, 30)
    assert line is not None, "the program's except never ran"
    assert "caught" in json.loads(line)


@NEEDS_BORROWING
@pytest.mark.parametrize("shape", ["single", "threads"])
def test_a_ctrl_c_during_an_attach_reaches_the_program_s_own_except(
    shape: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with started(SIGINT_IN_SLEEP, shape) as target:
        _waits(target.pid, target.pid, ("clock_nanosleep",))
        if shape == "threads":
            idle = next(int(tid) for tid in os.listdir(f"/proc/{target.pid}/task") if int(tid) != target.pid)
            _waits(target.pid, idle, ("futex",))
        _ctrl_c_while_held(target, monkeypatch, lands_at_once=shape == "threads")


TIMED_WAIT = """
import json, queue, sys, threading, time
lock = threading.Lock()
lock.acquire()
print("ready", flush=True)
began = time.monotonic()
try:
    lock.acquire(timeout=float(sys.argv[1]))  # a futex wait with an absolute deadline
    print(json.dumps({"waited": time.monotonic() - began}), flush=True)
except KeyboardInterrupt:
    print(json.dumps({"caught": time.monotonic()}), flush=True)
    threading.Event().wait()  # still there for the attach to finish
"""


@NEEDS_BORROWING
def test_a_timed_lock_wait_is_borrowed_and_ends_at_its_own_deadline() -> None:
    """The only thread waits with a timeout (a pre-fork master's loop: `queue.get(timeout=1)`): made
    again with the same absolute deadline, the wait ends when it would have, neither early nor late."""
    with started(TIMED_WAIT, "3") as target:
        _waits(target.pid, target.pid, ("futex",))
        report = attach(target.pid)
        assert [unit.name for unit in report.units] == ["MainThread"]
        line = _line(target, 30)
        assert line is not None
        waited = json.loads(line)["waited"]
    assert 3.0 <= waited < 3.5


@NEEDS_BORROWING
def test_a_ctrl_c_during_an_attach_interrupts_a_timed_lock_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    with started(TIMED_WAIT, "3600") as target:
        _waits(target.pid, target.pid, ("futex",))
        _ctrl_c_while_held(target, monkeypatch, lands_at_once=False)


STOPPED_OR_SMALL = """
import queue, sys, threading, time
threading.stack_size(65536)  # too small to run a snapshot on: such threads are never borrowed
inbox = queue.Queue()
for n in range(4):
    threading.Thread(target=inbox.get, daemon=True, name=f"small-{n}").start()
print("ready", flush=True)
while True:
    sum(range(1000))  # the main thread never waits
"""


@NEEDS_BORROWING
def test_a_thread_with_a_small_stack_is_never_borrowed() -> None:
    with started(STOPPED_OR_SMALL) as target:
        with pytest.raises(AttachError, match=r"short of stack"):
            attach(target.pid, timeout=1.0)
        assert target.poll() is None


@NEEDS_BORROWING
def test_a_stopped_process_is_refused_and_left_stopped() -> None:
    with started(SIGINT_IN_SLEEP, "single") as target:
        os.kill(target.pid, signal.SIGSTOP)
        try:
            deadline = time.monotonic() + 10
            while Path(f"/proc/{target.pid}/stat").read_text().rpartition(")")[2].split()[0] != "T":
                assert time.monotonic() < deadline
                time.sleep(0.01)
            with pytest.raises(AttachError, match=rf"process {target.pid} is stopped \(SIGSTOP"):
                attach(target.pid, timeout=1.0)
            assert Path(f"/proc/{target.pid}/stat").read_text().rpartition(")")[2].split()[0] == "T"
        finally:
            os.kill(target.pid, signal.SIGCONT)
        _waits(target.pid, target.pid, ("clock_nanosleep",))
        assert attach(target.pid).units


MAIN_REPLACED = (
    """
import json, sys, threading, time
mode = sys.argv[1]
if mode == "object":
    sys.modules["__main__"] = marker = object()
else:
    del sys.modules["__main__"]
threading.Thread(target=threading.Event().wait, daemon=True).start()
print("ready", flush=True)
sys.stdin.readline()
main = sys.modules.get("__main__", "missing")
print(json.dumps({"main": "missing" if main == "missing" else type(main).__name__}), flush=True)
"""
    + ENDING
)


@NEEDS_BORROWING
@pytest.mark.parametrize(("mode", "expected"), [("object", "object"), ("deleted", "missing")])
def test_a_replaced_or_deleted_main_module_stays_as_the_program_left_it(mode: str, expected: str) -> None:
    with started(MAIN_REPLACED, mode, stdin=subprocess.PIPE) as target:
        assert attach(target.pid).units
        assert target.stdin is not None
        target.stdin.write("\n")
        target.stdin.flush()
        assert target.stdout is not None
        assert json.loads(target.stdout.readline()) == {"main": expected}
        assert json.loads(target.stdout.readline()) == {"ours": []}


MANY_WAITERS = (
    """
import json, queue, sys, threading
inbox = queue.Queue()
for n in range(6):
    threading.Thread(target=inbox.get, daemon=True, name=f"waiter-{n}").start()
print("ready", flush=True)
sys.stdin.readline()
"""
    + ENDING
)


@NEEDS_BORROWING
def test_two_attaches_at_once_are_served_one_after_the_other() -> None:
    with started(MANY_WAITERS, stdin=subprocess.PIPE) as target:
        runs = [_attach_in_background(target.pid) for _ in range(3)]
        for thread, _ in runs:
            thread.join(60)
        for _, result in runs:
            assert len(result) == 1
            assert not isinstance(result[0], AttachError), result[0]
            assert sum(unit.name.startswith("waiter-") for unit in result[0].units) == 6  # type: ignore[attr-defined]
        assert target.stdin is not None
        target.stdin.write("\n")
        target.stdin.flush()
        assert target.stdout is not None
        assert json.loads(target.stdout.readline()) == {"ours": []}


NO_WRITABLE_CODE = """
import ctypes, sys, threading, time
PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
if ctypes.CDLL(None, use_errno=True).prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
    print("unsupported", flush=True)
    sys.exit(0)
threading.Thread(target=threading.Event().wait, daemon=True, name="idle").start()
print("ready", flush=True)
time.sleep(3600)
"""


@NEEDS_BORROWING
def test_a_process_that_refuses_writable_code_is_attached_all_the_same() -> None:
    check = NO_WRITABLE_CODE.split("threading.Thread")[0]  # the prctl alone
    probe = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=30)
    if probe.stdout.startswith("unsupported"):
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+)")
    with started(NO_WRITABLE_CODE) as target:
        report = attach(target.pid)
        assert any(unit.name == "idle" for unit in report.units)
        assert target.poll() is None


def _nobody_can_run_it() -> str | None:
    """Why a root attach to another user's process cannot be tried here, or None."""
    if os.geteuid() != 0:
        return "needs root (a root attach to another user's process)"
    if not shutil.which("setpriv"):
        return "needs setpriv (util-linux)"
    here = Path(__file__).resolve().parent.parent / "src"
    check = [shutil.which("setpriv") or "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run(
        [*check, sys.executable, "-c", f"import os; os.listdir({str(here)!r})"], capture_output=True
    )
    if probe.returncode != 0:
        return f"user nobody cannot run {sys.executable} or read {here}"
    return None


NOBODY = _nobody_can_run_it()


@NEEDS_BORROWING
@pytest.mark.skipif(NOBODY is not None, reason=str(NOBODY))
def test_root_attaches_to_another_users_process() -> None:
    as_nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    process = subprocess.Popen(
        [*as_nobody, sys.executable, "-c", MANY_WAITERS],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline() == "ready\n"
        report = attach(process.pid)
        assert sum(unit.name.startswith("waiter-") for unit in report.units) == 6
        assert process.stdin is not None
        process.stdin.write("\n")
        process.stdin.flush()
        assert json.loads(process.stdout.readline()) == {"ours": []}
    finally:
        process.kill()
        process.wait(10)


@pytest.mark.skipif(not NEW_ENOUGH, reason="sys.remote_exec is new in Python 3.14")
def test_a_remote_exec_that_timed_out_leaves_no_path_anyone_can_plant_and_prints_nothing(
    tmp_path: Path,
) -> None:
    """The script path the target holds stays ours until the target runs it; then the script removes
    itself, sees the attach gone, and returns without a word."""
    source = """
import ctypes, sys, time
print("ready", flush=True)
ctypes.PyDLL(None).poll(None, 0, 2000)  # blocked in C, holding the GIL: no safe point for a while
while True:
    time.sleep(0.01)
"""
    with started(source) as target:
        _waits(target.pid, target.pid, ("poll",))
        before = set(Path(os.environ.get("TMPDIR", "/tmp")).glob("looseends-attach-*"))
        with pytest.raises(AttachError, match=r"did not answer within 0.3 s"):
            attach(target.pid, via="remote-exec", timeout=0.3)
        pending = set(Path(os.environ.get("TMPDIR", "/tmp")).glob("looseends-attach-*")) - before
        assert len(pending) == 1  # kept while the target may still open it
        (directory,) = pending
        assert directory.stat().st_mode & 0o777 == 0o700
        assert [entry.name for entry in directory.iterdir()] != ["bootstrap.py"]  # a secret name inside
        deadline = time.monotonic() + 30
        while directory.exists():  # the target runs the script when the GIL comes: it removes itself
            assert time.monotonic() < deadline, "the pending script never ran"
            time.sleep(0.05)
        assert target.poll() is None
    assert errors[-1] == ""  # no "Can't open debugger script", no traceback


@pytest.mark.skipif(not NEW_ENOUGH, reason="sys.remote_exec is new in Python 3.14")
def test_a_script_left_pending_by_a_target_that_died_is_swept_by_the_next_attach() -> None:
    holding = 'import ctypes\nprint("ready", flush=True)\nctypes.PyDLL(None).poll(None, 0, 60000)\n'
    tmp = Path(os.environ.get("TMPDIR", "/tmp"))
    with started(holding) as dying:
        _waits(dying.pid, dying.pid, ("poll",))
        with pytest.raises(AttachError, match=r"did not answer"):
            attach(dying.pid, via="remote-exec", timeout=0.3)
        pending = list(tmp.glob(f"looseends-attach-{dying.pid}-*"))
        assert len(pending) == 1
    with started(SIGINT_IN_SLEEP, "threads") as other, contextlib.suppress(AttachError):
        attach(other.pid, via="remote-exec", timeout=0.3)  # the next attach, to another process
    assert not pending[0].exists()


PROBE = Path(__file__).resolve().parent.parent / "bench" / "attach_probe.py"


@NEEDS_BORROWING
@pytest.mark.parametrize(("kill", "shape"), [("KILL", "threads"), ("INT", "single")])
def test_attachers_killed_while_they_hold_a_thread_leave_the_target_as_it_was(kill: str, shape: str) -> None:
    """bench/attach_probe.py, short: black-box, the attach started as a user would and killed inside
    its window (figure 12 of BENCHMARKS.md runs 200 rounds of each kind)."""
    done = subprocess.run(
        [sys.executable, str(PROBE), "--rounds", "15", "--signal", kill, "--shape", shape],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    result = json.loads(done.stdout.splitlines()[-1])
    why = {key: value for key, value in result.items() if key not in ("rounds", "signal", "shape", "checks")}
    assert result["hurt"] is False, json.dumps(why)  # short enough for pytest to print whole: what hurt
    assert result["hit"] > 0  # some kills did land while a thread was held
    assert done.returncode == 0


def test_an_acknowledgement_made_before_the_report_is_written_is_not_lost(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The attacher acknowledges as soon as it finds the answer's memfd, which may be before the script
    has written anything to it: the script must not write over that byte, or it waits for an
    acknowledgement already given until the attach's deadline, holding the target's thread (seen in CI:
    a 3 s `lock.acquire` returned after 10 s). Here the attacher wins that race every time."""
    from looseends.attach import bootstrap

    create = os.memfd_create

    def created_and_found_at_once(name: str, flags: int = 0) -> int:
        fd = create(name, flags)
        os.pwrite(fd, b"\x01", bootstrap.ACK)  # the attacher, through its own reference
        return fd

    def no_wait(seconds: float) -> None:
        raise AssertionError("the script waited for an acknowledgement it had been given")

    answered: list[int] = []
    real_close = os.close

    def close(fd: int) -> None:
        length = int.from_bytes(os.pread(fd, 8, bootstrap.LENGTH), "little")
        answered.append(length)
        real_close(fd)

    monkeypatch.setattr(os, "memfd_create", created_and_found_at_once)
    monkeypatch.setattr(bootstrap, "report", lambda arguments: '{"units": []}')
    monkeypatch.setattr(time, "sleep", no_wait)
    monkeypatch.setattr(os, "close", close)
    bootstrap.run({"nonce": "test", "deadline": time.monotonic() + 60, "attacher": os.getpid()})
    assert answered == [len('{"units": []}')]


def test_a_script_whose_attacher_is_gone_takes_no_snapshot(monkeypatch: pytest.MonkeyPatch) -> None:
    """An attacher killed while it held a thread lets the thread run the script on: a snapshot nobody
    will read would only take the target's time (and its GIL)."""
    from looseends.attach import bootstrap

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(30)

    def snapshot(arguments: object) -> str:
        raise AssertionError("the script took a snapshot for an attacher that is gone")

    monkeypatch.setattr(bootstrap, "report", snapshot)
    bootstrap.run({"nonce": "test", "deadline": time.monotonic() + 60, "attacher": gone.pid})


def test_an_attach_returns_only_once_the_borrowed_thread_is_home(monkeypatch: pytest.MonkeyPatch) -> None:
    """The report comes before the script has tidied up and the thread has unmapped our pages: an
    attach that returned then would leave them in the target while the caller reads its report (seen in
    CI: the pages still mapped just after attach returned)."""
    import looseends.attach as attach_module

    looks: list[bool] = []

    def returned(borrowed: object, memory: object) -> bool:
        looks.append(len(looks) >= 5)  # home on the sixth look, well after the report
        return looks[-1]

    class Answered:
        def wait(self, deadline: float, done: object) -> dict[str, object]:
            return {"units": []}

    monkeypatch.setattr(attach_module, "returned", returned)
    borrowed = borrowed_thread.Borrowed(os.getpid(), os.getpid(), 0, 4096)
    deadline = time.monotonic() + 60
    answer = attach_module._wait(Answered(), borrowed, None, deadline)  # type: ignore[arg-type]
    assert answer == {"units": []}
    assert looks[-1] is True
