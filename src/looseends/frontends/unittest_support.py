"""unittest support: a TestCase mixin giving each test the same per-test check as the pytest plugin.

    class TestJobs(looseends.LeakCheckMixin, unittest.TestCase): ...
    class TestAsyncJobs(looseends.LeakCheckMixin, unittest.IsolatedAsyncioTestCase): ...

The check starts before setUp and ends in the last cleanup, after tearDown, so a leak fails the test
that caused it (as a failure: LeakError is an AssertionError), under `python -m unittest` and under
pytest alike; under `pytest --looseends` the plugin checks these tests with the class's options
instead, so a leak is reported once. For IsolatedAsyncioTestCase the cleanup runs before the runner
closes the loop, so the tasks a test forgot are still pending there and are reported with what they
were waiting on.
"""

from __future__ import annotations

import unittest
from collections.abc import Mapping
from typing import Any, ClassVar

from looseends.analysis.settle import run_sync
from looseends.core.watch import Watch, checked_now
from looseends.errors import LeakError
from looseends.options import build_options

__all__ = ["LeakCheckMixin"]


class LeakCheckMixin:
    """Mix into a TestCase; `looseends_options` (timeout, ignore, kinds, ...) tunes the check."""

    looseends_options: ClassVar[Mapping[str, Any]] = {}

    def run(self, result: unittest.TestResult | None = None) -> unittest.TestResult | None:
        assert isinstance(self, unittest.TestCase), "LeakCheckMixin goes before a TestCase base class"
        if checked_now(self.id()):  # by the pytest plugin: the mixin leaves it to that check
            return super().run(result)  # type: ignore[misc,no-any-return]
        options = build_options(
            source=f"{type(self).__qualname__}.looseends_options", **self.looseends_options
        )
        watch = Watch(options, self.id())
        watch.start()

        def verdict() -> None:
            try:
                report = run_sync(watch.verdict())
            finally:
                watch.stop()
            if report:
                raise LeakError(report)

        self.addCleanup(verdict)  # registered first, so it runs last: after tearDown and other cleanups
        return super().run(result)  # type: ignore[misc,no-any-return]
