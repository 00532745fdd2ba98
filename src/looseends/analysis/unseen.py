"""Unseen holders: references the collector's graph does not show, which a proof may not ignore.

The walk of analysis.reachability follows what `gc.get_referents` shows. The interpreter also keeps
objects where no Python object points to them: a signal's handler, an exit hook, a codec search
function, an audit hook, a thread's trace or profile function, a fork hook, an async-generator hook, a
context variable's value in a thread's context, a thread's local storage, a C extension's cache. Code
that can still run may use any of them, so a primitive they lead to may be woken.

So every reference is accounted for, the way the collector itself finds what is held from outside: an
object's reference count, less the references from objects the collector tracks, is what holds it
from elsewhere. For the objects that lead to a candidate's primitive and that the walk did not reach,
that remainder must be explained by the candidates' own running frames (which the collector does not
traverse): their code, globals, builtins, function, local variables and closure cells (and, on 3.11 and
3.12, the dictionary their variables are copied into when read), the exit method a `with` keeps on
the stack, and the receiver of the call the innermost frame is blocked in. Any reference left
unexplained is an unseen holder: the primitive may be woken, the candidate is not proven.

Where the count cannot be exact the answer is "not proven": an object the interpreter made immortal
(3.12+: its count says nothing) is taken to hold nothing of the program's; a frame's other stack
temporaries are not credited (3.14's borrowed stack references add no count, so there is nothing to
credit). docs/proofs.md has the argument.
"""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Callable, Iterable, Sequence

from looseends._cpython import MISSING, frame_variable, frame_variables, owns_its_variables, read_attr
from looseends.sources._frames import code_key

__all__ = ["MAX_OBJECTS", "UNREADABLE_FRAMES", "Abandoned", "unseen_holders"]

MAX_OBJECTS = 2_000_000  # objects the collector tracks, beyond which the accounting is abandoned
IMMORTAL = 1 << 30  # a reference count this high is an immortal object's (3.12+), not a count
EXITS = ("__exit__", "__aexit__")


UNREADABLE_FRAMES = "frame variables cannot be read without keeping them alive (3.11 without the accelerator)"


class Abandoned(Exception):
    """The heap is too large to account for within the bound, or part of it cannot be read: no proof."""


def unseen_holders(
    primitives: dict[int, object],
    reached: set[int],
    ours: set[int],
    frames: Sequence[types.FrameType],
    innermost: Iterable[types.FrameType],
) -> dict[int, str]:
    """For each primitive (by id) that an unseen holder may reach: why. `reached`: ids the walk from
    the roots visited; `ours`: ids of the checker's own objects; `frames`: the candidates' running
    frames; `innermost`: those blocked inside a call (their receiver may sit on the value stack).

    Raises Abandoned past MAX_OBJECTS tracked objects."""
    tracked = gc.get_objects()
    try:
        if len(tracked) > MAX_OBJECTS:
            raise Abandoned(f"walk abandoned after {MAX_OBJECTS:,} objects")
        ours = ours | {id(tracked), id(primitives)}
        unreached = {id(obj): obj for obj in tracked if id(obj) not in reached and id(obj) not in ours}
        found: dict[int, str] = {}
        for key in primitives:  # no local of this frame holds a primitive while it is counted
            why = _unexplained(_leading_to(primitives[key], unreached), frames, innermost)
            if why is not None:
                found[key] = why
        return found
    finally:
        tracked.clear()


def _leading_to(target: object, unreached: dict[int, object]) -> dict[int, object]:
    """The unreached objects from which `target` can be reached (itself included)."""
    parents: dict[int, list[object]] = {}
    for obj in unreached.values():
        for referent in gc.get_referents(obj):
            parents.setdefault(id(referent), []).append(obj)
    leading = {id(target): target}
    frontier = [target]
    while frontier:
        for parent in parents.get(id(frontier.pop()), ()):
            if id(parent) not in leading:
                leading[id(parent)] = parent
                frontier.append(parent)
    parents.clear()
    return leading


def _unexplained(
    leading: dict[int, object], frames: Sequence[types.FrameType], innermost: Iterable[types.FrameType]
) -> str | None:
    """The first object of `leading` held from where nothing explains it, described; None if none.

    Credits are taken first: reading a frame's variables may make the dictionary that holds them (3.11,
    3.12), which the count of references from tracked objects then sees; nothing is made after it."""
    credited = _credits(leading, frames, set(map(id, innermost)))
    internal = _references_from_tracked(leading)
    counts = _counts(leading)
    for key, obj in leading.items():
        if counts[key] >= IMMORTAL or type(obj) is types.FrameType:
            continue  # immortal: its count says nothing; a frame: its thread's, accounted by its locals
        extra = counts[key] - internal.get(key, 0) - credited.get(key, 0)
        if extra > 0:
            return (
                f"a {type(obj).__name__} held from outside the objects Python can see ({extra} reference(s))"
            )
    return None


