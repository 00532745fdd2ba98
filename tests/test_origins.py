"""Creation sites: what tracking records (instruction offsets, read as lines only when a report asks)."""

from __future__ import annotations

import asyncio
import sys
import types

from looseends.sources._origins import line_at, task_origin
from looseends.sources._tracking import tracking


def _lines_now() -> list[tuple[int, int]]:
    """(f_lineno, line_at(f_lasti)) for every frame above this one, read at the same moment."""
    found = []
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        found.append((frame.f_lineno, line_at(frame.f_code, frame.f_lasti)))
        frame = frame.f_back
    return found


def _nested(depth: int) -> list[tuple[int, int]]:
    if depth:
        return _nested(  # a call spread over lines: the line is where the call is, as f_lineno says
            depth - 1
        )
    values = [
        0,
        _lines_now(),
    ]
    return values[1]  # type: ignore[return-value]


def test_an_offset_reads_as_the_line_the_frame_was_on() -> None:
    pairs = _nested(3)
    assert len(pairs) > 4
    assert all(lineno == resolved for lineno, resolved in pairs), pairs


async def _noop() -> None:
    pass


def _start_in_a_helper() -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(_noop())  # line read back below


def test_a_task_made_by_a_users_helper_shows_the_helper_and_its_user_callers_only() -> None:
    async def main() -> list[str]:
        with tracking():
            task = _start_in_a_helper()
        origin = task_origin(task)
        await task
        assert origin is not None
        return [f"{frame.function}:{frame.lineno}" for frame in origin.frames]

    frames = asyncio.run(main())
    helper_line = _start_in_a_helper.__code__.co_firstlineno + 1
    assert frames[0] == f"_start_in_a_helper:{helper_line}"
    assert frames[1].startswith(
        "test_a_task_made_by_a_users_helper_shows_the_helper_and_its_user_callers_only.<locals>.main:"
    )
    assert len(frames) == 2  # asyncio's own callers of main (the loop's handle) are not recorded


def test_asyncios_own_shutdown_tasks_are_not_recorded_but_every_other_task_is() -> None:
    """A runner closing a loop creates two tasks of asyncio's own (async generators, default executor),
    always run to completion: recording where they came from would cost every async test and say
    nothing. A task of the program's, even on a coroutine method of a loop subclass, is recorded."""

    class Loop(asyncio.SelectorEventLoop):
        async def shutdown_soon(self) -> None:
            await asyncio.sleep(0)

    loop = Loop()
    try:
        with tracking("housekeeping"):
            closing = (loop.shutdown_asyncgens(), loop.shutdown_default_executor())
            own = [loop.create_task(coro) for coro in closing]
            program = loop.create_task(loop.shutdown_soon())
            loop.run_until_complete(asyncio.gather(*own, program))
        assert [task_origin(task) for task in own] == [None, None]
        origin = task_origin(program)
        assert origin is not None
        assert origin.during == "housekeeping"
    finally:
        loop.close()
