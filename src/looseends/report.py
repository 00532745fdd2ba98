"""Reports: grouped units rendered as short text for people and as versioned JSON for machines.

Text is bounded: a hundred identical leaks are one paragraph, and past `max_groups` groups the rest
are summarised in one line. JSON carries every group (schema in docs/json-schema.md).
"""

from __future__ import annotations

import heapq
import re
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

from looseends._text import printable
from looseends.analysis.group import Group, group_units
from looseends.codes import provable
from looseends.model import DESTROYED_LAST, Frame, Kind, Snapshot, Unit

__all__ = ["MAX_GROUPS", "MAX_NAMES", "Dump", "Report", "plural"]

MAX_GROUPS = 20
MAX_LINE = 2000
MAX_NAMES = 8
MAX_DURING = 3


def plural(count: int, word: str) -> str:
    """`1 thread`, `2 threads`, `2 processes`."""
    if count == 1:
        return f"{count} {word}"
    return f"{count} {word}es" if word.endswith("s") else f"{count} {word}s"


def _seconds(value: float) -> str:
    return f"{value:.1f} s" if value >= 0.1 else f"{value * 1000:.0f} ms"


@dataclass(frozen=True)
class Report:
    """What a check found: groups of units, largest first, and any source that could not be read."""

    groups: tuple[Group, ...]
    now: float = field(default_factory=time.monotonic)
    errors: tuple[str, ...] = ()
    max_groups: int = MAX_GROUPS  # groups shown in text; JSON always has all
    proofs_tried: bool = False  # reachability was tried: unproven blocked groups may still be woken
    by_design: tuple[Unit, ...] = ()  # tasks stopped by their loop's shutdown as they were written to be
    ignored: tuple[tuple[str, Unit], ...] = ()  # (the ignore rule's description, the unit it kept out)
    proofs_abandoned: str | None = None  # the proof's walk gave up (a heap past its bound): why

    @classmethod
    def from_units(
        cls,
        units: Iterable[Unit],
        *,
        now: float | None = None,
        errors: Sequence[str] = (),
        max_groups: int = MAX_GROUPS,
        proofs_tried: bool = False,
        by_design: Sequence[Unit] = (),
        ignored: Sequence[tuple[str, Unit]] = (),
        proofs_abandoned: str | None = None,
    ) -> Report:
        now = time.monotonic() if now is None else now
        groups = tuple(group_units(units))
        return cls(
            groups,
            now,
            tuple(errors),
            max_groups,
            proofs_tried,
            tuple(by_design),
            tuple(ignored),
            proofs_abandoned,
        )

    def only(self, units: Iterable[Unit]) -> Report:
        """This report with just these of its units, regrouped (a baseline file keeps some out)."""
        return replace(self, groups=tuple(group_units(units)))

    def ignored_text(self) -> str | None:
        """One line: what the ignore rules kept out of this report, by rule (None when nothing was)."""
        if not self.ignored:
            return None
        by_rule: dict[str, Counter[str]] = {}
        for rule, unit in self.ignored:
            by_rule.setdefault(rule, Counter())[str(unit.kind)] += unit.count
        parts = [
            f"{', '.join(plural(n, kind) for kind, n in kinds.items())} ({rule})"
            for rule, kinds in by_rule.items()
        ]
        return "ignored: " + "; ".join(parts)

    @property
    def units(self) -> tuple[Unit, ...]:
        return tuple(unit for group in self.groups for unit in group.units)

    def __len__(self) -> int:
        return sum(group.count for group in self.groups)

    def __bool__(self) -> bool:
        return bool(self.groups)

    def counts(self) -> dict[Kind, int]:
        """Units per kind."""
        counts: dict[Kind, int] = {}
        for group in self.groups:
            counts[group.kind] = counts.get(group.kind, 0) + group.count
        return counts

    def kinds_text(self) -> str:
        """`3 threads and 1 task`: what the report holds, by kind."""
        parts = [plural(n, str(kind)) for kind, n in self.counts().items()]
        return " and ".join([", ".join(parts[:-1]), parts[-1]] if len(parts) > 1 else parts) or "nothing"

    def summary(self, what: str = "leaked") -> str:
        """`6 leaked units in 1 group: 6 threads`; tasks destroyed while pending are counted apart: they no
        longer exist (a dump shows how many since tracking began)."""
        present = Report(tuple(g for g in self.groups if not g.destroyed), self.now)
        gone = sum(group.count for group in self.groups if group.destroyed)
        tail = f"; {plural(gone, 'task')} destroyed while pending" if gone else ""
        counts = present.counts()
        if not counts:
            return f"no {what} units{tail}"
        kinds = ", ".join(plural(n, str(kind)) for kind, n in counts.items())
        groups = plural(len(present.groups), "group")
        return f"{plural(len(present), what + ' unit')} in {groups}: {kinds}{tail}"

    def headline(self) -> str:
        """One line for a test runner's short summary: the largest group and where it was created."""
        if not self.groups:
            return "nothing leaked"
        first = self.groups[0]
        line = _headline(first, self.now)
        if first.origin is not None and first.origin.site is not None:
            line += f", created at {first.origin.site.location}"
        if len(self.groups) > 1:
            others = Report(self.groups[1:], self.now)
            line += f" (and {plural(len(others.groups), 'more group')}: {others.kinds_text()})"
        return printable(line, MAX_LINE)

    def outline(self, title: str = "looseends") -> str:
        """The summary line and one line per group: for leaks whose full report was shown already."""
        lines = [f"{title}: {self.summary()}"]
        lines.extend(_outline(group, self.now) for group in self.groups[: self.max_groups])
        if len(self.groups) > self.max_groups:
            lines.append(f"  ... and {plural(len(self.groups) - self.max_groups, 'more group')}")
        return "\n".join(printable(line, MAX_LINE) for line in lines)

    def render(self, *, full: bool = False, title: str = "looseends") -> str:
        """Text: a summary line, then a paragraph per group. `full` lists every unit and frame.

        A dump (a title with "dump") shows states, not leak patterns: an idle event loop or a server's
        accept loop is normal in a running service; patterns belong to leak reports."""
        dump = "dump" in title
        what = "live" if dump else "leaked"
        lines = [f"{title}: {self.summary(what)}"]
        shown = self.groups if full else self.groups[: self.max_groups]
        for group in shown:
            lines.append("")
            lines.extend(
                _render_group(
                    group,
                    self.now,
                    full=full,
                    proofs_tried=self.proofs_tried,
                    patterns=not dump,
                    abandoned=self.proofs_abandoned,
                )
            )
        hidden = self.groups[len(shown) :]
        if hidden:
            lines.append("")
            units = sum(g.count for g in hidden)
            lines.append(f"... and {plural(len(hidden), 'more group')} ({units} units) not shown")
        if full and self.by_design:
            lines.append("")
            lines.append(_by_design_line(self.by_design))
        if (ignored := self.ignored_text()) is not None:
            lines.append("")
            lines.append(ignored)
        lines.extend(f"warning: {error}" for error in self.errors)
        # Names, commands and source lines come from the program or from input data: one line each,
        # with no terminal escapes.
        return "\n".join(printable(line, MAX_LINE) for line in lines)

    def __str__(self) -> str:
        return self.render()

    def to_dict(self) -> dict[str, object]:
        """The versioned JSON form (docs/json-schema.md)."""
        from looseends.report_json import report_to_dict

        return report_to_dict(self)

    def to_json(self, *, indent: int | None = 2) -> str:
        import json  # here: an attach's snapshot imports this module inside a process without json

        return json.dumps(self.to_dict(), indent=indent)


