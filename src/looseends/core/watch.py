"""A watch: one span from a baseline to a settled verdict, shared by check() and the test front ends."""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator, Hashable
from dataclasses import replace
from typing import TYPE_CHECKING

from looseends.analysis.baseline import ignore_current
from looseends.analysis.ignore import IgnoreRule
from looseends.core import canary
from looseends.core.find import (
    LeakFilter,
    candidate_filter,
    leak_filter,
    settle_steps,
    shutdown_prover,
    to_report,
)
from looseends.model import Kind, Snapshot, Unit
from looseends.options import Options
from looseends.sources import _origins, fingerprint, identities
from looseends.sources._collection import running_elsewhere
from looseends.sources._tracking import tracking
from looseends.sources._vanished import Taker, mark_reported, take_vanished, taking, vanished_since
from looseends.sources.tasks import STOPPED_BY_DESIGN

__all__ = ["Watch", "checked_now", "with_vanished"]

if TYPE_CHECKING:  # the report stack loads with the first verdict, not with every run (figure 9)
    from looseends.analysis.settle import Settled
    from looseends.report import Report


def with_vanished(
    judged: tuple[Settled, LeakFilter], taker: Taker, wanted: Callable[[Unit], bool], options: Options
) -> Report:
    """A settled look, and the tasks that vanished meanwhile (destroyed while pending, cancelled at loop
    shutdown) that `taker`'s check owns and `wanted` accepts, as one report: every check's verdict ends
    here, so a leak that vanished before its check looked is reported the same way by each. Tasks whose
    own code handles their cancellation (stopped by design) are listed apart, not as leaks."""
    settled, is_leak = judged
    mark_reported(settled.leaks)
    vanished = take_vanished(taker, lambda unit: wanted(unit) and is_leak(unit))
    designed = [unit.blocked_on.detail.get("vanished") == STOPPED_BY_DESIGN for unit in vanished]
    by_design = [unit for unit, ok in zip(vanished, designed, strict=True) if ok]
    leaks = tuple(unit for unit, ok in zip(vanished, designed, strict=True) if not ok)
    leaks += tuple(unit for unit in settled.leaks if not _vanished_since_seen(unit, vanished))
    report = to_report((replace(settled, leaks=leaks), is_leak), options)
    return replace(report, by_design=tuple(by_design))


def _vanished_since_seen(unit: Unit, vanished: list[Unit]) -> bool:
    """The look saw this task alive, and it vanished before the verdict was written (a collection can
    start at any allocation): one leak, reported as what became of it. Its address, name and creation
    all match; an address alone may be a later task's."""
    return unit.kind is Kind.TASK and any(
        gone.key == unit.key and gone.name == unit.name and gone.origin == unit.origin for gone in vanished
    )


# Tests a running watch checks for another front end too (a unittest id the pytest plugin checks), with how
# many watches check each: that front end then stands aside. Changed only under the lock.
_standing_for: dict[str, int] = {}
_standing_lock = threading.Lock()


def checked_now(test_id: str) -> bool:
    """Whether a running watch checks the test `test_id` on another front end's behalf."""
    return test_id in _standing_for


