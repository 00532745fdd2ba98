"""Go goroutine dumps, read into the same model: units of kind goroutine.

Accepted formats (each handled in its own branch below):

1. Tracebacks: `runtime.Stack(buf, true)`, pprof goroutine `debug=2`, the goroutineleak profile
   `debug=2`, panics and SIGQUIT crash output, Go 1.19 to 1.27+:

       goroutine 6 [chan send, 2 minutes, locked to thread]:
       goroutine 6 [chan send (leaked)]:                      (goroutineleak profile: proven by Go's GC)
       goroutine 29 [chan receive] {worker: ticker}:         (Go 1.27: pprof labels in the header)
       goroutine 8 gp=0x1c000 m=nil [chan send]:             (crash output)
       main.doJobs.func1(0x0, ...)                            (a frame: function and arguments ...
               /src/main.go:24 +0x45 fp=0x.. sp=0x.. pc=0x..  ... then its file:line)
       ...additional frames elided...
       created by main.doJobs in goroutine 1                  (Go 1.21+ names the creating goroutine)
               /src/main.go:22 +0x45
       [originating from goroutine 1]:                        (GODEBUG=tracebackancestors=N)

   Lines outside goroutine blocks (a panic message, `SIGQUIT: quit`, `PC=...`, register dumps such as
   `rax    0xca`) are skipped.
2. pprof `debug=1` (and goroutineleak `debug=1`), aggregated:

       goroutine profile: total 11
       5 @ 0x48c14a 0x418c9c 0x680dc5 0x493041
       # labels: {"worker":"ticker"}
       #	0x680dc4	main.doJobs.func1+0x44	/src/main.go:24

3. goleak's failure text, raw or inside `go test` logs (see `_goleak`): each goroutine is attributed to
   the test that reported it first, and keyed by the package run it came from.

A block that does not parse is reported with its line number in `Snapshot.errors` while the rest still
parses; text with no goroutine at all raises DumpParseError. Arbitrary bytes raise nothing else.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from looseends.errors import DumpParseError
from looseends.model import BlockedOn, Frame, Kind, Origin, Snapshot, Unit
from looseends.sources._goleak import MARKER, Section, goleak_sections

__all__ = ["PROVEN_BY_GO", "Record", "is_go_dump", "parse_go_dump", "record_units"]

_HEADER = re.compile(r"^goroutine (\d+)(?: gp=\S+ m=\S+(?: mp=\S+)?)? \[([^\]]*)\](?: \{(.*)\})?:\s*$")
_FILE_LINE = re.compile(r"^\t(.*?):(\d+)(?: \+0x[0-9a-f]+)?(?: .*)?$")
_CREATED = re.compile(r"^created by (\S+?)(?: in goroutine (\d+))?$")
_PROFILE = re.compile(r"^(goroutine|goroutineleak) profile: total (\d+)$")
_RECORD = re.compile(r"^(\d+) @(?: 0x[0-9a-f]+)+$")
_RECORD_FRAME = re.compile(r"^#\t0x[0-9a-f]+\t(\S+?)\+0x[0-9a-f]+\t+(.*?):(\d+)$")  # Go pads with tabs
_MINUTES = re.compile(r"^(\d+) minutes$")

# Wait states, as Go prints them, to (code, words): the same vocabulary as Python units.
_STATES = {
    "chan send": ("go.chan.send", "chan send"),
    "chan send (nil chan)": ("go.nil-chan", "chan send on a nil channel"),
    "chan receive": ("go.chan.receive", "chan receive"),
    "chan receive (nil chan)": ("go.nil-chan", "chan receive on a nil channel"),
    "select": ("go.select", "select"),
    "select (no cases)": ("go.select.empty", "select with no cases"),
    "sync.Mutex.Lock": ("go.mutex.lock", "sync.Mutex.Lock"),
    "sync.RWMutex.Lock": ("go.mutex.lock", "sync.RWMutex.Lock"),
    "sync.RWMutex.RLock": ("go.mutex.lock", "sync.RWMutex.RLock"),
    "semacquire": ("go.mutex.lock", "semacquire (a sync lock)"),
    "sync.WaitGroup.Wait": ("go.waitgroup.wait", "sync.WaitGroup.Wait"),
    "sync.Cond.Wait": ("go.cond.wait", "sync.Cond.Wait"),
    "sleep": ("go.sleep", "sleep"),
    "IO wait": ("go.io", "IO wait"),
    "syscall": ("go.syscall", "syscall"),
    "running": ("running", "running"),
    "runnable": ("running", "runnable"),
}
# Go's own frames that say what a goroutine in a profile (which has no states) is waiting for; the
# innermost one found wins. pprof debug=1 hides runtime frames, debug=0 keeps them.
_STACK_STATES = {
    "runtime.chansend1": "chan send",
    "runtime.chanrecv1": "chan receive",
    "runtime.chanrecv2": "chan receive",
    "runtime.selectgo": "select",
    "runtime.block": "select (no cases)",
    "internal/sync.runtime_SemacquireMutex": "sync.Mutex.Lock",
    "sync.(*Mutex).Lock": "sync.Mutex.Lock",
    "sync.runtime_SemacquireRWMutex": "sync.RWMutex.Lock",
    "sync.(*RWMutex).Lock": "sync.RWMutex.Lock",
    "sync.runtime_SemacquireRWMutexR": "sync.RWMutex.RLock",
    "sync.(*RWMutex).RLock": "sync.RWMutex.RLock",
    "sync.runtime_SemacquireWaitGroup": "sync.WaitGroup.Wait",
    "sync.(*WaitGroup).Wait": "sync.WaitGroup.Wait",
    "sync.runtime_notifyListWait": "sync.Cond.Wait",
    "sync.(*Cond).Wait": "sync.Cond.Wait",
    "time.Sleep": "sleep",
    "internal/poll.runtime_pollWait": "IO wait",
    "syscall.Syscall": "syscall",
    "syscall.Syscall6": "syscall",
    "runtime.goroutineProfileWithLabels": "running",  # the goroutine writing the profile
}
LEAKED = "(leaked)"
PROVEN_BY_GO = "Go's goroutineleak profile: the garbage collector found what it waits on unreachable"


@dataclass(slots=True)
class _Block:
    line: int
    ident: int
    state: str
    labels: str
    frames: list[Frame] = field(default_factory=list)
    creator: Frame | None = None
    creator_goroutine: int | None = None

    def add(self, frame: Frame | None, creator_goroutine: int | None, is_creator: bool) -> None:
        if is_creator:
            self.creator, self.creator_goroutine = frame, creator_goroutine
        elif frame is not None:
            self.frames.append(frame)


def parse_go_dump(text: str) -> Snapshot:
    """Units of kind goroutine from a Go dump in any accepted format (see the module docstring)."""
    errors: list[str] = []
    lines = text.replace("\r\n", "\n").split("\n")
    profile = next((m for m in map(_PROFILE.match, lines[:5]) if m), None)
    if profile is not None:
        leaked = profile.group(1) == "goroutineleak"
        units = list(record_units(_aggregated(lines, errors), leaked, "pprof debug=1", errors))
    elif MARKER in text and (sections := goleak_sections(lines)):
        units = _goleak_units(sections, errors)
    else:
        make = _Units().unit
        units = [make(block) for block in _tracebacks(lines, errors)]
    if not units and not errors:
        raise DumpParseError(
            "no goroutine found: expected a Go goroutine dump (runtime.Stack, pprof, panic, goleak)"
        )
    if not units:
        raise DumpParseError("no goroutine could be read: " + "; ".join(errors[:5]))
    return Snapshot(tuple(units), time.monotonic(), tuple(errors))


def is_go_dump(text: str) -> bool:
    head = text.lstrip()[:4096]
    return bool(
        re.search(r"^goroutine \d+ ", head, re.M) or _PROFILE.match(head.split("\n", 1)[0]) or MARKER in text
    )


def _goleak_units(sections: list[Section], errors: list[str]) -> list[Unit]:
    """A goroutine once, as the first test that reported it saw it (later tests of the same run see it
    again while it is still running); ids repeat only across package runs."""
    units: dict[tuple[str, int, int], Unit] = {}
    make = _Units().unit
    for section in sections:
        found: list[str] = []
        for block in _tracebacks(section.lines, found):
            key = ("goroutine", section.run, block.ident)
            if key not in units:
                units[key] = _attributed(make(block), key, section.during)
        errors += (f"goleak report at line {section.first_line}: {error}" for error in found)
    return list(units.values())


def _attributed(unit: Unit, key: tuple[str, int, int], during: str | None) -> Unit:
    origin = unit.origin
    if during is not None:
        origin = replace(origin, during=during) if origin is not None else Origin((), None, during=during)
    return replace(unit, key=key, origin=origin)


# A file:line after its function line: a stack frame, or (creator frame, creating goroutine) for a
# `created by` pair. The same pairs recur across thousands of goroutines: each is parsed once per dump.
_Placed = tuple[Frame | None, int | None, bool]


def _tracebacks(lines: list[str], errors: list[str]) -> Iterator[_Block]:
    block: _Block | None = None
    pending_function: str | None = None
    in_ancestors = False
    places: dict[tuple[str, str], _Placed | None] = {}
    for number, line in enumerate(lines, start=1):
        if line.startswith("\t"):  # a file:line, the most common line: checked first
            if block is not None and not in_ancestors:
                block = _located(block, pending_function, line, number, places, errors)
                pending_function = None
            continue
        header = _HEADER.match(line) if line.startswith("goroutine ") else None
        if header is not None or not line or line.isspace():  # a block starts, or ends
            if block is not None:
                yield from _finish(block, pending_function, errors)
            block = _new_block(number, header) if header is not None else None
            pending_function, in_ancestors = None, False
        # Outside a block: panic messages, SIGQUIT headers, register dumps. Inside: ancestors
        # (tracebackancestors: where the creator was, not this goroutine's stack) and elided frames.
        elif block is None or in_ancestors or (line.startswith("...") and "frames elided" in line):
            continue
        elif line.startswith("[originating from goroutine"):
            in_ancestors = True
        elif pending_function is None:
            pending_function = line.strip()
        else:
            errors.append(_out_of_order(number, pending_function, block.ident))
            block = None
    if block is not None:
        yield from _finish(block, pending_function, errors)


def _located(
    block: _Block,
    function: str | None,
    line: str,
    number: int,
    places: dict[tuple[str, str], _Placed | None],
    errors: list[str],
) -> _Block | None:
    """The block with one more frame (or its creator), or None when the pair does not read."""
    key = (function or "", line)
    placed = places[key] if key in places else places.setdefault(key, _place(*key))
    if placed is None or function is None:
        errors.append(_out_of_order(number, function, block.ident))
        return None
    block.add(*placed)
    return block


def _new_block(number: int, header: re.Match[str]) -> _Block:
    return _Block(number, int(header.group(1)), header.group(2), header.group(3) or "")


def _place(function: str, line: str) -> _Placed | None:
    """A function line and its file:line, read (None when the second is not a file:line)."""
    location = _FILE_LINE.match(line)
    if location is None or not function:
        return None
    file, lineno = location.group(1), int(location.group(2))
    if not function.startswith("created by "):
        return _frame(function, file, lineno), None, False
    created = _CREATED.match(function)
    if created is None:  # an unreadable creator is left out, the goroutine kept
        return None, None, False
    goroutine = int(created.group(2)) if created.group(2) else None
    return _frame(created.group(1), file, lineno), goroutine, True


def _out_of_order(number: int, pending_function: str | None, ident: int) -> str:
    if pending_function is None:
        return f"line {number}: a file:line with no function before it (goroutine {ident})"
    return f"line {number}: expected a file:line after {pending_function!r} (goroutine {ident})"


def _finish(block: _Block, pending_function: str | None, errors: list[str]) -> Iterator[_Block]:
    if pending_function is not None and not pending_function.startswith("created by "):
        errors.append(
            f"line {block.line}: goroutine {block.ident} ends inside a frame ({pending_function!r})"
        )
        return
    yield block


def _frame(function: str, filename: str, lineno: int) -> Frame:
    """A frame named as Go names it (`net/http.(*Server).Serve`); the module field stays empty."""
    return Frame(filename, lineno, _without_arguments(function), local=False)


def _without_arguments(function: str) -> str:
    """`pkg.(*T).M(0x1, {0x2, 0x3})` -> `pkg.(*T).M`: drop the argument list that closes the line."""
    if not function.endswith(")"):
        return function
    depth = 0
    for index in range(len(function) - 1, -1, -1):
        char = function[index]
        if char == ")":
            depth += 1
        elif char == "(":
            depth -= 1
            if depth == 0:
                return function[:index]
    return function


def _state(raw: str) -> tuple[str, dict[str, int | float | str], bool]:
    parts = [part.strip() for part in raw.split(",")]
    state, leaked = parts[0], False
    if state.endswith(LEAKED):
        state, leaked = state[: -len(LEAKED)].strip(), True
    detail: dict[str, int | float | str] = {"state": state}
    for part in parts[1:]:
        if part == LEAKED:
            leaked = True
        elif (minutes := _MINUTES.match(part)) is not None:
            detail["minutes"] = int(minutes.group(1))
        elif part == "locked to thread":
            detail["locked_to_thread"] = "yes"
    return state, detail, leaked


class _Units:
    """Goroutines to units. A dump of 100,000 goroutines has a few dozen states, creators and stacks: each
    is built once and shared by every unit that has it."""

    def __init__(self) -> None:
        self._waits: dict[tuple[str, str], tuple[BlockedOn, bool]] = {}
        self._origins: dict[tuple[Frame, int | None], Origin] = {}
        self._stacks: dict[tuple[Frame, ...], tuple[Frame, ...]] = {}

    def unit(self, block: _Block) -> Unit:
        wait = self._waits.get((block.state, block.labels)) or self._wait(block.state, block.labels)
        stack = tuple(block.frames)
        stack = self._stacks.setdefault(stack, stack)
        return Unit(
            kind=Kind.GOROUTINE,
            key=("goroutine", block.ident),
            name=f"goroutine {block.ident}",
            ident=block.ident,
            stack=stack,
            blocked_on=wait[0],
            origin=self._origin(block.creator, block.creator_goroutine) if block.creator else None,
            target=stack[-1].function if stack else None,
            proof=PROVEN_BY_GO if wait[1] else None,
        )

    def _wait(self, raw: str, labels: str) -> tuple[BlockedOn, bool]:
        state, detail, leaked = _state(raw)
        if labels:
            detail["labels"] = labels
        code, words = _STATES.get(state, ("go." + state.replace(" ", "-"), state))
        minutes = detail.get("minutes")
        description = f"{words} for {minutes} minutes" if minutes else words
        wait = self._waits[raw, labels] = (BlockedOn(code, description, detail), leaked)
        return wait

    def _origin(self, creator: Frame, goroutine: int | None) -> Origin:
        origin = self._origins.get((creator, goroutine))
        if origin is None:
            words = f"goroutine {goroutine}" if goroutine is not None else None
            origin = self._origins[creator, goroutine] = Origin((creator,), words)
        return origin


# More goroutines than any process holds (each has at least 2 KiB of stack: 8 TiB): a corrupt or hostile
# count, refused rather than summed into totals nothing can render.
MAX_RECORD_COUNT = 1 << 32


@dataclass(frozen=True, slots=True)
class Record:
    """One aggregated stack of a profile (pprof debug=1 text or debug=0 protobuf): `count` goroutines."""

    where: str  # "line 12", "sample 3": where the record is, for error messages
    count: int
    frames: tuple[Frame, ...]
    labels: str  # as Go prints them: {"worker":"ticker"}


def record_units(records: Iterable[Record], leaked: bool, source: str, errors: list[str]) -> Iterator[Unit]:
    """One unit per record that stands for its `count` goroutines (a million goroutines on one stack stay
    one object). Profiles carry no wait state: it is inferred from the stack where Go's own frames say
    (chansend, selectgo, Mutex.Lock...); "unknown" otherwise."""
    for number, record in enumerate(records, start=1):
        if not record.frames or not 1 <= record.count <= MAX_RECORD_COUNT:
            what = "no frames" if not record.frames else f"a count of {record.count}"
            errors.append(f"{record.where}: a record with {what}")
            continue
        blocked_on = _inferred_state(record.frames, source)
        if record.labels:
            detail = {**blocked_on.detail, "labels": record.labels}
            blocked_on = BlockedOn(blocked_on.code, blocked_on.description, detail)
        yield Unit(
            kind=Kind.GOROUTINE,
            key=("goroutine-record", number),
            name=f"record {number}",
            stack=record.frames,
            blocked_on=blocked_on,
            target=record.frames[-1].function,
            proof=PROVEN_BY_GO if leaked else None,
            count=record.count,
        )


def _inferred_state(frames: tuple[Frame, ...], source: str) -> BlockedOn:
    for frame in frames:
        state = _STACK_STATES.get(frame.function)
        if state is not None:
            code, words = _STATES[state]
            return BlockedOn(
                code, words, {"state": f"{state} (inferred from the stack; {source} has no states)"}
            )
    return BlockedOn(
        "go.unknown", f"unknown state ({source})", {"state": f"unknown ({source} has no states)"}
    )


def _aggregated(lines: list[str], errors: list[str]) -> Iterator[Record]:
    """pprof debug=1: `N @ pcs`, optional `# labels: {...}`, then `#\tpc\tfunc+off\tfile:line` frames."""
    record: Record | None = None
    for number, line in enumerate(lines, start=1):
        if _PROFILE.match(line) or not line.strip():
            continue
        head = _RECORD.match(line)
        if head is not None:
            if record is not None:
                yield record
            record = Record(f"line {number}", int(head.group(1)), (), "")
            continue
        if record is not None and line.startswith("# labels:"):
            record = replace(record, labels=line[len("# labels:") :].strip())
            continue
        frame = _RECORD_FRAME.match(line)
        if frame is not None and record is not None:
            new = _frame(frame.group(1), frame.group(2), int(frame.group(3)))
            record = replace(record, frames=(*record.frames, new))
            continue
        if line.startswith("#") and record is not None:
            continue  # other comment lines (e.g. # 0x... without symbol)
        errors.append(f"line {number}: not part of a pprof debug=1 record: {line[:60]!r}")
    if record is not None:
        yield record
