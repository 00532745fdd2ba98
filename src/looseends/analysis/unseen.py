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

import types
from collections import Counter
from collections.abc import Iterable, Sequence

from looseends import _heap
from looseends._cpython import MISSING, frame_variable, frame_variables, owns_its_variables, read_attr
from looseends._heap import CELL, EXIT_METHOD, FRAME, FUNCTION, METHOD, HeapEntry
from looseends.sources._frames import code_key

__all__ = ["MAX_OBJECTS", "UNREADABLE_FRAMES", "Abandoned", "unseen_holders"]

MAX_OBJECTS = 2_000_000  # objects the collector tracks, beyond which the accounting is abandoned
IMMORTAL = 1 << 30  # a reference count this high is an immortal object's (3.12+), not a count


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

    Credits are taken first: reading a frame's variables may make the dictionary that holds them (3.11,
    3.12), which the accounting then sees; nothing is made after it. Raises Abandoned past MAX_OBJECTS
    tracked objects."""
    credits = _Credits(frames, set(map(id, innermost)))
    keys, targets = list(primitives), list(primitives.values())
    accounts = _heap.accounts(targets, reached, ours | {id(targets), id(primitives)}, MAX_OBJECTS)
    targets.clear()  # no local of this frame holds a primitive once it is counted
    if accounts is None:
        raise Abandoned(f"walk abandoned after {MAX_OBJECTS:,} objects")
    found: dict[int, str] = {}
    for key, leading in zip(keys, accounts, strict=True):
        why = credits.unexplained(leading)
        if why is not None:
            found[key] = why
    return found


class _Credits:
    """References the candidates' running frames hold, which the collector does not see, by the id of
    what they hold: each frame's code, globals, builtins and function; its local variables (a cell
    variable's cell, not the value); the callable of the call it made through C; the exit method of each
    `with` on its stack; and, for a frame blocked inside a call, the call's receiver, which may sit on
    the stack beside the variable that names it. Only numbers are kept: nothing of the frames is held
    while the heap is accounted for."""

    def __init__(self, frames: Sequence[types.FrameType], innermost: set[int]) -> None:
        self.plain: Counter[int] = Counter()
        self.cell_contents: Counter[int] = Counter()  # a cell holding this is credited
        self.codes: Counter[int] = Counter()  # a function (or method) running this code is credited
        self.frames = len(frames)  # each `with` on a stack may hold an exit method
        callees = {id(inner.f_back): inner.f_code for inner in frames if inner.f_back is not None}
        for frame in frames:
            self.plain.update(map(id, (frame.f_code, frame.f_globals, frame.f_builtins)))
            self.codes[id(frame.f_code)] += 1
            callee = callees.get(id(frame))
            if callee is not None:
                self.codes[id(callee)] += 1
            self._variables(frame, id(frame) in innermost)
            _credit_call_arguments(frame, self.plain)

    def _variables(self, frame: types.FrameType, blocked_in_a_call: bool) -> None:
        code = frame.f_code
        closure_names = set(code.co_cellvars) | set(code.co_freevars)
        variables = frame_variables(frame)
        if variables is None:
            raise Abandoned(UNREADABLE_FRAMES)
        if not owns_its_variables(frame):  # a module or class body: the frame holds its namespace dict
            self.plain[id(frame.f_locals)] += 1
        for name, value in variables:
            (self.cell_contents if name in closure_names else self.plain)[id(value)] += 1
            if blocked_in_a_call:  # the call's receiver, loaded from a variable, sits on the stack too
                self.plain[id(value)] += 1

    def unexplained(self, leading: Sequence[HeapEntry]) -> str | None:
        """The first object leading to a primitive held from where nothing explains it, described."""
        for address, count, internal, kind, link, type_name in leading:
            if count >= IMMORTAL or kind == FRAME:
                continue  # immortal: its count says nothing; a frame: its thread's, accounted by its locals
            credited = self.plain[address]
            if kind == CELL:
                credited += self.cell_contents[link]
            elif kind in (FUNCTION, METHOD, EXIT_METHOD):
                credited += self.codes[link] + (self.frames if kind == EXIT_METHOD else 0)
            extra = count - internal - credited
            if extra > 0:
                return f"a {type_name} held from outside the objects Python can see ({extra} reference(s))"
        return None


# Calls the standard library makes through C with what an object keeps (`self.fn(*self.args,
# **self.kwargs)`): while the call runs, the callable, the tuple and the dict are on the caller's stack.
CALLS_KEPT_ON_THE_STACK = {
    ("threading", "Thread.run"): ("_target", "_args", "_kwargs"),
    ("concurrent.futures.thread", "_WorkItem.run"): ("fn", "args", "kwargs"),
}


def _credit_call_arguments(frame: types.FrameType, credits: Counter[int]) -> None:
    names = CALLS_KEPT_ON_THE_STACK.get(code_key(frame))
    owner = frame_variable(frame, "self") if names is not None else MISSING
    if owner is MISSING or owner is None or names is None:
        return
    for name in names:
        value = read_attr(owner, name)
        if value is not MISSING:
            credits[id(value)] += 1
