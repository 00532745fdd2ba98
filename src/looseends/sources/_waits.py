"""The wait APIs looseends recognises: one entry each, read by classification and by proofs alike.

Frames come innermost first. The innermost run of standard-library frames is read outwards and the
outermost wait API in it wins, because that is the call the user made: `Condition.wait` inside
`Queue.put` is reported as `Queue.put`. When the innermost frame is calling into C (`lock.acquire()`,
`time.sleep()`), `_ccall` names the builtin. Frames further out may name the machinery around the wait
(a Timer, `serve_forever`, a pool worker, an event loop), which later turns into a leak pattern.

An entry says its code (`looseends.codes`), the name users know, what to add about the waiting object,
and, for waits on an in-process primitive (a queue, lock, Event, Condition...), what proofs need: the
primitive's name and whether the wait is still unsatisfiable right now. A waiter that was notified still
shows the wait on its stack until it gets the GIL; its primitive's state (waiter lock released, queue no
longer full, Event set) says it is about to go, and such a unit is never proven stuck.

Everything is read statically and without taking the primitive's locks, so a snapshot can never run the
inspected program's code or deadlock on it.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from looseends._cpython import (
    MISSING,
    builtin_len,
    condition_waiters,
    frame_variable,
    lock_parked,
    read_attr,
)
from looseends._library import is_library_file
from looseends.model import RUNNING, BlockedOn
from looseends.sources._ccall import called_object
from looseends.sources._enclosing import in_loop
from looseends.sources._frames import code_key

Detail = dict[str, int | float | str]
Describer = Callable[[types.FrameType], tuple[str, Detail]]
StillBlocked = Callable[[Any, Sequence[types.FrameType]], bool]


def _self(frame: types.FrameType) -> object:
    return frame_variable(frame, "self", ends_with_wait=True)


def _nothing(frame: types.FrameType) -> tuple[str, Detail]:
    return "", {}


@dataclass(frozen=True, slots=True)
class Primitive:
    """For proofs: what a wait waits on, and whether that wait still cannot end right now."""

    name: str  # as proofs say it: "the queue it waits on"
    still_blocked: StillBlocked


@dataclass(frozen=True, slots=True)
class Wait:
    """One recognised wait API: a stable code, the name users know, and what to say about it."""

    code: str
    label: str
    describe: Describer = _nothing
    primitive: Primitive | None = None  # None: not an in-process primitive; the unit may go on by itself


# Is the wait still unsatisfiable? ---------------------------------------------------------------------


def _parked_in_condition(frames: Sequence[types.FrameType]) -> bool:
    """The innermost `Condition.wait` has parked its waiter lock and nobody has notified it yet:
    notify() removes the waiter from `_waiters` and releases it before the woken thread can run."""
    for frame in frames:
        if code_key(frame) == ("threading", "Condition.wait"):
            waiter = frame_variable(frame, "waiter", ends_with_wait=True)
            waiters = condition_waiters(frame_variable(frame, "self", ends_with_wait=True))
            return waiters is not None and any(w is waiter for w in waiters) and lock_parked(waiter) is True
    return False


def _queue_size(queue: object, container: str) -> int | None:
    return builtin_len(read_attr(queue, container))


def _maxsize(queue: object) -> int | None:
    maxsize = read_attr(queue, "maxsize")
    if not isinstance(maxsize, int):  # asyncio keeps it private
        maxsize = read_attr(queue, "_maxsize")
    return maxsize if isinstance(maxsize, int) else None


def _full(container: str) -> Callable[[Any], bool]:
    def full(queue: object) -> bool:
        size, maxsize = _queue_size(queue, container), _maxsize(queue)
        return size is not None and maxsize is not None and 0 < maxsize <= size

    return full


def _empty(container: str) -> Callable[[Any], bool]:
    return lambda queue: _queue_size(queue, container) == 0


def _parked_and(state: Callable[[Any], bool]) -> StillBlocked:
    return lambda primitive, frames: _parked_in_condition(frames) and state(primitive)


def _always(primitive: object, frames: Sequence[types.FrameType]) -> bool:
    return True  # the task's pending future says the rest (see sources.tasks)


def _state_only(state: Callable[[Any], bool]) -> StillBlocked:
    return lambda primitive, frames: state(primitive)


def _unfinished(name: str) -> Callable[[Any], bool]:
    return lambda queue: isinstance(count := read_attr(queue, name), int) and count > 0


def _flag(name: str, value: object) -> Callable[[Any], bool]:
    return lambda primitive: read_attr(primitive, name) is value


def _simple_queue_empty(queue: object) -> bool:
    import _queue

    return type(queue) is _queue.SimpleQueue and _queue.SimpleQueue.empty(queue)


QUEUE_FULL = Primitive("queue", _parked_and(_full("queue")))
QUEUE_EMPTY = Primitive("queue", _parked_and(_empty("queue")))
QUEUE_UNFINISHED = Primitive("queue", _parked_and(_unfinished("unfinished_tasks")))
EVENT = Primitive("Event", _parked_and(_flag("_flag", False)))
CONDITION = Primitive("Condition", _parked_and(lambda condition: True))
SEMAPHORE = Primitive("Semaphore", _parked_and(_flag("_value", 0)))
BARRIER = Primitive("Barrier", _parked_and(lambda barrier: True))
LOCK = Primitive("Lock", _state_only(lambda lock: lock_parked(lock) is True))
RLOCK = Primitive("RLock", _state_only(lambda lock: lock_parked(lock) is True))
SIMPLE_QUEUE = Primitive("SimpleQueue", _state_only(_simple_queue_empty))
ASYNC_QUEUE_FULL = Primitive("asyncio.Queue", _state_only(_full("_queue")))
ASYNC_QUEUE_EMPTY = Primitive("asyncio.Queue", _state_only(_empty("_queue")))
ASYNC_QUEUE_UNFINISHED = Primitive("asyncio.Queue", _state_only(_unfinished("_unfinished_tasks")))
ASYNC_EVENT = Primitive("asyncio.Event", _state_only(_flag("_value", False)))
ASYNC_LOCK = Primitive("asyncio.Lock", _state_only(_flag("_locked", True)))
ASYNC_CONDITION = Primitive("asyncio.Condition", _always)
ASYNC_SEMAPHORE = Primitive("asyncio.Semaphore", _always)
ASYNC_BARRIER = Primitive("asyncio.Barrier", _always)


# Describing the waiting object --------------------------------------------------------------------------


def _queue_state(container: str, full: bool) -> Describer:
    """A queue's maxsize and length, read without taking its mutex."""

    def describe(frame: types.FrameType) -> tuple[str, Detail]:
        queue = _self(frame)
        maxsize, size = _maxsize(queue), _queue_size(queue, container)
        detail: Detail = {}
        if maxsize is not None:
            detail["maxsize"] = maxsize
        if size is not None:
            detail["size"] = size
        words = "queue full" if full else "queue empty"
        facts = ", ".join(f"{k}={v}" for k, v in detail.items())
        return (f"{words}, {facts}" if facts else words), detail

    return describe


