"""pytest plugin: per-test, per-fixture and whole-session leak checks. Off until asked.

Turn it on with `--looseends` (ini `looseends = true`) or per test, class or module with the
`looseends` marker. The per-test check spans setup, call and teardown of function-scoped fixtures;
units started while a wider-scoped fixture is set up belong to that fixture and are checked when it
is torn down. State lives in `config.stash`; each hook is a few lines that call `PluginState`.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Generator, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from looseends._find import settle_steps, to_report
from looseends._ledger import Finding, Ledger
from looseends._watch import Watch
from looseends.analysis.baseline import ignore_current
from looseends.analysis.ignore import (
    IgnoreRule,
    idle_pool_worker,
    ignore_any_function,
    ignore_command,
    ignore_created_at,
    ignore_name,
    ignore_top_function,
)
from looseends.analysis.settle import run_sync
from looseends.errors import OptionError
from looseends.frontends import unittest_support
from looseends.model import Kind, Snapshot, Unit
from looseends.options import DEFAULT_TIMEOUT, Options, build_options
from looseends.report import Report
from looseends.sources import _shutdown, take_snapshot
from looseends.sources._tracking import tracking

# Help texts shared by each flag and its ini twin.
HELP_ENABLE = "check every test for threads, asyncio tasks and child processes it leaves running"
HELP_TIMEOUT = f"seconds a check waits for stragglers before calling them leaks (default {DEFAULT_TIMEOUT})"
HELP_IGNORE_TOP = "ignore units whose innermost frame is this function (module.Qualname); repeatable"
HELP_IGNORE_FUNCTION = "ignore units with this function anywhere in their stack; repeatable"
HELP_IGNORE_CREATED_AT = "ignore units created at a location matching this glob (*/file.py:12); repeatable"
HELP_IGNORE_NAME = "ignore units whose name matches this glob (worker-*); repeatable"
HELP_IGNORE_COMMAND = "ignore child processes whose command line matches this glob (*my-server*); repeatable"
HELP_WARN_ONLY = "report leaks in the summary without failing tests or the run"
HELP_REPORT = (
    "write every leak of the session to this file as JSON (looseends.report schema); checked at start"
)
HELP_FORCE_EXIT = "when non-daemon threads would keep pytest from exiting, report them and exit anyway"

MARKER = (
    "looseends(timeout=None, ignore=(), enabled=True, ...): check this test (class, module) for leaked "
    "threads, asyncio tasks and child processes, even without --looseends; enabled=False opts out"
)
ALLOW_MARKER = (
    "looseends_allow(reason): this test is known to leak; report the leak as allowed, with the reason"
)

SESSION_END = "session end"


@dataclass(frozen=True)
class Settings:
    """Command line and ini, validated once."""

    enabled: bool
    options: Options
    warn_only: bool
    report_path: Path | None
    force_exit: bool

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        def get(name: str) -> Any:
            value = config.getoption(name)
            return value if value not in (None, [], False) else config.getini(name)

        timeout = get("looseends_timeout")
        try:
            rules = _rules(
                get("looseends_ignore_top"),
                get("looseends_ignore_function"),
                get("looseends_ignore_created_at"),
                get("looseends_ignore_name"),
                get("looseends_ignore_command"),
            )
            options = build_options(
                source="--looseends-timeout or ini looseends_timeout",
                timeout=None if timeout in (None, "") else _seconds(timeout, "looseends_timeout"),
                ignore=rules,
            )
        except OptionError as exc:
            raise pytest.UsageError(f"looseends: {exc}") from None
        report = get("looseends_report")
        return cls(
            enabled=bool(get("looseends")),
            options=options,
            warn_only=bool(get("looseends_warn_only")),
            report_path=_writable(Path(report)) if report else None,
            force_exit=bool(get("looseends_force_exit")),
        )


def _writable(path: Path) -> Path:
    """Checked before the first test, so a typo costs seconds, not a whole run's report."""
    folder = path.parent
    if path.is_dir():
        raise pytest.UsageError(f"looseends: --looseends-report={path}: is a directory, expected a file")
    if not folder.is_dir():
        raise pytest.UsageError(f"looseends: --looseends-report={path}: no such directory {str(folder)!r}")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise pytest.UsageError(f"looseends: --looseends-report={path}: not writable")
    return path


