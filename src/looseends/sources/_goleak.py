"""goleak's failure text, wherever users paste it from: raw (`goleak.Find`'s error), inside `go test` and
`go test -v` logs (indented under `leak_test.go:15: `), after `PASS` from `VerifyTestMain`, several tests
and several packages in one log.

goleak v1.3 prints each goroutine as `[Goroutine 8 in state chan send, with F on top of the stack:` (later
ones start with a space, not `[`) followed directly by its frames, and closes the list with `]`; with pprof
labels the header reads `Goroutine 12 in state chan receive] {tenant: t1}, with F on top of the stack:`.
Each section becomes ordinary traceback lines (`goroutine 8 [chan send] {tenant: t1}:` and the frames)
for the traceback reader, with the test that reported it and the package run (process) it came from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

MARKER = "found unexpected goroutines:"
_START = re.compile(
    r"^(\s*)(?:\S+_test\.go:\d+: |goleak: Errors on successful test run:)?found unexpected goroutines:\s*$"
)
_ENTRY = re.compile(r"^\[?\s?Goroutine (\d+) in state (.*?)(?:\] \{(.*)\})?, with \S+ on top of the stack:$")
_TEST = re.compile(r"^(?:=== RUN|--- FAIL:)\s+(\S+)")
_PACKAGE = re.compile(r"^(?:FAIL|ok)\s+(\S+)\s+(?:[\d.]+s|\(cached\))")
_TEST_MAIN = "goleak: Errors on successful test run:"
MAX_ENTRY = 4096  # characters: longer lines are frames or garbage, never an entry header


@dataclass
class Section:
    """One goleak report: its goroutines as traceback lines, where in the text it began, who reported it."""

    first_line: int
    test: str | None
    run: int  # which package run (test process) in the log: goroutine ids repeat across them
    lines: list[str] = field(default_factory=list)
    package: str | None = None

    @property
    def during(self) -> str | None:
        if self.test is None:
            return None
        return f"{self.test} ({self.package})" if self.package else self.test


def goleak_sections(lines: list[str]) -> list[Section]:
    """Every goleak report in the text (none when there is no goleak output)."""
    sections: list[Section] = []
    test: str | None = None
    run = 0
    index = 0
    while index < len(lines):
        line = lines[index]
        start = _START.match(line) if MARKER in line else None
        if start is not None:
            name = "goleak.VerifyTestMain" if _TEST_MAIN in line else test
            section = Section(index + 1, name, run)
            index = _read_section(lines, index + 1, section)
            sections.append(section)
            continue
        if (found := _TEST.match(line)) is not None:
            test = found.group(1)
        elif (package := _PACKAGE.match(line)) is not None:
            for earlier in sections:
                if earlier.run == run:
                    earlier.package = package.group(1)
            run, test = run + 1, None
        index += 1
    return sections


def _read_section(lines: list[str], index: int, section: Section) -> int:
    """Read the goroutines from `lines[index]` to the closing `]`; the index after it."""
    indent = _indent_of(lines[index]) if index < len(lines) else ""
    while index < len(lines):
        line = lines[index]
        if not line.startswith(indent):
            break  # the log moved on without a closing bracket (a truncated paste)
        line = line[len(indent) :]
        index += 1
        if line.strip() == "]":
            break
        entry = _ENTRY.match(line) if len(line) <= MAX_ENTRY else None
        if entry is None:
            section.lines.append(line)
            continue
        ident, state, labels = entry.groups()
        section.lines += ["", f"goroutine {ident} [{state}]" + (f" {{{labels}}}:" if labels else ":")]
    return index


def _indent_of(line: str) -> str:
    return line[: len(line) - len(line.lstrip(" "))]
