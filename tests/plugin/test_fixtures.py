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
    # Both tests pass; the fixture's leak is one error, on the teardown that tore the fixture down, so
    # the counts and the exit status agree.
    result.assert_outcomes(passed=2, errors=1)
    out = result.stdout.str()
    assert "module-service" not in out  # stopped at its teardown: fine
    assert "test_second left" not in out  # never the tests' leak
    assert "test_first left" not in out
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_second*",
            "fixture 'leaky_service' (session scope) left 1 thread running (torn down after this test)",
            "*1 thread blocked in threading.Event.wait*",
            "*created by start at test_fixtures.py:8 in thread MainThread, "
            "during fixture 'leaky_service' (session scope)",
            "*called from leaky_service at test_fixtures.py:*",
            "*looseends: what the tests left running*",
            "failed by leaks (full reports above): fixture 'leaky_service' (session scope)",
        ]
    )
    # The error, and our summary; pytest's own short summary (which repeats messages whole under CI=1)
    # is pytest's business.
    ours = out.split("short test summary info")[0]
    assert ours.count("1 thread blocked in threading.Event.wait") == 2
    assert result.ret == pytest.ExitCode.TESTS_FAILED


MODULE_FIXTURE_ONE_USER = """
import threading
import pytest

NEVER = threading.Event()

@pytest.fixture(scope="module")
def pool():
    thread = threading.Thread(target=NEVER.wait, name="module-pool", daemon=True)
    thread.start()
    yield thread  # never stopped

def test_only_user(pool):
    assert pool.is_alive()
"""


def test_a_module_fixture_with_one_user_is_blamed_once_on_the_fixture(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_one=MODULE_FIXTURE_ONE_USER)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--looseends")
    result.assert_outcomes(passed=1, errors=1)
    out = result.stdout.str()
    assert "test_one.py::test_only_user left" not in out
    assert "fixture 'pool' (module scope) left 1 thread running" in out


LOOP_FIXTURES = """
import asyncio
import contextlib
import pytest

async def forgotten():
    await asyncio.Event().wait()

async def tidy():
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        pass  # its own code handles the cancellation: stopped by design

KEEP = []

async def start(background):
    KEEP.append(asyncio.get_running_loop().create_task(background(), name=background.__name__))

@contextlib.contextmanager
def running(background):
    runner = asyncio.Runner()
    runner.run(start(background))
    yield
    runner.close()  # cancels what is still pending, silently, before the fixture's check can look

@pytest.fixture(scope="module")
def forgetful_service():
    with running(forgotten):
        yield

@pytest.fixture(scope="module")
def tidy_service():
    with running(tidy):
        yield

def test_uses(forgetful_service, tidy_service):
    pass

def test_after():
    pass
"""


def test_a_fixtures_task_cancelled_when_its_loop_shuts_down_is_the_fixtures_leak(
    pytester: pytest.Pytester,
) -> None:
    """The fixture's teardown closes its loop before the fixture's check can look: the cancelled task is
    still its leak (not the session's), and one that handles its own cancellation is none."""
    pytester.makepyfile(test_loop=LOOP_FIXTURES)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--looseends", "-p", "no:asyncio")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_after*",
            "fixture 'forgetful_service' (module scope) left 1 task running (torn down after this test)",
            "*1 task blocked in asyncio.Event.wait*",
            "*then: cancelled by its runner when the event loop shut down",
            "*created by start at test_loop.py:*during fixture 'forgetful_service' (module scope)",
        ]
    )
    out = result.stdout.str()
    assert "fixture 'tidy_service'" not in out
    assert "session end" not in out