def _named_thread(frame: types.FrameType) -> tuple[str, Detail]:
    name = read_attr(_self(frame), "_name")
    return (f"thread {name!r}", {"thread": name}) if isinstance(name, str) else ("", {})


def _barrier(frame: types.FrameType) -> tuple[str, Detail]:
    parties = read_attr(_self(frame), "_parties")
    return (f"parties={parties}", {"parties": parties}) if isinstance(parties, int) else ("", {})


def _popen(frame: types.FrameType) -> tuple[str, Detail]:
    pid = read_attr(_self(frame), "pid")
    return (f"pid {pid}", {"pid": pid}) if isinstance(pid, int) else ("", {})


def _sleep_delay(frame: types.FrameType) -> tuple[str, Detail]:
    delay = frame_variable(frame, "delay", ends_with_wait=True)
    return (f"{delay} s", {"delay": delay}) if isinstance(delay, int | float) else ("", {})


def _local_seconds(name: str) -> Describer:
    def describe(frame: types.FrameType) -> tuple[str, Detail]:
        seconds = frame_variable(frame, name, ends_with_wait=True)
        return (f"{seconds:g} s", {"delay": seconds}) if isinstance(seconds, int | float) else ("", {})

    return describe


def _channel_state(container: str, *, full: bool) -> Describer:
    """A trio channel's (or anyio stream's) buffer, from its shared state, read without running it."""

    def describe(frame: types.FrameType) -> tuple[str, Detail]:
        state = read_attr(_self(frame), "_state")
        size = builtin_len(read_attr(state, container))
        limit = read_attr(state, "max_buffer_size")
        senders = read_attr(state, "open_send_channels")
        detail: Detail = {}
        if isinstance(limit, int | float) and limit != float("inf"):
            detail["max_buffer_size"] = limit
        if size is not None:
            detail["size"] = size
        if not full and isinstance(senders, int):
            detail["open_senders"] = senders
        words = "buffer full" if full else "buffer empty"
        facts = ", ".join(f"{k}={v}" for k, v in detail.items())
        return (f"{words}, {facts}" if facts else words), detail

    return describe


