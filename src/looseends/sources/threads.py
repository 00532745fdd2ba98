"""Every Python thread, including those `threading.enumerate()` misses (started with `_thread`)."""

from __future__ import annotations

import functools
import sys
import threading
import types
import weakref
from _thread import get_ident as _get_ident
from collections.abc import Callable, Mapping, Sequence

from looseends import _cpython
from looseends._library import is_own_file
from looseends.model import RUNNING, BlockedOn, Kind, Unit
from looseends.sources._frames import to_frame, walk_back
from looseends.sources._kernel import kernel_wait, time_left
from looseends.sources._origins import job_origin, raw_thread_origin, thread_origin
from looseends.sources._waits import POOL_JOB, classify_or_running

__all__ = ["ATTACH_SCRIPT", "ThreadSource", "callable_name"]


class ThreadSource:
    """Reads `sys._current_frames()` and matches each ident to its `threading.Thread`, if any.

    No lock is taken: `threading._active` is copied under the GIL, so the source can run from a
    signal handler while another thread holds threading's internal lock. Nothing of a Thread object is
    read through its class's code: a subclass's `name` property may take a lock its thread holds.
    """

    name = "threads"

    def __init__(
        self,
        *,
        _current_frames: Callable[[], Mapping[int, types.FrameType]] = sys._current_frames,
        _active: Callable[[], Mapping[int, threading.Thread]] = _cpython.active_threads,
    ) -> None:
        self._current_frames = _current_frames
        self._active = _active
        self._last: dict[int, Unit] = {}  # the last identity read's units of Thread objects, by ident

    def read(self, *, detail: bool = True) -> list[Unit]:
        frames = dict(self._current_frames())
        active = dict(self._active())
        try:
            if not detail:
                return self._identities(frames, active)
            return [
                _thread_unit(ident, frame, _thread_object(ident, frame, active), detail)
                for ident, frame in frames.items()
            ]
        finally:
            frames.clear()  # drop the frames now rather than whenever this scope is collected

    def _identities(
        self, frames: Mapping[int, types.FrameType], active: Mapping[int, threading.Thread]
    ) -> list[Unit]:
        """Identity units, reusing the last read's unit of each thread that is still the same Thread object
        under the same name: building a unit costs more than the rest of the read, and a check after a
        test that joined its thread reads them all again. (The cache is replaced whole, never changed, so
        concurrent reads are safe.)"""
        last = self._last
        units = []
        for ident, frame in frames.items():
            thread = _thread_object(ident, frame, active)
            unit = last.get(ident)
            if (
                unit is None
                or thread is None
                or unit.ref is None
                or unit.ref() is not thread
                or unit.name != _thread_name(thread, ident)
            ):
                unit = _thread_unit(ident, frame, thread, False)
            units.append(unit)
        self._last = {unit.ident: unit for unit in units if unit.ident is not None and unit.ref is not None}
        return units


_BOOTSTRAP = threading.Thread._bootstrap.__code__  # type: ignore[attr-defined]


def _thread_object(
    ident: int, frame: types.FrameType, active: Mapping[int, threading.Thread]
) -> threading.Thread | None:
    """The `threading.Thread` running `ident`, registered or not. threading registers a thread only after
    `start()` has returned to its starter, and lets go of it before its last frames end; in those moments
    it is still held as `self` by its outermost frame, `Thread._bootstrap`. Read from there, it stays one
    unit throughout: otherwise a check begun just after `start()` would see a bare `_thread` at its start
    and report the registered thread it sees at its end as new."""
    thread = active.get(ident)
    if thread is not None:
        return thread
    outermost = frame
    while outermost.f_back is not None:
        outermost = outermost.f_back
    if outermost.f_code is not _BOOTSTRAP:
        return None
    # That frame ends with the thread, so on 3.11 without the accelerator its copied variables die with it.
    found = _cpython.frame_variable(outermost, "self", ends_with_wait=True)
    if not issubclass(type(found), threading.Thread) or _cpython.read_attr(found, "_ident") != ident:
        return None
    return found  # type: ignore[no-any-return]