def _seconds(value: object, name: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise OptionError(f"invalid {name}={value!r}: expected a number of seconds") from None


def _rules(
    top: Iterable[str],
    function: Iterable[str],
    created: Iterable[str],
    name: Iterable[str],
    command: Iterable[str],
) -> list[IgnoreRule]:
    rules = []
    for factory, values in (
        (ignore_top_function, top),
        (ignore_any_function, function),
        (ignore_created_at, created),
        (ignore_name, name),
        (ignore_command, command),
    ):
        values = [v for v in values or () if v]
        if values:
            rules.append(factory(*values))
    return rules


@dataclass(frozen=True)
class LeakCrash:
    """Where and what, in one line: pytest's short summary and JUnit XML read `reprcrash.message`."""

    path: str
    lineno: int
    message: str

    def __str__(self) -> str:
        return f"{self.path}:{self.lineno}: {self.message}"


@dataclass(frozen=True)
class LeakFailure:
    """A teardown failed by leaks, as pytest shows failures: the full report in the ERRORS section,
    one informative line ("leaked 3 threads blocked in queue.Queue.put ..., created at x.py:12") in
    the short summary, and both in text form (what xdist sends to its controller)."""

    reprcrash: LeakCrash
    text: str

    @classmethod
    def of(cls, report: Report, verb: str, title: str = "") -> LeakFailure:
        origin = report.groups[0].origin
        site = origin.site if origin is not None else None
        crash = LeakCrash(
            site.filename if site else "", site.lineno if site else 0, f"{verb} {report.headline()}"
        )
        return cls(crash, f"{title}\n\n{report.render()}" if title else report.render())

    @classmethod
    def joined(cls, failures: list[LeakFailure]) -> LeakFailure:
        message = "; ".join(failure.reprcrash.message for failure in failures)
        text = "\n\n".join(failure.text for failure in failures)
        return cls(replace(failures[0].reprcrash, message=message), text)

    def toterminal(self, writer: Any) -> None:
        for line in self.text.splitlines():
            writer.line(line)

    def __str__(self) -> str:
        return f"{self.reprcrash.message}\n\n{self.text}"


@dataclass
class FixtureOwnership:
    """Units started while one wider-scoped fixture was being set up."""

    label: str
    units: dict[object, Unit]


@dataclass
class PluginState:
    settings: Settings
    ledger: Ledger = field(default_factory=Ledger)
    active: bool = False  # the flag, or a marker on some collected test
    exitstatus: int = 0
    _session: Watch | None = None
    _tests: dict[str, Watch] = field(default_factory=dict)
    _labels: dict[str, ExitStack] = field(default_factory=dict)
    _fixtures: dict[int, FixtureOwnership] = field(default_factory=dict)
    # Wider fixtures torn down during the current test's teardown: their units are still not the test's,
    # and their leaks fail that teardown, under the fixture's name.
    _retired: dict[int, FixtureOwnership] = field(default_factory=dict)
    _fixture_findings: list[Finding] = field(default_factory=list)
    _report_error: str = ""
    # Ignore rules of tests whose marker or class added some: what they ignored is not the session's
    # leak either.
    _test_ignores: dict[str, tuple[IgnoreRule, ...]] = field(default_factory=dict)

    # Tests ----------------------------------------------------------------------------------------

    def item_options(self, item: pytest.Item) -> Options | None:
        """This test's options, or None when it is not checked. A marker's options win over a
        LeakCheckMixin class's `looseends_options`, which win over the command line and ini."""
        marker = item.get_closest_marker("looseends")
        mixin = _mixin_options(item)
        if marker is None and (mixin is None or not self.settings.enabled):
            return self.settings.options if self.settings.enabled and mixin is None else None
        layers = [mixin or {}, dict(marker.kwargs) if marker is not None else {}]
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
        except (OptionError, TypeError) as exc:
            raise pytest.UsageError(f"looseends: {exc}") from None

    def begin_test(self, item: pytest.Item) -> None:
        options = self.item_options(item)
        if options is None:
            if self._session is not None:  # unchecked, but what it starts still says during which test
                labelled = self._labels[item.nodeid] = ExitStack()
                labelled.enter_context(tracking(item.nodeid))
            return
        watch = Watch(options, item.nodeid)
        watch.start()
        self._tests[item.nodeid] = watch
        if options.ignore != self.settings.options.ignore:
            self._test_ignores[item.nodeid] = options.ignore
        if _mixin_options(item) is not None:  # the plugin checks it: the mixin stands aside
            unittest_support.checked_elsewhere.add(_unittest_id(item))

    def end_test(self, item: pytest.Item, report: pytest.TestReport) -> None:
        labelled = self._labels.pop(item.nodeid, None)
        if labelled is not None:
            labelled.close()
        failures = [
            LeakFailure.of(
                finding.report,
                f"{finding.owner} (torn down after this test) leaked",
                f"{finding.owner} left {finding.report.kinds_text()} running (torn down after this test)",
            )
            for finding in self._fixture_findings
            if finding.report and not finding.warn_only
        ]
        self._fixture_findings.clear()
        watch = self._tests.pop(item.nodeid, None)
        unittest_support.checked_elsewhere.discard(_unittest_id(item))
        if watch is not None:
            try:
                leaks = run_sync(watch.verdict(also_ignore=self._owned_by_fixtures))
            finally:
                watch.stop()
            failures[:0] = self._test_leaks(item, report, leaks)
        self._retired.clear()
        if not failures:
            return
        if report.failed:  # teardown already failed: its own error stays the headline
            report.sections.extend(("looseends", str(failure)) for failure in failures)
            return
        report.outcome = "failed"
        report.longrepr = LeakFailure.joined(failures)  # type: ignore[assignment]

    def _test_leaks(self, item: pytest.Item, report: pytest.TestReport, leaks: Report) -> list[LeakFailure]:
        """The test's own leaks as teardown failures (none when allowed, warn-only or clean)."""
        if not leaks:
            return []
        allow = item.get_closest_marker("looseends_allow")
        reason = _allow_reason(allow, item) if allow is not None else None
        failing = reason is None and not self.settings.warn_only
        self.ledger.add(Finding(item.nodeid, leaks, reason, self.settings.warn_only, shown=failing))
        if not failing:
            report.sections.append(("looseends", leaks.render()))
            return []
        return [LeakFailure.of(leaks, "leaked")]

    # Fixtures -------------------------------------------------------------------------------------

    def begin_fixture(self, fixturedef: pytest.FixtureDef[Any]) -> tuple[Watch, Snapshot] | None:
        if not self.active or fixturedef.scope == "function":
            return None
        label = f"fixture {fixturedef.argname!r} ({fixturedef.scope} scope)"
        watch = Watch(self.settings.options, label)  # only for its tracking label
        watch.start()
        return watch, take_snapshot(detail=False)

    def end_fixture_setup(
        self, fixturedef: pytest.FixtureDef[Any], started: tuple[Watch, Snapshot] | None
    ) -> None:
        if started is None:
            return
        watch, before = started
        watch.stop()
        known = ignore_current(before)
        new = {u.key: u for u in take_snapshot(detail=False).units if not known(u)}
        if new:
            label = watch.label or fixturedef.argname
            self._fixtures[id(fixturedef)] = FixtureOwnership(label, new)

    def _owned_by_fixtures(self, unit: Unit) -> bool:
        return any(
            (owned := ownership.units.get(unit.key)) is not None and owned.same_object(unit)
            for ownership in (*self._fixtures.values(), *self._retired.values())
        )

    def fixture_finalized(self, fixturedef: pytest.FixtureDef[Any]) -> None:
        ownership = self._fixtures.pop(id(fixturedef), None)
        if ownership is None:
            return
        self._retired[id(fixturedef)] = ownership
        owned = ownership.units
        options = self.settings.options
        settled = run_sync(
            settle_steps(options, only=lambda u: (o := owned.get(u.key)) is not None and o.same_object(u))
        )
        warn_only = self.settings.warn_only
        finding = Finding(ownership.label, to_report(settled, options), None, warn_only, shown=not warn_only)
        self.ledger.add(finding)
        self._fixture_findings.append(finding)

    # Session --------------------------------------------------------------------------------------

    def begin_session(self) -> None:
        if self.settings.enabled:
            self._session = Watch(self.settings.options, None)
            self._session.start()

    def end_session(self, session: pytest.Session) -> None:
        if self._session is not None:
            seen = {unit.key for unit in self.ledger.units() + self.ledger.units(allowed=True)}
            known = self._ignored_by_test
            leaks = run_sync(self._session.verdict(also_ignore=lambda unit: unit.key in seen or known(unit)))
            self._session.stop()
            self._session = None
            self.ledger.add(Finding(SESSION_END, leaks, None, self.settings.warn_only))
        if _is_xdist_worker(session.config):
            session.config.workeroutput["looseends"] = self.ledger.to_dict()  # type: ignore[attr-defined]
            return
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


def _mixin_options(item: pytest.Item) -> dict[str, Any] | None:
    """A LeakCheckMixin test's `looseends_options` (a copy), or None for any other test."""
    cls = getattr(item, "cls", None)
    if isinstance(cls, type) and issubclass(cls, unittest_support.LeakCheckMixin):
        return dict(cls.looseends_options)
    return None


def _unittest_id(item: pytest.Item) -> str:
    """What `TestCase.id()` says for this item: module.Class.method."""
    cls = getattr(item, "cls", None)
    return f"{cls.__module__}.{cls.__qualname__}.{item.name}" if isinstance(cls, type) else item.nodeid


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


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


STATE = pytest.StashKey[PluginState]()


# Hooks ----------------------------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("looseends", "leaked threads, asyncio tasks and child processes")

    def add(flag: str, ini_type: str, help: str, **kwargs: Any) -> None:
        dest = flag.lstrip("-").replace("-", "_")
        group.addoption(flag, dest=dest, help=help, **kwargs)
        parser.addini(dest, help=help, type=ini_type)  # type: ignore[arg-type]

    add("--looseends", "bool", HELP_ENABLE, action="store_true", default=False)
    add("--looseends-timeout", "string", HELP_TIMEOUT, metavar="SECONDS", default=None)

    def add_rule(flag: str, help: str, metavar: str) -> None:  # repeatable; ini: one per line
        add(flag, "linelist", help, action="append", default=[], metavar=metavar)

    add_rule("--looseends-ignore-top", HELP_IGNORE_TOP, "FUNC")
    add_rule("--looseends-ignore-function", HELP_IGNORE_FUNCTION, "FUNC")
    add_rule("--looseends-ignore-created-at", HELP_IGNORE_CREATED_AT, "GLOB")
    add_rule("--looseends-ignore-name", HELP_IGNORE_NAME, "GLOB")
    add_rule("--looseends-ignore-command", HELP_IGNORE_COMMAND, "GLOB")
    add("--looseends-warn-only", "bool", HELP_WARN_ONLY, action="store_true", default=False)
    add("--looseends-report", "string", HELP_REPORT, metavar="PATH", default=None)
    add("--looseends-force-exit", "bool", HELP_FORCE_EXIT, action="store_true", default=False)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    config.addinivalue_line("markers", ALLOW_MARKER)
    state = PluginState(Settings.from_config(config))
    state.active = state.settings.enabled
    if state.settings.force_exit:  # it will not wait for stuck threads at exit: nor at a loop's close
        _shutdown.leave_stuck_jobs[0] = True
        config.add_cleanup(lambda: _shutdown.leave_stuck_jobs.__setitem__(0, False))
    config.stash[STATE] = state


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[STATE].begin_session()


def pytest_collection_modifyitems(items: list[pytest.Item], config: pytest.Config) -> None:
    state = config.stash[STATE]
    state.active = state.active or any(item.get_closest_marker("looseends") for item in items)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    item.config.stash[STATE].begin_test(item)
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> Generator[None, Any, Any]:
    state = request.config.stash[STATE]
    started = state.begin_fixture(fixturedef)
    try:
        return (yield)
    finally:
        state.end_fixture_setup(fixturedef, started)


def pytest_fixture_post_finalizer(fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest) -> None:
    request.config.stash[STATE].fixture_finalized(fixturedef)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    report = yield
    if call.when == "teardown":
        item.config.stash[STATE].end_test(item, report)
    return report


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session: pytest.Session) -> None:
    session.config.stash[STATE].end_session(session)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    config.stash[STATE].summary(terminalreporter)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: fold each worker's findings into the session's ledger."""
    data = getattr(node, "workeroutput", {}).get("looseends")
    if data:
        node.config.stash[STATE].ledger.merge(data)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if STATE in config.stash:
        config.stash[STATE].at_exit(config)