# The registry -----------------------------------------------------------------------------------------

# Waits written in Python, keyed by (module, qualified name) of the frame that does the waiting; a
# primitive is that frame's `self`.
PYTHON_WAITS: Mapping[tuple[str, str], Wait] = {
    ("queue", "Queue.put"): Wait("queue.put", "queue.Queue.put", _queue_state("queue", True), QUEUE_FULL),
    ("queue", "Queue.get"): Wait("queue.get", "queue.Queue.get", _queue_state("queue", False), QUEUE_EMPTY),
    ("queue", "Queue.join"): Wait("queue.join", "queue.Queue.join", primitive=QUEUE_UNFINISHED),
    ("threading", "Event.wait"): Wait("event.wait", "threading.Event.wait", primitive=EVENT),
    ("threading", "Condition.wait"): Wait("condition.wait", "threading.Condition.wait", primitive=CONDITION),
    ("threading", "Condition.wait_for"): Wait(
        "condition.wait", "threading.Condition.wait_for", primitive=CONDITION
    ),
    ("threading", "Semaphore.acquire"): Wait(
        "semaphore.acquire", "threading.Semaphore.acquire", primitive=SEMAPHORE
    ),
    ("threading", "Thread.join"): Wait("thread.join", "threading.Thread.join", _named_thread),
    ("threading", "Barrier.wait"): Wait("barrier.wait", "threading.Barrier.wait", _barrier, BARRIER),
    ("concurrent.futures._base", "Future.result"): Wait("future.result", "concurrent.futures.Future.result"),
    ("concurrent.futures._base", "wait"): Wait("future.wait", "concurrent.futures.wait"),
    ("subprocess", "Popen.wait"): Wait("subprocess.wait", "subprocess.Popen.wait", _popen),
    ("subprocess", "Popen.communicate"): Wait("subprocess.wait", "subprocess.Popen.communicate", _popen),
    ("socket", "socket.accept"): Wait("socket.accept", "socket.accept"),
    ("socket", "create_connection"): Wait("socket.connect", "socket.create_connection"),
    # asyncio: the innermost coroutine frames of a task's await chain.
    ("asyncio.tasks", "sleep"): Wait("asyncio.sleep", "asyncio.sleep", _sleep_delay),
    ("asyncio.tasks", "wait"): Wait("asyncio.wait", "asyncio.wait"),
    ("asyncio.tasks", "wait_for"): Wait("asyncio.wait_for", "asyncio.wait_for"),
    ("asyncio.queues", "Queue.put"): Wait(
        "asyncio.queue.put", "asyncio.Queue.put", _queue_state("_queue", True), ASYNC_QUEUE_FULL
    ),
    ("asyncio.queues", "Queue.get"): Wait(
        "asyncio.queue.get", "asyncio.Queue.get", _queue_state("_queue", False), ASYNC_QUEUE_EMPTY
    ),
    ("asyncio.queues", "Queue.join"): Wait(
        "asyncio.queue.join", "asyncio.Queue.join", primitive=ASYNC_QUEUE_UNFINISHED
    ),
    ("asyncio.locks", "Event.wait"): Wait("asyncio.event.wait", "asyncio.Event.wait", primitive=ASYNC_EVENT),
    ("asyncio.locks", "Lock.acquire"): Wait(
        "asyncio.lock.acquire", "asyncio.Lock.acquire", primitive=ASYNC_LOCK
    ),
    ("asyncio.locks", "Condition.wait"): Wait(
        "asyncio.condition.wait", "asyncio.Condition.wait", primitive=ASYNC_CONDITION
    ),
    ("asyncio.locks", "Condition.wait_for"): Wait(
        "asyncio.condition.wait", "asyncio.Condition.wait_for", primitive=ASYNC_CONDITION
    ),
    ("asyncio.locks", "Semaphore.acquire"): Wait(
        "asyncio.semaphore.acquire", "asyncio.Semaphore.acquire", primitive=ASYNC_SEMAPHORE
    ),
    ("asyncio.locks", "Barrier.wait"): Wait(
        "asyncio.barrier.wait", "asyncio.Barrier.wait", primitive=ASYNC_BARRIER
    ),
    ("asyncio.streams", "StreamReader._wait_for_data"): Wait(
        "asyncio.stream.read", "asyncio.StreamReader read"
    ),
    ("asyncio.streams", "FlowControlMixin._drain_helper"): Wait(
        "asyncio.stream.drain", "asyncio.StreamWriter.drain"
    ),
    ("asyncio.subprocess", "Process.wait"): Wait("asyncio.subprocess.wait", "asyncio subprocess wait"),
    ("asyncio.subprocess", "Process.communicate"): Wait(
        "asyncio.subprocess.wait", "asyncio subprocess communicate"
    ),
    ("asyncio.selector_events", "BaseSelectorEventLoop.sock_recv"): Wait(
        "asyncio.socket.recv", "loop.sock_recv"
    ),
    ("asyncio.selector_events", "BaseSelectorEventLoop.sock_accept"): Wait(
        "asyncio.socket.accept", "loop.sock_accept"
    ),
    ("asyncio.base_events", "Server.serve_forever"): Wait("asyncio.server", "asyncio Server.serve_forever"),
    ("asyncio.taskgroups", "TaskGroup.__aexit__"): Wait("asyncio.taskgroup", "asyncio.TaskGroup exit"),
    # trio: the frames of a trio task's await chain (anyio on trio ends in these too).
    ("trio._timeouts", "sleep"): Wait("trio.sleep", "trio.sleep", _local_seconds("seconds")),
    ("trio._timeouts", "sleep_until"): Wait("trio.sleep", "trio.sleep_until"),
    ("trio._timeouts", "sleep_forever"): Wait("trio.sleep_forever", "trio.sleep_forever"),
    ("trio._sync", "Event.wait"): Wait("trio.event.wait", "trio.Event.wait"),
    ("trio._sync", "_LockImpl.acquire"): Wait("trio.lock.acquire", "trio.Lock.acquire"),
    ("trio._sync", "Semaphore.acquire"): Wait("trio.semaphore.acquire", "trio.Semaphore.acquire"),
    ("trio._sync", "CapacityLimiter.acquire"): Wait("trio.semaphore.acquire", "trio.CapacityLimiter.acquire"),
    ("trio._sync", "Condition.wait"): Wait("trio.condition.wait", "trio.Condition.wait"),
    ("trio._channel", "MemorySendChannel.send"): Wait(
        "trio.channel.send", "trio MemorySendChannel.send", _channel_state("data", full=True)
    ),
    ("trio._channel", "MemoryReceiveChannel.receive"): Wait(
        "trio.channel.receive", "trio MemoryReceiveChannel.receive", _channel_state("data", full=False)
    ),
    ("trio._core._io_epoll", "EpollIOManager.wait_readable"): Wait("trio.io", "trio wait_readable"),
    ("trio._core._io_epoll", "EpollIOManager.wait_writable"): Wait("trio.io", "trio wait_writable"),
    ("trio._core._io_kqueue", "KqueueIOManager.wait_readable"): Wait("trio.io", "trio wait_readable"),
    ("trio._core._io_kqueue", "KqueueIOManager.wait_writable"): Wait("trio.io", "trio wait_writable"),
    ("trio._core._run", "NurseryManager.__aexit__"): Wait("trio.nursery", "trio nursery exit"),
    ("gevent.hub", "sleep"): Wait("gevent.sleep", "gevent.sleep", _local_seconds("seconds")),
    ("anyio.streams.memory", "MemoryObjectSendStream.send"): Wait(
        "anyio.stream.send", "anyio MemoryObjectSendStream.send", _channel_state("buffer", full=True)
    ),
    ("anyio.streams.memory", "MemoryObjectReceiveStream.receive"): Wait(
        "anyio.stream.receive",
        "anyio MemoryObjectReceiveStream.receive",
        _channel_state("buffer", full=False),
    ),
}

