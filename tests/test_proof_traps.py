"""Proofs against holders the collector cannot see: a trap corpus.

In each trap a worker thread waits on a queue whose only other reference is held where no walk of the
collector's graph reaches it: interpreter state written from Python by a standard-library call (a signal
handler, an exit hook, a codec search function, an audit hook, a trace or profile function, a fork hook,
an async-generator hook, a context variable's value in another thread's context, thread-local storage).
Each trap then springs: the hook runs, puts on the queue, and the "stuck" worker finishes. A proof of
any of them would have been a lie: 0 proofs is the only right answer.
"""

from __future__ import annotations

import atexit
import codecs
import contextvars
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from looseends.analysis.reachability import prove
from looseends.sources import take_snapshot

from leakfixtures import DEADLINE, wait_blocked

Trap = Callable[[Callable[[], None]], Callable[[], None]]  # given a wake-up, hide it; return the spring


def _worker(name: str) -> tuple[threading.Thread, Callable[[], None]]:
    """A thread blocked on a queue only it and the returned `wake` can reach."""

    def build() -> tuple[Callable[[], None], Callable[[], None]]:
        inbox: queue.Queue[int] = queue.Queue()

        def wait() -> None:
            inbox.get()

        return wait, lambda: inbox.put(1)

    wait, wake = build()
    return threading.Thread(target=wait, name=name, daemon=True), wake


def signal_handler(wake: Callable[[], None]) -> Callable[[], None]:
    previous = signal.signal(signal.SIGUSR2, lambda signum, frame: wake())

    def spring() -> None:
        signal.raise_signal(signal.SIGUSR2)
        signal.signal(signal.SIGUSR2, previous)

    return spring


def exit_hook(wake: Callable[[], None]) -> Callable[[], None]:
    atexit.register(wake)

    def spring() -> None:
        wake_now = wake  # the exit hook itself, run as the interpreter would at exit
        atexit.unregister(wake_now)
        wake_now()

    return spring


def codec_search(wake: Callable[[], None]) -> Callable[[], None]:
    def search(name: str) -> None:
        if name == "looseends_trap":
            wake()
        return None

    codecs.register(search)

    def spring() -> None:
        with pytest.raises(LookupError):
            codecs.lookup("looseends_trap")
        codecs.unregister(search)

    return spring


_audit_wake: list[Callable[[], None]] = []  # audit hooks stay for good: one hook serves every run


def audit_hook(wake: Callable[[], None]) -> Callable[[], None]:
    def hook(event: str, args: tuple[object, ...], waking: list[Callable[[], None]] = []) -> None:  # noqa: B006
        if event == "looseends.trap" and waking:
            waking.pop()()

    hook.__defaults__[0].append(wake)  # type: ignore[index]
    sys.addaudithook(hook)
    return lambda: sys.audit("looseends.trap")


def trace_function(wake: Callable[[], None]) -> Callable[[], None]:
    def tracer(frame: object, event: str, arg: object) -> None:
        if event == "call" and getattr(frame, "f_code", None) is _marker.__code__:
            wake()

    previous = sys.gettrace()
    sys.settrace(tracer)
    return lambda: (_marker(), sys.settrace(previous))  # type: ignore[func-returns-value]


def profile_function(wake: Callable[[], None]) -> Callable[[], None]:
    def profiler(frame: object, event: str, arg: object) -> None:
        if event == "call" and getattr(frame, "f_code", None) is _marker.__code__:
            wake()

    previous = sys.getprofile()
    sys.setprofile(profiler)
    return lambda: (_marker(), sys.setprofile(previous))  # type: ignore[func-returns-value]


def _marker() -> None:
    pass


def fork_hook(wake: Callable[[], None]) -> Callable[[], None]:
    armed = [wake]
    os.register_at_fork(after_in_parent=lambda: armed and armed.pop()())

    def spring() -> None:
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)

    return spring


def asyncgen_hook(wake: Callable[[], None]) -> Callable[[], None]:
    previous = sys.get_asyncgen_hooks()
    sys.set_asyncgen_hooks(firstiter=lambda agen: wake())

    async def agen():  # type: ignore[no-untyped-def]
        yield 1

    def spring() -> None:
        iterator = agen().__anext__()
        iterator.close()
        sys.set_asyncgen_hooks(*previous)

    return spring


_context_var: contextvars.ContextVar[Callable[[], None]] = contextvars.ContextVar("looseends_trap")


def context_variable(wake: Callable[[], None]) -> Callable[[], None]:
    _context_var.set(wake)  # in this thread's context only: the interpreter keeps it, no object does
    return lambda: _context_var.get()()


_local = threading.local()


def thread_local(wake: Callable[[], None]) -> Callable[[], None]:
    _local.wake = wake  # this thread's storage for the local: kept in the thread's own state
    return lambda: _local.__dict__.pop("wake")()


TRAPS: list[Trap] = [
    signal_handler,
    exit_hook,
    codec_search,
    audit_hook,
    trace_function,
    profile_function,
    fork_hook,
    asyncgen_hook,
    context_variable,
    thread_local,
]


@contextmanager
def _trapped(trap: Trap, name: str) -> Iterator[tuple[threading.Thread, Callable[[], None]]]:
    thread, wake = _worker(name)
    spring = trap(wake)
    del wake
    thread.start()
    try:
        yield thread, spring
    finally:
        if thread.is_alive():
            spring()
        thread.join(DEADLINE)


@pytest.mark.parametrize("trap", TRAPS, ids=[trap.__name__ for trap in TRAPS])
def test_a_queue_only_interpreter_state_holds_is_never_proven_and_the_hook_wakes_it(trap: Trap) -> None:
    name = f"trapped-{trap.__name__}"
    with _trapped(trap, name) as (thread, spring):
        wait_blocked(name, 1, "queue.get")
        units = [unit for unit in take_snapshot().units if unit.name == name]
        assert prove(units) == {}  # held by interpreter state: it may still be woken
        spring()  # and it is
        thread.join(DEADLINE)
        assert not thread.is_alive()


def test_a_queue_only_the_waiter_can_reach_is_still_proven() -> None:
    """The control: the same worker, its wake-up dropped, no hook holding it."""
    thread, wake = _worker("alone")
    del wake
    thread.start()
    try:
        wait_blocked("alone", 1, "queue.get")
        units = [unit for unit in take_snapshot().units if unit.name == "alone"]
        assert len(prove(units)) == 1
    finally:  # the test's own way in, after the proof: through the stuck frame's variables
        frame = sys._current_frames().get(thread.ident or 0)
        while frame is not None and "inbox" not in frame.f_locals:
            frame = frame.f_back
        if frame is not None:
            frame.f_locals["inbox"].put(1)
        del frame
        thread.join(DEADLINE)
    assert not thread.is_alive()
