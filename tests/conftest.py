"""Fixtures that hand each test an undo stack and a background event loop, both cleaned up at teardown."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from leakfixtures import Cleanup, LoopThread


@pytest.fixture
def cleanup() -> Iterator[Cleanup]:
    helper = Cleanup()
    with helper.stack:
        yield helper


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    helper = LoopThread()
    try:
        yield helper
    finally:
        helper.close()