# Waits inside C, keyed by the qualified name `_ccall` gives for the call; a primitive is its receiver.
C_WAITS: Mapping[str, Wait] = {
    "_thread.lock.acquire": Wait("lock.acquire", "threading.Lock.acquire", primitive=LOCK),
    "_thread.RLock.acquire": Wait("rlock.acquire", "threading.RLock.acquire", primitive=RLOCK),
    "_thread.lock.__enter__": Wait("lock.acquire", "threading.Lock.acquire (with lock:)", primitive=LOCK),
    "_thread.RLock.__enter__": Wait("rlock.acquire", "threading.RLock.acquire (with lock:)", primitive=RLOCK),
    "time.sleep": Wait("time.sleep", "time.sleep"),
    "_queue.SimpleQueue.get": Wait("queue.get", "queue.SimpleQueue.get", primitive=SIMPLE_QUEUE),
    "_socket.socket.recv": Wait("socket.recv", "socket.recv"),
    "_socket.socket.recv_into": Wait("socket.recv", "socket.recv_into"),
    "_socket.socket.recvfrom": Wait("socket.recv", "socket.recvfrom"),
    "_socket.socket._accept": Wait("socket.accept", "socket.accept"),
    "_socket.socket.connect": Wait("socket.connect", "socket.connect"),
    "_socket.socket.sendall": Wait("socket.send", "socket.sendall"),
    "select.select": Wait("selector.select", "select.select"),
    "select.poll.poll": Wait("selector.select", "select.poll"),
    "select.epoll.poll": Wait("selector.select", "select.epoll.poll"),
    "posix.waitpid": Wait("subprocess.wait", "os.waitpid"),
    "posix.wait": Wait("subprocess.wait", "os.wait"),
    "posix.read": Wait("io.read", "os.read"),
    "signal.pause": Wait("signal.wait", "signal.pause"),
    "signal.sigwait": Wait("signal.wait", "signal.sigwait"),
    # gevent's compiled primitives (what threading's become under monkey-patching).
    # (Queue's methods are SimpleQueue's: a call names the receiver's class, a target the defining one.)
    "gevent._gevent_cqueue.Queue.put": Wait("gevent.queue.put", "gevent Queue.put"),
    "gevent._gevent_cqueue.Queue.get": Wait("gevent.queue.get", "gevent Queue.get"),
    "gevent._gevent_cqueue.SimpleQueue.put": Wait("gevent.queue.put", "gevent Queue.put"),
    "gevent._gevent_cqueue.SimpleQueue.get": Wait("gevent.queue.get", "gevent Queue.get"),
    "gevent._gevent_cqueue.Queue.join": Wait("gevent.queue.join", "gevent Queue.join"),
    "gevent._gevent_cevent.Event.wait": Wait("gevent.event.wait", "gevent Event.wait"),
    "gevent._gevent_cevent.AsyncResult.get": Wait("gevent.result.get", "gevent AsyncResult.get"),
    "gevent._gevent_cevent.AsyncResult.wait": Wait("gevent.result.get", "gevent AsyncResult.wait"),
    "gevent._gevent_c_semaphore.Semaphore.acquire": Wait("gevent.lock.acquire", "gevent Semaphore.acquire"),
    "gevent._gevent_c_semaphore.BoundedSemaphore.acquire": Wait("gevent.lock.acquire", "gevent Lock.acquire"),
    "gevent._gevent_cgreenlet.Greenlet.join": Wait("gevent.join", "gevent Greenlet.join"),
    "gevent._gevent_cgreenlet.Greenlet.get": Wait("gevent.join", "gevent Greenlet.get"),
}
SELECTOR_WAIT = Wait("selector.select", "selectors.select")

