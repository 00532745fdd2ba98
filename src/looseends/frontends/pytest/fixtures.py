"""Fixture ownership: units started while a wider-scoped fixture is set up are that fixture's.

They are never blamed on the test that happened to trigger the setup; they are checked when the fixture
is torn down, and a leak then fails the teardown of the test during which that happened, under the
fixture's name (so pytest's counts and exit status agree with the report).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest

from looseends.analysis.baseline import ignore_current
from looseends.analysis.settle import run_sync
from looseends.core.find import settle_steps, shutdown_prover
from looseends.core.ledger import Finding, Ledger
from looseends.core.watch import Watch, with_vanished
from looseends.model import Snapshot, Unit
from looseends.options import Options
from looseends.sources import take_snapshot
from looseends.sources._vanished import ShutdownProver, Taker, taking

__all__ = ["FixtureOwners"]


@dataclass
class FixtureOwnership:
    """Units started while one wider-scoped fixture was being set up, and its interest in those of its
    tasks that vanish before its teardown is checked (cancelled when a loop it runs shuts down, or
    destroyed while pending): they are its leaks too, not the session's."""

    label: str
    units: dict[object, Unit]
    taker: Taker = field(init=False)
    untake: Callable[[], object] = field(init=False)

    def owns(self, unit: Unit) -> bool:
        owned = self.units.get(unit.key)
        return owned is not None and owned.same_object(unit)

    def owned_and_vanished(self, unit: Unit) -> bool:
        """A vanished task no longer has an object to compare: its key, taken while it lived, decides."""
        return unit.ref is None and unit.key in self.units

    def start_taking(self, since: float, prover: ShutdownProver | None) -> None:
        """Until `untake()`: vanished tasks it owns, created since `since`, are kept for its check."""
        self.taker = Taker(since, lambda unit: self.owns(unit) or self.owned_and_vanished(unit), prover)
        self.untake = taking(self.taker)


@dataclass
class FixtureOwners:
    """Every live wider fixture's units, and the findings of those torn down during the current test
    (in the session's ledger, and failing that test's teardown)."""

    options: Options
    warn_only: bool
    ledger: Ledger
    _live: dict[int, FixtureOwnership] = field(default_factory=dict)
    # Torn down during the current test's teardown: their units are still not the test's.
    _retired: dict[int, FixtureOwnership] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)

    def begin_setup(self, fixturedef: pytest.FixtureDef[Any]) -> tuple[Watch, Snapshot]:
        """A wider-scoped fixture is about to be set up. Its teardown is heard through a finalizer added
        now, before the fixture's own: it runs after the fixture's teardown code."""
        label = f"fixture {fixturedef.argname!r} ({fixturedef.scope} scope)"
        watch = Watch(self.options, label)  # only for its tracking label
        watch.start()
        fixturedef.addfinalizer(partial(self.finalized, fixturedef))
        self.ledger.ran_now(label)
        return watch, take_snapshot(detail=False)

    def end_setup(self, fixturedef: pytest.FixtureDef[Any], started: tuple[Watch, Snapshot]) -> None:
        watch, before = started
        watch.stop()
        known = ignore_current(before)
        new = {u.key: u for u in take_snapshot(detail=False).units if not known(u)}
        if new:
            ownership = FixtureOwnership(watch.label or fixturedef.argname, new)
            ownership.start_taking(watch.started, shutdown_prover(self.options))
            self._live[id(fixturedef)] = ownership

    def owned(self, unit: Unit) -> bool:
        return any(o.owns(unit) for o in (*self._live.values(), *self._retired.values()))

    def finalized(self, fixturedef: pytest.FixtureDef[Any]) -> None:
        """The fixture was torn down: settle its units, and say what it left running."""
        ownership = self._live.pop(id(fixturedef), None)
        if ownership is None:
            return
        self._retired[id(fixturedef)] = ownership
        try:
            judged = run_sync(settle_steps(self.options, only=ownership.owns))
            report = with_vanished(judged, ownership.taker, ownership.owned_and_vanished, self.options)
        finally:
            ownership.untake()
        finding = Finding(ownership.label, report, None, self.warn_only, shown=not self.warn_only)
        self.findings += (part for part in self.ledger.add(finding) if part.fails)

    def end_test(self) -> list[Finding]:
        """The findings that fail this test's teardown; the retired fixtures are forgotten."""
        failing = self.findings[:]
        self.findings.clear()
        self._retired.clear()
        return failing
