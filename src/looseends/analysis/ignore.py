"""Ignore rules: composable predicates on units, and the few built-in ones for runtime helpers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from looseends.analysis.glob import glob_match
from looseends.model import PAUSED, Kind, Unit

__all__ = [
    "BUILTIN_IGNORES",
    "GO_IGNORES",
    "IgnoreRule",
    "idle_pool_worker",
    "ignore_any_function",
    "ignore_command",
    "ignore_created_at",
    "ignore_if",
    "ignore_kind",
    "ignore_name",
    "ignore_top_function",
]


@dataclass(frozen=True, slots=True)
class IgnoreRule:
    """A named predicate: units it matches are never reported."""

    description: str
    matches: Callable[[Unit], bool]

    def __call__(self, unit: Unit) -> bool:
        try:
            return bool(self.matches(unit))
        except Exception:  # a broken user predicate must not hide or crash the report
            return False


def ignore_top_function(*functions: str) -> IgnoreRule:
    """Units whose innermost frame is one of `functions` (`module.Qualname` or bare `Qualname`)."""
    wanted = frozenset(functions)
    return IgnoreRule(
        f"top function in {sorted(wanted)}",
        lambda unit: unit.top is not None and bool({unit.top.qualified_name, unit.top.function} & wanted),
    )


def ignore_any_function(*functions: str) -> IgnoreRule:
    """Units with any of `functions` anywhere in their stack."""
    wanted = frozenset(functions)
    return IgnoreRule(
        f"any function in {sorted(wanted)}",
        lambda unit: any({f.qualified_name, f.function} & wanted for f in unit.stack),
    )


def ignore_created_at(*patterns: str) -> IgnoreRule:
    """Units created at a location matching a glob (`*/helpers.py:12`, `*/helpers.py:*`) or by a function.

    Every frame of the creation stack counts, library ones too: `*/concurrent/futures/*` matches all pools.
    """

    def matches(unit: Unit) -> bool:
        if unit.origin is None:
            return False
        for frame in unit.origin.frames:
            candidates = (
                f"{frame.filename}:{frame.lineno}",
                frame.location,
                frame.function,
                frame.qualified_name,
            )
            if any(glob_match(c, p) for c in candidates for p in patterns):
                return True
        return False

    return IgnoreRule(f"created at {list(patterns)}", matches)


def ignore_name(*globs: str) -> IgnoreRule:
    """Units whose name matches a glob, such as `asyncio_*`."""
    return IgnoreRule(
        f"name matches {list(globs)}", lambda unit: any(glob_match(unit.name, g) for g in globs)
    )


def ignore_kind(*kinds: Kind | str) -> IgnoreRule:
    """Every unit of these kinds (`"thread"`, `"task"`, ...)."""
    wanted = frozenset(Kind(k) for k in kinds)
    return IgnoreRule(f"kind in {sorted(wanted)}", lambda unit: unit.kind in wanted)


def ignore_command(*globs: str) -> IgnoreRule:
    """Child processes whose command line matches a glob, such as `*my-test-server*`."""
    return IgnoreRule(
        f"command matches {list(globs)}",
        lambda unit: (
            unit.kind is Kind.PROCESS
            and unit.target is not None
            and any(glob_match(unit.target, g) for g in globs)
        ),
    )


def ignore_if(predicate: Callable[[Unit], bool], description: str = "custom predicate") -> IgnoreRule:
    """Units for which `predicate(unit)` is true."""
    return IgnoreRule(description, predicate)


def _module_prefix(*prefixes: str) -> Callable[[Unit], bool]:
    return lambda unit: any(f.module.startswith(prefixes) for f in unit.stack)


def _go_top(unit: Unit, *functions: str) -> bool:
    return unit.kind is Kind.GOROUTINE and unit.top is not None and unit.top.function in functions


def _go_state(unit: Unit) -> str:
    return str(unit.blocked_on.detail.get("state", ""))


# goleak's default filters, for goroutine dumps (go.uber.org/goleak options.go).
GO_IGNORES: tuple[IgnoreRule, ...] = (
    # The testing package's own goroutines wait on channels while tests run (isTestStack).
    IgnoreRule(
        "testing package goroutines (goleak isTestStack)",
        lambda unit: (
            _go_top(
                unit,
                "testing.RunTests",
                "testing.(*T).Run",
                "testing.(*T).Parallel",
                "testing.runFuzzing",
                "testing.runFuzzTests",
            )
            and _go_state(unit).startswith("chan receive")
        ),
    ),
    # cgo leaves a goroutine in a syscall at runtime.goexit (golang/go#16714; goleak isSyscallStack).
    IgnoreRule(
        "cgo syscall goroutine (goleak isSyscallStack)",
        lambda unit: _go_top(unit, "runtime.goexit") and _go_state(unit).startswith("syscall"),
    ),
    # Importing os/signal, or signal.Notify, starts runtime goroutines (goleak isStdLibStack).
    IgnoreRule(
        "os/signal goroutines (goleak isStdLibStack)",
        lambda unit: (
            _go_top(unit, "os/signal.signal_recv", "os/signal.loop")
            or (unit.kind is Kind.GOROUTINE and any(f.function == "runtime.ensureSigM" for f in unit.stack))
        ),
    ),
    # runtime/trace's reader (goleak isTraceStack).
    IgnoreRule("runtime trace reader (goleak isTraceStack)", lambda unit: _go_top(unit, "runtime.ReadTrace")),
)

# Runtime and framework helpers that are not the program's leaks. Each says why it is here.
BUILTIN_IGNORES: tuple[IgnoreRule, ...] = (
    # A task of an event loop that was paused while the check looked (model.PAUSED) cannot be judged:
    # claim nothing about it.
    IgnoreRule(
        "tasks of an event loop paused during the check", lambda unit: PAUSED in unit.blocked_on.detail
    ),
    # looseends' own inspection endpoint (looseends.serve), for as long as the program serves it.
    ignore_name("looseends-http", "looseends-http-request"),
    # pytest-xdist talks to its controller through execnet's I/O threads for the whole session.
    IgnoreRule("execnet I/O threads (pytest-xdist)", _module_prefix("execnet.")),
    # Debuggers (PyCharm/VS Code's pydevd) run helper threads for as long as they are attached.
    IgnoreRule("debugger threads (pydevd)", _module_prefix("pydevd", "_pydevd", "_pydev_")),
    # anyio's pytest plugin runs every test through one long-lived runner task per event loop; the
    # loop's shutdown cancels it by design.
    ignore_any_function(
        "anyio._backends._asyncio.TestRunner._run_tests_and_fixtures",
        "anyio._backends._trio.TestRunner._run_tests_and_fixtures",
    ),
    # multiprocessing starts one resource tracker (and, with that start method, one forkserver) per
    # program, on first use, and keeps it until exit: infrastructure, not the first user's leak.
    ignore_command("*multiprocessing.resource_tracker*", "*multiprocessing.forkserver*"),
    # pytest-xdist's controller runs its workers as children through execnet for the whole session.
    ignore_command("*import sys;exec(eval(sys.stdin.readline()))*"),
    *GO_IGNORES,
    # A pool worker that only looseends' forced collection stopped, started with no code of the user's
    # on the creating stack (a framework's own machinery: asgiref's async_to_sync behind Django's async
    # tests): it is gone, and nothing the user wrote could have shut its executor down.
    IgnoreRule(
        "gone in a collection, started by library code alone",
        lambda unit: (
            unit.blocked_on.left_to_the_collector
            and unit.origin is not None
            and bool(unit.origin.frames)
            and not unit.origin.user_frames
        ),
    ),
    # A loop's default executor lives until loop.shutdown_default_executor(), which asyncio.run calls;
    # its idle workers are the loop's, not the code that happened to call run_in_executor first. A worker
    # inside a job that does not return is a leak: closing the loop would wait for it forever.
    IgnoreRule(
        "idle default-executor workers (asyncio, uvloop)",
        lambda unit: (
            (glob_match(unit.name, "asyncio_*") or glob_match(unit.name, "uvloop_*"))
            and idle_pool_worker(unit)
        ),
    ),
)


def idle_pool_worker(unit: Unit) -> bool:
    """A ThreadPoolExecutor worker waiting for work (in the pool's own loop, not inside a job)."""
    return (
        unit.blocked_on.context == "ThreadPoolExecutor worker"
        and unit.top is not None
        and unit.top.qualified_name == "concurrent.futures.thread._worker"
    )
