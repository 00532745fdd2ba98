"""Whether the garbage collector is running, and in which thread: a `gc.callbacks` hook, on while tracking is.

A collection clears every weak reference to its garbage, running their callbacks, before it runs any
finalizer (checked on 3.11-3.15). In between, a pending task it is destroying has left asyncio's registry
of tasks but is not yet recorded as destroyed: its finalizer does that. Another thread's verdict read in
between would find the task nowhere, a silent all-clear; so a verdict lets such a collection end first
(`until_collected`), and the guards of reported tasks keep a dying task's guard until it ends (`_reported`).
"""

from __future__ import annotations

import gc
import time
from _thread import get_ident
from collections.abc import Callable, Generator
from contextlib import ExitStack
from typing import Any

WAIT_LIMIT = 1.0  # seconds a verdict waits for another thread's collection: a finalizer may block
WAIT_STEP = 0.001

_collector = [0]  # the ident of the thread collecting now; 0: none
_ended = [0]  # collections ended since the hook went in
_outwaited = [-1]  # the collection a verdict gave up waiting for: not waited for again
_on_change: list[Callable[[], None]] = []  # run as each collection starts and ends


def on_change(callback: Callable[[], None]) -> None:
    """Run `callback` (no locks, no allocation worth naming) as each collection starts and as it ends."""
    _on_change.append(callback)


def running() -> bool:
    """Whether a collection is running now (in any thread)."""
    return _collector[0] != 0


def running_elsewhere() -> bool:
    """Whether another thread is collecting now, and may be between clearing weak references and
    running finalizers."""
    collector = _collector[0]
    return collector != 0 and collector != get_ident() and _ended[0] != _outwaited[0]


def until_collected(
    _clock: Callable[[], float] = time.monotonic,
) -> Generator[float, None, None]:
    """Yield short delays while another thread's collection runs, at most WAIT_LIMIT seconds for one
    collection: what it destroys is recorded by the time it ends. Call after the look a verdict comes
    from and before reading what vanished: a collection begun after the look found its garbage there."""
    if not running_elsewhere():
        return
    collection, deadline = _ended[0], _clock() + WAIT_LIMIT
    while running_elsewhere() and _ended[0] == collection:
        if _clock() >= deadline:
            _outwaited[0] = collection
            return
        yield WAIT_STEP


def _on_collection(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _collector[0] = get_ident()
    else:
        _collector[0] = 0
        _ended[0] += 1
    for change in _on_change:
        change()


def install(stack: ExitStack) -> None:
    """Hook the collector while tracking is on."""
    gc.callbacks.append(_on_collection)

    def uninstall() -> None:
        if _on_collection in gc.callbacks:
            gc.callbacks.remove(_on_collection)
        _collector[0] = 0

    stack.callback(uninstall)
