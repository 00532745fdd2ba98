"""Every Python thread, including those `threading.enumerate()` misses (started with `_thread`)."""

from __future__ import annotations

import sys
import threading
import types
import weakref
from collections.abc import Callable, Mapping

from looseends.model import RUNNING, Kind, Unit, is_own_file
from looseends.sources._frames import to_frame, walk_back
from looseends.sources._origins import raw_thread_origin, thread_origin
from looseends.sources._safe import safe, safe_copy
from looseends.sources._waits import classify_or_running


class ThreadSource:
    """Reads `sys._current_frames()` and matches each ident to its `threading.Thread`, if any.

    No lock is taken: `threading._active` is copied under the GIL, so the source can run from a
    signal handler while another thread holds threading's internal lock.
    """

    name = "threads"

    def __init__(
        self,
        *,
        _current_frames: Callable[[], Mapping[int, types.FrameType]] = sys._current_frames,
        _active: Callable[[], Mapping[int, threading.Thread]] = lambda: threading._active,  # type: ignore[attr-defined]
    ) -> None:
        self._current_frames = _current_frames
        self._active = _active

    def read(self, *, detail: bool = True) -> list[Unit]:
        frames = dict(self._current_frames())
        active = safe_copy(self._active())
        try:
            return [_thread_unit(ident, frame, active.get(ident), detail) for ident, frame in frames.items()]
        finally:
            frames.clear()  # drop the frames now rather than whenever this scope is collected


def _thread_unit(ident: int, frame: types.FrameType, thread: threading.Thread | None, detail: bool) -> Unit:
    if thread is None:  # started with _thread.start_new_thread: no Thread object, never joined at exit
        return _raw_thread_unit(ident, frame, detail)
    name = safe(lambda: str(thread.name), f"<thread {ident}>")
    if not detail:
        return Unit(kind=Kind.THREAD, key=("thread", ident), name=name, ident=ident, ref=weakref.ref(thread))
    live = list(walk_back(frame))
    stack = tuple(to_frame(f) for f in live)
    blocked_on = classify_or_running(live)
    live.clear()
    return Unit(
        kind=Kind.THREAD,
        key=("thread", ident),
        name=name,
        ident=ident,
        stack=stack,
        blocked_on=blocked_on,
        origin=thread_origin(thread),
        daemon=safe(lambda: bool(thread.daemon), None),
        native_id=safe(lambda: thread.native_id, None),
        target=_target_name(thread),
        ref=weakref.ref(thread),
    )


def _raw_thread_unit(ident: int, frame: types.FrameType, detail: bool) -> Unit:
    """A thread without a Thread object; its identity is its ident plus the function it started in."""
    live = list(walk_back(frame))
    root_frame = next((f for f in reversed(live) if not is_own_file(f.f_code.co_filename)), None)
    root = to_frame(root_frame) if root_frame is not None else None
    stack = tuple(to_frame(f) for f in live) if detail else ()
    blocked_on = classify_or_running(live) if detail else RUNNING
    live.clear()
    return Unit(
        kind=Kind.THREAD,
        key=("thread", ident, root.filename if root else "", root.function if root else ""),
        name=f"<_thread {ident}>",
        ident=ident,
        stack=stack,
        blocked_on=blocked_on,
        origin=raw_thread_origin(ident) if detail else None,
        daemon=True,
        target=root.qualified_name if root else None,
    )


def _target_name(thread: threading.Thread) -> str | None:
    target = getattr(thread, "_target", None)
    if target is None:
        run = type(thread).run
        if run is threading.Thread.run:
            return None
        target = run
    module = getattr(target, "__module__", None) or ""
    qualname = getattr(target, "__qualname__", None) or safe(lambda: repr(target), "?")
    return f"{module}.{qualname}" if module else str(qualname)
