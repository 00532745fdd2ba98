"""Deterministic leak fixtures: every leak a test starts has an unblock handle run at teardown.

Like goleak's startBlockedG(): a unit is provably blocked (tests wait for its state with a bounded
deadline, never a bare sleep) and always released, so the suite never hangs.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
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
