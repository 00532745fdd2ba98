"""Reading a frame's variables never keeps them alive. Before 3.13, `frame.f_locals` leaves a dict of every
variable on the frame (PEP 667), so whatever the program deletes after a snapshot stays alive until that
frame ends: a connection it closes by dropping it, a finished job's arguments. Snapshots and proofs read
one variable at a time instead (`_cpython.frame_variable`), or nothing at all."""

from __future__ import annotations

import sys
import threading
import types
import weakref
from collections.abc import Iterator

import pytest

import looseends
from looseends import _cpython
from looseends.analysis.reachability import prove


def _accelerated() -> bool:
    try:
        import looseends.sources._speedups  # noqa: F401
    except ImportError:
        return False
    return True


# 3.13's f_locals is a view, 3.12 has PyFrame_GetVar; 3.11 reads one variable only through the accelerator.
READABLE = sys.version_info >= (3, 12) or _accelerated()


class Payload:
    """What the program holds in a variable and then lets go of."""


class Worker:
    """A thread that holds a Payload in a local, waits in C inside that same frame, drops the payload,
    and waits again, still in that frame: the shape of a server loop between requests."""

    def __init__(self) -> None:
        self.first, self.second = threading.Lock(), threading.Lock()
        self.first.acquire()
        self.second.acquire()
        self.released: weakref.ref[Payload] | None = None
        self.holding, self.dropped = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self.run, name="frame-variables-worker", daemon=True)

    def run(self) -> None:
        payload = Payload()
        self.released = weakref.ref(payload)
        self.holding.set()
        self.first.acquire()  # a snapshot reads this frame here, `payload` bound
        del payload
        self.dropped.set()
        self.second.acquire()  # still in this frame: nothing of ours may hold `payload` now


@pytest.fixture
def worker() -> Iterator[Worker]:
    started = Worker()
    started.thread.start()
    try:
        yield started
    finally:
        for lock in (started.first, started.second):
            if lock.locked():
                lock.release()
        started.thread.join(10)


@pytest.mark.parametrize("read", ["snapshot", "proof"])
def test_what_the_program_deletes_after_a_look_is_freed_while_its_frame_goes_on(
    worker: Worker, read: str
) -> None:
    assert worker.holding.wait(10)
    if read == "snapshot":
        looseends.snapshot()
    else:
        prove([u for u in looseends.snapshot().units if u.name == "frame-variables-worker"])
    assert worker.released is not None
    worker.first.release()
    assert worker.dropped.wait(10)
    assert worker.released() is None, "a copy of the frame's variables kept the payload alive"


def test_a_variable_is_read_whether_plain_a_cell_or_free_and_an_unbound_one_reads_as_missing() -> None:
    seen: dict[str, object] = {}

    def outer() -> types.FrameType:
        shared = "cell"  # closed over by `inner`: a cell here, a free variable there
        plain = "plain"
        if "never" in seen:
            unbound = "never bound"  # a local whose slot exists but holds nothing
            del unbound
        frame = sys._getframe()

        def inner() -> None:
            seen["free"] = _cpython.frame_variable(sys._getframe(), "shared")
            seen["direct"] = shared

        inner()
        seen["plain"] = _cpython.frame_variable(frame, "plain")
        seen["cell"] = _cpython.frame_variable(frame, "shared")
        seen["unbound"] = _cpython.frame_variable(frame, "unbound")
        seen["absent"] = _cpython.frame_variable(frame, "no_such_name")
        seen["all"] = dict(_cpython.frame_variables(frame) or {})
        seen["waiting"] = _cpython.frame_variable(frame, "plain", ends_with_wait=True)
        assert plain
        return frame

    assert "unbound" in outer.__code__.co_varnames
    assert "shared" in outer.__code__.co_cellvars
    outer()
    assert seen["waiting"] == "plain"  # a wait API's own frame is read on every Python
    if not READABLE:  # 3.11 without the accelerator: no other frame is read, and no proof is attempted
        assert {seen[k] for k in ("plain", "cell", "free", "unbound", "absent")} == {_cpython.MISSING}
        assert seen["all"] == {}
        return
    assert seen["plain"] == "plain"
    assert seen["cell"] == "cell"
    assert seen["free"] == "cell"
    assert seen["unbound"] is _cpython.MISSING
    assert seen["absent"] is _cpython.MISSING
    everything = seen["all"]
    assert isinstance(everything, dict)
    assert everything["shared"] == "cell"
    assert everything["plain"] == "plain"
    assert "unbound" not in everything
