"""Every supported Python sees threads and tasks; an interpreter where looseends sees less says so.

3.14 moved native asyncio tasks out of asyncio's Python-level registries (per-thread lists reached only by
`asyncio.all_tasks(loop)`); a future version may move more. The canary proves the sources see a thread
and a task before a process's first check, and says loudly when they do not.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading

import looseends
from looseends.core import canary
from looseends.sources import ThreadSource
from looseends.sources.tasks import TaskSource

from leakfixtures import LoopThread, wait_until


def test_the_canary_sees_a_thread_and_a_task_here() -> None:
    assert canary.canary() == []


def test_the_canary_fires_when_the_task_registry_is_hidden() -> None:
    hidden = TaskSource(_tasks=lambda: iter(()))
    assert canary.canary([ThreadSource(), hidden]) == [
        "asyncio tasks are not seen (or not what they wait on)"
    ]


def test_an_interpreter_that_hides_its_tasks_is_announced_not_reported_clean() -> None:
    program = textwrap.dedent(
        """
        import asyncio, warnings
        import looseends, looseends._cpython as internals

        internals.all_tasks = lambda: iter(())  # as if a new Python had moved tasks out of our sight
        warnings.simplefilter("always")

        async def main():
            with warnings.catch_warnings(record=True) as caught:
                async with looseends.check(timeout=0.05):
                    unseen = asyncio.create_task(asyncio.Event().wait(), name="unseen")  # alive: hidden only
                    await asyncio.sleep(0)
            print("warned:", [str(w.category.__name__) for w in caught])
            print(looseends.snapshot().render())

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "is not fully supported: asyncio tasks are not seen" in done.stderr
    assert "warned: ['LooseEndsWarning']" in done.stdout
    assert "warning: this interpreter is not fully supported: asyncio tasks are not seen" in done.stdout


def test_tasks_on_a_loop_in_another_thread_are_seen_on_every_version(loop_thread: LoopThread) -> None:
    release = threading.Event()

    async def start() -> None:
        async def wait() -> None:
            while not release.is_set():
                await asyncio_sleep()

        loop_thread.loop.create_task(wait(), name="other-thread-task")

    async def asyncio_sleep() -> None:
        import asyncio

        await asyncio.sleep(0.01)

    loop_thread.run(start())
    try:
        wait_until(lambda: any(u.name == "other-thread-task" for u in looseends.snapshot().units))
    finally:
        release.set()
