"""The error tree: everything looseends raises derives from LooseEndsError."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from looseends.report import Report

__all__ = [
    "DumpParseError",
    "LeakError",
    "LooseEndsError",
    "LooseEndsWarning",
    "OptionError",
    "UnknownOptionError",
]


class LooseEndsError(Exception):
    """Base class of every looseends error."""


class LooseEndsWarning(RuntimeWarning):
    """Something looseends cannot see on this interpreter (the canary), or another reason to distrust a
    clean verdict."""


class OptionError(LooseEndsError, ValueError):
    """A bad option value; the message says which option, where it came from, and what is accepted."""


class UnknownOptionError(OptionError, TypeError):
    """An option name that does not exist; also a TypeError, as an unknown keyword is in Python."""


class DumpParseError(LooseEndsError, ValueError):
    """A goroutine dump (or other dump) that cannot be read at all; the message says why."""


class LeakError(LooseEndsError, AssertionError):
    """Units were left running. An AssertionError, so test runners report a failure, not an error.

    `report` holds the structured findings (groups, stacks, creation sites).
    """

    def __init__(self, report: Report) -> None:
        super().__init__(report.render())
        self.report = report
