"""Keyword-only options, validated in one place, with errors that say where a bad value came from."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from looseends.analysis.ignore import BUILTIN_IGNORES, IgnoreRule, ignore_if
from looseends.analysis.services import SERVICES
from looseends.errors import OptionError
from looseends.model import Kind, Unit

# goleak's settle budget is about 0.43 s; a little more lets a thread that exits 300 ms late go free.
DEFAULT_TIMEOUT = 0.5
# A unit in a wait with a timeout may come back by itself: it gets until its timeout expires, within
# this much more than `timeout` (by default as much again, at most MAX_EXTENSION).
MAX_EXTENSION = 3.0
DEFAULT_KINDS = frozenset({Kind.THREAD, Kind.TASK, Kind.PROCESS, Kind.GREENLET})


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


def build_options(
    *,
    source: str,
    timeout: float | None = None,
    ignore: Iterable[IgnoreRule | Callable[[Unit], bool]] = (),
    builtin_ignores: bool = True,
    kinds: Iterable[Kind | str] | None = None,
    max_groups: int = 20,
    prove: bool = True,
    timed_extension: float | None = None,
) -> Options:
    """Check every option; `source` ("check()", "marker", "--looseends-timeout") goes into error messages."""

    def fail(name: str, value: object, expected: str) -> OptionError:
        return OptionError(f"invalid {name}={value!r} from {source}: expected {expected}")

    if timeout is None:
        timeout = DEFAULT_TIMEOUT
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not math.isfinite(timeout):
        raise fail("timeout", timeout, "a finite number of seconds")
    if timeout < 0:
        raise fail("timeout", timeout, "a number of seconds >= 0")
    if isinstance(ignore, IgnoreRule | str) or not isinstance(ignore, Iterable):
        raise fail("ignore", ignore, "a list of ignore rules (looseends.ignore_*) or predicates")
    rules: list[IgnoreRule] = []
    for rule in ignore:
        if isinstance(rule, IgnoreRule):
            rules.append(rule)
        elif callable(rule):
            rules.append(ignore_if(rule, getattr(rule, "__name__", "predicate")))
        else:
            raise fail("ignore", rule, "an ignore rule (looseends.ignore_*) or a predicate taking a Unit")
    if not isinstance(builtin_ignores, bool):
        raise fail("builtin_ignores", builtin_ignores, "True or False")
    chosen = DEFAULT_KINDS
    if kinds is not None:
        if isinstance(kinds, str):
            kinds = [kinds]
        try:
            chosen = frozenset(Kind(k) for k in kinds)
        except (ValueError, TypeError):
            raise fail("kinds", kinds, f"kinds among {[str(k) for k in Kind]}") from None
        if not chosen:
            raise fail("kinds", kinds, "at least one kind (a check of no kind could never fail)")
    if isinstance(max_groups, bool) or not isinstance(max_groups, int) or max_groups < 1:
        raise fail("max_groups", max_groups, "a whole number >= 1")
    if not isinstance(prove, bool):
        raise fail("prove", prove, "True or False")
    if timed_extension is None:
        timed_extension = min(float(timeout), MAX_EXTENSION)
    if (
        isinstance(timed_extension, bool)
        or not isinstance(timed_extension, int | float)
        or not math.isfinite(timed_extension)
        or timed_extension < 0
    ):
        raise fail("timed_extension", timed_extension, "a number of seconds >= 0")
    return Options(
        float(timeout), tuple(rules), builtin_ignores, chosen, max_groups, prove, float(timed_extension)
    )
