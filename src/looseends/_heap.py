"""The heap accounting behind the proof's count of unseen holders (analysis/unseen.py): for each target,
the objects the walk did not reach from which it can be reached, each as numbers only.

It lists every object the collector tracks, and that list also holds objects other threads are still
building: a tuple that `tuple(generator)` fills (before 3.14) must not have its count raised when it is
resized, or the program's call raises SystemError. The accelerator does it all in one C call that runs
no Python code, so no other thread runs while the list is held (`sources._speedups.heap_accounts`);
without it the list is held here while Python code runs: the window docs/security.md states.
"""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Callable

__all__ = ["CELL", "EXIT_METHOD", "FRAME", "FUNCTION", "METHOD", "HeapEntry", "accounts", "use_accelerated"]

# What a running frame may hold of an object, by its kind (the accelerator's numbers).
OTHER, FRAME, CELL, FUNCTION, METHOD, EXIT_METHOD = range(6)
EXITS = ("__exit__", "__aexit__")

# (id, reference count, references from tracked objects, kind, link, type name): the references the
# counting itself holds are in both counts, so their difference is what holds the object from elsewhere.
# The link: a cell's content, a function's (or a method's function's) code, by id; else 0.
HeapEntry = tuple[int, int, int, int, int, str]
Accounts = Callable[[list[object], set[int], set[int], int], list[tuple[HeapEntry, ...]] | None]


def accounts(
    targets: list[object], reached: set[int], ours: set[int], limit: int
) -> list[tuple[HeapEntry, ...]] | None:
    """Per target, an entry for it and for each unreached object (tracked, not in `reached` nor `ours`)
    from which it can be reached; None past `limit` tracked objects."""
    return _accounts[0](targets, reached, ours, limit)


def use_accelerated(found: Accounts) -> None:
    """The accelerator's accounting (`sources._speedups.heap_accounts`), handed in where it is imported."""
    _accounts[:] = [found]


def _in_python(
    targets: list[object], reached: set[int], ours: set[int], limit: int
) -> list[tuple[HeapEntry, ...]] | None:
    tracked = gc.get_objects()
    try:
        if len(tracked) > limit:
            return None
        ours = ours | {id(tracked), id(targets), id(reached), id(ours)}  # the arguments are ours too
        parents = _parents(tracked, reached, ours)
        leading = [_leading_to(target, parents) for target in targets]
        parents.clear()
        return [_entries(chain) for chain in leading]
    finally:
        tracked.clear()


def _parents(tracked: list[object], reached: set[int], ours: set[int]) -> dict[int, list[object]]:
    """By id, the unreached objects that refer to it. A function of its own: no variable of the caller
    is left holding an object while the caller counts references."""
    parents: dict[int, list[object]] = {}
    for obj in tracked:
        if id(obj) not in reached and id(obj) not in ours:
            for referent in gc.get_referents(obj):
                parents.setdefault(id(referent), []).append(obj)
    return parents


def _leading_to(target: object, parents: dict[int, list[object]]) -> dict[int, object]:
    leading = {id(target): target}
    frontier = [target]
    while frontier:
        for parent in parents.get(id(frontier.pop()), ()):
            if id(parent) not in leading:
                leading[id(parent)] = parent
                frontier.append(parent)
    return leading


def _entries(leading: dict[int, object]) -> tuple[HeapEntry, ...]:
    internal = _references_from_tracked(leading)
    counts = _counts(leading)
    return tuple(
        (key, counts[key], internal.get(key, 0), *_kind(obj), type(obj).__name__)
        for key, obj in leading.items()
    )


def _kind(obj: object) -> tuple[int, int]:
    if type(obj) is types.FrameType:
        return FRAME, 0
    if isinstance(obj, types.CellType):
        try:
            return CELL, id(obj.cell_contents)
        except ValueError:  # an empty cell
            return CELL, 0
    if isinstance(obj, types.FunctionType):
        return FUNCTION, id(obj.__code__)
    if isinstance(obj, types.MethodType) and isinstance(obj.__func__, types.FunctionType):
        return (EXIT_METHOD if obj.__func__.__name__ in EXITS else METHOD), id(obj.__func__.__code__)
    return OTHER, 0


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


_accounts: list[Accounts] = [_in_python]
