"""The per-test check: body, function-scoped fixtures, stragglers, and blame that stays with one test."""

from __future__ import annotations

import pytest

HELPERS = """
import threading
import pytest

NEVER = threading.Event()  # never set: whatever waits on it is stuck for the rest of the run

def start_waiter(name, target=NEVER.wait):
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread
"""


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_suite=HELPERS + source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args)


def test_leak_in_the_test_body_fails_that_test_with_the_grouped_report(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_leaks():
    for n in range(3):
        start_waiter(f"waiter-{n}")

def test_clean():
    start_waiter("quick", target=sum).join()
""",
        "--looseends",
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_leaks*",
            "looseends: 3 leaked units in 1 group: 3 threads",
            "*3 threads blocked in threading.Event.wait for * event never set",
            "*created by start_waiter at test_suite.py:8 in thread MainThread, during test_suite.py::test_leaks",  # noqa: E501
            "*called from test_leaks at test_suite.py:*",
            "*units: waiter-0, waiter-1, waiter-2 (daemon)",
        ]
    )
    assert "frontends/pytest/" not in result.stdout.str()  # no plugin traceback noise
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_function_fixture_leak_is_the_tests_and_clean_teardown_is_fine(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
@pytest.fixture
def leaky_worker():
    yield start_waiter("fixture-leak")

@pytest.fixture
def tidy_worker():
    stop = threading.Event()
    thread = start_waiter("fixture-tidy", target=stop.wait)
    yield thread
    stop.set()
    thread.join()

def test_uses_leaky(leaky_worker):
    pass

def test_uses_tidy(tidy_worker):
    assert tidy_worker.is_alive()
""",
        "--looseends",
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_uses_leaky*", "*unit: fixture-leak (daemon)"])
    assert "fixture-tidy" not in result.stdout.str()


def test_a_leak_is_blamed_on_its_test_only_and_later_tests_pass(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_first_leaks():
    start_waiter("outlives-its-test")

def test_second():
    pass

def test_third():
    pass
""",
        "--looseends",
    )
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_first_leaks*"])
    summary = result.stdout.str().split("looseends: what the tests left running")[-1]
    assert "failed by leaks (full reports above): test_suite.py::test_first_leaks\n" in summary
    assert "session end" not in summary  # already reported: not reported again at the end


def test_a_straggler_that_finishes_after_the_test_is_not_a_leak(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
def test_straggler():
    done = threading.Event()
    start_waiter("straggler", target=lambda: done.wait(0.2))
""",
        "--looseends",
    )
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.OK


def test_off_until_asked(pytester: pytest.Pytester) -> None:
    result = run(pytester, "def test_leaks():\n    start_waiter('unchecked')\n")
    result.assert_outcomes(passed=1)
    assert " running" not in result.stdout.str()
    assert "looseends:" not in result.stdout.str()


def test_a_child_process_left_running_fails_its_test(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
import subprocess

CHILDREN = []

def test_starts_server():
    CHILDREN.append(subprocess.Popen(["sleep", "30"]))

def test_later():
    for child in CHILDREN:
        child.kill()
        child.wait()
""",
        "--looseends",
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_starts_server*",
            "*1 process `sleep 30` (sleeping), started * ago: child process never stopped",
            "*created by test_starts_server at test_suite.py:16 in thread MainThread, during *::test_starts_server",  # noqa: E501
        ]
    )


def test_a_failing_teardown_keeps_its_own_error_and_the_leak_is_shown_beside_it(
    pytester: pytest.Pytester,
) -> None:
    result = run(
        pytester,
        """
@pytest.fixture
def broken():
    yield
    raise RuntimeError("the fixture's own teardown error")

def test_leaks_and_breaks(broken):
    start_waiter("beside-the-error")
""",
        "--looseends",
    )
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*RuntimeError: the fixture's own teardown error",
            "*looseends*",
            "*unit: beside-the-error (daemon)",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED


def test_the_short_summary_line_says_what_leaked_and_where(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
@pytest.mark.parametrize("n", range(3))
def test_leaks(n):
    start_waiter("worker-2")
""",
        "--looseends",
        "-rE",
        "-vv",  # pytest trims short-summary lines to the terminal's width unless verbose
    )
    result.assert_outcomes(passed=3, errors=3)
    result.stdout.fnmatch_lines(
        [
            "ERROR test_suite.py::test_leaks[[]0] - leaked 1 thread blocked in threading.Event.wait for * s: "
            "event never set, created at test_suite.py:8",
        ]
    )
    assert "ERROR test_suite.py::test_leaks[0] - test_suite.py::test_leaks[0]" not in result.stdout.str()


def test_a_name_leaked_by_many_tests_is_shown_once_with_its_count(pytester: pytest.Pytester) -> None:
    result = run(
        pytester,
        """
@pytest.mark.parametrize("n", range(3))
def test_leaks(n):
    start_waiter("worker-2")
""",
        "--looseends",
        "--looseends-warn-only",  # the summary then has the whole report: no test showed it
    )
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(["*units: worker-2 (x3) (daemon)"])


def test_only_a_leaking_test_gets_a_report_hook_and_it_goes_away(pytester: pytest.Pytester) -> None:
    """The per-test cost: a clean test meets no makereport hook of ours; a leaking one meets one, for its
    teardown report only, and it is gone once that report is made (names are looked at from a conftest)."""
    pytester.makeconftest(
        """
import pytest

SEEN = []

def ours(config):
    impls = config.pluginmanager.hook.pytest_runtest_makereport.get_hookimpls()
    return sorted(impl.plugin_name for impl in impls if impl.plugin_name.startswith("looseends"))

@pytest.hookimpl(tryfirst=True)
def pytest_runtest_makereport(item, call):
    SEEN.append(f"{item.name} {call.when}: {ours(item.config)}")

def pytest_sessionfinish(session):
    SEEN.append(f"at the end: {ours(session.config)}")
    print("\\n" + "\\n".join(SEEN))
"""
    )
    result = run(
        pytester,
        "def test_clean():\n    pass\n\ndef test_leaks():\n    start_waiter('w')\n",
        "--looseends",
        "-s",
    )
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "test_clean setup: []",
            "test_clean call: []",
            "test_clean teardown: []",
            "test_leaks setup: []",
            "test_leaks call: []",
            "test_leaks teardown: ['looseends-verdict-test_suite.py::test_leaks']",
            "at the end: []",
        ]
    )