POOL_WORKER = "ThreadPoolExecutor worker"
POOL_JOB = "ThreadPoolExecutor job"  # a worker inside a job: the job's own wait says what is wrong

# Frames further out that name the machinery a wait belongs to.
CONTEXTS: Mapping[tuple[str, str], str] = {
    ("threading", "Timer.run"): "threading.Timer",
    ("socketserver", "BaseServer.serve_forever"): "socketserver serve_forever",
    ("concurrent.futures.thread", "_worker"): POOL_WORKER,
    ("asyncio.base_events", "BaseEventLoop.run_forever"): "asyncio event loop",
    ("asyncio.base_events", "Server.serve_forever"): "asyncio server",
}


def _python_wait(module: str, qualname: str) -> Wait | None:
    if module == "selectors" and qualname.endswith(".select"):
        return SELECTOR_WAIT
    return PYTHON_WAITS.get((module, qualname))


# Finding the wait -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Found:
    """The wait a stack is in: which API, in which frame, and on what object."""

    wait: Wait
    depth: int  # index of the wait API's own frame (or of the frame calling into C)
    frame: types.FrameType
    receiver: object = MISSING  # for a wait inside C: the object called (the lock)
    c_arguments: bool = False  # the C call passes arguments (a timeout, block=...): it may end by itself
    c_timeout: float | None = None  # the C call's timeout (a sleep's length), when it can be read

    @property
    def in_c(self) -> bool:
        return self.receiver is not MISSING


