"""Another thread's garbage collection, caught between taking tasks out of asyncio's registry and running
their finalizers: verdicts wait for it to end (bounded), and nothing reads as clean meanwhile."""

from __future__ import annotations

import itertools

from looseends.core.watch import Watch
from looseends.options import build_options
from looseends.sources._collection import WAIT_LIMIT, WAIT_STEP, running_elsewhere, until_collected
from looseends.sources._tracking import tracking

from leakfixtures import HeldCollection


def test_a_watch_is_not_clean_at_a_glance_while_another_thread_collects(
    held_collection: HeldCollection,
) -> None:
    watch = Watch(build_options(source="test"), "collection")
    watch.start()
    try:
        assert watch.unchanged()
        assert watch.nothing_new()
        held_collection.hold()
        assert running_elsewhere()
        assert not watch.unchanged()
        assert not watch.nothing_new()
        held_collection.release()  # its thread, alive at the start, has ended too
        assert not running_elsewhere()
        assert watch.nothing_new()
    finally:
        watch.stop()


def test_a_collection_that_outlasts_the_wait_is_waited_for_once(held_collection: HeldCollection) -> None:
    """A finalizer may block for good: one wait of WAIT_LIMIT, and none again for that collection."""
    with tracking("collection"):
        held_collection.hold()
        ticks = itertools.count(0.0, WAIT_LIMIT / 4)
        assert list(until_collected(_clock=lambda: next(ticks))) == [WAIT_STEP] * 3
        assert not running_elsewhere()
        assert list(until_collected()) == []
        held_collection.release()

        another = HeldCollection()
        try:
            another.hold()
            assert running_elsewhere()  # a new collection is waited for again
        finally:
            another.release()


def test_this_threads_own_collection_is_not_waited_for() -> None:
    """A verdict reached from inside a collection (a finalizer's check) would wait for itself."""
    import gc

    seen: list[bool] = []

    def during(phase: str, info: object) -> None:
        if phase == "start":
            seen.append(running_elsewhere())

    with tracking("collection"):
        gc.callbacks.append(during)
        try:
            gc.collect()
        finally:
            gc.callbacks.remove(during)
    assert seen == [False]
