"""Every blocked-on code: what it means and which leak pattern it suggests. The one vocabulary table.

Sources set `BlockedOn.code` to one of these; `analysis.patterns` turns a code into a pattern; the JSON
schema (docs/json-schema.md) lists exactly these codes, and a test keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["CODES", "pattern_code", "provable"]


@dataclass(frozen=True, slots=True)
class Code:
    code: str
    meaning: str
    pattern: str | None = None  # a pattern code from analysis.patterns, when the wait suggests one
    provable: bool = False  # a wait on an in-process primitive: reachability can prove it stuck


def _table(*codes: Code) -> Mapping[str, Code]:
    return {code.code: code for code in codes}


CODES: Mapping[str, Code] = _table(
    Code("running", "running, or in a call looseends does not recognise"),
    # Python threads (and the blocking calls a task makes).
    Code("queue.put", "queue.Queue.put on a full queue", "forgotten-sender", provable=True),
    Code(
        "queue.get",
        "queue.Queue.get or SimpleQueue.get on an empty queue",
        "abandoned-receiver",
        provable=True,
    ),
    Code("queue.join", "queue.Queue.join: waiting for task_done() calls", provable=True),
    Code("event.wait", "threading.Event.wait", "event-never-set", provable=True),
    Code("lock.acquire", "threading.Lock.acquire", "lock-never-released", provable=True),
    Code("rlock.acquire", "threading.RLock.acquire", "lock-never-released", provable=True),
    Code(
        "condition.wait", "threading.Condition.wait or wait_for", "condition-never-signalled", provable=True
    ),
    Code("semaphore.acquire", "threading.Semaphore.acquire", "lock-never-released", provable=True),
    Code("thread.join", "threading.Thread.join", "wait-on-stuck-unit"),
    Code("barrier.wait", "threading.Barrier.wait", provable=True),
    Code("future.result", "concurrent.futures.Future.result"),
    Code("future.wait", "concurrent.futures.wait"),
    Code("time.sleep", "time.sleep", "loop-never-stopped"),
    Code("selector.select", "select, poll, epoll or a selectors selector: an idle event loop or server"),
    Code("socket.accept", "socket.accept", "stuck-io"),
    Code("socket.recv", "socket.recv and its variants", "stuck-io"),
    Code("socket.connect", "socket.connect or create_connection", "stuck-io"),
    Code("socket.send", "socket.sendall", "stuck-io"),
    Code("subprocess.wait", "waiting for a child process: Popen.wait, communicate, os.waitpid"),
    Code("io.read", "os.read on a pipe or file descriptor", "stuck-io"),
    Code("signal.wait", "signal.pause or sigwait"),
    Code("os.wait", "a system call the kernel reports and no Python call names (a write, a futex in C)"),
    # asyncio tasks.
    Code("asyncio.sleep", "asyncio.sleep", "loop-never-stopped"),
    Code("asyncio.wait", "asyncio.wait", "wait-on-stuck-unit"),
    Code("asyncio.wait_for", "asyncio.wait_for"),
    Code("asyncio.queue.put", "asyncio.Queue.put on a full queue", "forgotten-sender", provable=True),
    Code("asyncio.queue.get", "asyncio.Queue.get on an empty queue", "abandoned-receiver", provable=True),
    Code("asyncio.queue.join", "asyncio.Queue.join", provable=True),
    Code("asyncio.event.wait", "asyncio.Event.wait", "event-never-set", provable=True),
    Code("asyncio.lock.acquire", "asyncio.Lock.acquire", "lock-never-released", provable=True),
    Code(
        "asyncio.condition.wait",
        "asyncio.Condition.wait or wait_for",
        "condition-never-signalled",
        provable=True,
    ),
    Code("asyncio.semaphore.acquire", "asyncio.Semaphore.acquire", "lock-never-released", provable=True),
    Code("asyncio.barrier.wait", "asyncio.Barrier.wait", provable=True),
    Code("asyncio.stream.read", "reading an asyncio StreamReader", "stuck-io"),
    Code("asyncio.stream.drain", "asyncio StreamWriter.drain"),
    Code("asyncio.subprocess.wait", "waiting for an asyncio subprocess"),
    Code("asyncio.socket.recv", "loop.sock_recv", "stuck-io"),
    Code("asyncio.socket.accept", "loop.sock_accept", "stuck-io"),
    Code("asyncio.server", "asyncio Server.serve_forever"),
    Code("asyncio.taskgroup", "leaving an asyncio.TaskGroup: waiting for its tasks", "wait-on-stuck-unit"),
    Code("asyncio.task", "awaiting another task", "wait-on-stuck-unit", provable=True),
    Code("asyncio.gather", "awaiting an asyncio.gather", "wait-on-stuck-unit"),
    Code("asyncio.future", "awaiting a bare Future", provable=True),
    Code("asyncio.loop-closed", "pending on an event loop that is closed: it can never run again"),
    # trio tasks (and anyio on trio). None is provable: proofs do not walk trio's task tree.
    Code("trio.sleep", "trio.sleep or sleep_until (anyio.sleep on trio)", "loop-never-stopped"),
    Code("trio.sleep_forever", "trio.sleep_forever: parked until cancelled"),
    Code("trio.event.wait", "trio.Event.wait (anyio.Event on trio)", "event-never-set"),
    Code("trio.lock.acquire", "trio.Lock or StrictFIFOLock acquire", "lock-never-released"),
    Code("trio.semaphore.acquire", "trio.Semaphore or CapacityLimiter acquire"),
    Code("trio.condition.wait", "trio.Condition.wait", "condition-never-signalled"),
    Code("trio.channel.send", "trio memory channel send with a full buffer", "forgotten-sender"),
    Code("trio.channel.receive", "trio memory channel receive on an empty channel", "abandoned-receiver"),
    Code("trio.io", "trio waiting for a socket or file (wait_readable, wait_writable)", "stuck-io"),
    Code(
        "trio.nursery",
        "leaving a trio nursery (or anyio task group): waiting for its tasks",
        "wait-on-stuck-unit",
    ),
    Code("trio.wait", "suspended in a trio wait looseends does not recognise"),
    Code("anyio.stream.send", "anyio memory object stream send with a full buffer", "forgotten-sender"),
    Code(
        "anyio.stream.receive", "anyio memory object stream receive on an empty stream", "abandoned-receiver"
    ),
    # gevent greenlets (and threads, under monkey-patching). None is provable: proofs do not walk greenlets.
    Code("gevent.sleep", "gevent.sleep (time.sleep under monkey-patching)", "loop-never-stopped"),
    Code("gevent.queue.put", "gevent Queue.put (queue.Queue under monkey-patching)", "forgotten-sender"),
    Code("gevent.queue.get", "gevent Queue.get (queue.Queue under monkey-patching)", "abandoned-receiver"),
    Code("gevent.queue.join", "gevent Queue.join: waiting for task_done() calls"),
    Code("gevent.event.wait", "gevent Event.wait (threading.Event under monkey-patching)", "event-never-set"),
    Code("gevent.result.get", "gevent AsyncResult.get or wait: a result nobody sets", "event-never-set"),
    Code("gevent.lock.acquire", "gevent Semaphore or Lock acquire (threading.Lock under monkey-patching)"),
    Code("gevent.join", "waiting for another greenlet to finish", "wait-on-stuck-unit"),
    Code("gevent.wait", "a greenlet suspended in gevent, in a wait looseends does not recognise"),
    # Child processes.
    Code("process.running", "a child process still running (or stopped)", "child-never-stopped"),
    Code("process.zombie", "a child process that exited and was never waited for", "zombie"),
    # Go goroutines, from their wait states.
    Code("go.chan.send", "Go: chan send", "forgotten-sender"),
    Code("go.chan.receive", "Go: chan receive", "abandoned-receiver"),
    Code("go.nil-chan", "Go: send or receive on a nil channel", "wait-on-nothing"),
    Code("go.select", "Go: select", "select-without-way-out"),
    Code("go.select.empty", "Go: select with no cases", "wait-on-nothing"),
    Code("go.mutex.lock", "Go: sync.Mutex or RWMutex lock (semacquire)", "lock-never-released"),
    Code("go.waitgroup.wait", "Go: sync.WaitGroup.Wait", "wait-on-stuck-unit"),
    Code("go.cond.wait", "Go: sync.Cond.Wait", "condition-never-signalled"),
    Code("go.sleep", "Go: time.Sleep", "loop-never-stopped"),
    Code("go.io", "Go: IO wait", "stuck-io"),
    Code("go.syscall", "Go: in a system call"),
    Code("go.unknown", "Go: a profile record whose stack does not say what it waits for"),
)
# Go prints other states too (GC assist wait, finalizer wait, ...): they become `go.` plus the state with
# dashes for spaces, outside this table, with no pattern.
GO_OTHER_STATE_PREFIX = "go."


def provable(code: str) -> bool:
    found = CODES.get(code)
    return found is not None and found.provable


def pattern_code(code: str) -> str | None:
    found = CODES.get(code)
    return found.pattern if found is not None else None
