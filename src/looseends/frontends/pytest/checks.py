"""The checking half of the pytest plugin: per-test checks, the session's ledger and end, the hang check.

Loaded and registered only when the checks are on (`--looseends`, the ini, another looseends option, or
a `looseends` marker on a collected test), so a run with the plugin off never imports the core. State
lives in `config.stash`; each hook is a few lines that call `PluginState`.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import pytest

from looseends.analysis.ignore import IgnoreRule, idle_pool_worker
from looseends.analysis.settle import run_sync
from looseends.core.ledger import RUN_END, Finding, Ledger
from looseends.core.watch import Watch
from looseends.errors import OptionError
from looseends.frontends.pytest.fixtures import FixtureOwners
from looseends.frontends.pytest.settings import Settings
from looseends.model import Kind, Unit
from looseends.options import MAX_EXTENSION, Options, build_options
from looseends.sources import _shutdown, take_snapshot
from looseends.sources._tracking import tracking

if TYPE_CHECKING:  # what only a leak (or a LeakCheckMixin test) needs loads then (figure 9)
    from looseends.frontends.pytest.failures import LeakFailure
    from looseends.frontends.unittest_support import LeakCheckMixin
    from looseends.report import Report

__all__ = ["ChecksPlugin", "mark_active", "merge_worker"]


@dataclass
class PluginState:
    """Per-test checks, the session's ledger and end, the hang check at exit."""

    settings: Settings
    fixtures: FixtureOwners
    ledger: Ledger
    active: bool = False  # the flag, or a marker on some collected test
    markers: bool = False  # some collected test carries the looseends marker: only then is each looked up
    exitstatus: int = 0
    _session: Watch | None = None
    _tests: dict[str, Watch] = field(default_factory=dict)
    _labels: dict[str, tracking] = field(default_factory=dict)
    _report_error: str = ""
    _baseline_text: str = ""
    # Ignore rules of tests whose marker or class added some: what they ignored is not the session's
    # leak either.
    _test_ignores: dict[str, tuple[IgnoreRule, ...]] = field(default_factory=dict)
    current: str | None = None  # the test running now

    # Tests ----------------------------------------------------------------------------------------

    def item_options(self, item: pytest.Item, mixin: type[LeakCheckMixin] | None) -> Options | None:
        """This test's options, or None when it is not checked. A marker's options win over a
        LeakCheckMixin class's `looseends_options`, which win over the command line and ini."""
        marker = item.get_closest_marker("looseends") if self.markers else None
        if marker is None and (mixin is None or not self.settings.enabled):
            return self.settings.options if self.settings.enabled and mixin is None else None
        layers = [dict(mixin.looseends_options) if mixin else {}, dict(marker.kwargs) if marker else {}]
        kwargs = {**layers[0], **layers[1]}
        if not kwargs.pop("enabled", True):
            return None
        base = self.settings.options
        kwargs.pop("ignore", None)
        where = f"the looseends marker on {item.nodeid}" if marker is not None else f"{item.nodeid}'s class"
        try:
            return build_options(
                source=where,
                timeout=kwargs.pop("timeout", base.timeout),
                ignore=[*base.ignore, *(rule for layer in layers for rule in layer.get("ignore", ()))],
                **kwargs,
            )
        except OptionError as exc:
            raise pytest.UsageError(f"looseends: {exc}") from None

    def begin_test(self, item: pytest.Item) -> None:
        nodeid = self.current = item.nodeid
        self.ledger.ran_now(nodeid)
        mixin = _mixin_class(item)
        options = self.item_options(item, mixin)
        if options is None:
            if self._session is not None:  # unchecked, but what it starts still says during which test
                labelled = self._labels[nodeid] = tracking(nodeid)
                labelled.__enter__()
            return
        # The plugin checks a LeakCheckMixin test itself; told by its TestCase.id(), the mixin stands by.
        unittest_id = () if mixin is None else (f"{mixin.__module__}.{mixin.__qualname__}.{item.name}",)
        watch = Watch(options, nodeid, stands_for=unittest_id)
        watch.start()
        self._tests[nodeid] = watch
        if options.ignore != self.settings.options.ignore:
            self._test_ignores[nodeid] = options.ignore

    def end_test(self, item: pytest.Item) -> None:
        """After the test's teardown ran, before its report is made: what the test (and any wider fixture
        torn down meanwhile) left running. Anything to say goes to that report through a `TeardownVerdict`.
        Every test passes here: what is not needed is not done (BENCHMARKS.md, figure 1)."""
        nodeid = item.nodeid
        labelled = self._labels.pop(nodeid, None)
        if labelled is not None:
            labelled.__exit__(None, None, None)
        failures = self._fixture_failures() if self.fixtures.findings else []
        sections: list[str] = []
        watch = self._tests.pop(nodeid, None)
        if watch is not None:
            try:
                if not watch.nothing_new():
                    leaks = run_sync(watch.verdict(also_ignore=self.fixtures.owned))
                    failures[:0] = self._test_leaks(item, leaks, sections)
            finally:
                watch.stop()
        if failures or sections:
            from looseends.frontends.pytest.failures import TeardownVerdict

            TeardownVerdict(nodeid, failures, sections).register(item.config)

    def _fixture_failures(self) -> list[LeakFailure]:
        """Leaks of wider fixtures torn down during this test's teardown, failing it under their names."""
        from looseends.frontends.pytest.failures import LeakFailure

        return [
            LeakFailure.of(
                finding.report,
                f"{finding.owner} (torn down after this test) leaked",
                f"{finding.owner} left {finding.report.kinds_text()} running (torn down after this test)",
            )
            for finding in self.fixtures.end_test()
        ]

    def _test_leaks(self, item: pytest.Item, leaks: Report, sections: list[str]) -> list[LeakFailure]:
        """The test's own leaks as teardown failures (none when clean; a report section when allowed or
        warn-only)."""
        if not leaks:
            return []
        allow = item.get_closest_marker("looseends_allow")
        reason = _allow_reason(allow, item) if allow is not None else None
        warn_only = self.settings.warn_only
        found = Finding(item.nodeid, leaks, reason, warn_only, shown=reason is None and not warn_only)
        recorded = self.ledger.add(found)  # the baseline file's known leaks come back apart, not failing
        sections += [part.report.render() for part in recorded if not part.fails and not part.baselined]
        failing = [part for part in recorded if part.fails]
        if not failing:
            return []
        from looseends.frontends.pytest.failures import LeakFailure

        return [LeakFailure.of(part.report, "leaked", "\n".join(part.over)) for part in failing]

    # Session --------------------------------------------------------------------------------------

    def begin_session(self) -> None:
        self.ledger.ran_now(RUN_END)
        if self.settings.enabled:
            self._session = Watch(self.settings.options, None)
            self._session.start()

    def end_session(self, session: pytest.Session) -> None:
        watch, self._session = self._session, None
        if watch is not None:
            self.ledger.add_run_end(watch, self.settings.warn_only, also_ignore=self._ignored_by_test)
        if _is_xdist_worker(session.config):
            output = session.config.workeroutput  # type: ignore[attr-defined]
            output["looseends"] = self.ledger.to_dict()
            output["looseends_ran"] = sorted(self.ledger.ran)
            return
        try:
            self._baseline_text = self.ledger.close_baseline()
        except OSError as exc:
            self._report_error = f"could not write --looseends-baseline: {exc}"
        if self.ledger.failing and session.exitstatus == pytest.ExitCode.OK:
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
        self.exitstatus = int(session.exitstatus)
        if self.settings.report_path is not None:
            try:
                self.settings.report_path.write_text(self.ledger.to_json())
            except OSError as exc:  # checked at start; the disk can still fill up or vanish
                self._report_error = f"could not write --looseends-report: {exc}"

    def _ignored_by_test(self, unit: Unit) -> bool:
        during = unit.origin.during if unit.origin is not None else None
        rules = self._test_ignores.get(during) if during is not None else None
        return rules is not None and any(rule(unit) for rule in rules)

    def summary(self, terminal: Any) -> None:
        if self.ledger.findings:
            terminal.write_sep("=", "looseends: what the tests left running")
            terminal.write_line(self.ledger.render())
        if self._baseline_text:
            terminal.write_line(self._baseline_text)
        if self._report_error:
            terminal.write_line(f"looseends: {self._report_error}", red=True)

    def at_exit(self, config: pytest.Config) -> None:
        """Say once which non-daemon threads would make the interpreter hang, with the way out; exit if
        asked to. Threads already reported as a test's leaks are named, not reported again."""
        if not self.active or _is_xdist_worker(config):
            return
        keeping = _non_daemon_threads()
        if not keeping:
            return
        reported = {unit.key: f.owner for f in self.ledger.findings for unit in f.report.units}
        owners = sorted({reported[unit.key] for unit in keeping if unit.key in reported})
        threads = "1 non-daemon thread" if len(keeping) == 1 else f"{len(keeping)} non-daemon threads"
        names = ", ".join(sorted({unit.name for unit in keeping})[:8])
        lines = [
            f"looseends: pytest cannot exit: {threads} will not stop ({names})"
            + (f"; reported above for {', '.join(owners)}" if owners else "")
        ]
        unreported = [unit for unit in keeping if unit.key not in reported]
        if unreported:
            from looseends.report import Report

            lines.append(Report.from_units(unreported).render())
        if self.settings.force_exit:
            lines.append("--looseends-force-exit: exiting anyway")
        else:
            lines.append(
                "fix: stop each where it is started (or make it a daemon thread); meanwhile "
                "--looseends-force-exit ends the run anyway, with its exit status"
            )
        print("\n" + "\n".join(lines), file=sys.stderr, flush=True)
        if self.settings.force_exit:
            sys.stdout.flush()
            os._exit(self.exitstatus or pytest.ExitCode.TESTS_FAILED)


