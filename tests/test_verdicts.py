"""What counts as a leak, judged on the shapes real suites have: the verdict rules and their words."""

from __future__ import annotations

import asyncio

import looseends
from looseends.model import is_own_file


def test_creation_tracking_leaves_asyncio_debug_tracebacks_as_they_would_be() -> None:
    async def create() -> list[str]:
        async def nothing() -> None:
            pass

        task = asyncio.create_task(nothing())
        files = [entry.filename for entry in task._source_traceback]  # type: ignore[attr-defined]
        await task
        return files

    untracked = asyncio.run(create(), debug=True)
    with looseends.track():
        tracked = asyncio.run(create(), debug=True)
    assert not any(is_own_file(name) for name in tracked)
    assert tracked[-1] == untracked[-1]  # the innermost entry is asyncio's own, as without looseends
