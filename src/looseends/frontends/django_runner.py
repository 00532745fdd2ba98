"""Django's test runner with looseends' checks: each test and the whole run, as the pytest plugin does.

    # settings.py
    TEST_RUNNER = "looseends.frontends.django_runner.DiscoverRunner"
    LOOSEENDS = {"timeout": 1.0}  # optional: looseends.check()'s options

    python manage.py test [--looseends-baseline=leaks.json] [--looseends-report=leaks.json] ...

Each test is checked from before its setUp to after its tearDown and cleanups, the span LeakCheckMixin
checks, without editing any test class: a leak is an error of that test. What `setUpClass` or
`setUpTestData` start and the class does not stop by its tearDownClass is the run's leak, reported when
the run ends (a LiveServerTestCase's server thread is stopped there: not a leak). The baseline file, the
JSON report and warn-only mode are the pytest plugin's (docs/adopting.md, docs/testing.md).
"""

from __future__ import annotations

import sys
import unittest
from pathlib import Path
from typing import Any

from django.core.management.base import CommandError
from django.test import runner as django_runner

from looseends.analysis.leak_baseline import LeakBaseline, open_baseline
from looseends.analysis.settle import run_sync
from looseends.core.ledger import RUN_END, Finding, Ledger
from looseends.core.watch import Watch
from looseends.errors import LeakError, OptionError
from looseends.options import Options, build_options

__all__ = ["DiscoverRunner"]


class _Checks:
    """The run's options, its ledger, and the watch of each test running now."""

    def __init__(self, options: Options, ledger: Ledger, warn_only: bool) -> None:
        self.options = options
        self.ledger = ledger
        self.warn_only = warn_only
        self.tests: dict[str, Watch] = {}
        self.run: Watch | None = None

    def begin_test(self, test: unittest.TestCase) -> None:
        test_id = test.id()
        watch = self.tests[test_id] = Watch(self.options, test_id)
        watch.start()
        self.ledger.ran_now(test_id)
        # Registered before setUp runs, so it runs last of the cleanups: after tearDown and the test's own.
        test.addCleanup(self.end_test, test_id)

    def end_test(self, test_id: str) -> None:
        watch = self.tests.pop(test_id, None)
        if watch is None:
            return
        try:
            report = None if watch.nothing_new() else run_sync(watch.verdict())
        finally:
            watch.stop()
        if not report:
            return
        found = Finding(test_id, report, None, self.warn_only, shown=not self.warn_only)
        failing = [part for part in self.ledger.add(found) if part.fails]
        if failing:
            raise LeakError(failing[0].report)

    def forget(self, test: unittest.TestCase) -> None:
        """A test that ran no cleanups (skipped): its watch ends without a verdict."""
        watch = self.tests.pop(test.id(), None)
        if watch is not None:
            watch.stop()


class _CheckingResult:
    """Mixed into the runner's result class: a test's check begins as the test starts."""

    looseends: _Checks

    def startTest(self, test: unittest.TestCase) -> None:
        super().startTest(test)  # type: ignore[misc]
        if isinstance(test, unittest.TestCase):
            self.looseends.begin_test(test)

    def stopTest(self, test: unittest.TestCase) -> None:
        self.looseends.forget(test)
        super().stopTest(test)  # type: ignore[misc]


class DiscoverRunner(django_runner.DiscoverRunner):  # type: ignore[misc]  # Django ships no types
    """`django.test.runner.DiscoverRunner` that fails each test leaving a thread, task or child process
    running, and the run for what its classes' set-up left."""

    def __init__(
        self,
        *args: Any,
        looseends_report: str | None = None,
        looseends_baseline: str | None = None,
        looseends_baseline_update: bool = False,
        looseends_warn_only: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        if self.parallel > 1:
            raise CommandError(
                "looseends: the checks see this process only; run with --parallel 1 "
                "(Django's parallel runner runs tests in worker processes)"
            )
        self._report_path = Path(looseends_report) if looseends_report else None
        update = looseends_baseline_update
        self._checks = _Checks(
            _options(),
            Ledger(baseline=_baseline(looseends_baseline, update), updating=update),
            looseends_warn_only,
        )

    @classmethod
    def add_arguments(cls, parser: Any) -> None:
        super().add_arguments(parser)
        group = parser.add_argument_group("looseends", "leaked threads, asyncio tasks and child processes")
        group.add_argument("--looseends-report", metavar="PATH", help="write every leak of the run as JSON")
        group.add_argument("--looseends-baseline", metavar="PATH", help="fail only on leaks this file lacks")
        group.add_argument(
            "--looseends-baseline-update", action="store_true", help="write the baseline file from this run"
        )
        group.add_argument("--looseends-warn-only", action="store_true", help="report leaks without failing")

    def get_resultclass(self) -> type[Any]:
        base = super().get_resultclass() or unittest.TextTestResult
        return type(f"LeakChecking{base.__name__}", (_CheckingResult, base), {"looseends": self._checks})

    def setup_test_environment(self, **kwargs: Any) -> None:
        super().setup_test_environment(**kwargs)
        checks = self._checks
        checks.run = Watch(checks.options, None)
        checks.run.start()
        checks.ledger.ran_now(RUN_END)

    def teardown_test_environment(self, **kwargs: Any) -> None:
        super().teardown_test_environment(**kwargs)
        self._end_run()

    def suite_result(self, suite: Any, result: Any, **kwargs: Any) -> int:
        """Failed tests, plus one when the run itself left something running."""
        failed = int(super().suite_result(suite, result, **kwargs))
        return failed + any(finding.owner == RUN_END for finding in self._checks.ledger.failing)

    def _end_run(self) -> None:
        checks, ledger = self._checks, self._checks.ledger
        watch, checks.run = checks.run, None
        if watch is not None:
            ledger.add_run_end(watch, checks.warn_only)
        lines = [ledger.render()] if ledger.findings else []
        try:
            lines.append(ledger.close_baseline())
            if self._report_path is not None:
                self._report_path.write_text(ledger.to_json())
        except OSError as exc:
            lines.append(f"looseends: could not write a file: {exc}")
        text = "\n".join(line for line in lines if line)
        if text:
            print(f"\nlooseends: what the tests left running\n{text}", file=sys.stderr, flush=True)


def _options() -> Options:
    from django.conf import settings

    values = getattr(settings, "LOOSEENDS", {})
    if not isinstance(values, dict):
        raise CommandError(f"looseends: settings.LOOSEENDS must be a dict of check() options, not {values!r}")
    try:
        return build_options(source="settings.LOOSEENDS", **values)
    except (OptionError, TypeError) as exc:  # TypeError: a key that is not a string
        raise CommandError(f"looseends: {exc}") from None


def _baseline(path: str | None, update: bool) -> LeakBaseline | None:
    try:
        return open_baseline(path, update)
    except OptionError as exc:
        raise CommandError(f"looseends: {exc}") from None
