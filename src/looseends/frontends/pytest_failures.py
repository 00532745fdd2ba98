"""How a leak fails a test in pytest's terms: a teardown error whose short-summary line says what leaked
and where."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from looseends.report import Report

__all__ = ["LeakFailure"]


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
