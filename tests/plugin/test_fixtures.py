"""Units started while a wider-scoped fixture is set up belong to that fixture, not to the first test."""

from __future__ import annotations

import pytest

FIXTURES = """
import threading
import pytest

NEVER = threading.Event()

def start(name, target):
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    return thread

@pytest.fixture(scope="module")
def tidy_service():
    stop = threading.Event()
    thread = start("module-service", stop.wait)
    yield thread
    stop.set()
    thread.join()

@pytest.fixture(scope="session")
def leaky_service():
    yield start("session-service", NEVER.wait)  # never stopped at teardown

def test_first(tidy_service, leaky_service):
    assert tidy_service.is_alive()

def test_second(tidy_service, leaky_service):
    assert leaky_service.is_alive()
"""


def test_wider_fixture_units_are_not_blamed_on_tests_and_unstopped_ones_are_the_fixtures(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_fixtures=FIXTURES)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--looseends")
    result.assert_outcomes(passed=2)  # neither test is blamed
    out = result.stdout.str()
    assert "module-service" not in out  # stopped at its teardown: fine
    result.stdout.fnmatch_lines(
        [
            "*looseends: leaked threads and tasks*",
            "leaks found in: fixture 'leaky_service' (session scope)",
            "*1 thread blocked in threading.Event.wait*",
            "*created by start at test_fixtures.py:8 in thread MainThread, "
            "during fixture 'leaky_service' (session scope)",
            "*called from leaky_service at test_fixtures.py:*",
        ]
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the run fails, though every test passed
