"""Growth across samples: which places keep gaining stuck units (Uber's LeakProf method), and diffs.

A place is where units were created, when that is known (creation tracking was on), else where they are
stuck (the kind, what they wait on, the innermost frame the user wrote). `Growth` keeps each sample's
tally per place and flags the places whose tasks were destroyed while pending, that grow steadily, or
that hold many blocked units in every sample.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from looseends.analysis.group import Group
from looseends.model import Frame, first_user_frame
from looseends.report import Report

__all__ = ["Fleet", "Growth", "Tally", "group_key"]


def _place(frame: Frame | None) -> str:
    return frame.place if frame is not None else "?"


def group_key(group: Group) -> str:
    """Where a group's units come from, when that is known: every unit created at one place is one
    place, whatever it waits on now, and whether it is still pending or was destroyed pending (a leak
    does not hide by being collected). Else where they are stuck: kind, wait and top frame."""
    site = group.origin.site if group.origin is not None else None
    if site is not None:
        return f"{group.kind}s created at {_place(site)}"
    return f"{group.kind} {group.blocked_on.code} at {_place(first_user_frame(group.stack))}"


@dataclass(frozen=True)
class Tally:
    """One place in one sample: its units (live, and destroyed while pending since tracking began), how
    many of the live ones are blocked, and how many were destroyed."""

    units: int = 0
    blocked: int = 0
    destroyed: int = 0

    def plus(self, group: Group) -> Tally:
        live_blocked = not group.destroyed and not group.blocked_on.is_running
        return Tally(
            self.units + group.count,
            self.blocked + (group.count if live_blocked else 0),
            self.destroyed + (group.count if group.destroyed else 0),
        )


@dataclass
class Growth:
    """Tallies per place across samples; the LeakProf-style verdicts."""

    min_growth: int
    min_blocked: int
    samples: list[dict[str, Tally]] = field(default_factory=list)
    latest: dict[str, list[Group]] = field(default_factory=dict)
    truncated: list[int] = field(default_factory=list)  # samples whose dump was cut to its size limit

    def add(self, report: Report) -> None:
        tallies: dict[str, Tally] = {}
        groups: dict[str, list[Group]] = {}
        for group in report.groups:
            key = group_key(group)
            tallies[key] = tallies.get(key, Tally()).plus(group)
            groups.setdefault(key, []).append(group)
        self.latest.update(groups)
        self.samples.append(tallies)
        if any("truncated" in error for error in report.errors):
            self.truncated.append(len(self.samples))

    def series(self, key: str, part: str = "units") -> list[int]:
        return [getattr(sample.get(key, Tally()), part) for sample in self.samples]

    def total(self, sample: int = -1) -> int:
        return sum(tally.units for tally in self.samples[sample].values())

    def suspects(self) -> dict[str, str]:
        """Key -> why: tasks made there were destroyed while pending (nothing could ever wake them), or
        the place keeps growing, or many are blocked there in every sample.

        Growing means never shrinking, up by at least min_growth, and up in at least half of the steps
        between samples: one unit that appears once (a request being served) is not a trend.
        """
        found: dict[str, str] = {}
        if len(self.samples) < 2:
            return found
        for key in self.latest:
            counts, destroyed = self.series(key), self.series(key, "destroyed")
            steps = list(itertools.pairwise(counts))
            never_shrinks = all(b >= a for a, b in steps)
            rises = sum(b > a for a, b in steps)
            if destroyed[-1] > destroyed[0]:
                found[key] = (
                    f"{destroyed[-1] - destroyed[0]} made here were destroyed while pending during the watch "
                    f"(nothing could ever wake them); {counts[0]} -> {counts[-1]} made and not finished"
                )
            elif never_shrinks and counts[-1] - counts[0] >= self.min_growth and 2 * rises >= len(steps):
                found[key] = f"grew from {counts[0]} to {counts[-1]} over {len(counts)} samples"
            elif min(self.series(key, "blocked")) >= self.min_blocked:
                found[key] = (
                    f"{min(self.series(key, 'blocked'))}+ units blocked at the same place in every sample"
                )
        return found

    def grown(self, before: Growth) -> dict[str, tuple[int, int]]:
        """Places whose count is higher in this growth's last sample than in `before`'s: key -> (old, new)."""
        old, new = before.samples[-1], self.samples[-1]
        return {
            key: (old.get(key, Tally()).units, tally.units)
            for key, tally in new.items()
            if tally.units > old.get(key, Tally()).units
        }

    def paragraph(self, key: str) -> list[str]:
        """The latest groups at that place, rendered as in a report, indented."""
        lines: list[str] = []
        for group in self.latest[key]:
            text = Report((group,), now=0.0).render()
            lines += ["  " + line for line in text.splitlines()[2:]]
        return lines


@dataclass
class Fleet:
    """`Growth` per instance, for `watch URL URL ...`: a place is judged on each instance, then summed
    across them as LeakProf does, so one location leaking on many instances is one finding."""

    min_growth: int
    min_blocked: int
    instances: dict[str, Growth] = field(default_factory=dict)
    down: dict[str, str] = field(default_factory=dict)  # instance -> why its last sample failed

    def add(self, instance: str, report: Report) -> None:
        growth = self.instances.setdefault(instance, Growth(self.min_growth, self.min_blocked))
        growth.add(report)
        self.down.pop(instance, None)

    def missed(self, instance: str, why: str) -> None:
        self.down[instance] = why

    def suspects(self) -> dict[str, dict[str, str]]:
        """Place -> {instance: why}, the places that are suspect on at least one instance, the places on
        most instances (then the largest total growth) first."""
        found: dict[str, dict[str, str]] = {}
        for instance, growth in self.instances.items():
            for key, why in growth.suspects().items():
                found.setdefault(key, {})[instance] = why
        return dict(sorted(found.items(), key=lambda item: (-len(item[1]), -self.total_growth(item[0]))))

    def total_growth(self, key: str) -> int:
        """The place's growth summed over the instances that show it (first to last sample of each)."""
        total = 0
        for growth in self.instances.values():
            counts = growth.series(key)
            total += counts[-1] - counts[0] if counts else 0
        return total

    def paragraph(self, key: str) -> list[str]:
        growth = next(g for g in self.instances.values() if key in g.latest)
        return growth.paragraph(key)