def find_wait(frames: Sequence[types.FrameType]) -> Found | None:
    """The outermost wait API in the innermost run of library frames, or a C wait of the innermost frame."""
    found: Found | None = None
    for depth, frame in enumerate(frames):
        wait = _python_wait(*code_key(frame))
        if wait is not None:
            found = Found(wait, depth, frame)
        elif depth == 0 and (called := called_object(frame)) is not None:
            c_wait = C_WAITS.get(called.name)
            if c_wait is not None and called.receiver is not None:
                found = Found(c_wait, depth, frame, called.receiver, called.has_arguments, called.timeout)
        if wait is None and not is_library_file(frame.f_code.co_filename):
            break  # the user's code: the wait API (if any) ends here
    return found


def _timed(found: Found, frames: Sequence[types.FrameType]) -> bool:
    """A timeout anywhere in the wait's own frames: it ends by itself."""
    if found.c_arguments:
        return True
    for frame in frames[: found.depth + 1]:
        timeout = frame_variable(frame, "timeout", ends_with_wait=True)
        if timeout is not None and timeout is not MISSING:  # by identity: `in` would call the value's __eq__
            return True
    return False


def primitive_of(found: Found, frames: Sequence[types.FrameType]) -> tuple[str, object] | None:
    """(name, object) of the primitive a wait is blocked on, only while the wait still cannot end: an
    untimed wait on an in-process primitive whose state says nobody has released the waiter yet."""
    primitive = found.wait.primitive
    if primitive is None or _timed(found, frames):
        return None
    target = found.receiver if found.in_c else _self(found.frame)
    if target is MISSING or target is None:
        return None
    try:
        blocked = primitive.still_blocked(target, frames)
    except Exception:  # an odd object: claim nothing
        return None
    return (primitive.name, target) if blocked else None


