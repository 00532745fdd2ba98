"""Turning live frames and coroutine chains into `Frame` data, so no snapshot keeps a frame alive."""

from __future__ import annotations

import types
from collections.abc import Iterator

from looseends.model import Frame

# A stack deeper than this is recursion gone wrong; its innermost part is what explains the wait.
MAX_STACK = 200


def to_frame(frame: types.FrameType) -> Frame:
    code = frame.f_code
    module = frame.f_globals.get("__name__", "")
    return Frame(
        code.co_filename,
        frame.f_lineno or code.co_firstlineno,
        code.co_qualname,
        module if isinstance(module, str) else "",
    )


def walk_back(frame: types.FrameType | None, limit: int = MAX_STACK) -> Iterator[types.FrameType]:
    """The frame and its callers, innermost first."""
    while frame is not None and limit > 0:
        yield frame
        frame = frame.f_back
        limit -= 1


def coroutine_frames(coro: object, limit: int = MAX_STACK) -> list[types.FrameType]:
    """Every frame of an await chain, innermost first.

    `Task.get_stack()` shows only the outermost coroutine on 3.11-3.13; following `cr_await`
    (and `gi_yieldfrom` / `ag_await` for generator-based and async-generator awaitables) gives the
    whole path down to the awaitable that is really pending.
    """
    frames: list[types.FrameType] = []
    current: object = coro
    while current is not None and len(frames) < limit:
        if isinstance(current, types.CoroutineType):
            frame, current = current.cr_frame, current.cr_await
        elif isinstance(current, types.GeneratorType):
            frame, current = current.gi_frame, current.gi_yieldfrom
        elif isinstance(current, types.AsyncGeneratorType):
            frame, current = current.ag_frame, current.ag_await
        else:
            break
        if frame is None:  # finished or not started: nothing below it is pending
            break
        frames.append(frame)
    frames.reverse()
    return frames
