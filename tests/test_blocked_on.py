"""Every wait the reports name is recognised on every supported Python (qualnames move between versions)."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

import looseends

from leakfixtures import DEADLINE, LoopThread, units_named, wait_blocked, wait_until


@contextmanager
def thread_waiting(target: Callable[[], object], unblock: Callable[[], object], name: str) -> Iterator[None]:
    thread = threading.Thread(target=target, name=name, daemon=True)
    thread.start()
    try:
        yield
    finally:
        unblock()
        thread.join(DEADLINE)
        assert not thread.is_alive()


def condition_case() -> tuple[Callable[[], object], Callable[[], object]]:
    condition = threading.Condition()

    def wait() -> None:
        with condition:
            condition.wait()

    def notify() -> None:
        with condition:
            condition.notify_all()

    return wait, notify


def semaphore_case() -> tuple[Callable[[], object], Callable[[], object]]:
    semaphore = threading.Semaphore(0)
    return semaphore.acquire, semaphore.release


def barrier_case() -> tuple[Callable[[], object], Callable[[], object]]:
    barrier = threading.Barrier(2)
    return barrier.wait, barrier.wait  # the second party arrives


def socket_recv_case() -> tuple[Callable[[], object], Callable[[], object]]:
    left, right = socket.socketpair()

    def recv() -> None:
        with left:
            left.recv(1)

    def unblock() -> None:
        with right:
            right.send(b"x")

    return recv, unblock


def socket_accept_case() -> tuple[Callable[[], object], Callable[[], object]]:
    server = socket.create_server(("127.0.0.1", 0))

    def accept() -> None:
        with server:
            connection, _ = server.accept()
            connection.close()

    def unblock() -> None:
        socket.create_connection(server.getsockname(), timeout=DEADLINE).close()

    return accept, unblock


def subprocess_case() -> tuple[Callable[[], object], Callable[[], object]]:
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)

    def unblock() -> None:
        assert child.stdin is not None
        child.stdin.close()

    return child.wait, unblock


@pytest.mark.parametrize(
    ("case", "code", "pattern"),
    [
        (condition_case, "condition.wait", "condition-never-signalled"),
        (semaphore_case, "semaphore.acquire", "lock-never-released"),
        (barrier_case, "barrier.wait", None),
        (socket_recv_case, "socket.recv", "stuck-io"),
        (socket_accept_case, "socket.accept", "stuck-io"),
        (subprocess_case, "subprocess.wait", None),
    ],
)
def test_thread_waits(
    case: Callable[[], tuple[Callable[[], object], Callable[[], object]]], code: str, pattern: str | None
) -> None:
    target, unblock = case()
    with thread_waiting(target, unblock, name=f"case-{code}"):
        (unit,) = wait_blocked(f"case-{code}", 1, code)
        group = looseends.Report.from_units([unit]).groups[0]
        assert (group.pattern.code if group.pattern else None) == pattern


async def asyncio_lock_case() -> tuple[Callable[[], object], Callable[[], object]]:
    lock = asyncio.Lock()
    await lock.acquire()
    return lock.acquire, lock.release


async def asyncio_condition_case() -> tuple[Callable[[], object], Callable[[], object]]:
    condition = asyncio.Condition()

    async def wait() -> None:
        async with condition:
            await condition.wait()

    async def notify() -> None:
        async with condition:
            condition.notify_all()

    return wait, notify


async def asyncio_semaphore_case() -> tuple[Callable[[], object], Callable[[], object]]:
    semaphore = asyncio.Semaphore(0)
    return semaphore.acquire, semaphore.release


async def asyncio_queue_get_case() -> tuple[Callable[[], object], Callable[[], object]]:
    items: asyncio.Queue[int] = asyncio.Queue()
    return items.get, lambda: items.put_nowait(1)


async def asyncio_stream_case() -> tuple[Callable[[], object], Callable[[], object]]:
    left, right = socket.socketpair()
    reader, writer = await asyncio.open_connection(sock=left)

    def close() -> None:
        writer.close()
        right.close()

    return reader.read, close


async def asyncio_subprocess_case() -> tuple[Callable[[], object], Callable[[], object]]:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; sys.stdin.read()", stdin=subprocess.PIPE
    )
    assert child.stdin is not None
    return child.wait, child.stdin.close


@pytest.mark.parametrize(
    ("case", "code"),
    [
        (asyncio_lock_case, "asyncio.lock.acquire"),
        (asyncio_condition_case, "asyncio.condition.wait"),
        (asyncio_semaphore_case, "asyncio.semaphore.acquire"),
        (asyncio_queue_get_case, "asyncio.queue.get"),
        (asyncio_stream_case, "asyncio.stream.read"),
        (asyncio_subprocess_case, "asyncio.subprocess.wait"),
    ],
)
def test_task_waits(loop_thread: LoopThread, case: Callable[[], object], code: str) -> None:
    task_holder: list[asyncio.Task[object]] = []
    unblockers: list[Callable[[], object]] = []

    async def start() -> None:
        wait, unblock = await case()  # type: ignore[misc]
        unblockers.append(unblock)

        async def waiter() -> None:
            await wait()

        task_holder.append(asyncio.create_task(waiter(), name=f"case-{code}"))

    async def stop() -> None:
        unblocked = unblockers[0]()
        if asyncio.iscoroutine(unblocked):
            await unblocked
        await asyncio.wait_for(task_holder[0], DEADLINE)  # unblocking really ends the wait

    loop_thread.run(start())
    try:
        wait_blocked(f"case-{code}", 1, code)
    finally:
        loop_thread.run(stop())


def test_custom_task_factories_keep_working_and_keep_creation_sites() -> None:
    class MyTask(asyncio.Task):  # type: ignore[type-arg]
        pass

    def factory(loop: asyncio.AbstractEventLoop, coro: object, **kwargs: object) -> asyncio.Task[object]:
        return MyTask(coro, loop=loop, **kwargs)  # type: ignore[arg-type]

    async def main() -> looseends.Report:
        asyncio.get_running_loop().set_task_factory(factory)
        never = asyncio.Event()
        with pytest.raises(looseends.LeakError) as info:
            async with looseends.check(timeout=0.05):
                task = asyncio.create_task(never.wait(), name="via-factory")
                await asyncio.sleep(0)
        assert type(task) is MyTask  # our tracking wraps create_task; the user's factory still runs
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return info.value.report

    group = asyncio.run(main()).groups[0]
    assert group.origin is not None
    assert group.origin.site is not None
    assert "create_task(never.wait()" in group.origin.site.source_line()


@pytest.mark.skipif(sys.version_info < (3, 12), reason="eager tasks are new in 3.12")
def test_eager_tasks_are_tracked() -> None:
    async def main() -> looseends.Report:
        asyncio.get_running_loop().set_task_factory(asyncio.eager_task_factory)  # type: ignore[attr-defined]
        never = asyncio.Event()
        with pytest.raises(looseends.LeakError) as info:
            async with looseends.check(timeout=0.05):
                task = asyncio.create_task(never.wait(), name="eager")
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return info.value.report

    group = asyncio.run(main()).groups[0]
    assert group.units[0].name == "eager"
    assert group.blocked_on.code == "asyncio.event.wait"
    assert group.origin is not None
    assert group.origin.site is not None
    assert "create_task(never.wait()" in group.origin.site.source_line()


def test_wait_until_helper_times_out_with_a_message() -> None:
    with pytest.raises(AssertionError, match=r"timed out after 0\.01 s waiting for nothing"):
        wait_until(lambda: False, timeout=0.01, what="nothing")


def _aliased_read() -> tuple[Callable[[], object], Callable[[], object]]:
    import os

    reader, writer = os.pipe()
    read = os.read  # the call in the bytecode is named `read`: no wait API matches it

    def wait() -> None:
        read(reader, 1)
        os.close(reader)

    def release() -> None:
        os.write(writer, b"x")
        os.close(writer)

    return wait, release


def _connection_recv() -> tuple[Callable[[], object], Callable[[], object]]:
    import multiprocessing

    receiving, sending = multiprocessing.Pipe(duplex=False)
    return receiving.recv, lambda: sending.send("done")


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel's view is read from /proc (Linux)")
@pytest.mark.parametrize("case", [_aliased_read, _connection_recv])
def test_a_thread_asleep_in_a_read_the_frames_do_not_name_is_read_from_the_kernel(
    case: Callable[[], tuple[Callable[[], object], Callable[[], object]]],
) -> None:
    """Matching by the call's name misses aliases (`read = os.read`) and library wrappers
    (`multiprocessing.Connection.recv`): the kernel still has the thread asleep in `read` on a pipe."""
    wait, release = case()
    with thread_waiting(wait, release, "kernel-read"):
        wait_blocked("kernel-read", 1, "io.read")
        (unit,) = [unit for unit in looseends.snapshot().units if unit.name == "kernel-read"]
        assert unit.blocked_on.detail["descriptor"] == "a pipe"
        assert unit.blocked_on.description.startswith("read on a pipe (fd ")


def _through(function: Callable[..., object], *args: object) -> object:
    """A library's wrapper (blockbuster's, a retry decorator): the frames name no wait."""
    return function(*args)


def _aliased_timed_lock() -> tuple[Callable[[], object], Callable[[], object], float]:
    lock = threading.Lock()
    lock.acquire()
    return lambda: _through(lock.acquire, True, 30.0), lock.release, 30.0  # an absolute futex deadline


def _aliased_select() -> tuple[Callable[[], object], Callable[[], object], float]:
    import os
    import select

    reader, writer = os.pipe()
    return lambda: _through(select.select, [reader], [], [], 30.0), lambda: os.write(writer, b"x"), 30.0


def _aliased_epoll() -> tuple[Callable[[], object], Callable[[], object], float]:
    import os
    import select

    reader, writer = os.pipe()
    poller = select.epoll()
    poller.register(reader, select.EPOLLIN)
    return lambda: _through(poller.poll, 30.0), lambda: os.write(writer, b"x"), 30.0


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel's view is read from /proc (Linux)")
@pytest.mark.parametrize("case", [_aliased_timed_lock, _aliased_select, _aliased_epoll])
def test_a_timed_wait_whose_timeout_the_frames_do_not_show_has_its_time_left_from_the_kernel(
    case: Callable[[], tuple[Callable[[], object], Callable[[], object], float]],
) -> None:
    """Arguments passed through a wrapper (`f(*args)`) are not in the frames: what is left of the wait
    is read from the system call's own arguments, and settling gives a straggler until then."""
    wait, release, seconds = case()
    with thread_waiting(wait, release, "kernel-timed"):
        wait_until(lambda: any("timeout" in u.blocked_on.detail for u in units_named("kernel-timed")))
        (unit,) = units_named("kernel-timed")
        assert 0 < float(unit.blocked_on.detail["timeout"]) <= seconds


@pytest.mark.skipif(sys.platform != "linux", reason="the kernel's view is read from /proc (Linux)")
def test_a_wrapped_sleep_that_ends_within_the_extension_is_a_straggler_not_a_leak() -> None:
    """anyio's suite under blockbuster: a server thread sleeps 1 s through a wrapper, the test is over
    before; it is not a leak, because the kernel says the sleep ends in time."""
    thread = threading.Thread(target=_through, args=(time.sleep, 0.8), name="wrapped-sleep", daemon=True)
    baseline = looseends.snapshot()
    thread.start()
    try:
        looseends.verify_none(baseline=baseline, timeout=0.5)
    finally:
        thread.join(DEADLINE)