@dataclass(frozen=True, slots=True)
class Dump(Snapshot):
    """What `looseends.snapshot()` returns: a snapshot that renders itself, so `print()` shows a dump."""

    def render(self, debug: int = 1) -> str:
        """Grouped with counts (`debug=1`, like pprof) or every unit in full (`debug=2`)."""
        report = Report.from_units(self.units, now=self.taken_at, errors=self.errors)
        return report.render(full=debug >= 2, title="looseends dump")

    def __str__(self) -> str:
        return self.render()


def _by_design_line(units: Sequence[Unit]) -> str:
    """One line for tasks that were not leaks: cancelled at shutdown as their code expects."""
    names = ", ".join(heapq.nsmallest(MAX_NAMES, (unit.name for unit in units), key=_natural))
    more = f", +{len(units) - MAX_NAMES} more" if len(units) > MAX_NAMES else ""
    sites = sorted({unit.origin.site.location for unit in units if unit.origin and unit.origin.site})
    where = f" (created at {', '.join(sites[:3])})" if sites else ""
    return f"not leaks: {plural(len(units), 'task')} stopped by design at loop shutdown{where}: {names}{more}"


def _headline(group: Group, now: float, *, patterns: bool = True) -> str:
    unit_words = plural(group.count, str(group.kind))
    blocked = group.blocked_on
    if group.kind is Kind.PROCESS:
        state = blocked.description
    elif blocked.is_running:
        state = "running"
    elif blocked.description.startswith("awaiting"):
        state = f"blocked {blocked.description}"
    else:
        state = f"blocked in {blocked.description}"
    if group.destroyed:
        last = _seconds(float(blocked.detail[DESTROYED_LAST]))
        return (
            f"{unit_words} destroyed while pending (the last {last} ago); one of them, as last read: {state}"
        )
    ages = group.ages(now)
    age = ""
    if ages:
        age = (
            f", started {_seconds(max(ages))} ago"
            if group.kind is Kind.PROCESS
            else f" for {_seconds(max(ages))}"
        )
    shown = group.pattern if patterns or group.units[0].proof is not None else None  # proven: a leak
    pattern = f": {shown.name}" if shown is not None else ""
    context = f" [{blocked.context}]" if blocked.context and shown is None else ""
    return f"{unit_words} {state}{age}{context}{pattern}"


