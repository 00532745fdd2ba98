"""`check()`: a baseline on entry, a settled verdict on exit; sync or async context manager, or decorator."""

from __future__ import annotations

import copy
import functools
import inspect
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVar, Unpack, cast

from looseends.analysis.settle import run_async, run_sync
from looseends.core.watch import Watch
from looseends.errors import LeakError
from looseends.options import OptionValues, build_options
from looseends.report import Report

__all__ = ["check"]

F = TypeVar("F", bound=Callable[..., Any])


class check:
    """Fail when the block leaves threads, tasks or child processes running that were not there before.

    Use as `with check():`, `async with check():` (settles without blocking the loop), or as a
    decorator on a sync or async function (the signature is preserved, so pytest still injects
    fixtures). Creation tracking is on inside the block, so reports say who started each leak.
    The report of the last exit is kept in `.report`.
    """

    def __init__(self, *, label: str | None = None, **options: Unpack[OptionValues]) -> None:
        self._options = build_options(source="looseends.check()", **options)
        self._label = label
        self._watches: list[Watch] = []
        self.report: Report | None = None

    def _start(self) -> None:
        watch = Watch(self._options, self._label)
        watch.start()
        self._watches.append(watch)

    def _finish(self, report: Report, error: BaseException | None) -> None:
        self.report = report
        if not report:
            return
        if error is None:
            raise LeakError(report)
        # The body's own exception explains more; keep it, and carry the leaks along as a note.
        error.add_note(report.render())

    def __enter__(self) -> check:
        self._start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        watch = self._watches.pop()
        try:
            report = run_sync(watch.verdict())
        finally:
            watch.stop()
        self._finish(report, exc)

    async def __aenter__(self) -> check:
        self._start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        watch = self._watches.pop()
        try:
            report = await run_async(watch.verdict())
        finally:
            watch.stop()
        self._finish(report, exc)

    def _fresh(self, label: str) -> check:
        """Each call of a decorated function gets its own baseline (the options were checked once)."""
        fresh = copy.copy(self)
        fresh._label = self._label or label
        fresh._watches = []
        fresh.report = None
        return fresh

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
