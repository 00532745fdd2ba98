"""What a stack of live frames is waiting on: a family of small recognisers, one per wait API.

Frames come innermost first. The innermost run of standard-library frames is read outwards and the
outermost wait API in it wins, because that is the call the user made: `Condition.wait` inside
`Queue.put` is reported as `Queue.put`. When the innermost frame is calling into C (`lock.acquire()`,
`time.sleep()`), `_ccall` names the builtin. Frames further out may name the machinery around the wait
(a Timer, `serve_forever`, a pool worker, an event loop), which later turns into a leak pattern.

Recognisers read a few attributes of the waiting object (a queue's maxsize and length), statically and
without taking its locks, so a snapshot can never deadlock on the program it inspects.
"""

from __future__ import annotations

import inspect
import types
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass

from looseends.model import RUNNING, BlockedOn, is_library_file
from looseends.sources._ccall import called_name
from looseends.sources._frames import code_key

Detail = dict[str, int | float | str]
Describer = Callable[[types.FrameType], tuple[str, Detail]]

_MISSING = object()


def _attr(obj: object, name: str) -> object:
    try:
        return inspect.getattr_static(obj, name, _MISSING)
    except Exception:
        return _MISSING


def _self(frame: types.FrameType) -> object:
    try:
        return frame.f_locals.get("self", _MISSING)
    except Exception:
        return _MISSING


def _length(obj: object) -> int | None:
    try:
        return len(obj)  # type: ignore[arg-type]
    except Exception:
        return None


def _nothing(frame: types.FrameType) -> tuple[str, Detail]:
    return "", {}


def _queue_state(container: str, full: bool) -> Describer:
    """A queue's maxsize and length, read without taking its mutex."""

    def describe(frame: types.FrameType) -> tuple[str, Detail]:
        queue = _self(frame)
        maxsize, size = _attr(queue, "maxsize"), _length(_attr(queue, container))
        if isinstance(maxsize, types.MemberDescriptorType | property):  # asyncio keeps it private
            maxsize = _attr(queue, "_maxsize")
        detail: Detail = {}
        if isinstance(maxsize, int):
            detail["maxsize"] = maxsize
        if size is not None:
            detail["size"] = size
        words = "queue full" if full else "queue empty"
        facts = ", ".join(f"{k}={v}" for k, v in detail.items())
        return (f"{words}, {facts}" if facts else words), detail

    return describe


def _named_thread(frame: types.FrameType) -> tuple[str, Detail]:
    name = _attr(_self(frame), "_name")
    return (f"thread {name!r}", {"thread": name}) if isinstance(name, str) else ("", {})


def _barrier(frame: types.FrameType) -> tuple[str, Detail]:
    parties = _attr(_self(frame), "_parties")
    return (f"parties={parties}", {"parties": parties}) if isinstance(parties, int) else ("", {})


def _popen(frame: types.FrameType) -> tuple[str, Detail]:
    pid = _attr(_self(frame), "pid")
    return (f"pid {pid}", {"pid": pid}) if isinstance(pid, int) else ("", {})


def _sleep_delay(frame: types.FrameType) -> tuple[str, Detail]:
    try:
        delay = frame.f_locals.get("delay")
    except Exception:
        return "", {}
    return (f"{delay} s", {"delay": delay}) if isinstance(delay, int | float) else ("", {})


@dataclass(frozen=True, slots=True)
class Wait:
    """One recognised wait API: a stable code, the name users know, and what to say about it."""

    code: str
    label: str
    describe: Describer = _nothing


