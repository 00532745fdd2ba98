"""Growth across samples: which places keep gaining stuck units (Uber's LeakProf method), and diffs.

A place is a group key: the kind, what its units wait on, where (the innermost frame the user wrote) and
where they were created. `Growth` keeps each sample's count per place and flags the places that grow
steadily, or hold many blocked units in every sample.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from looseends.analysis.group import Group
from looseends.model import Frame, first_user_frame
from looseends.report import Report

__all__ = ["Fleet", "Growth"]


def _place(frame: Frame | None) -> str:
    return frame.place if frame is not None else "?"


def group_key(group: Group) -> str:
    """Where a group's units are stuck (kind, wait, top frame) and, when known, where they come from."""
    site = group.origin.site if group.origin is not None else None
    if "destroyed_last_s_ago" in group.blocked_on.detail:  # the live summary: one place, whatever it awaited
        return f"{group.kind} destroyed while pending, created at {_place(site)}"
    key = f"{group.kind} {group.blocked_on.code} at {_place(first_user_frame(group.stack))}"
    return f"{key}, created at {_place(site)}" if site is not None else key


@dataclass
class Growth:
    """Counts per place across samples; the LeakProf-style verdicts."""

    min_growth: int
    min_blocked: int
    samples: list[dict[str, int]] = field(default_factory=list)
    latest: dict[str, Group] = field(default_factory=dict)
    truncated: list[int] = field(default_factory=list)  # samples whose dump was cut to its size limit

    def add(self, report: Report) -> None:
        counts: dict[str, int] = {}
        for group in report.groups:
            key = group_key(group)
            counts[key] = counts.get(key, 0) + group.count
            self.latest[key] = group
        self.samples.append(counts)
        if any("truncated" in error for error in report.errors):
            self.truncated.append(len(self.samples))

    def series(self, key: str) -> list[int]:
        return [sample.get(key, 0) for sample in self.samples]

    def suspects(self) -> dict[str, str]:
        """Key -> why: keeps growing, or many blocked in every sample.

        Growing means never shrinking, up by at least min_growth, and up in at least half of the steps
        between samples: one unit that appears once (a request being served) is not a trend.
        """
        found: dict[str, str] = {}
        if len(self.samples) < 2:
            return found
        for key, group in self.latest.items():
            counts = self.series(key)
            steps = list(itertools.pairwise(counts))
            never_shrinks = all(b >= a for a, b in steps)
            rises = sum(b > a for a, b in steps)
            if never_shrinks and counts[-1] - counts[0] >= self.min_growth and 2 * rises >= len(steps):
                found[key] = f"grew from {counts[0]} to {counts[-1]} over {len(counts)} samples"
            elif min(counts) >= self.min_blocked and not group.blocked_on.is_running:
                found[key] = f"{min(counts)}+ units blocked at the same place in every sample"
        return found

    def grown(self, before: Growth) -> dict[str, tuple[int, int]]:
        """Places whose count is higher in this growth's last sample than in `before`'s: key -> (old, new)."""
        old, new = before.samples[-1], self.samples[-1]
        return {key: (old.get(key, 0), count) for key, count in new.items() if count > old.get(key, 0)}

    def paragraph(self, key: str) -> list[str]:
        """The latest group at that place, rendered as in a report, indented."""
        text = Report((self.latest[key],), now=0.0).render()
        return ["  " + line for line in text.splitlines()[2:]]


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