def classify(frames: Sequence[types.FrameType], stack: Hashable = None) -> BlockedOn | None:
    """What the innermost frames wait on; None when they are not in any wait this module knows.

    `stack` (the frames as `Frame` data) lets a verdict that depends on code locations alone (a Python
    wait API that reads no object state, as 100,000 tasks awaiting one Event are) be worked out once.
    """
    if stack is not None and (known := _by_stack.get(stack)) is not None:
        return known
    found = find_wait(frames)
    if found is None:
        return None
    wait = found.wait
    try:
        words, detail = wait.describe(found.frame)
    except Exception:  # a half-torn-down object must not break a snapshot
        words, detail = "", {}
    timed, timeout = _timeout_of(found, frames)
    if timeout is not None:
        detail["timeout"] = timeout
        words = f"{words}, timeout {timeout:g} s" if words else f"timeout {timeout:g} s"
    if _waits_in_a_loop(frames):
        detail["loop"] = 1  # evidence for "loop never stopped" and "polls and never exits"
    description = f"{wait.label} ({words})" if words else wait.label
    blocked = BlockedOn(wait.code, description, detail, context_of(frames))
    if stack is not None and not found.in_c and wait.describe is _nothing and not timed:
        if len(_by_stack) >= 4096:
            _by_stack.clear()
        _by_stack[stack] = blocked
    return blocked


def _timeout_of(found: Found, frames: Sequence[types.FrameType]) -> tuple[bool, float | None]:
    """(whether the wait takes a timeout at all, its value in seconds when it has one)."""
    if found.in_c:
        return found.c_timeout is not None, found.c_timeout
    timed = False
    values: list[float] = []
    for frame in frames[: found.depth + 1]:
        value = frame_variable(frame, "timeout", ends_with_wait=True)
        if value is not MISSING:
            timed = True
            if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
                values.append(float(value))
    return timed, (max(values) if values else None)


def _waits_in_a_loop(frames: Sequence[types.FrameType]) -> bool:
    """Whether the innermost frame the user wrote makes its call from inside a `while` or `for`."""
    for frame in frames:
        if not is_library_file(frame.f_code.co_filename):
            return in_loop(frame.f_code, frame.f_lineno or frame.f_code.co_firstlineno)
    return False


_by_stack: dict[Hashable, BlockedOn] = {}  # verdicts that depend on code locations alone, by stack


def classify_or_running(frames: Sequence[types.FrameType]) -> BlockedOn:
    blocked = classify(frames)
    if blocked is not None:
        return blocked
    context = context_of(frames)
    return RUNNING if context is None else BlockedOn("running", "running", {}, context)


def context_of(frames: Sequence[types.FrameType]) -> str | None:
    for depth, frame in enumerate(frames):
        context = CONTEXTS.get(code_key(frame))
        if context is not None:
            return POOL_JOB if context == POOL_WORKER and depth > 0 else context
    return None
