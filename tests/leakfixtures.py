"""Deterministic leak fixtures: every leak a test starts has an unblock handle run at teardown.

Like goleak's startBlockedG(): a unit is provably blocked (tests wait for its state with a bounded
deadline, never a bare sleep) and always released, so the suite never hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import looseends
from looseends.model import Unit

DEADLINE = 10.0


def wait_until(condition: Callable[[], bool], timeout: float = DEADLINE, what: str = "condition") -> None:
    """Poll `condition` until true, failing after `timeout` seconds (never a fixed sleep)."""
    tick = threading.Event()
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        tick.wait(0.002)


def units_named(prefix: str) -> list[Unit]:
    return [u for u in looseends.snapshot().units if u.name.startswith(prefix)]


def wait_blocked(prefix: str, count: int, code: str) -> list[Unit]:
    """Wait until `count` units named `prefix*` are all blocked in `code`; return them."""
    found: list[Unit] = []

    def ready() -> bool:
        nonlocal found
        found = [u for u in units_named(prefix) if u.blocked_on.code == code]
        return len(found) >= count

    wait_until(ready, what=f"{count} units {prefix}* blocked in {code}")
    return found


class Cleanup:
    """Undo actions run at teardown, last registered first."""

    def __init__(self) -> None:
        self.stack = contextlib.ExitStack()

    def __call__(self, action: Callable[[], Any]) -> None:
        self.stack.callback(action)

    def stop(self, unblock: Callable[[], Any], *threads: threading.Thread) -> None:
        """At teardown: `unblock()`, then join every thread (which the test itself started)."""

        def stop() -> None:
            unblock()
            for thread in threads:
                thread.join(DEADLINE)
                assert not thread.is_alive(), f"{thread.name} did not stop at teardown"

        self.stack.callback(stop)


def drain(items: queue.Queue[Any], *threads: threading.Thread) -> Callable[[], None]:
    """An unblock handle for senders stuck on a full queue: read until they have all finished."""

    def unblock() -> None:
        deadline = time.monotonic() + DEADLINE
        while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
            with contextlib.suppress(queue.Empty):
                items.get(timeout=0.01)

    return unblock


class LoopThread:
    """An event loop running in a background thread, stopped and closed at teardown."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="loop-thread", daemon=True)
        self.thread.start()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(DEADLINE)

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.run(cancel_all())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(DEADLINE)
        self.loop.close()


@contextlib.contextmanager
def uvicorn_serving(app: Any, loop: str) -> Iterator[str]:
    """A real uvicorn server for `app` on a loopback port, in a thread, on `loop` ("asyncio", "uvloop"):
    its base URL while the block runs; stopped and joined after."""
    import uvicorn  # only the live-server tests need it

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", lifespan="off", loop=loop)
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, name="uvicorn-server", daemon=True)
    thread.start()
    try:
        wait_until(lambda: running.started, what="uvicorn to start")
        port = running.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        running.should_exit = True
        thread.join(DEADLINE)


class _Cycle:
    me: object


class HeldCollection:
    """A garbage collection in another thread, held between clearing weak references (asyncio's registry
    of tasks forgets what it destroys) and running finalizers (a task records its own destruction): a
    weak reference callback of garbage of its own waits there until `release()`, at most `hold_for` s.
    Automatic collections are off meanwhile, so only this one destroys anything. Its thread starts here,
    before whatever check the test begins, so it is none of that check's leaks."""

    def __init__(self, hold_for: float = DEADLINE) -> None:
        self.hold_for = hold_for
        self._go, self._inside, self._released = threading.Event(), threading.Event(), threading.Event()
        self._enabled = gc.isenabled()
        gc.disable()
        self._thread = threading.Thread(target=self._collect, name="held-collection", daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        if not self._go.wait(DEADLINE):
            return
        garbage = _Cycle()
        garbage.me = garbage
        held = weakref.ref(garbage, lambda ref: (self._inside.set(), self._released.wait(self.hold_for)))
        del garbage
        gc.collect()
        assert held() is None

    def hold(self) -> None:
        """Start the collection, and return once it is held between its two steps."""
        self._go.set()
        assert self._inside.wait(DEADLINE), "the collection never reached its weak reference callbacks"

    def release(self) -> None:
        """Let it end, and wait until it has."""
        self._go.set()
        self._released.set()
        self._thread.join(DEADLINE)
        assert not self._thread.is_alive(), "the held collection did not end"
        if self._enabled:
            gc.enable()


def start_thread_on_a_lock_nobody_holds(cleanup: Cleanup, name: str) -> None:
    """A thread blocked forever (until teardown) on a lock only it can reach: provably stuck."""

    def start() -> weakref.ref[threading.Lock]:
        lock = threading.Lock()
        lock.acquire()
        threading.Thread(target=lock.acquire, name=name, daemon=True).start()
        return weakref.ref(lock)

    ref = start()
    cleanup(lambda: (lock := ref()) is not None and lock.release())
    wait_blocked(name, 1, "lock.acquire")
