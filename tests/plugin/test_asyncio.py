"""Tasks still pending when a test's event loop shuts down are leaks: pytest-asyncio, asyncio.run, anyio."""

from __future__ import annotations

import pytest


def test_pending_tasks_at_pytest_asyncio_loop_teardown(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_async="""
import asyncio
import pytest

@pytest.mark.asyncio
async def test_forgets_heartbeat():
    async def heartbeat():
        while True:
            await asyncio.sleep(3600)
    asyncio.get_running_loop().create_task(heartbeat(), name="heartbeat")
    await asyncio.sleep(0)

@pytest.mark.asyncio
async def test_clean():
    await asyncio.gather(asyncio.sleep(0), asyncio.sleep(0))
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--looseends")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_forgets_heartbeat*",
            "*1 task blocked in asyncio.sleep (3600 s) for *: loop never stopped",
            "*then: cancelled by its runner when the event loop shut down",
            "*created by test_forgets_heartbeat at test_async.py:9*",
        ]
    )


def test_pending_tasks_at_the_end_of_asyncio_run_in_a_sync_test(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_sync="""
import asyncio

def test_runs_a_loop():
    async def main():
        queue = asyncio.Queue()
        for n in range(4):
            asyncio.get_running_loop().create_task(queue.get(), name=f"receiver-{n}")
        await asyncio.sleep(0)
    asyncio.run(main())
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--looseends")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*4 tasks blocked in asyncio.Queue.get (queue empty, maxsize=0, size=0)*: abandoned receiver",
            "*then: cancelled by its runner when the event loop shut down",
            "*units: receiver-0, receiver-1, receiver-2, receiver-3*",
        ]
    )


def test_anyio_tests_are_checked(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_anyio="""
import asyncio
import pytest

@pytest.fixture
def anyio_backend():
    return "asyncio"

@pytest.mark.anyio
async def test_leaks_a_task():
    asyncio.get_running_loop().create_task(asyncio.Event().wait(), name="anyio-orphan")
    await asyncio.sleep(0)

@pytest.mark.anyio
async def test_clean():
    await asyncio.sleep(0)
"""
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--looseends")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_leaks_a_task*", "*unit: anyio-orphan*"])
