"""How a leak fails a test in pytest's terms: a teardown error whose short-summary line says what leaked
and where, put on the teardown report by a makereport hook registered for that one report."""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, replace
from typing import Any

import pytest

from looseends.report import Report

__all__ = ["LeakFailure", "TeardownVerdict"]


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


@dataclass(frozen=True, eq=False)
class TeardownVerdict:
    """What one test's check found, for its teardown report: failures (the report fails with them, or,
    when teardown already failed, they are added as sections under its own error) and sections (leaks
    reported without failing: allowed, or warn-only). Registered as a plugin only until that report is
    made, so the makereport hook is paid for by tests that leaked, not by every test."""

    nodeid: str
    failures: list[LeakFailure]
    sections: list[str]

    def register(self, config: pytest.Config) -> None:
        name = f"looseends-verdict-{self.nodeid}"
        stale = config.pluginmanager.get_plugin(name)  # its report was never made (an interrupted run)
        if stale is not None:
            config.pluginmanager.unregister(stale)
        config.pluginmanager.register(self, name)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(
        self, item: pytest.Item, call: pytest.CallInfo[None]
    ) -> Generator[None, pytest.TestReport, pytest.TestReport]:
        report = yield
        if call.when != "teardown" or item.nodeid != self.nodeid:
            return report
        item.config.pluginmanager.unregister(self)
        report.sections.extend(("looseends", text) for text in self.sections)
        if not self.failures:
            return report
        if report.failed:  # teardown already failed: its own error stays the headline
            report.sections.extend(("looseends", str(failure)) for failure in self.failures)
        else:
            report.outcome = "failed"
            report.longrepr = LeakFailure.joined(self.failures)  # type: ignore[assignment]
        return report
