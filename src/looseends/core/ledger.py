"""The ledger: every leak a test session found and who owns it, for the summary, the exit status and JSON.

Front-end neutral (the pytest plugin keeps one; xdist workers send theirs to the controller as JSON).
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from looseends.analysis.leak_baseline import Key, LeakBaseline, keys_of
from looseends.analysis.settle import run_sync
from looseends.core.watch import Watch
from looseends.model import Unit

__all__ = ["RUN_END", "Finding", "Ledger"]

if TYPE_CHECKING:  # the report stack loads with the first leak, not with every run (figure 9)
    from looseends.report import Report


@dataclass(frozen=True)
class Finding:
    """Leaks one owner left behind: a test id, a fixture, or "session end"."""

    owner: str
    report: Report
    allowed: str | None = None  # the reason, when a marker allows this known leak
    warn_only: bool = False
    shown: bool = False  # its full report failed a test already: the summary only outlines it
    baselined: bool = False  # in the baseline file: known, not failing
    over: tuple[str, ...] = ()  # places leaking more units than the baseline file allows

    @property
    def fails(self) -> bool:
        return self.allowed is None and not self.warn_only and not self.baselined


RUN_END = "session end"  # the owner of what the whole run (a session) left running


@dataclass
class Ledger:
    findings: list[Finding] = field(default_factory=list)
    baseline: LeakBaseline | None = None
    updating: bool = False  # the baseline file is rewritten from this run: every leak goes there
    ran: set[str] = field(default_factory=set)  # owners checked this run (tests, fixtures), for the baseline

    def add(self, finding: Finding) -> list[Finding]:
        """Record a finding; what the baseline file covers is recorded apart, as known. Returns the
        parts recorded: a caller fails with those that `fail`."""
        if not finding.report:
            return []
        parts = [finding]
        if self.baseline is not None and finding.allowed is None:
            if self.updating:
                parts = [replace(finding, baselined=True, shown=False)]
            else:
                known, new, over = self.baseline.split(finding.owner, finding.report.units)
                parts = [replace(finding, report=finding.report.only(new), over=tuple(over))] if new else []
                if known:
                    parts.append(
                        replace(finding, report=finding.report.only(known), baselined=True, shown=False)
                    )
        self.findings += parts
        return parts

    def ran_now(self, owner: str) -> None:
        """A test, fixture or run checked now: only its baseline entries can be fixed by this run."""
        if self.baseline is not None:
            self.ran.add(owner)

    @property
    def failing(self) -> list[Finding]:
        return [f for f in self.findings if f.fails]

    def add_run_end(
        self, watch: Watch, warn_only: bool, also_ignore: Callable[[Unit], bool] | None = None
    ) -> None:
        """The run's own check, at its end: what no test's or fixture's finding holds already. Most runs
        end clean at a glance, as most tests do."""
        seen = {unit.key for unit in self.units() + self.units(allowed=True)}

        def known(unit: Unit) -> bool:
            return unit.key in seen or (also_ignore is not None and also_ignore(unit))

        try:
            if not watch.nothing_new():
                self.add(Finding(RUN_END, run_sync(watch.verdict(also_ignore=known)), None, warn_only))
        finally:
            watch.stop()

    def close_baseline(self) -> str:
        """At the run's end: rewrite the baseline file (when `updating`), or count what it lists that
        this run no longer found. The summary's line; '' when there is nothing to say. OSError when the
        file cannot be written."""
        baseline = self.baseline
        if baseline is None:
            return ""
        from looseends.report import plural

        seen, ran = self.seen(), self.ran.__contains__
        if self.updating:
            entries = baseline.updated(seen, ran)
            baseline.write(entries)
            counts = f"{plural(len(entries), 'known leak')}, {plural(sum(entries.values()), 'unit')}"
            return f"looseends: wrote {baseline.path}: {counts}"
        fixed, shrunk = baseline.progress(seen, ran)
        if not fixed and not shrunk:
            return ""
        gone = f"{fixed} no longer occur{'s' if fixed == 1 else ''}"
        parts = [gone] * bool(fixed) + [f"{shrunk} leak{'s' if shrunk == 1 else ''} fewer units"] * bool(
            shrunk
        )
        return (
            f"looseends: of the {plural(len(baseline.entries), 'known leak')} in {baseline.path}, "
            f"{' and '.join(parts)}: run with --looseends-baseline-update to lock that in"
        )

    def seen(self) -> Counter[Key]:
        """Units found this run, by baseline entry (leaks a marker allows are not the baseline's)."""
        seen: Counter[Key] = Counter()
        for finding in self.findings:
            if finding.allowed is None:
                seen += keys_of(finding.owner, finding.report.units)
        return seen

    def units(self, *, allowed: bool = False) -> list[Unit]:
        """Reported units; the allowed ones only when asked."""
        return [u for f in self.findings if (f.allowed is not None) == allowed for u in f.report.units]

    def report(self) -> Report:
        """Every leak not allowed, regrouped across owners: identical leaks of many tests are one group."""
        from looseends.report import Report

        return Report.from_units(self.units(), now=self._now())

    def _regrouped(self, *, shown: bool) -> tuple[str, Report]:
        from looseends.report import Report

        findings = [f for f in self.findings if f.allowed is None and not f.baselined and f.shown == shown]
        owners = ", ".join(sorted({f.owner for f in findings}))
        return owners, Report.from_units([u for f in findings for u in f.report.units], now=self._now())

    def _now(self) -> float:
        return max((f.report.now for f in self.findings), default=0.0)

    def render(self) -> str:
        """Leaks that failed tests (reports shown there) in outline, regrouped across tests; the rest
        (warn-only, the session's end) in full; allowed ones one line each; known ones (the baseline
        file's) one line in all."""
        lines = []
        known = [f for f in self.findings if f.baselined]
        if known:
            from looseends.report import plural

            count, owned = sum(len(f.report) for f in known), len({f.owner for f in known})
            where = f" {self.baseline.path}" if self.baseline is not None else ""
            whose = "1 test or fixture" if owned == 1 else f"{owned} tests or fixtures"
            lines.append(f"known, in the baseline{where}: {plural(count, 'leaked unit')} of {whose}")
        owners, outlined = self._regrouped(shown=True)
        if outlined:
            lines.append(f"failed by leaks (full reports above): {owners}")
            lines.append(outlined.outline())
        owners, rest = self._regrouped(shown=False)
        if rest:
            lines.append(f"leaks found in: {owners}")
            lines.append(rest.render())
        for finding in self.findings:
            if finding.allowed is not None:
                lines.append(f"allowed in {finding.owner} ({finding.allowed}): {finding.report.summary()}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        """The core's report schema for all leaks, plus each finding's owner, reason and report."""
        data = self.report().to_dict()
        data["findings"] = [
            {
                "owner": f.owner,
                "allowed": f.allowed,
                "warn_only": f.warn_only,
                "shown": f.shown,
                "baselined": f.baselined,
                "over": list(f.over),
                "report": f.report.to_dict(),
            }
            for f in self.findings
        ]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    def merge(self, data: Mapping[str, Any]) -> None:
        """Add the findings of another ledger's `to_dict()` (an xdist worker's)."""
        from looseends.report_json import report_from_dict

        for item in data.get("findings", ()):
            finding = Finding(
                str(item["owner"]),
                report_from_dict(item["report"]),
                item.get("allowed"),
                bool(item.get("warn_only")),
                bool(item.get("shown")),
                bool(item.get("baselined")),
                tuple(str(line) for line in item.get("over", ())),
            )
            if finding.report:  # the worker's ledger applied the baseline already
                self.findings.append(finding)
