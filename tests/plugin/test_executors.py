"""Executors: an idle default-executor worker is the loop's, a worker stuck in a job is a leak that would
hang the run, and the run says so instead of hanging silently."""

from __future__ import annotations

import pytest

STUCK_JOB = """
import asyncio
import threading

import pytest

NEVER = threading.Event()


def blocking_forever():
    NEVER.wait()


@pytest.mark.asyncio
async def test_job_that_never_returns():
    loop = asyncio.get_running_loop()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(loop.run_in_executor(None, blocking_forever), 0.05)


@pytest.mark.asyncio
async def test_idle_default_executor():
    await asyncio.get_running_loop().run_in_executor(None, sum, [1, 2])
"""


def test_a_default_executor_job_that_never_returns_is_reported_and_the_run_ends(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_jobs=STUCK_JOB)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--looseends", "--looseends-force-exit", timeout=120
    )
    result.assert_outcomes(passed=2, errors=1)
    out = result.stdout.str() + result.stderr.str()
    # Announced when it happens, on the terminal: not in a captured section shown after the fact.
    announced = result.stderr.str()
    assert (
        "closing this event loop waits for its default executor, and a job there has not returned in 3.5 s"
        in announced
    )
    assert "not waiting (left by test_jobs.py::test_job_that_never_returns)" in announced
    assert "threading.Event.wait at" in announced
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_job_that_never_returns*",
            "looseends: 1 leaked unit in 1 group: 1 thread",
            "*threading.Event.wait*",
            "*created by test_job_that_never_returns at test_jobs.py:*",  # the submitter
        ]
    )
    assert "test_idle_default_executor left" not in out
    assert result.ret == pytest.ExitCode.TESTS_FAILED


SLOW_JOB = """
import asyncio
import time

import pytest

DONE = []


def slow():
    time.sleep(0.3)
    DONE.append(True)


@pytest.mark.asyncio
async def test_job_still_running_when_the_loop_closes():
    asyncio.get_running_loop().run_in_executor(None, slow)


def test_the_close_waited_for_it():
    assert DONE == [True]
"""


def test_a_job_that_ends_a_moment_into_the_close_is_waited_for_and_not_announced(
    pytester: pytest.Pytester,
) -> None:
    """A job still running when the loop closes is usually about to end: the close waits for it as asyncio
    does, and nothing is said (the old rule announced it as stuck and closed without waiting)."""
    pytester.makepyfile(test_slow=SLOW_JOB)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--looseends", timeout=120)
    result.assert_outcomes(passed=2)
    assert "closing this event loop" not in result.stdout.str() + result.stderr.str()
