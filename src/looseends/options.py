"""Keyword-only options, validated in one place, with errors that say where a bad value came from."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypedDict, Unpack

from looseends.analysis.ignore import BUILTIN_IGNORES, IgnoreRule, ignore_if
from looseends.analysis.services import SERVICES
from looseends.errors import OptionError, UnknownOptionError
from looseends.model import Kind, Unit

# goleak's settle budget is about 0.43 s; a little more lets a thread that exits 300 ms late go free.
DEFAULT_TIMEOUT = 0.5
# A unit in a wait with a timeout may come back by itself: it gets until its timeout expires, within
# this much more than `timeout` (by default as much again, at most MAX_EXTENSION).
MAX_EXTENSION = 3.0
DEFAULT_KINDS = frozenset({Kind.THREAD, Kind.TASK, Kind.PROCESS, Kind.GREENLET})


__all__ = ["DEFAULT_TIMEOUT", "MAX_EXTENSION", "OptionValues", "Options", "build_options", "check_names"]


class OptionValues(TypedDict, total=False):
    """The options every check takes by keyword (`check`, `find`, `find_async`, `verify_none`, the pytest
    marker, `looseends_options`): typed, so editors complete them and mypy flags a misspelt one."""

    timeout: float | None
    ignore: Iterable[IgnoreRule | Callable[[Unit], bool]]
    builtin_ignores: bool
    kinds: Iterable[Kind | str] | None
    max_groups: int
    prove: bool
    timed_extension: float | None


OPTION_NAMES = tuple(OptionValues.__annotations__)


def check_names(options: Mapping[str, object], source: str, extra: Iterable[str] = ()) -> None:
    """An unknown name is an `OptionError` that suggests the closest real one, not a bare TypeError."""
    known = (*OPTION_NAMES, *extra)
    for name in options:
        if name not in known:
            import difflib  # only for a misspelt option

            close = difflib.get_close_matches(name, known, n=1)
            hint = f"did you mean {close[0]}? " if close else ""
            raise UnknownOptionError(
                f"unknown option {name!r} from {source}: {hint}(options: {', '.join(sorted(known))})"
            )


@dataclass(frozen=True, slots=True)
class Options:
    timeout: float = DEFAULT_TIMEOUT
    ignore: tuple[IgnoreRule, ...] = ()
    builtin_ignores: bool = True
    kinds: frozenset[Kind] = DEFAULT_KINDS
    max_groups: int = 20
    prove: bool = True  # try reachability proofs when something looks leaked
    timed_extension: float = DEFAULT_TIMEOUT  # seconds beyond timeout for units in timed waits

    @property
    def rules(self) -> tuple[IgnoreRule, ...]:
        """Cheap rules first: the services rule walks the heap, so it runs only if nothing else matched."""
        builtin = (*BUILTIN_IGNORES, SERVICES) if self.builtin_ignores else ()
        return self.ignore + builtin


def build_options(*, source: str, **options: Unpack[OptionValues]) -> Options:
    """Check every option; `source` ("check()", "marker", "--looseends-timeout") goes into error messages."""
    check_names(options, source)
    return _validated(source, **options)


def _validated(
    source: str,
    *,
    timeout: float | None = None,
    ignore: Iterable[IgnoreRule | Callable[[Unit], bool]] = (),
    builtin_ignores: bool = True,
    kinds: Iterable[Kind | str] | None = None,
    max_groups: int = 20,
    prove: bool = True,
    timed_extension: float | None = None,
) -> Options:
    """Each value checked against what it accepts; the checks need the names, so they are spelt out here."""
    check = _Checker(source)
    seconds = check.seconds("timeout", DEFAULT_TIMEOUT if timeout is None else timeout)
    extension = min(seconds, MAX_EXTENSION) if timed_extension is None else timed_extension
    if isinstance(max_groups, bool) or not isinstance(max_groups, int) or max_groups < 1:
        raise check.fail("max_groups", max_groups, "a whole number >= 1")
    return Options(
        seconds,
        check.rules(ignore),
        check.flag("builtin_ignores", builtin_ignores),
        check.kinds(kinds),
        max_groups,
        check.flag("prove", prove),
        check.seconds("timed_extension", extension),
    )


class _Checker:
    """One check per kind of value, each failing with a message that names the option and its source."""

    def __init__(self, source: str) -> None:
        self._source = source

    def fail(self, name: str, value: object, expected: str) -> OptionError:
        return OptionError(f"invalid {name}={value!r} from {self._source}: expected {expected}")

    def seconds(self, name: str, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise self.fail(name, value, "a finite number of seconds")
        if value < 0:
            raise self.fail(name, value, "a number of seconds >= 0")
        return float(value)

    def flag(self, name: str, value: object) -> bool:
        if not isinstance(value, bool):
            raise self.fail(name, value, "True or False")
        return value

    def rules(self, ignore: object) -> tuple[IgnoreRule, ...]:
        if isinstance(ignore, IgnoreRule | str) or not isinstance(ignore, Iterable):
            raise self.fail("ignore", ignore, "a list of ignore rules (looseends.ignore_*) or predicates")
        rules: list[IgnoreRule] = []
        for rule in ignore:
            if isinstance(rule, IgnoreRule):
                rules.append(rule)
            elif callable(rule):
                rules.append(ignore_if(rule, getattr(rule, "__name__", "predicate")))
            else:
                expected = "an ignore rule (looseends.ignore_*) or a predicate taking a Unit"
                raise self.fail("ignore", rule, expected)
        return tuple(rules)

    def kinds(self, kinds: Iterable[Kind | str] | None) -> frozenset[Kind]:
        if kinds is None:
            return DEFAULT_KINDS
        try:
            chosen = frozenset(Kind(k) for k in ([kinds] if isinstance(kinds, str) else kinds))
        except (ValueError, TypeError):
            raise self.fail("kinds", kinds, f"kinds among {[str(k) for k in Kind]}") from None
        if not chosen:
            raise self.fail("kinds", kinds, "at least one kind (a check of no kind could never fail)")
        return chosen