UNITTEST_SUPPORT = "looseends.frontends.unittest_support"


def _mixin_class(item: pytest.Item) -> type[LeakCheckMixin] | None:
    """A LeakCheckMixin test's class, or None for any other test. Read from the parent node (a test
    method's parent is its class): `item.cls` walks the whole chain, on every test. No class can derive
    from the mixin before its module is imported, so a run without one never imports it (nor unittest:
    a few milliseconds of start-up, BENCHMARKS.md figure 9)."""
    if UNITTEST_SUPPORT not in sys.modules:
        return None
    from looseends.frontends.unittest_support import LeakCheckMixin

    parent = item.parent
    cls = parent.obj if isinstance(parent, pytest.Class) else None
    return cls if isinstance(cls, type) and issubclass(cls, LeakCheckMixin) else None


def _allow_reason(marker: pytest.Mark, item: pytest.Item) -> str:
    reason = marker.kwargs.get("reason", marker.args[0] if marker.args else None)
    if not isinstance(reason, str) or not reason.strip():
        raise pytest.UsageError(
            f"looseends: the looseends_allow marker on {item.nodeid} needs reason='why it leaks'"
        )
    return reason


def _non_daemon_threads() -> list[Unit]:
    """Threads the interpreter will wait for at exit. Idle pool workers are not among them:
    concurrent.futures' exit hook wakes and joins them; a worker inside a job that does not return is."""
    main, me = threading.main_thread().ident, threading.get_ident()
    return [
        unit
        for unit in take_snapshot().units
        if unit.kind is Kind.THREAD
        and unit.daemon is False
        and unit.ident not in (main, me)
        and not idle_pool_worker(unit)
    ]