class Watch:
    """Baseline on `start()`; `verdict()` settles and reports what is new; `stop()` ends tracking.

    Tracking is on between start and stop, labelled with `label` (a test id, a fixture), so every unit
    created meanwhile knows where and during what it was created. Tasks that vanished meanwhile
    (destroyed while pending, cancelled at loop shutdown) are part of the verdict. `stands_for`: the
    ids other front ends know this test by (`checked_now` answers True for them while it runs).
    """

    def __init__(self, options: Options, label: str | None = None, stands_for: tuple[str, ...] = ()) -> None:
        self.options = options
        self.label = label
        self.stands_for = stands_for
        self.started = 0.0
        self._before: Snapshot | None = None  # identities at start; made into a rule only when needed
        self._fingerprint: Hashable = None
        self._lease: tracking | None = None
        self._untake: Callable[[], object] | None = None
        self._taker = Taker(0.0, lambda unit: False, None)

    def start(self) -> None:
        canary.sing_once()  # before the baseline: its thread and task are gone by then
        # Entered by hand rather than through an ExitStack: every checked test pays for this span.
        lease = self._lease = tracking(self.label, check=True)
        lease.__enter__()
        self._stand(+1)
        try:
            self._fingerprint, self._before = identities()
        except BaseException:
            self.stop()
            raise
        self.started = _origins.check_began()
        options, before = self.options, self._before
        filters: list[LeakFilter] = []  # made when a vanished task is first judged: few checks ever judge one

        def wants(unit: Unit) -> bool:
            if not filters:
                filters.append(leak_filter(options))
            return unit.kind in options.kinds and filters[0](unit)

        tasks_at_start: list[frozenset[Hashable]] = []  # made when first asked: few checks ever ask

        def alive_at_start(key: Hashable) -> bool:  # only a task no wrapper saw made asks
            if not tasks_at_start:
                tasks_at_start.append(frozenset(u.key for u in before.units if u.kind is Kind.TASK))
            return key in tasks_at_start[0]

        self._taker = Taker(self.started, wants, shutdown_prover(options), alive_at_start)
        self._untake = taking(self._taker)

    def unchanged(self) -> bool:
        """Nothing tracked started and no thread or task came or went since start: clean, without a look."""
        return fingerprint() == self._fingerprint and self._nothing_vanished()

    def nothing_new(self) -> bool:
        """Clean at a glance: the fingerprint has not moved, or it has but one identity look finds only
        units alive at start (a test that joined the thread or awaited the task it started); and no task
        vanished meanwhile. Anything else gets the full verdict, which would find these clean too."""
        mark = fingerprint()
        return (mark == self._fingerprint or self._only_known(mark)) and self._nothing_vanished()

    def _only_known(self, mark: tuple[Hashable, ...]) -> bool:
        assert self._before is not None, "Watch.nothing_new() before start()"
        before, now = self._before.units, identities(mark)[1].units
        # Sources reuse the identity units of what is unchanged: the same objects, compared by id (the
        # baseline keeps them alive). Only what is not among them needs the identity rule.
        same = set(map(id, before))
        if same.issuperset(map(id, now)):
            return True
        return all(map(ignore_current(self._before), (unit for unit in now if id(unit) not in same)))

    def _nothing_vanished(self) -> bool:
        """Asked after the look: a task destroyed before it is recorded by then, unless another thread's
        collection is still between taking it out of asyncio's registry and running its finalizer."""
        return not running_elsewhere() and not vanished_since(self._taker)

    def verdict(self, also_ignore: Callable[[Unit], bool] | None = None) -> Generator[float, None, Report]:
        """Yield settle delays; return the report. `also_ignore` adds identities known not to be leaks."""
        assert self._before is not None, "Watch.verdict() before start()"
        if self.unchanged():
            from looseends.report import Report

            return Report.from_units(())
        known = ignore_current(self._before)
        baseline = known
        if also_ignore is not None:
            extra = also_ignore
            baseline = IgnoreRule(known.description, lambda unit: known(unit) or extra(unit))
        judged = yield from settle_steps(self.options, baseline)
        return with_vanished(judged, self._taker, candidate_filter(self.options, baseline), self.options)

    def stop(self) -> None:
        """End the span's tracking; safe to call twice."""
        lease, self._lease = self._lease, None
        untake, self._untake = self._untake, None
        if untake is not None:
            untake()
        if lease is not None:
            self._stand(-1)
            lease.__exit__(None, None, None)

    def _stand(self, step: int) -> None:
        if not self.stands_for:
            return
        with _standing_lock:
            for test_id in self.stands_for:
                count = _standing_for.get(test_id, 0) + step
                if count > 0:
                    _standing_for[test_id] = count
                else:
                    _standing_for.pop(test_id, None)