def _counts(leading: dict[int, object]) -> dict[int, int]:
    """Each object's reference count, less the references counting makes (`leading`'s own, the loop's,
    the call's: how many depends on the version, so a fresh object held once measures them)."""
    probe = object()
    overhead = _refcounts({0: probe})[0] - 1  # its one real holder: `probe`
    return {key: count - overhead for key, count in _refcounts(leading).items()}


def _refcounts(objects: dict[int, object]) -> dict[int, int]:
    return {key: sys.getrefcount(obj) for key, obj in objects.items()}


def _references_from_tracked(leading: dict[int, object]) -> dict[int, int]:
    """How many references to each object of `leading` come from objects the collector tracks."""
    counts: dict[int, int] = {}
    targets = tuple(leading.values())
    referrers = gc.get_referrers(*targets)
    try:
        for referrer in referrers:
            if referrer is leading or _is_the_arguments(referrer, targets):
                continue  # our own: `leading`, and the call's argument tuple (gone once it returns)
            for referent in gc.get_referents(referrer):
                key = id(referent)
                if key in leading and leading[key] is referent:
                    counts[key] = counts.get(key, 0) + 1
    finally:
        referrers.clear()
    return counts


def _is_the_arguments(referrer: object, targets: tuple[object, ...]) -> bool:
    return (
        type(referrer) is tuple
        and len(referrer) == len(targets)
        and all(a is b for a, b in zip(referrer, targets, strict=True))
    )


def _credits(
    leading: dict[int, object], frames: Sequence[types.FrameType], innermost: set[int]
) -> dict[int, int]:
    """References the candidates' running frames hold to objects of `leading`, which the collector does
    not see: each frame's code, globals, builtins and function; its local variables (a cell variable's
    cell, not the value); the callable of the call it made through C; the exit method of each `with` on
    its stack; and, for a frame blocked inside a call, the call's receiver, which may sit on the stack
    beside the variable that names it."""
    credits: dict[int, int] = {}

    def credit(obj: object) -> None:
        if id(obj) in leading and leading[id(obj)] is obj:
            credits[id(obj)] = credits.get(id(obj), 0) + 1

    cells = _cells_by_content(leading)
    callees = {id(inner.f_back): inner.f_code for inner in frames if inner.f_back is not None}
    for frame in frames:
        for obj in (frame.f_code, frame.f_globals, frame.f_builtins, *_functions_of(frame.f_code, leading)):
            credit(obj)
        callee = callees.get(id(frame))
        for function in _functions_of(callee, leading) if callee is not None else ():
            credit(function)
        _credit_variables(frame, cells, id(frame) in innermost, credit)
        _credit_call_arguments(frame, credit)
    for obj in leading.values():
        if isinstance(obj, types.MethodType) and obj.__func__.__name__ in EXITS:
            for _ in frames:
                credit(obj)
    return credits


def _cells_by_content(leading: dict[int, object]) -> dict[int, list[object]]:
    cells: dict[int, list[object]] = {}
    for obj in leading.values():
        if isinstance(obj, types.CellType):
            try:
                cells.setdefault(id(obj.cell_contents), []).append(obj)
            except ValueError:  # an empty cell
                continue
    return cells


def _credit_variables(
    frame: types.FrameType,
    cells: dict[int, list[object]],
    blocked_in_a_call: bool,
    credit: Callable[[object], None],
) -> None:
    code = frame.f_code
    closure_names = set(code.co_cellvars) | set(code.co_freevars)
    variables = frame_variables(frame)
    if variables is None:
        raise Abandoned(UNREADABLE_FRAMES)
    if not owns_its_variables(frame):  # a module or class body: the frame holds its namespace dict
        credit(frame.f_locals)
    for name, value in variables:
        if name in closure_names:
            for cell in cells.get(id(value), ()):
                credit(cell)
        else:
            credit(value)
        if blocked_in_a_call:  # the call's receiver, loaded from a variable, sits on the stack too
            credit(value)


# Calls the standard library makes through C with what an object keeps (`self.fn(*self.args,
# **self.kwargs)`): while the call runs, the callable, the tuple and the dict are on the caller's stack.
CALLS_KEPT_ON_THE_STACK = {
    ("threading", "Thread.run"): ("_target", "_args", "_kwargs"),
    ("concurrent.futures.thread", "_WorkItem.run"): ("fn", "args", "kwargs"),
}


def _credit_call_arguments(frame: types.FrameType, credit: Callable[[object], None]) -> None:
    names = CALLS_KEPT_ON_THE_STACK.get(code_key(frame))
    owner = frame_variable(frame, "self") if names is not None else MISSING
    if owner is MISSING or owner is None or names is None:
        return
    for name in names:
        value = read_attr(owner, name)
        if value is not MISSING:
            credit(value)


def _functions_of(code: types.CodeType, leading: dict[int, object]) -> list[object]:
    """The functions (and methods bound to them) among `leading` that run `code`: one of them is the
    frame's own, or the callable its caller keeps."""
    found: list[object] = []
    for obj in leading.values():
        function = obj.__func__ if isinstance(obj, types.MethodType) else obj
        if isinstance(function, types.FunctionType) and function.__code__ is code:
            found.append(obj)
    return found
