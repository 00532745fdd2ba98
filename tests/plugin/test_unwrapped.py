"""A unit made by a call looseends does not wrap is still looked at: the per-test glance reads the live
threads, tasks and children themselves (and greenlets' first switch), never only the creation marks
that tracking's wrappers move. Each shape here passed silently when the glance trusted those marks."""

from __future__ import annotations

import sys

import pytest

TASK_MADE_DIRECTLY = """
import asyncio

loop = asyncio.new_event_loop()

async def finishing():
    return 1

ENDING = [loop.create_task(finishing())]  # alive when the test starts, gone when it ends: the count stands

def test_task_made_by_its_constructor_while_another_ends():
    asyncio.Task(asyncio.Event().wait(), loop=loop, name="made-directly")  # not create_task: not wrapped
    loop.run_until_complete(ENDING.pop())  # a task already: no new one is made to run it

def test_after():  # the loop closes in this test
    loop.close()
"""


def test_a_task_made_by_its_constructor_is_caught_even_when_the_count_stands(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(test_direct=TASK_MADE_DIRECTLY)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio", "--looseends")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_task_made_by_its_constructor*", "*made-directly*"]
    )


TASK_MADE_DIRECTLY_AND_COLLECTED = """
import asyncio, gc

loop = asyncio.new_event_loop()

def test_task_made_by_its_constructor_and_collected():
    asyncio.Task(asyncio.Event().wait(), loop=loop, name="made-and-collected")  # no wrapper saw it made
    loop.run_until_complete(asyncio.sleep(0))
    gc.collect()  # destroyed while pending: no later look can see it

def test_after():
    loop.close()
"""


def test_a_task_made_by_its_constructor_and_collected_during_the_test_is_that_test_s_leak(
    pytester: pytest.Pytester,
) -> None:
    """No creation time was recorded for it; it was not alive when the test began, and vanished
    after: the test's. (A task alive at the start that vanishes is not, whatever its id.)"""
    pytester.makepyfile(test_collected=TASK_MADE_DIRECTLY_AND_COLLECTED)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio", "--looseends")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(
        ["*ERROR at teardown of test_task_made_by_its_constructor_and_collected*", "*made-and-collected*"]
    )


CHILD_FROM_A_PTY = """
import os
import pty
import signal

children = []

def test_child_forked_by_pty():
    pid, fd = pty.fork()  # os.forkpty: no wrapper of looseends' sees it
    if pid == 0:
        signal.pause()
        os._exit(0)
    children.append((pid, fd))

def test_after():  # the module's teardown runs in this test's: after the first test's check
    pass

def teardown_module():
    for pid, fd in children:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(fd)
"""


@pytest.mark.skipif(
    sys.platform != "linux", reason="the kernel's list of children is read from /proc (Linux)"
)
def test_a_child_forked_by_a_standard_library_helper_is_caught(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_pty=CHILD_FROM_A_PTY)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--looseends")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_child_forked_by_pty*", "*1 process*"])


RAW_GREENLET = """
import gevent
import gevent.event

never = gevent.event.Event()

def test_raw_greenlet():
    gevent.spawn_raw(never.wait)  # spawn_raw: gevent's spawn callbacks do not see it
    gevent.sleep(0)  # it runs, and waits
"""


def test_a_greenlet_spawned_raw_is_caught(pytester: pytest.Pytester) -> None:
    pytest.importorskip("gevent", reason="gevent is not installed")
    pytester.makepyfile(test_raw=RAW_GREENLET)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--looseends")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*ERROR at teardown of test_raw_greenlet*", "*greenlet*"])
