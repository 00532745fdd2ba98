"""The proof's heap accounting (`looseends._heap`): the accelerator's numbers are the Python ones'."""

from __future__ import annotations

import ctypes
import gc
import threading
from collections.abc import Callable
from typing import Any

import pytest

from looseends import _heap

try:
    from looseends.sources import _speedups
except ImportError:
    _speedups = None  # type: ignore[assignment]


class Owner:
    def __init__(self, held: object) -> None:
        self.held = held

    def __exit__(self, *exc: object) -> None:
        return None


def _closure_over(held: object) -> Callable[[], object]:
    def inner() -> object:
        return held

    return inner


def _remainders(entries: tuple[_heap.HeapEntry, ...]) -> dict[int, tuple[int, int, int, str]]:
    """What an entry says that does not depend on who counted: the references left unexplained by
    tracked objects, the kind, the link and the type's name."""
    return {key: (count - internal, kind, link, name) for key, count, internal, kind, link, name in entries}


@pytest.mark.skipif(_speedups is None, reason="the C accelerator is not built")
def test_the_accelerators_accounting_is_the_python_one() -> None:
    lock = threading.Lock()
    box = {"lock": lock}
    inner = _closure_over(box)  # a function whose closure cell holds the box
    owner = Owner(inner)
    exit_method = owner.__exit__  # a bound exit method, as a `with` keeps on its stack
    holders: list[Any] = [exit_method, owner]
    hidden = ctypes.py_object(box)
    ctypes.pythonapi.Py_IncRef(hidden)  # a reference no object the collector tracks accounts for
    try:
        gc.collect()
        structure = {id(box), id(inner), id(inner.__closure__), id(owner), id(exit_method), id(holders)}
        structure |= {id(cell) for cell in inner.__closure__ or ()}
        instance_dict = {id(vars(owner))}  # on 3.13+ made only when asked for, and maybe not tracked
        reached = {id(obj) for obj in gc.get_objects()} - structure - instance_dict
        ours = {id(reached), id(structure)}
        targets: list[object] = [lock, box]
        in_c = _speedups.heap_accounts(targets, reached, ours | {id(targets)}, 10**7)
        in_python = _heap._in_python(targets, reached, ours | {id(targets)}, 10**7)
        assert in_c is not None
        assert in_python is not None
        for c_entries, python_entries in zip(in_c, in_python, strict=True):
            assert _remainders(c_entries) == _remainders(python_entries)
        by_id = _remainders(in_c[0])
        assert set(by_id) - instance_dict == {id(lock)} | structure  # all built here leads to the lock
        assert by_id[id(box)][0] >= 1  # the hidden reference is seen by both
        assert by_id[id(exit_method)][1] == _heap.EXIT_METHOD
        assert by_id[id(inner)][1:3] == (_heap.FUNCTION, id(inner.__code__))
        assert {by_id[id(cell)][1:3] for cell in inner.__closure__ or ()} == {(_heap.CELL, id(box))}
    finally:
        ctypes.pythonapi.Py_DecRef(hidden)


@pytest.mark.skipif(_speedups is None, reason="the C accelerator is not built")
def test_past_the_limit_the_accounting_gives_up() -> None:
    assert _speedups.heap_accounts([object()], set(), set(), 10) is None
    assert _heap._in_python([object()], set(), set(), 10) is None
