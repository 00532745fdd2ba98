"""`looseends attach PID --children`: a pre-fork server (gunicorn, uvicorn --workers, celery) as one
report: the master and every Python process under it, attached one after the other.

Units keep their process in their name, so one place in several workers is one group that says how
many units in which processes ("2 threads blocked in Event.wait ... units: leaky [pid 101],
leaky [pid 102]"). A child that is not Python (a shell, a Go helper) is only in its parent's report, as
a process; one that is Python but cannot be attached is a line in the report's errors, and the others
are reported all the same.
"""

from __future__ import annotations

import dataclasses

import psutil

from looseends.attach import AttachError, NotPython, Visit, visit
from looseends.model import Kind, Unit
from looseends.report import Report

__all__ = ["Family", "Member", "visit_family"]


@dataclasses.dataclass(frozen=True)
class Member:
    """One Python process of the family: its pid, name, and what came of the attach."""

    pid: int
    name: str
    visit: Visit | None
    error: str | None = None

    def line(self) -> str:
        if self.visit is None:
            return f"  pid {self.pid} ({self.name}): not attached: {self.error}"
        units = sum(unit.count for unit in self.visit.report.units)
        return f"  pid {self.pid} ({self.name}): {units} live unit{'s' if units != 1 else ''}"


@dataclasses.dataclass(frozen=True)
class Family:
    report: Report
    members: tuple[Member, ...]

    def describe(self) -> str:
        answered = [member for member in self.members if member.visit is not None]
        ways = {member.visit.describe() for member in answered if member.visit is not None}
        how = f"; {ways.pop()}" if len(ways) == 1 else ""
        return f"{len(answered)} of {len(self.members)} answered{how}"

    def lines(self) -> list[str]:
        """One line per process: which one, and how many units it has."""
        return [member.line() for member in self.members]


def visit_family(pid: int, *, timeout: float, proven: bool, via: str | None) -> Family:
    """The report of process `pid` and its Python descendants, merged. AttachError when `pid` itself
    cannot be attached (its children are then not tried)."""
    first = visit(pid, timeout=timeout, proven=proven, via=via)
    members = [Member(pid, _name(pid), first)]
    units = [_of_process(unit, pid) for unit in first.report.units]
    errors = [f"pid {pid}: {error}" for error in first.report.errors]
    for child in _descendants(pid):
        try:
            seen = visit(child, timeout=timeout, proven=proven, via=via)
        except NotPython:
            continue  # in its parent's report already, as a process
        except AttachError as exc:
            members.append(Member(child, _name(child), None, str(exc)))
            errors.append(f"pid {child}: not attached: {exc}")
            continue
        members.append(Member(child, _name(child), seen))
        units.extend(_of_process(unit, child) for unit in seen.report.units)
        errors.extend(f"pid {child}: {error}" for error in seen.report.errors)
    report = Report.from_units(units, now=first.report.now, errors=errors, max_groups=10_000)
    return Family(report, tuple(members))


def _of_process(unit: Unit, pid: int) -> Unit:
    """The unit, named and keyed with its process: idents repeat across forked workers. A child
    process keeps its name ("pid 102"): its parent is in its "created by" line."""
    name = unit.name if unit.kind is Kind.PROCESS else f"{unit.name} [pid {pid}]"
    return dataclasses.replace(unit, key=(pid, unit.key), name=name)


def _descendants(pid: int) -> list[int]:
    try:
        return sorted(child.pid for child in psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


def _name(pid: int) -> str:
    """The process's own name (what `ps -o comm` shows; a server's process title, where it sets one)."""
    try:
        return psutil.Process(pid).name()
    except psutil.Error:
        return "?"
