"""Turning live frames and coroutine chains into `Frame` data, so no snapshot keeps a frame alive."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator

from looseends import _cpython
from looseends.model import Frame

# A stack deeper than this is recursion gone wrong; its innermost part is what explains the wait.
MAX_STACK = 200


# Caches keyed by code object: a code object belongs to one module for life, and many units share the
# same few stacks (100,000 tasks blocked at one line), so each location is described once. Code objects
# hold no locals; the caches are emptied when they grow past CACHE_LIMIT.
CACHE_LIMIT = 65_536
_code_keys: dict[types.CodeType, tuple[str, str]] = {}
_frames: dict[tuple[types.CodeType, int], Frame] = {}


def code_key(frame: types.FrameType) -> tuple[str, str]:
    """(module, qualified name) of the frame's function."""
    code = frame.f_code
    key = _code_keys.get(code)
    if key is None:
        if len(_code_keys) >= CACHE_LIMIT:
            _code_keys.clear()
        module = frame.f_globals.get("__name__", "")
        key = _code_keys[code] = (module if isinstance(module, str) else "", code.co_qualname)
    return key


_modules_by_file: dict[str, str] = {}
_modules_seen = [0]  # len(sys.modules) when the map was last built


def module_of_file(filename: str) -> str:
    """The name of the loaded module whose file this is ("" when none is): creation sites are recorded as
    code objects, which know their file but not their module."""
    name = _modules_by_file.get(filename)
    if name is None and len(sys.modules) != _modules_seen[0]:
        _modules_seen[0] = len(sys.modules)
        for module_name, module in list(sys.modules.items()):
            path = _cpython.module_file(module)  # statically: a lazy module would import itself
            if path is not None:
                _modules_by_file.setdefault(path, module_name)
        name = _modules_by_file.get(filename)
    return name or ""


def to_frame(frame: types.FrameType) -> Frame:
    code = frame.f_code
    lineno = frame.f_lineno or code.co_firstlineno
    found = _frames.get((code, lineno))
    if found is None:
        if len(_frames) >= CACHE_LIMIT:
            _frames.clear()
        module, qualname = code_key(frame)
        found = _frames[(code, lineno)] = Frame(code.co_filename, lineno, qualname, module)
    return found


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
