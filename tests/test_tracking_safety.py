"""Tracking inside a busy host: the host's own create_task and Thread.start never raise because of us.

Tracking stays on for as long as an endpoint serves, so every task and thread the host creates goes
through our wrappers, from many threads at once, with the smallest switch interval.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time

from looseends.sources import _origins, _tracking
from looseends.sources._origins import PRUNE_GRACE, Record, _OriginTable, capture

from leakfixtures import DEADLINE


def test_many_threads_creating_tasks_and_threads_never_see_an_exception_from_tracking() -> None:
    errors: list[BaseException] = []

    def tasks(count: int) -> None:
        try:
            loop = asyncio.new_event_loop()

            async def main() -> None:
                event = asyncio.Event()
                batch: list[asyncio.Task[bool]] = []
                for _ in range(count):
                    batch.append(loop.create_task(event.wait()))
                    if len(batch) >= 3000:  # pending tasks keep the origin table large while it is pruned
                        event.set()
                        await asyncio.gather(*batch)
                        batch.clear()
                        event = asyncio.Event()
                event.set()
                await asyncio.gather(*batch)

            loop.run_until_complete(main())
            loop.close()
        except BaseException as exc:  # what the host would see
            errors.append(exc)

    def threads(count: int) -> None:
        try:
            for _ in range(count):
                thread = threading.Thread(target=int)
                thread.start()
                thread.join(DEADLINE)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=tasks, args=(15_000,)) for _ in range(4)]
    workers += [threading.Thread(target=threads, args=(150,)) for _ in range(4)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        with _tracking.tracking():
            for worker in workers:
                worker.start()
            for worker in workers:
                worker.join(120)
    finally:
        sys.setswitchinterval(interval)
    assert not any(worker.is_alive() for worker in workers)
    assert errors == []


def test_a_record_put_while_the_table_is_pruned_is_kept() -> None:
    late = object()
    table: _OriginTable

    def alive_and_a_put_meanwhile() -> list[int]:
        table.put(late, capture(None, 0))  # another thread creating something mid-prune
        return []

    table = _OriginTable(alive_and_a_put_meanwhile)
    gone = object()
    table.put(gone, _made_ago(capture(None, 0), 2 * PRUNE_GRACE))
    table.prune()
    assert id(late) in table.entries
    assert id(gone) not in table.entries


def _made_ago(record: Record, seconds: float) -> Record:
    return (*record[:3], time.monotonic() - seconds, *record[4:])


def test_a_thread_whose_record_makes_the_table_due_for_a_prune_keeps_it() -> None:
    """A Thread's record is made before `start` registers the thread anywhere: the prune that its own
    record triggers (or another thread's, meanwhile) must not take it for a dead thread's."""
    never = threading.Event()
    thread = threading.Thread(target=never.wait, name="due", daemon=True)
    table = _origins._thread_origins
    with _tracking.tracking():
        table.prune_at[0] = len(table.entries) + 1  # the next record makes the table due
        try:
            thread.start()
            origin = _origins.thread_origin(thread)
        finally:
            never.set()
            thread.join(DEADLINE)
    assert origin is not None
    assert origin.frames[0].function.endswith(
        "test_a_thread_whose_record_makes_the_table_due_for_a_prune_keeps_it"
    )
