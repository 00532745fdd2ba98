"""Fixtures that hand each test an undo stack and a background event loop, both cleaned up at teardown."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from leakfixtures import Cleanup, HeldCollection, LoopThread


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


@pytest.fixture
def held_collection() -> Iterator[HeldCollection]:
    helper = HeldCollection()
    try:
        yield helper
    finally:
        helper.release()


@pytest.fixture(autouse=True)
def plain_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test, and every pytest session it starts, sees the same terminal whatever shell runs the
    suite: pytest trims short-summary lines to the width unless `CI` is set, and no test may depend on
    either (or on the locale)."""
    for name in ("CI", "BUILD_NUMBER", "PYTEST_ADDOPTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.setenv("LC_ALL", "C.UTF-8")
