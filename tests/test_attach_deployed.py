"""`looseends attach` on services started the way services are started: a framework's console script, a
`#!` script under its own name, `python -m`, the system's Python, an interpreter deleted since it
started, a pre-fork server's workers (`--children`), a process in its own mount and pid namespaces.
Each leaks threads and tasks; each report must group them, and each target must be left as it was:
the same threads, files mapped, `sys.path`, no module or import cache of ours, and no new module but
the standard library's pure-Python ones the snapshot needed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import looseends
from looseends.attach import ptrace

BORROWING = ptrace.supported()
pytestmark = pytest.mark.skipif(BORROWING is not None, reason=str(BORROWING))
BIN = Path(sys.executable).parent  # the venv's scripts: uvicorn, gunicorn
INTERPRETER = os.path.realpath(sys.executable)  # the Python itself, not the venv's link to it

STATE = """
import gc, sys, sysconfig, threading

def state():
    gc.collect()  # our modules' cycles: garbage the program's collector frees, unless something holds them
    ours = sum(
        1 for o in gc.get_objects()
        if isinstance(o, type(state)) and str(o.__module__).startswith("looseends")
    )
    return {
        "modules": {name: getattr(module, "__file__", None) for name, module in list(sys.modules.items())},
        "path": list(sys.path),
        "threads": sorted(thread.name for thread in threading.enumerate()),
        "importers": sorted(map(str, sys.path_importer_cache)),
        "ours": ours,
        "stdlib": sysconfig.get_paths()["stdlib"],
    }
"""

SERVICE = (
    STATE
    + """
import asyncio, json, signal

def leaked():
    threading.Event().wait()

for n in range(2):
    threading.Thread(target=leaked, name=f"leaky-{n}", daemon=True).start()

async def forever():
    await asyncio.Event().wait()

async def main():
    tasks = [asyncio.create_task(forever(), name=f"forgotten-{n}") for n in range(3)]
    asyncio.get_running_loop().add_signal_handler(
        signal.SIGUSR1, lambda: print(json.dumps(state()), flush=True)
    )
    print("ready", flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""
)

APP = (
    STATE
    + """
import asyncio, json

threading.Thread(target=threading.Event().wait, name="leaky", daemon=True).start()
forgotten = []

async def forever():
    await asyncio.Event().wait()

async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            forgotten.append(asyncio.create_task(forever(), name="forgotten"))
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = json.dumps(state()).encode()
    headers = [(b"content-type", b"application/json")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
"""
)


def _looseends(*args: str) -> subprocess.CompletedProcess[str]:
    """The command line, as a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "looseends", "attach", *args], capture_output=True, text=True, timeout=120
    )


def _outside(pid: int) -> tuple[list[str], int]:
    """What anyone can see of a process from outside: the files it maps, and how many threads it has."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    files = sorted({line.split(maxsplit=5)[5] for line in maps if len(line.split(maxsplit=5)) == 6})
    return files, len(os.listdir(f"/proc/{pid}/task"))


def _left_as_it_was(before: dict[str, object], after: dict[str, object]) -> None:
    assert after["threads"] == before["threads"]
    assert after["path"] == before["path"]
    assert after["ours"] == 0
    importers = set(after["importers"]) - set(before["importers"])  # type: ignore[call-overload]
    assert not [path for path in importers if "/proc/self/fd/" in path or "looseends" in path]
    modules: dict[str, str | None] = after["modules"]  # type: ignore[assignment]
    added = {name: modules[name] for name in set(modules) - set(before["modules"])}  # type: ignore[call-overload]
    stdlib = str(after["stdlib"])
    assert not [name for name in added if name.partition(".")[0] == "looseends"]
    compiled_or_foreign = {
        name: file
        for name, file in added.items()
        if file is not None and not (file.startswith(stdlib) and file.endswith(".py"))
    }
    assert not compiled_or_foreign  # builtins (no file) and the standard library's own sources only


