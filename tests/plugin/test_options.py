"""Markers, ini settings, warn-only, the JSON report, session-end leaks, bad options, the no-hang exit."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HELPERS = """
import threading
import pytest

NEVER = threading.Event()

def start_waiter(name, daemon=True):
    thread = threading.Thread(target=NEVER.wait, name=name, daemon=daemon)
    thread.start()
    return thread
"""


def suite(pytester: pytest.Pytester, body: str) -> None:
    pytester.makepyfile(test_suite=HELPERS + body)


def test_markers_turn_the_check_on_per_test_and_class_and_off_again(pytester: pytest.Pytester) -> None:
    suite(
        pytester,
        """
@pytest.mark.looseends(timeout=0.05)
def test_marked_leaks():
    start_waiter("marked")

def test_unmarked_leaks():
    start_waiter("unmarked")

@pytest.mark.looseends
class TestMarkedClass:
    def test_in_class(self):
        start_waiter("in-class")

    @pytest.mark.looseends(enabled=False)
    def test_opted_out(self):
        start_waiter("opted-out")
""",
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")  # no --looseends
    result.assert_outcomes(passed=4, errors=2)
    out = result.stdout.str()
    assert "ERROR at teardown of test_marked_leaks" in out
    assert "ERROR at teardown of TestMarkedClass.test_in_class" in out
    assert "unit: unmarked" not in out
    assert "unit: opted-out" not in out


def test_a_marker_on_a_module_alone_turns_the_checks_on(pytester: pytest.Pytester) -> None:
    """No test carries the marker itself: the module's `pytestmark` is found above it."""
    pytester.makepyfile(test_other="def test_elsewhere():\n    pass\n")
    marked = "pytestmark = pytest.mark.looseends(timeout=0.05)\n\ndef test_leaks():\n    start_waiter('m')\n"
    suite(pytester, marked)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")  # no --looseends
    result.assert_outcomes(passed=2, errors=1)
    assert "ERROR at teardown of test_leaks" in result.stdout.str()


def test_allowed_leak_needs_a_reason_and_is_shown_with_it(pytester: pytest.Pytester) -> None:
    suite(
        pytester,
        """
@pytest.mark.looseends_allow(reason="upstream bug #42 keeps a watcher thread")
def test_known_leak():
    start_waiter("known")
""",
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--looseends")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(
        ["allowed in test_suite.py::test_known_leak (upstream bug #42 keeps a watcher thread): 1 leaked*"]
    )

    suite(pytester, "@pytest.mark.looseends_allow\ndef test_no_reason():\n    start_waiter('x')\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--looseends")
    result.assert_outcomes(passed=1, errors=1)  # found when it leaks: the test's teardown says why
    result.stdout.fnmatch_lines(  # the teardown's error in full; the short summary is trimmed to the width
        [
            "*UsageError: looseends: the looseends_allow marker on *::test_no_reason needs reason=*",
            "ERROR test_suite.py::test_no_reason - *",
        ]
    )


def test_warn_only_reports_without_failing(pytester: pytest.Pytester) -> None:
    suite(pytester, "def test_leaks():\n    start_waiter('warned')\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--looseends", "--looseends-warn-only")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["*looseends: what the tests left running*", "*unit: warned (daemon)"])