def _thread_unit(ident: int, frame: types.FrameType, thread: threading.Thread | None, detail: bool) -> Unit:
    if thread is None:  # started with _thread.start_new_thread: no Thread object, never joined at exit
        return _raw_thread_unit(ident, frame, detail)
    name = _thread_name(thread, ident)
    if not detail:
        return Unit(kind=Kind.THREAD, key=("thread", ident), name=name, ident=ident, ref=weakref.ref(thread))
    live = list(walk_back(frame))
    beyond = _beyond_the_snapshot(ident, live)
    stack = tuple(to_frame(f) for f in beyond)
    blocked_on = classify_or_running(beyond)
    if ident != _get_ident():
        blocked_on = _with_the_kernel_s_view(blocked_on, _cpython.thread_native_id(thread))
    job = _current_job(live) if blocked_on.context == POOL_JOB else None
    live.clear()
    return Unit(
        kind=Kind.THREAD,
        key=("thread", ident),
        name=name,
        ident=ident,
        stack=stack,
        blocked_on=blocked_on,
        origin=(job_origin(job) if job is not None else None) or thread_origin(thread),
        daemon=_cpython.thread_daemon(thread),
        native_id=_cpython.thread_native_id(thread),
        target=callable_name(_cpython.thread_target(thread)),
        ref=weakref.ref(thread),
    )


ATTACH_SCRIPT = "<looseends attach>"  # the file name `looseends attach` compiles its script under


def _beyond_the_snapshot(ident: int, frames: Sequence[types.FrameType]) -> Sequence[types.FrameType]:
    """The frames to classify: for a thread borrowed by `looseends attach` to take this snapshot, those
    under the snapshot's own code, the attach's script and the line that compiled it, so a thread
    borrowed while it waited in `time.sleep` or a lock shows what it waits on. Any other thread's, all
    of them (a program that takes its own snapshot is running, as before)."""
    if ident != _get_ident():
        return frames
    depth, attached = 0, False
    while depth < len(frames):
        filename = frames[depth].f_code.co_filename
        if filename == ATTACH_SCRIPT:
            attached = True
        elif not is_own_file(filename):
            break
        depth += 1
    return frames[depth + 1 :] if attached else frames


def _with_the_kernel_s_view(blocked_on: BlockedOn, native_id: int | None) -> BlockedOn:
    """What the kernel adds: the wait, when no Python call names it; the time left, when the call
    that names it did not show its timeout (passed through a wrapper). Settling waits that long."""
    if blocked_on.is_running:
        return _with_context(kernel_wait(native_id), blocked_on.context) or blocked_on
    if "timeout" in blocked_on.detail or "delay" in blocked_on.detail:
        return blocked_on
    left = time_left(native_id)
    if left is None:
        return blocked_on
    detail = {**blocked_on.detail, "timeout": round(left, 3)}
    return BlockedOn(blocked_on.code, blocked_on.description, detail, blocked_on.context)


def _with_context(blocked: BlockedOn | None, context: str | None) -> BlockedOn | None:
    return None if blocked is None else BlockedOn(blocked.code, blocked.description, blocked.detail, context)


def _current_job(frames: list[types.FrameType]) -> object:
    """The future of the job a pool worker is running (None when it is idle, waiting for work)."""
    for frame in frames[1:]:  # the innermost frame is `_worker` itself when idle
        if (
            frame.f_code.co_name == "_worker"
            and frame.f_globals.get("__name__") == "concurrent.futures.thread"
        ):
            work_item = _cpython.frame_variable(frame, "work_item")
            future = _cpython.read_attr(work_item, "future") if work_item is not None else None
            return None if future is _cpython.MISSING else future
    return None


def _thread_name(thread: threading.Thread, ident: int) -> str:
    return _cpython.thread_name(thread) or f"<thread {ident}>"


def _raw_thread_unit(ident: int, frame: types.FrameType, detail: bool) -> Unit:
    """A thread without a Thread object; its identity is its ident plus the function it started in."""
    live = list(walk_back(frame))
    root_frame = next((f for f in reversed(live) if not is_own_file(f.f_code.co_filename)), None)
    root = to_frame(root_frame) if root_frame is not None else None
    stack = tuple(to_frame(f) for f in live) if detail else ()
    blocked_on = classify_or_running(_beyond_the_snapshot(ident, live)) if detail else RUNNING
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


def callable_name(target: object) -> str | None:
    """`module.qualname` of a function, method or class, read statically; a partial shows its function.
    Never the object's repr, which could run the program's code or show its arguments (secrets)."""
    if target is None or target is _cpython.MISSING:
        return None
    if issubclass(type(target), functools.partial):  # its arguments may be secrets: only the function
        name = callable_name(_cpython.read_attr(target, "func"))
        return f"functools.partial({name})" if name else "functools.partial"
    function = _cpython.read_attr(target, "__func__")  # a bound method
    if function is not _cpython.MISSING:
        target = function
    module = _cpython.read_attr(target, "__module__")
    qualname = _cpython.read_attr(target, "__qualname__")
    if not isinstance(qualname, str):
        qualname = f"<{type(target).__qualname__} object>"
    return f"{module}.{qualname}" if isinstance(module, str) and module else qualname