def _render_group(
    group: Group,
    now: float,
    *,
    full: bool,
    proofs_tried: bool = False,
    patterns: bool = True,
    abandoned: str | None = None,
) -> list[str]:
    lines = [_headline(group, now, patterns=patterns)]
    proof = group.units[0].proof
    vanished = group.blocked_on.detail.get("vanished")
    if proof is not None:
        lines.append(f"  stuck forever (proven): {proof}")
    elif vanished is not None and group.kind is Kind.TASK:
        if provable(group.blocked_on.code):  # a sleep or a read was never a candidate for a proof
            lines.append("  not proven stuck: something that could still run could reach what it waited on")
    elif proofs_tried and provable(group.blocked_on.code) and abandoned is not None:
        lines.append(f"  not proven: {abandoned}")
    elif proofs_tried and provable(group.blocked_on.code):  # a sleep or a trio wait was never a candidate
        lines.append("  blocked, may still be woken: something that may still run can reach what it waits on")
    if vanished is not None:
        lines.append(f"  then: {vanished}")
    if group.pattern is not None and (patterns or proof is not None):
        lines.append(f"  why: {group.pattern.why}")
        lines.append(f"  fix: {group.pattern.fix}")
    lines.extend(_render_origin(group))
    lines.append("  " + _render_members(group, now, full=full))
    if group.stack or group.kind is not Kind.PROCESS:
        lines.append("  stack (innermost first):")
        lines.extend(_render_stack(group.stack, full=full))
    return lines


def _during(group: Group) -> str:
    """`, during test_a, test_b and 7 more`: a leak common to a whole suite stays one line."""
    during = group.during()
    if not during:
        return ""
    more = f" and {len(during) - MAX_DURING} more" if len(during) > MAX_DURING else ""
    return f", during {', '.join(during[:MAX_DURING])}{more}"


def _outline(group: Group, now: float) -> str:
    site = group.origin.site if group.origin is not None else None
    where = f", created at {site.location}" if site is not None else ""
    return f"  {_headline(group, now)}{where}{_during(group)}"


def _main_thread(name: str) -> bool:
    """The main thread's name, alone or with the process it is in (`attach --children`)."""
    return name == "MainThread" or (name.startswith("MainThread [pid ") and name.endswith("]"))


