"""The one snapshot model: every source produces `Unit`s, every analysis and front end reads them.

A unit is plain data (code locations, names, numbers). It never holds a frame, so a snapshot keeps no
locals alive; the only live link is an optional weak reference used to tell "the same thread" from
"a new thread that reused its ident".
"""

from __future__ import annotations

import enum
import linecache
import weakref
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field

from looseends._library import is_library_file, short_path

__all__ = [
    "DESTROYED_LAST",
    "GONE",
    "GONE_AFTER_COLLECTION",
    "PAUSED",
    "RUNNING",
    "BlockedOn",
    "Frame",
    "Kind",
    "Origin",
    "Snapshot",
    "Unit",
    "first_user_frame",
]


class Kind(enum.StrEnum):
    """What sort of concurrency unit this is."""

    THREAD = "thread"
    TASK = "task"
    PROCESS = "process"
    GOROUTINE = "goroutine"
    GREENLET = "greenlet"


MAX_SOURCE = 300  # characters of a source line shown: enough for any line a person would read


@dataclass(frozen=True, slots=True)
class Frame:
    """One code location: file, line, qualified function name and module.

    A frame read from input data (a JSON report, a Go dump) is not `local`: its file names a place on
    another machine, or anything an attacker chose, so its source line is the one the data carried (if
    any) and no local file is ever opened for it.
    """

    filename: str
    lineno: int
    function: str
    module: str = ""
    local: bool = field(default=True, compare=False)
    given_source: str = field(default="", compare=False)
    given_library: bool | None = field(default=None, compare=False)  # as judged where the frame was read
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Stacks are hashed to group units (100,000 tasks share a few stacks): hash each location once.
        object.__setattr__(self, "_hash", hash((self.filename, self.lineno, self.function, self.module)))

    def __hash__(self) -> int:
        return self._hash

    @property
    def location(self) -> str:
        return f"{short_path(self.filename)}:{self.lineno}"

    @property
    def place(self) -> str:
        """Where, with no machine's paths in it: `app/jobs.py:12` for the user's code, the qualified name
        (`queue.Queue.put`) for library code, whose files and lines differ between installations."""
        return self.qualified_name if self.is_library else self.location

    @property
    def qualified_name(self) -> str:
        """`module.Qualname`, the form ignore rules match against."""
        return f"{self.module}.{self.function}" if self.module else self.function

    @property
    def is_library(self) -> bool:
        """Whether users did not write it: judged by the process that read the frame when it said (another
        interpreter's standard library lies elsewhere than ours), else here, by its file."""
        return is_library_file(self.filename) if self.given_library is None else self.given_library

    def source_line(self) -> str:
        if not self.local:
            return self.given_source
        return linecache.getline(self.filename, self.lineno).strip()[:MAX_SOURCE]

    def as_dict(self) -> dict[str, object]:
        return {
            "file": self.filename,
            "line": self.lineno,
            "function": self.function,
            "module": self.module,
            "source": self.source_line(),
            "library": self.is_library,
        }


def first_user_frame(frames: tuple[Frame, ...]) -> Frame | None:
    """The innermost frame the user wrote, or the innermost frame of all when there is none."""
    for frame in frames:
        if not frame.is_library:
            return frame
    return frames[0] if frames else None


@dataclass(frozen=True, slots=True)
class BlockedOn:
    """What a unit is waiting for, as a stable `code` plus words for humans.

    `context` names the standard-library machinery around the wait (a Timer, a server's
    serve_forever, a pool worker, an event loop): it turns "Event.wait" into "a timer never cancelled".
    """

    code: str
    description: str
    detail: Mapping[str, int | float | str] = field(default_factory=dict)
    context: str | None = None

    @property
    def is_running(self) -> bool:
        return self.code == "running"

    @property
    def left_to_the_collector(self) -> bool:
        """Only looseends' forced collection stopped it: gone now, reported as it was last seen."""
        return self.detail.get(GONE) == GONE_AFTER_COLLECTION


RUNNING = BlockedOn("running", "running")
# `BlockedOn.detail[DESTROYED_LAST]` marks the live summary of tasks the collector destroyed while pending
# (seconds since the last one): they no longer exist, so they are never live units and have no age.
DESTROYED_LAST = "destroyed_last_s_ago"
# `BlockedOn.detail[PAUSED]` marks a task whose event loop could not take a step while it was looked at
# (anyio's pytest plugin, between two calls into its run): runnable, or sleeping until a deadline, it
# may be about to finish, and no check can tell. Checks leave such units unjudged.
PAUSED = "paused"
# `BlockedOn.detail[GONE] == GONE_AFTER_COLLECTION` marks a unit that only the forced collection stopped.
GONE, GONE_AFTER_COLLECTION = "gone", "collected"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a unit was created: the creating call's stack (innermost first) and by which unit."""

    frames: tuple[Frame, ...]
    creator: str | None = None
    created_at: float | None = None  # time.monotonic() at creation
    during: str | None = None  # the check (or test) that was running when it was created

    @property
    def site(self) -> Frame | None:
        return first_user_frame(self.frames)

    @property
    def user_frames(self) -> tuple[Frame, ...]:
        return tuple(f for f in self.frames if not f.is_library)


@dataclass(frozen=True, slots=True)
class Unit:
    """One live thread, task, process or goroutine, reduced to data."""

    kind: Kind
    key: Hashable
    name: str
    ident: int | None = None
    stack: tuple[Frame, ...] = ()  # innermost first
    blocked_on: BlockedOn = RUNNING
    origin: Origin | None = None
    daemon: bool | None = None
    native_id: int | None = None
    target: str | None = None
    thread: str | None = None  # for tasks: the thread whose loop runs them
    proof: str | None = (
        None  # why it is stuck forever, when reachability proved it (see sources.reachability)
    )
    count: int = 1  # identical units this one stands for: aggregated Go profiles list a stack once
    ref: weakref.ref[object] | None = field(default=None, compare=False, repr=False)

    def age(self, now: float) -> float | None:
        if self.origin is None or self.origin.created_at is None or self.destroyed:
            return None
        return max(0.0, now - self.origin.created_at)

    @property
    def destroyed(self) -> bool:
        """Whether this stands for tasks that no longer exist (destroyed while pending)."""
        return DESTROYED_LAST in self.blocked_on.detail

    @property
    def top(self) -> Frame | None:
        return self.stack[0] if self.stack else None

    def same_object(self, other: Unit) -> bool:
        """True when both describe one live object (not merely a reused ident)."""
        if self.key != other.key:
            return False
        if self.ref is None or other.ref is None:
            return self.ref is other.ref
        obj = self.ref()
        return obj is not None and obj is other.ref()


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every unit seen at one moment, plus what the sources could not read."""

    units: tuple[Unit, ...]
    taken_at: float  # time.monotonic()
    errors: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.units)