def _announce_stuck_jobs(config: pytest.Config, state: PluginState, busy: list[str], patience: float) -> bool:
    """A loop's close waits for a default-executor job that has not returned in longer than any check waits
    for a straggler: say so now, on the terminal, past output capture, and close the loop without waiting,
    so the run goes on and the test's check can report the worker instead of the run hanging."""
    during = f" (left by {state.current})" if state.current else ""
    text = _shutdown.warning(
        busy,
        patience,
        f"not waiting{during}: the test's check reports the worker if it is still in the job; make the job "
        "return",
    )
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture is not None else contextlib.nullcontext():
        sys.stderr.write(text + "\n")
        sys.stderr.flush()
    return True


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


STATE = pytest.StashKey[PluginState]()


class ChecksPlugin:
    """The hooks that do the checking, registered only once the checks are on (plugin.activate)."""

    state: PluginState  # set by pytest_configure, which pytest calls at once on registration

    def pytest_configure(self, config: pytest.Config) -> None:
        settings = Settings.from_config(config)
        ledger = Ledger(baseline=settings.baseline, updating=settings.baseline_update)
        state = PluginState(settings, FixtureOwners(settings.options, settings.warn_only, ledger), ledger)
        state.active = settings.enabled
        # A job may end by itself as long as any check would wait for a straggler in a timed wait.
        patience = settings.options.timeout + MAX_EXTENSION
        config.add_cleanup(
            _shutdown.on_stuck_jobs(
                lambda busy: _announce_stuck_jobs(config, state, busy, patience), patience
            )
        )
        config.stash[STATE] = self.state = state

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        session.config.stash[STATE].begin_session()

    # Every test passes through these hooks, so they are as few and as plain as the checks allow: one to
    # begin, one to end, and a fixture hook that returns at once for function-scoped fixtures. A test that
    # leaked gets a one-off makereport hook (TeardownVerdict); passing tests never call one.

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        self.state.begin_test(item)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Generator[None, None, None]:
        try:
            return (yield)
        finally:
            self.state.end_test(item)

    @pytest.hookimpl(wrapper=True)
    def pytest_fixture_setup(self, fixturedef: pytest.FixtureDef[Any]) -> Generator[None, Any, Any]:
        if fixturedef.scope == "function":  # a function fixture's units are its test's
            return (yield)
        fixtures = self.state.fixtures
        started = fixtures.begin_setup(fixturedef)
        try:
            return (yield)
        finally:
            fixtures.end_setup(fixturedef, started)

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        session.config.stash[STATE].end_session(session)

    def pytest_terminal_summary(self, terminalreporter: Any, config: pytest.Config) -> None:
        config.stash[STATE].summary(terminalreporter)

    @pytest.hookimpl(trylast=True)
    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if STATE in config.stash:
            config.stash[STATE].at_exit(config)


def merge_worker(config: pytest.Config, data: Any, ran: Any) -> None:
    """xdist controller: fold one worker's findings (and the tests it ran) into the session's ledger."""
    ledger = config.stash[STATE].ledger
    ledger.merge(data)
    ledger.ran.update(str(owner) for owner in ran)


def mark_active(config: pytest.Config) -> None:
    """A collected test carries the looseends marker: wider fixtures are owned, the hang check runs, and
    each test's marker is looked up."""
    state = config.stash[STATE]
    state.active = state.markers = True