@contextlib.contextmanager
def _service(command: list[str], **options: object) -> Iterator[subprocess.Popen[str]]:
    """A SERVICE-shaped target, once it said "ready"; killed at the end whatever happened."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **options)  # type: ignore[call-overload]
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line == "ready\n", (line, process.stderr.read() if process.stderr else "")
        yield process
    finally:
        process.kill()
        process.communicate(timeout=30)


def _state(process: subprocess.Popen[str]) -> dict[str, object]:
    os.kill(process.pid, signal.SIGUSR1)
    assert process.stdout is not None
    return json.loads(process.stdout.readline())  # type: ignore[no-any-return]


def _attached_and_unharmed(process: subprocess.Popen[str]) -> str:
    """The text report of an attach to a SERVICE-shaped target, checked to have left it as it was."""
    before, outside = _state(process), _outside(process.pid)
    result = _looseends(str(process.pid))
    assert result.returncode == 0, result.stderr
    assert _outside(process.pid) == outside
    _left_as_it_was(before, _state(process))
    text = result.stdout
    assert "2 threads blocked in threading.Event.wait" in text
    assert "units: leaky-0, leaky-1 (daemon)" in text
    assert "3 tasks blocked in asyncio.Event.wait" in text
    assert "units: forgotten-0, forgotten-1, forgotten-2" in text
    return text


def test_a_hash_bang_script_under_its_own_name(tmp_path: Path) -> None:
    script = tmp_path / "leaky-service"
    script.write_text(f"#!{INTERPRETER}\n{SERVICE}")
    script.chmod(0o755)
    with _service([str(script)]) as process:
        assert Path(f"/proc/{process.pid}/comm").read_text().strip() == "leaky-service"
        text = _attached_and_unharmed(process)
    assert "through a borrowed thread" in text


def test_python_dash_m(tmp_path: Path) -> None:
    (tmp_path / "leakysvc.py").write_text(SERVICE)
    with _service([sys.executable, "-m", "leakysvc"], cwd=tmp_path) as process:
        _attached_and_unharmed(process)


def test_the_system_python(tmp_path: Path) -> None:
    """Debian's and Ubuntu's /usr/bin/python3: no libpython, the runtime in the executable itself."""
    system = "/usr/bin/python3"
    if not os.path.exists(system):
        pytest.skip(f"{system} is not installed")
    found = subprocess.run(
        [system, "-c", "import sys; print(sys.version_info >= (3, 11))"], capture_output=True, text=True
    )
    if found.stdout.strip() != "True":
        pytest.skip(f"{system} is older than Python 3.11")
    (tmp_path / "svc.py").write_text(SERVICE)
    with _service([system, "-I", str(tmp_path / "svc.py")]) as process:
        _attached_and_unharmed(process)


def test_an_interpreter_deleted_since_it_started(tmp_path: Path) -> None:
    """Upgraded under a running service: /proc/PID/exe names a file that is gone; its mapping stays."""
    copy = tmp_path / "python-old"
    shutil.copy2(INTERPRETER, copy)
    (tmp_path / "svc.py").write_text(SERVICE)
    home = {**os.environ, "PYTHONHOME": sys.base_prefix}  # a relocated build finds its library by its path
    with _service([str(copy), str(tmp_path / "svc.py")], env=home) as process:
        copy.unlink()
        assert os.readlink(f"/proc/{process.pid}/exe").endswith("(deleted)")
        _attached_and_unharmed(process)


def _wait_for(condition: object, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.05)  # another process's progress: nothing here to wait on


def _answers(socket_path: Path) -> bool:
    try:
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path))) as client:
            return client.get("http://service/").status_code == 200
    except httpx.HTTPError:
        return False


def test_uvicorn_s_console_script(tmp_path: Path) -> None:
    (tmp_path / "leakyapp.py").write_text(APP)
    socket_path = tmp_path / "app.sock"
    process = subprocess.Popen(
        [str(BIN / "uvicorn"), "leakyapp:app", "--uds", str(socket_path), "--log-level", "warning"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(lambda: _answers(socket_path), "uvicorn answered")
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(socket_path))) as client:
            before, outside = client.get("http://service/").json(), _outside(process.pid)
            result = _looseends(str(process.pid))
            after = client.get("http://service/").json()
        assert result.returncode == 0, result.stderr
        assert _outside(process.pid) == outside
        _left_as_it_was(before, after)
    finally:
        process.kill()
        process.communicate(timeout=30)
    assert f"looseends dump of process {process.pid} (Python" in result.stdout
    assert "1 thread blocked in threading.Event.wait" in result.stdout
    assert "unit: leaky (daemon)" in result.stdout
    assert "1 task blocked in asyncio.Event.wait" in result.stdout


def test_gunicorn_with_two_uvicorn_workers_is_one_report(tmp_path: Path) -> None:
    if not (BIN / "gunicorn").exists():
        pytest.skip("gunicorn is not installed (pip install gunicorn)")
    (tmp_path / "leakyapp.py").write_text(APP)
    log = tmp_path / "gunicorn.log"
    command = [
        str(BIN / "gunicorn"), "-w", "2", "-k", "uvicorn.workers.UvicornWorker",
        "-b", f"unix:{tmp_path / 'app.sock'}", "--error-logfile", str(log), "leakyapp:app",
    ]  # fmt: skip
    if (
        "--no-control-socket"
        in subprocess.run([*command[:1], "--help"], capture_output=True, text=True).stdout
    ):
        command.insert(1, "--no-control-socket")  # its thread starts at some point after the workers
    master = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for(
            lambda: log.exists() and log.read_text().count("Application startup complete") == 2,
            "both workers started",
        )
        workers = sorted(
            int(pid) for pid in Path(f"/proc/{master.pid}/task/{master.pid}/children").read_text().split()
        )
        outside = {pid: _outside(pid) for pid in [master.pid, *workers]}
        result = _looseends(str(master.pid), "--children")
        data = json.loads(_looseends(str(master.pid), "--children", "--json").stdout)
        assert {pid: _outside(pid) for pid in outside} == outside
    finally:
        master.kill()
        master.communicate(timeout=30)
        for pid in workers if "workers" in locals() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert f"looseends dump of process {master.pid} and its Python children (3 of 3 answered" in text
    for pid in workers:
        assert f"  pid {pid} (gunicorn): " in text
    leaky = ", ".join(f"leaky [pid {pid}]" for pid in workers)
    assert "2 threads blocked in threading.Event.wait" in text
    assert f"units: {leaky} (daemon)" in text
    assert "2 tasks blocked in asyncio.Event.wait" in text
    assert [member["pid"] for member in data["attached"]["processes"]] == [master.pid, *workers]
    assert all(member["error"] is None for member in data["attached"]["processes"])


def test_a_target_in_its_own_mount_and_pid_namespaces(tmp_path: Path) -> None:
    """A container's process: it cannot see our files (a tmpfs hides our package from it) and knows
    the attacher by no pid; the code it runs comes in the script, the answer through a memfd."""
    unshare = shutil.which("unshare")
    if unshare is None or os.geteuid() != 0:
        pytest.skip("making namespaces needs root and unshare (util-linux)")
    package = Path(looseends.__file__).parent
    (tmp_path / "svc.py").write_text(SERVICE)
    inside = f"mount -t tmpfs none {package} && exec {INTERPRETER} -I {tmp_path / 'svc.py'}"
    command = [
        unshare,
        "--mount",
        "--pid",
        "--fork",
        "--kill-child",
        "--mount-proc",
        "--propagation",
        "private",
        "sh",
        "-c",
        inside,
    ]
    with _service(command) as shell:
        target = int(Path(f"/proc/{shell.pid}/task/{shell.pid}/children").read_text().split()[0])
        nspid = next(
            line
            for line in Path(f"/proc/{target}/status").read_text().splitlines()
            if line.startswith("NSpid:")
        )
        assert nspid.split()[1:] == [str(target), "1"]  # pid 1 in a pid namespace of its own
        assert os.readlink(f"/proc/{target}/ns/mnt") != os.readlink("/proc/self/ns/mnt")
        result = _looseends(str(target))
    assert result.returncode == 0, result.stderr
    assert "units: leaky-0, leaky-1 (daemon)" in result.stdout
    assert "units: forgotten-0, forgotten-1, forgotten-2" in result.stdout