def test_ini_configuration(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
[pytest]
asyncio_default_fixture_loop_scope = function
looseends = true
looseends_timeout = 0.05
looseends_ignore_name =
    tolerated-*
looseends_ignore_command =
    sleep 7
"""
    )
    suite(
        pytester,
        """
def test_tolerated():
    start_waiter("tolerated-1")

def test_tolerated_child():
    import subprocess
    child = subprocess.Popen(["sleep", "7"])
    import atexit
    atexit.register(child.kill)

def test_leaks():
    start_waiter("caught")
""",
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaks*"])
    assert "tolerated-1" not in result.stdout.str()
    assert "sleep 7" not in result.stdout.str()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--looseends-timeout=soon"], "*invalid looseends_timeout='soon': expected a number of seconds*"),
        (
            ["--looseends-timeout=-1"],
            "*invalid timeout=-1.0 from --looseends-timeout*expected a number of seconds >= 0*",
        ),
    ],
)
def test_bad_options_are_usage_errors(pytester: pytest.Pytester, args: list[str], message: str) -> None:
    suite(pytester, "def test_ok():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--looseends", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


@pytest.mark.parametrize(
    ("marker", "message"),
    [
        ("timeout='x'", "*invalid timeout='x' from the looseends marker on test_suite.py::test_bad*"),
        (
            "timout=1",
            "*unknown option 'timout' from the looseends marker on test_suite.py::test_bad: "
            "did you mean timeout?*",
        ),
    ],
)
def test_bad_marker_arguments_name_the_test(pytester: pytest.Pytester, marker: str, message: str) -> None:
    suite(pytester, f"@pytest.mark.looseends({marker})\ndef test_bad():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.stdout.fnmatch_lines([message])
    assert result.ret != pytest.ExitCode.OK


def test_json_report_and_session_end_leaks(pytester: pytest.Pytester) -> None:
    suite(
        pytester,
        """
import atexit

def test_leaks():
    start_waiter("per-test")

@pytest.mark.looseends(enabled=False)
def test_unchecked_but_still_running_at_the_end():
    start_waiter("at-the-end")
""",
    )
    report_path = pytester.path / "leaks.json"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--looseends", f"--looseends-report={report_path}"
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "failed by leaks (full reports above): test_suite.py::test_leaks",
            "leaks found in: session end",  # not shown before: in full
            "*unit: at-the-end (daemon)",
        ]
    )
    data = json.loads(report_path.read_text())
    assert data["schema"] == "looseends.report"
    assert data["version"] == 1
    assert data["summary"]["units"] == 2
    owners = {f["owner"]: f for f in data["findings"]}
    assert set(owners) == {"test_suite.py::test_leaks", "session end"}
    assert owners["session end"]["report"]["groups"][0]["units"][0]["name"] == "at-the-end"
    assert owners["session end"]["report"]["groups"][0]["units"][0]["during"] == (
        "test_suite.py::test_unchecked_but_still_running_at_the_end"
    )
    group = owners["test_suite.py::test_leaks"]["report"]["groups"][0]
    assert group["blocked_on"]["code"] == "event.wait"
    assert group["pattern"]["code"] == "event-never-set"
    assert group["created_by"]["site"]["function"] == "start_waiter"


def test_non_daemon_threads_are_named_once_before_the_hang_and_force_exit_exits(
    pytester: pytest.Pytester,
) -> None:
    suite(pytester, "def test_leaks():\n    start_waiter('keeps-pytest-alive', daemon=False)\n")
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        "--looseends",
        "--looseends-force-exit",
    ]
    done = subprocess.run(command, cwd=pytester.path, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == pytest.ExitCode.TESTS_FAILED
    assert (
        "looseends: pytest cannot exit: 1 non-daemon thread will not stop (keeps-pytest-alive); "
        "reported above for test_suite.py::test_leaks\n--looseends-force-exit: exiting anyway"
    ) in done.stderr
    # The full report once, in the test's error; the hang message only names it.
    assert (done.stdout + done.stderr).count("unit: keeps-pytest-alive") == 1


def test_the_hang_message_says_the_way_out(pytester: pytest.Pytester) -> None:
    """Without --looseends-force-exit the run would hang; here the thread leaves once told to, by a
    file the test creates after reading the message, so pytest ends."""
    suite(
        pytester,
        """
import os, time

def linger():
    while not os.path.exists("release"):
        time.sleep(0.02)

def test_leaks():
    threading.Thread(target=linger, name="lingers").start()
""",
    )
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--looseends"]
    with subprocess.Popen(
        command, cwd=pytester.path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as run:
        assert run.stderr is not None
        said = []
        for line in run.stderr:
            said.append(line)
            if "--looseends-force-exit" in line:
                (pytester.path / "release").touch()
        assert run.wait(timeout=60) == pytest.ExitCode.TESTS_FAILED
    message = "".join(said)
    assert "pytest cannot exit: 1 non-daemon thread will not stop (lingers)" in message
    assert "--looseends-force-exit ends the run anyway" in message


@pytest.mark.parametrize(
    ("path", "complaint"),
    [
        ("missing/dir/out.json", "no such directory 'missing/dir'"),
        (".", "is a directory, expected a file"),
    ],
)
def test_a_bad_report_path_is_a_usage_error_before_any_test(
    pytester: pytest.Pytester, path: str, complaint: str
) -> None:
    suite(pytester, "def test_never_runs():\n    raise AssertionError('ran')\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--looseends", f"--looseends-report={path}"
    )
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*looseends: --looseends-report={path}: {complaint}*"])
    assert "Traceback" not in result.stderr.str() + result.stdout.str()
    assert "ran" not in result.stdout.str()
