"""The ledger: every leak a test session found and who owns it, for the summary, the exit status and JSON.

Front-end neutral (the pytest plugin keeps one; xdist workers send theirs to the controller as JSON).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from looseends.model import Unit

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


@dataclass
class Ledger:
    findings: list[Finding] = field(default_factory=list)

    def add(self, finding: Finding) -> None:
        if finding.report:
            self.findings.append(finding)

    @property
    def failing(self) -> list[Finding]:
        return [f for f in self.findings if f.allowed is None and not f.warn_only]

    def units(self, *, allowed: bool = False) -> list[Unit]:
        """Reported units; the allowed ones only when asked."""
        return [u for f in self.findings if (f.allowed is not None) == allowed for u in f.report.units]

    def report(self) -> Report:
        """Every leak not allowed, regrouped across owners: identical leaks of many tests are one group."""
        from looseends.report import Report

        return Report.from_units(self.units(), now=self._now())

    def _regrouped(self, *, shown: bool) -> tuple[str, Report]:
        from looseends.report import Report

        findings = [f for f in self.findings if f.allowed is None and f.shown == shown]
        owners = ", ".join(sorted({f.owner for f in findings}))
        return owners, Report.from_units([u for f in findings for u in f.report.units], now=self._now())

    def _now(self) -> float:
        return max((f.report.now for f in self.findings), default=0.0)

    def render(self) -> str:
        """Leaks that failed tests (reports shown there) in outline, regrouped across tests; the rest
        (warn-only, the session's end) in full; allowed ones one line each."""
        lines = []
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
            self.add(
                Finding(
                    str(item["owner"]),
                    report_from_dict(item["report"]),
                    item.get("allowed"),
                    bool(item.get("warn_only")),
                    bool(item.get("shown")),
                )
            )