def _render_origin(group: Group) -> list[str]:
    origin = group.origin
    if origin is None or origin.site is None:
        parent = group.blocked_on.detail.get("parent")
        if group.kind is Kind.PROCESS and parent is not None:
            return [f"  created by process {parent} (the call that started it was not recorded)"]
        if group.kind is Kind.GOROUTINE:
            return ["  created by: not in the dump (the main goroutine, or a runtime one)"]
        if group.kind is Kind.THREAD and all(_main_thread(unit.name) for unit in group.units):
            return ["  created by: the interpreter (the main thread)"]
        return ["  created by: unknown (started before tracking began)"]
    site = origin.site
    creator = f" in {origin.creator}" if origin.creator else ""
    lines = [f"  created by {site.function} at {site.location}{creator}{_during(group)}"]
    if source := site.source_line():
        lines.append(f"      {source}")
    callers = [f for f in origin.user_frames if f is not site][:3]
    lines.extend(f"      called from {f.function} at {f.location}" for f in callers)
    return lines


def _render_members(group: Group, now: float, *, full: bool) -> str:
    """Names in natural order, each once with its count; per-unit facts only in the full dump, shared
    facts once."""
    if full:
        names = ", ".join(_member(unit, now) for unit in sorted(group.units, key=_natural_name))
        hidden = 0
    else:
        counts = Counter[str]()
        for unit in group.units:
            counts[unit.name] += unit.count
        shown = heapq.nsmallest(MAX_NAMES, counts, key=_natural)  # 100,000 names: no full sort
        names = ", ".join(f"{name} (x{counts[name]})" if counts[name] > 1 else name for name in shown)
        hidden = group.count - sum(counts[name] for name in shown)
    more = f", +{hidden} more" if hidden > 0 else ""
    shared = []
    if not full and all(u.daemon for u in group.units) and group.kind is Kind.THREAD:
        shared.append("daemon")
    threads = {u.thread for u in group.units if u.thread is not None}
    if not full and len(threads) == 1:
        shared.append(f"loop in thread {threads.pop()}")
    facts = f" ({', '.join(shared)})" if shared else ""
    return f"{'units' if group.count > 1 else 'unit'}: {names}{more}{facts}"


def _natural(name: str) -> list[object]:
    return [int(part) if part.isdigit() else part for part in _DIGITS.split(name)]


def _natural_name(unit: Unit) -> list[object]:
    return _natural(unit.name)


_DIGITS = re.compile(r"(\d+)")


def _member(unit: Unit, now: float) -> str:
    facts = []
    if unit.count > 1:
        facts.append(f"{unit.count} identical")
    if unit.ident is not None:
        facts.append(f"ident {unit.ident}")
    if unit.native_id is not None:
        facts.append(f"native id {unit.native_id}")
    if unit.daemon:
        facts.append("daemon")
    if unit.thread is not None:
        facts.append(f"loop in thread {unit.thread}")
    if unit.target is not None:
        facts.append(f"target {unit.target}")
    age = unit.age(now)
    if age is not None:
        facts.append(f"age {_seconds(age)}")
    return f"{unit.name} ({', '.join(facts)})" if facts else unit.name


def _render_stack(stack: tuple[Frame, ...], *, full: bool) -> list[str]:
    """User frames with their source line; runs of library frames folded into one line unless `full`."""
    lines: list[str] = []
    folded: list[Frame] = []

    def flush() -> None:
        if folded:
            names = " <- ".join(f.qualified_name for f in folded[:4])
            extra = f" <- ... {len(folded) - 4} more" if len(folded) > 4 else ""
            lines.append(f"    [library] {names}{extra}")
            folded.clear()

    for frame in stack:
        if frame.is_library and not full:
            folded.append(frame)
            continue
        flush()
        lines.append(f"    {frame.qualified_name} at {frame.location}")
        if source := frame.source_line():
            lines.append(f"        {source}")
    flush()
    if not stack:
        lines.append("    (no Python frames)")
    return lines
