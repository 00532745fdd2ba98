"""`check()`: a baseline on entry, a settled verdict on exit; sync or async context manager, or decorator."""

from __future__ import annotations

import contextlib
import functools
import inspect
import time
from collections.abc import Callable
from dataclasses import replace
from types import TracebackType
from typing import Any, TypeVar, cast

from looseends._find import candidate_filter, leak_filter, settle_steps, to_report
from looseends.analysis.baseline import ignore_current
from looseends.analysis.ignore import IgnoreRule
from looseends.analysis.settle import Settled, run_async, run_sync
from looseends.errors import LeakError
from looseends.options import Options, build_options
from looseends.report import Report
from looseends.sources import take_snapshot
from looseends.sources._origins import tracking, vanished_since

F = TypeVar("F", bound=Callable[..., Any])


class check:
    """Fail when the block leaves threads or tasks running that were not running when it started.

    Use as `with check():`, `async with check():` (settles without blocking the loop), or as a
    decorator on a sync or async function (the signature is preserved, so pytest still injects
    fixtures). Creation tracking is on inside the block, so reports say who started each leak.
    The report of the last exit is kept in `.report`.
    """

    def __init__(self, *, label: str | None = None, _options: Options | None = None, **options: Any) -> None:
        self._options = _options or build_options(source="looseends.check()", **options)
        self._label = label
        self._stack: list[tuple[contextlib.ExitStack, IgnoreRule, float]] = []
        self.report: Report | None = None

    def _enter(self) -> None:
        stack = contextlib.ExitStack()
        stack.enter_context(tracking(self._label))
        self._stack.append((stack, ignore_current(take_snapshot(detail=False)), time.monotonic()))

    def _finish(self, settled: Settled, started: float, error: BaseException | None) -> None:
        is_candidate, is_leak = candidate_filter(self._options), leak_filter(self._options)
        vanished = tuple(unit for unit in vanished_since(started) if is_candidate(unit) and is_leak(unit))
        report = to_report(replace(settled, leaks=vanished + settled.leaks), self._options)
        self.report = report
        if not report:
            return
        if error is None:
            raise LeakError(report)
        # The body's own exception explains more; keep it, and carry the leaks along as a note.
        error.add_note(report.render())

    def __enter__(self) -> check:
        self._enter()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, baseline, started = self._stack.pop()
        with stack:
            settled = run_sync(settle_steps(self._options, baseline))
            self._finish(settled, started, exc)

    async def __aenter__(self) -> check:
        self._enter()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        stack, baseline, started = self._stack.pop()
        with stack:
            settled = await run_async(settle_steps(self._options, baseline))
            self._finish(settled, started, exc)

    def _fresh(self, label: str) -> check:
        """Each call of a decorated function gets its own baseline."""
        return check(label=self._label or label, _options=self._options)

    def __call__(self, func: F) -> F:
        label = getattr(func, "__qualname__", None) or repr(func)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                async with self._fresh(label):
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with self._fresh(label):
                return func(*args, **kwargs)

        return cast(F, wrapper)