# Waits written in Python, keyed by (module, qualified name) of the frame that does the waiting.
PYTHON_WAITS: Mapping[tuple[str, str], Wait] = {
    ("queue", "Queue.put"): Wait("queue.put", "queue.Queue.put", _queue_state("queue", full=True)),
    ("queue", "Queue.get"): Wait("queue.get", "queue.Queue.get", _queue_state("queue", full=False)),
    ("queue", "Queue.join"): Wait("queue.join", "queue.Queue.join"),
    ("threading", "Event.wait"): Wait("event.wait", "threading.Event.wait"),
    ("threading", "Condition.wait"): Wait("condition.wait", "threading.Condition.wait"),
    ("threading", "Condition.wait_for"): Wait("condition.wait", "threading.Condition.wait_for"),
    ("threading", "Semaphore.acquire"): Wait("semaphore.acquire", "threading.Semaphore.acquire"),
    ("threading", "Thread.join"): Wait("thread.join", "threading.Thread.join", _named_thread),
    ("threading", "Barrier.wait"): Wait("barrier.wait", "threading.Barrier.wait", _barrier),
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
        "asyncio.queue.put", "asyncio.Queue.put", _queue_state("_queue", full=True)
    ),
    ("asyncio.queues", "Queue.get"): Wait(
        "asyncio.queue.get", "asyncio.Queue.get", _queue_state("_queue", full=False)
    ),
    ("asyncio.queues", "Queue.join"): Wait("asyncio.queue.join", "asyncio.Queue.join"),
    ("asyncio.locks", "Event.wait"): Wait("asyncio.event.wait", "asyncio.Event.wait"),
    ("asyncio.locks", "Lock.acquire"): Wait("asyncio.lock.acquire", "asyncio.Lock.acquire"),
    ("asyncio.locks", "Condition.wait"): Wait("asyncio.condition.wait", "asyncio.Condition.wait"),
    ("asyncio.locks", "Condition.wait_for"): Wait("asyncio.condition.wait", "asyncio.Condition.wait_for"),
    ("asyncio.locks", "Semaphore.acquire"): Wait("asyncio.semaphore.acquire", "asyncio.Semaphore.acquire"),
    ("asyncio.locks", "Barrier.wait"): Wait("asyncio.barrier.wait", "asyncio.Barrier.wait"),
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
}

# Waits inside C, keyed by the qualified name `_ccall.called_name` gives for the call.
C_WAITS: Mapping[str, Wait] = {
    "_thread.lock.acquire": Wait("lock.acquire", "threading.Lock.acquire"),
    "_thread.RLock.acquire": Wait("rlock.acquire", "threading.RLock.acquire"),
    "time.sleep": Wait("time.sleep", "time.sleep"),
    "_queue.SimpleQueue.get": Wait("queue.get", "queue.SimpleQueue.get"),
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
}

# Frames further out that name the machinery a wait belongs to.
CONTEXTS: Mapping[tuple[str, str], str] = {
    ("threading", "Timer.run"): "threading.Timer",
    ("socketserver", "BaseServer.serve_forever"): "socketserver serve_forever",
    ("concurrent.futures.thread", "_worker"): "ThreadPoolExecutor worker",
    ("asyncio.base_events", "BaseEventLoop.run_forever"): "asyncio event loop",
    ("asyncio.base_events", "Server.serve_forever"): "asyncio server",
}


def _python_wait(module: str, qualname: str) -> Wait | None:
    if module == "selectors" and qualname.endswith(".select"):
        return Wait("selector.select", "selectors.select")
    return PYTHON_WAITS.get((module, qualname))


def classify(frames: Sequence[types.FrameType], stack: Hashable = None) -> BlockedOn | None:
    """What the innermost frames wait on; None when they are not in any wait this module knows.

    `stack` (the frames as `Frame` data) lets a verdict that depends on code locations alone (a Python
    wait API that reads no object state, as 100,000 tasks awaiting one Event are) be worked out once.
    """
    if stack is not None and (known := _by_stack.get(stack)) is not None:
        return known
    found: tuple[Wait, types.FrameType] | None = None
    found_in_c = False  # a C wait is named from its receiver object, not from the code location
    for depth, frame in enumerate(frames):
        wait = _python_wait(*code_key(frame))
        in_c = False
        if wait is None and depth == 0:
            name = called_name(frame)
            wait = C_WAITS.get(name) if name else None
            in_c = True
        if wait is not None:
            found, found_in_c = (wait, frame), in_c
        elif not is_library_file(frame.f_code.co_filename):
            break  # the user's code: the wait API (if any) ends here
    if found is None:
        return None
    wait, frame = found
    try:
        words, detail = wait.describe(frame)
    except Exception:  # a half-torn-down object must not break a snapshot
        words, detail = "", {}
    description = f"{wait.label} ({words})" if words else wait.label
    blocked = BlockedOn(wait.code, description, detail, context_of(frames))
    if stack is not None and not found_in_c and wait.describe is _nothing:
        if len(_by_stack) >= 4096:
            _by_stack.clear()
        _by_stack[stack] = blocked
    return blocked


_by_stack: dict[Hashable, BlockedOn] = {}  # verdicts that depend on code locations alone, by stack


def classify_or_running(frames: Sequence[types.FrameType]) -> BlockedOn:
    blocked = classify(frames)
    if blocked is not None:
        return blocked
    context = context_of(frames)
    return RUNNING if context is None else BlockedOn("running", "running", {}, context)


def context_of(frames: Sequence[types.FrameType]) -> str | None:
    for frame in frames:
        context = CONTEXTS.get(code_key(frame))
        if context is not None:
            return context
    return None
