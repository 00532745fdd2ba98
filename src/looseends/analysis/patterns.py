"""Leak patterns: the names our reports give to a stuck unit, with the usual fix, in one line each.

The vocabulary comes from Go's leak literature (forgotten sender, abandoned receiver, ...); each
pattern is chosen from what the unit is blocked on and the machinery around the wait.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

from looseends.codes import pattern_code
from looseends.model import BlockedOn

__all__ = ["PATTERNS", "Pattern", "pattern_for"]


@dataclass(frozen=True, slots=True)
class Pattern:
    code: str
    name: str
    why: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "name": self.name, "why": self.why, "fix": self.fix}


FORGOTTEN_SENDER = Pattern(
    "forgotten-sender",
    "forgotten sender",
    "it sends into a full queue (or a channel) that nobody will ever take from: the receiver has left",
    "make the buffer big enough for every result, or stop the senders when the receiver gives up",
)
ABANDONED_RECEIVER = Pattern(
    "abandoned-receiver",
    "abandoned receiver",
    "it waits on an empty queue (or a channel) that nobody will ever fill or close",
    "send a sentinel or close the channel when the producers are done",
)
LOOP_NEVER_STOPPED = Pattern(
    "loop-never-stopped",
    "loop never stopped",
    "it sleeps, most likely in a loop that nothing tells to stop",
    "check a stop Event in the loop (threads) or cancel the task on shutdown (asyncio)",
)
TIMER_NEVER_CANCELLED = Pattern(
    "timer-never-cancelled",
    "timer never cancelled",
    "a threading.Timer is still waiting out its interval",
    "call timer.cancel() and timer.join() when the delayed call is no longer wanted",
)
POOL_NEVER_SHUT_DOWN = Pattern(
    "pool-never-shut-down",
    "pool never shut down",
    "an executor's worker is idle, waiting for work that will never come",
    "use the executor in a `with` block, or call shutdown() when done",
)
SERVER_NEVER_SHUT_DOWN = Pattern(
    "server-never-shut-down",
    "server never shut down",
    "a server is still polling for connections",
    "call server.shutdown() and server.server_close(), or serve inside a `with` block",
)
EVENT_LOOP_NEVER_STOPPED = Pattern(
    "event-loop-never-stopped",
    "event loop never stopped",
    "an event loop runs in this thread, idle, waiting for work",
    "loop.call_soon_threadsafe(loop.stop), then join the thread and close the loop",
)
EVENT_NEVER_SET = Pattern(
    "event-never-set",
    "event never set",
    "it waits for an Event that nobody sets",
    "set the event on every shutdown path, or wait with a timeout",
)
LOCK_NEVER_RELEASED = Pattern(
    "lock-never-released",
    "lock never released",
    "it waits for a lock that another unit holds and never releases",
    "release on every path (`with lock:`, `defer mu.Unlock()`); take locks in one fixed order",
)
CONDITION_NEVER_SIGNALLED = Pattern(
    "condition-never-signalled",
    "condition never signalled",
    "it waits on a Condition that nobody notifies",
    "notify on every path that changes the state, and wait with a predicate and a timeout",
)
WAIT_ON_STUCK_UNIT = Pattern(
    "wait-on-stuck-unit",
    "waiting on another unit",
    "it waits for another thread or task to finish, which does not",
    "fix the unit it waits for (see its own group), or cancel it when giving up",
)
STUCK_IO = Pattern(
    "stuck-io",
    "stuck I/O",
    "it waits on a socket or file with no timeout",
    "set a timeout, or shut the socket down from the side that gives up",
)

CHILD_NEVER_STOPPED = Pattern(
    "child-never-stopped",
    "child process never stopped",
    "a child process is still running and nobody will wait for it",
    "terminate() or kill() it, then wait(); or start it with `with subprocess.Popen(...)`",
)
ZOMBIE = Pattern(
    "zombie",
    "child never waited for",
    "a child process exited but was never waited for: it stays a zombie in the process table",
    "call wait() (or join() for multiprocessing), or use subprocess.run",
)

# The fix depends on how the child was started (`blocked_on.detail["spawner"]`, see sources/_spawns).
_PROCESS_FIXES: Mapping[tuple[str, str], str] = {
    ("child-never-stopped", "multiprocessing"): (
        "terminate() it, then join(); better, give its loop a stop Event (or a sentinel on its queue) "
        "that every shutdown path sets, then join()"
    ),
    ("child-never-stopped", "os.fork"): (
        "os.kill(pid, signal.SIGTERM), then os.waitpid(pid, 0); and make the child os._exit() when done"
    ),
    ("child-never-stopped", "os.posix_spawn"): "os.kill(pid, signal.SIGTERM), then os.waitpid(pid, 0)",
    ("zombie", "subprocess"): (
        "call wait() on the Popen, or use subprocess.run or `with subprocess.Popen(...)`"
    ),
    ("zombie", "multiprocessing"): "call join() on the Process (close() it after)",
    ("zombie", "os.fork"): "call os.waitpid(pid, 0) for the child",
    ("zombie", "os.posix_spawn"): "call os.waitpid(pid, 0) for the child",
}

WAIT_ON_NOTHING = Pattern(
    "wait-on-nothing",
    "wait on nothing",
    "it waits on a nil channel or an empty select: nothing can ever wake it",
    "make the channel before use, and give every select a case that can fire",
)
SELECT_WITHOUT_WAY_OUT = Pattern(
    "select-without-way-out",
    "select with no way out",
    "it waits in a select none of whose cases will ever fire",
    "add a case on ctx.Done() (or a stop channel) so the goroutine can leave",
)

POLLS_AND_NEVER_EXITS = Pattern(
    "polls-and-never-exits",
    "polls and never exits",
    "it waits with a timeout inside a loop: it wakes up regularly, and each time chooses to wait again",
    "set what it checks for (a stop Event or flag) on every shutdown path, then join it",
)
POOL_LEFT_TO_THE_COLLECTOR = Pattern(
    "pool-left-to-the-collector",
    "executor never shut down",
    "its workers stay until the garbage collector happens to run: a reference cycle holds the executor, "
    "and only looseends' own collection stopped them",
    "use the executor in a `with` block, or call shutdown() when done",
)
LEFT_TO_THE_COLLECTOR = Pattern(
    "left-to-the-collector",
    "stopped only by the garbage collector",
    "it stopped only when looseends forced a garbage collection: without one it lingers until a "
    "collection happens to run",
    "stop it explicitly (shutdown(), close(), a stop Event) instead of relying on its owner being collected",
)

# Patterns that need evidence the stack alone does not give.
_NEEDS_A_LOOP = frozenset({"loop-never-stopped"})  # a one-shot sleep(5) is no loop nobody stops
# Waits that end when someone acts: with a timeout, the unit comes back on its own each time.
_WAITS_FOR_SOMEONE = frozenset(
    {
        "event-never-set",
        "condition-never-signalled",
        "abandoned-receiver",
        "forgotten-sender",
        "lock-never-released",
    }
)

_BY_CONTEXT: Mapping[str, Pattern] = {
    "threading.Timer": TIMER_NEVER_CANCELLED,
    "ThreadPoolExecutor worker": POOL_NEVER_SHUT_DOWN,
    "socketserver serve_forever": SERVER_NEVER_SHUT_DOWN,
    "asyncio server": SERVER_NEVER_SHUT_DOWN,
    "asyncio event loop": EVENT_LOOP_NEVER_STOPPED,
}

PATTERNS: Mapping[str, Pattern] = {
    pattern.code: pattern
    for pattern in (
        FORGOTTEN_SENDER,
        ABANDONED_RECEIVER,
        LOOP_NEVER_STOPPED,
        TIMER_NEVER_CANCELLED,
        POOL_NEVER_SHUT_DOWN,
        SERVER_NEVER_SHUT_DOWN,
        EVENT_LOOP_NEVER_STOPPED,
        EVENT_NEVER_SET,
        LOCK_NEVER_RELEASED,
        CONDITION_NEVER_SIGNALLED,
        WAIT_ON_STUCK_UNIT,
        STUCK_IO,
        CHILD_NEVER_STOPPED,
        ZOMBIE,
        WAIT_ON_NOTHING,
        SELECT_WITHOUT_WAY_OUT,
        POLLS_AND_NEVER_EXITS,
        POOL_LEFT_TO_THE_COLLECTOR,
        LEFT_TO_THE_COLLECTOR,
    )
}


def pattern_for(blocked_on: BlockedOn) -> Pattern | None:
    """A unit only the forced collection stopped says so first; then the machinery around the wait (a
    Timer's Event.wait is a timer never cancelled); then the code's own entry in the vocabulary table
    (looseends.codes), when the evidence supports it: a sleep needs a loop around it to be a loop nobody
    stops, and a wait with a timeout comes back by itself, so it is a poller (in a loop) or nothing."""
    detail = blocked_on.detail
    if blocked_on.left_to_the_collector:
        pooled = blocked_on.context == "ThreadPoolExecutor worker"
        return POOL_LEFT_TO_THE_COLLECTOR if pooled else LEFT_TO_THE_COLLECTOR
    if blocked_on.context is not None and blocked_on.context in _BY_CONTEXT:
        return _BY_CONTEXT[blocked_on.context]
    code = pattern_code(blocked_on.code)
    if code is None:
        return None
    looped = bool(detail.get("loop"))
    if code in _NEEDS_A_LOOP and not blocked_on.code.startswith("go."):
        return PATTERNS[code] if looped else None
    if "timeout" in detail and code in _WAITS_FOR_SOMEONE:
        return POLLS_AND_NEVER_EXITS if looped else None
    fix = _PROCESS_FIXES.get((code, str(detail.get("spawner"))))
    return PATTERNS[code] if fix is None else replace(PATTERNS[code], fix=fix)
