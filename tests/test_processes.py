"""Child-process leaks: running children, zombies, multiprocessing, asyncio children, grandchildren."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

import looseends
from looseends.model import Kind

from leakfixtures import Cleanup, LoopThread, wait_until

QUICK = 0.05
SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def process_groups(body: Callable[[], object]) -> list[looseends.Group]:
    with pytest.raises(looseends.LeakError) as info, looseends.check(timeout=QUICK):
        body()
    return [g for g in info.value.report.groups if g.kind is Kind.PROCESS]


def kill_later(cleanup: Cleanup, child: subprocess.Popen[bytes]) -> None:
    cleanup(lambda: (child.kill(), child.wait(10)))


def test_popen_never_waited_is_a_running_child_with_its_command_and_site(cleanup: Cleanup) -> None:
    children: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        for _ in range(3):
            children.append(subprocess.Popen(SLEEPER))
        for child in children:
            kill_later(cleanup, child)

    (group,) = process_groups(start)
    assert group.count == 3
    assert group.blocked_on.code == "process.running"
    assert group.blocked_on.detail["state"] in {"sleeping", "running"}
    assert group.blocked_on.description.startswith(f"`{sys.executable} -c import time; time.sleep(60)`")
    assert group.pattern is not None
    assert group.pattern.code == "child-never-stopped"
    assert group.blocked_on.detail["spawner"] == "subprocess"
    assert "`with subprocess.Popen(...)`" in group.pattern.fix
    assert group.origin is not None
    assert group.origin.site is not None
    assert group.origin.site.source_line() == "children.append(subprocess.Popen(SLEEPER))"
    assert sorted(u.ident for u in group.units) == sorted(c.pid for c in children)
    text = looseends.Report.from_units(group.units).render()
    assert f"3 processes `{sys.executable} -c import time; time.sleep(60)` (" in text
    assert ": child process never stopped" in text
    assert "no Python frames" not in text


def test_zombie_exited_never_waited_for(cleanup: Cleanup) -> None:
    holder: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        child = subprocess.Popen(["sh", "-c", "exit 3"])
        holder.append(child)
        cleanup(child.wait)
        wait_until(lambda: psutil.Process(child.pid).status() == psutil.STATUS_ZOMBIE, what="a zombie")

    (group,) = process_groups(start)
    assert group.blocked_on.code == "process.zombie"
    assert group.blocked_on.description == "`sh -c exit 3` exited with 3, never waited for"
    assert group.blocked_on.detail["exit_code"] == 3
    assert group.pattern is not None
    assert group.pattern.code == "zombie"
    assert group.pattern.fix.startswith("call wait() on the Popen")


def sleep_until(event: object) -> None:
    event.wait(60)  # type: ignore[attr-defined]


@pytest.mark.parametrize("method", ["spawn", "fork"])
def test_multiprocessing_process_never_joined(cleanup: Cleanup, method: str) -> None:
    context = multiprocessing.get_context(method)
    release = context.Event()

    def start() -> None:
        process = context.Process(target=sleep_until, args=(release,), name="mp-child")
        process.start()
        cleanup(lambda: (release.set(), process.join(10)))

    groups = process_groups(start)
    assert len(groups) == 1
    assert groups[0].count == 1
    assert groups[0].blocked_on.code == "process.running"
    assert "multiprocessing mp-child" in groups[0].blocked_on.description
    assert groups[0].blocked_on.detail["spawner"] == "multiprocessing"  # even when it forks underneath
    assert groups[0].pattern is not None
    assert "join()" in groups[0].pattern.fix
    assert "Popen" not in groups[0].pattern.fix
    assert groups[0].origin is not None
    assert groups[0].origin.site is not None
    assert groups[0].origin.site.source_line() == "process.start()"


def test_a_forked_child_is_told_to_be_waited_for_with_waitpid(cleanup: Cleanup) -> None:
    """A bare os.fork child is neither a Popen nor a Process: the fix names os.kill and os.waitpid."""
    read_end, write_end = os.pipe()

    def start() -> None:
        pid = os.fork()
        if pid == 0:  # the child: block until the parent closes its end, then leave at once
            os.close(write_end)
            os.read(read_end, 1)
            os._exit(0)
        cleanup(lambda: (os.close(write_end), os.waitpid(pid, 0)))

    cleanup(lambda: os.close(read_end))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # forking with threads around: 3.12+ warns
        (group,) = process_groups(start)
    assert group.blocked_on.detail["spawner"] == "os.fork"
    assert group.pattern is not None
    assert group.pattern.code == "child-never-stopped"
    assert "os.waitpid(pid, 0)" in group.pattern.fix


def test_multiprocessing_pool_never_closed(cleanup: Cleanup) -> None:
    def start() -> None:
        pool = multiprocessing.get_context("fork").Pool(2)
        cleanup(lambda: (pool.terminate(), pool.join()))
        assert pool.map(abs, [-1, -2]) == [1, 2]

    groups = process_groups(start)
    assert sum(g.count for g in groups) == 2
    assert all(g.blocked_on.code == "process.running" for g in groups)


def test_asyncio_subprocess_left_running(loop_thread: LoopThread, cleanup: Cleanup) -> None:
    """While its loop runs (a service); after asyncio.run the transport's finaliser kills the child.

    `cleanup` comes after `loop_thread`, so it is torn down first, while the loop still runs.
    """
    children: list[asyncio.subprocess.Process] = []

    async def spawn() -> None:
        children.append(await asyncio.create_subprocess_exec(*SLEEPER))

    async def stop() -> None:
        children[0].kill()
        await children[0].wait()

    def start() -> None:
        loop_thread.run(spawn())
        cleanup(lambda: loop_thread.run(stop()))

    (group,) = process_groups(start)
    assert [u.ident for u in group.units] == [children[0].pid]
    assert group.origin is not None
    assert group.origin.site is not None
    assert "create_subprocess_exec" in group.origin.site.source_line()


def test_a_grandchild_started_by_a_child_is_found(cleanup: Cleanup) -> None:
    def start() -> None:
        child = subprocess.Popen(["sh", "-c", "sleep 60 & wait"])

        def stop() -> None:
            for grandchild in psutil.Process(child.pid).children(recursive=True):
                grandchild.kill()
            child.kill()
            child.wait(10)

        cleanup(stop)
        wait_until(lambda: bool(psutil.Process(child.pid).children()), what="the grandchild")

    groups = process_groups(start)
    commands = sorted(g.units[0].target or "" for g in groups)
    assert commands == ["sh -c sleep 60 & wait", "sleep 60"]
    grandchild = next(g for g in groups if g.units[0].target == "sleep 60")
    assert grandchild.origin is not None
    assert grandchild.origin.site is None  # started by the child, not by us: no Python call site


def test_no_false_alarm_for_run_waited_popen_joined_process_and_resource_tracker() -> None:
    with looseends.check(timeout=QUICK):
        subprocess.run(["true"], check=True)
        with subprocess.Popen(["true"]) as child:
            child.wait()
        waited = subprocess.Popen(["true"])
        waited.wait()
        context = multiprocessing.get_context("spawn")
        process = context.Process(target=abs, args=(-1,))
        process.start()
        process.join()
        context.SimpleQueue()  # starts nothing, but spawn-context objects may start the resource tracker
        from multiprocessing import resource_tracker

        resource_tracker.ensure_running()


def test_ignore_command_rule(cleanup: Cleanup) -> None:
    with looseends.check(timeout=QUICK, ignore=[looseends.ignore_command("*time.sleep(60)*")]):
        kill_later(cleanup, subprocess.Popen(SLEEPER))


LATE_MULTIPROCESSING = """
import sys
import looseends

tracking = looseends.track()
print("imported by tracking:", "multiprocessing" in sys.modules)
import multiprocessing

context = multiprocessing.get_context("fork")
release = context.Event()
process = context.Process(target=release.wait, args=(60,), name="late-child")
process.start()
try:
    for unit in looseends.snapshot().units:
        if unit.ident == process.pid and unit.origin is not None and unit.origin.site is not None:
            print(unit.blocked_on.detail.get("spawner"), unit.origin.site.source_line())
finally:
    release.set()
    process.join(10)
"""


def test_multiprocessing_imported_after_tracking_began_is_wrapped_as_it_arrives(tmp_path: Path) -> None:
    """Tracking does not import multiprocessing (start-up cost, and a module an attach target would
    gain); a program that imports it later still has each process's spawner and creation site."""
    script = tmp_path / "late.py"
    script.write_text(LATE_MULTIPROCESSING)
    result = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["imported by tracking: False", "multiprocessing process.start()"]
