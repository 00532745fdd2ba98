"""Settling: look again, with capped exponential back-off, until nothing is left or the deadline passes.

A thread that has finished its work but not yet exited, or an executor dropped without shutdown whose
workers stop when the garbage collector reaps it, is a straggler, not a leak. The policy (how long to
wait between looks) is separate from the loop, and the loop is a generator that yields the delays, so
the same algorithm runs under `time.sleep` and under `await asyncio.sleep` without blocking a loop.
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Awaitable, Callable, Generator, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from looseends.model import GONE, GONE_AFTER_COLLECTION, Snapshot, Unit

__all__ = [
    "CONFIRM_STEP",
    "GRACE",
    "Backoff",
    "Settled",
    "confirmed_proofs",
    "run_async",
    "run_sync",
    "settle",
]

T = TypeVar("T")

# goleak sleeps 1µs << i, capped at 100 ms; we keep its shape with a deadline instead of a count.
FIRST_DELAY = 1e-6
MAX_DELAY = 0.1


@dataclass(frozen=True, slots=True)
class Backoff:
    first: float = FIRST_DELAY
    cap: float = MAX_DELAY

    def delay(self, attempt: int) -> float:
        return min(self.first * 2.0 ** min(attempt, 64), self.cap)


# A proof is confirmed by a second walk at least this long after the first: the walks run while the
# program runs, and a unit that was about to be woken has had time to move by then.
CONFIRM_STEP = 0.005

Prover = Callable[[Sequence[Unit]], Mapping[Hashable, str]]  # may say why it gave up: `abandoned`


@dataclass(frozen=True, slots=True)
class Settled:
    snapshot: Snapshot
    leaks: tuple[Unit, ...]
    looks: int
    proofs_tried: bool = False
    ignored: tuple[Unit, ...] = ()  # candidates of the last look that an ignore rule kept out
    proofs_abandoned: str | None = None  # why the proof's walk gave up, when it did: nothing proven


class _Proofs:
    """Proof attempts over successive looks; a unit counts as proven only when two attempts, one settle
    step apart, proved it while it stayed the same object at the same place."""

    def __init__(self, prove: Prover) -> None:
        self._prove = prove
        self._last: dict[Hashable, Unit] = {}
        self.confirmed: dict[Hashable, tuple[Unit, str]] = {}
        self.attempts = 0
        self.abandoned: str | None = None

    def attempt(self, leaks: Sequence[Unit]) -> None:
        self.attempts += 1
        found = self._prove(leaks)
        self.abandoned = getattr(found, "abandoned", None) or self.abandoned
        latest = {unit.key: unit for unit in leaks if unit.key in found}
        for key, unit in latest.items():
            before = self._last.get(key)
            if before is not None and _same_place(before, unit):
                self.confirmed[key] = (unit, found[key])
        self._last = latest

    @property
    def unconfirmed(self) -> bool:
        """The last attempt proved something a further attempt could confirm."""
        return any(key not in self.confirmed for key in self._last)

    def all_confirmed(self, leaks: Sequence[Unit]) -> bool:
        return all(self.proof(unit) is not None for unit in leaks)

    def proof(self, unit: Unit) -> str | None:
        confirmed = self.confirmed.get(unit.key)
        return confirmed[1] if confirmed is not None and _same_place(confirmed[0], unit) else None


def confirmed_proofs(
    look: Callable[[], Sequence[Unit]], prove: Prover, *, _sleep: Callable[[float], None] = time.sleep
) -> dict[Hashable, str]:
    """Proofs confirmed by two looks a settle step apart, for callers that do not settle (a dump, a loop
    shutting down): reasons by key of the units of the second look."""
    proofs = _Proofs(prove)
    proofs.attempt(look())
    if not proofs.unconfirmed:
        return {}
    _sleep(CONFIRM_STEP)
    units = look()
    proofs.attempt(units)
    return {unit.key: proof for unit in units if (proof := proofs.proof(unit)) is not None}


def _same_place(before: Unit, now: Unit) -> bool:
    return before.same_object(now) and before.stack == now.stack and before.blocked_on == now.blocked_on


def settle(
    look: Callable[[bool], Snapshot],
    is_candidate: Callable[[Unit], bool],
    is_leak: Callable[[Unit], bool],
    timeout: float,
    *,
    backoff: Backoff = Backoff(),
    prove: Prover | None = None,
    extension: float = 0.0,
    collected_with: Callable[[Unit], Callable[[], object] | None] = lambda unit: None,
    _clock: Callable[[], float] = time.monotonic,
    _collect: Callable[[], object] = gc.collect,
) -> Generator[float, None, Settled]:
    """Yield delays to sleep until `look()` shows no leak or `timeout` seconds have passed.

    Each look first reads identities only (`look(False)`): `is_candidate` (kind, self, baseline) needs
    nothing more, and when no candidate is left the verdict is clean without reading a single stack.
    Only candidates are read in detail and judged by `is_leak` (the ignore rules).

    With `prove`, the first time something looks leaked the candidates are tried for proofs of being
    stuck forever, and again on the next look, a settle step later: a proof holds only when both agree.
    When every leak holds a proof there is nothing to wait for. At the deadline, units still unproven are
    tried again (they may have blocked meanwhile), with one more step to confirm what that finds.

    At the deadline, leaks in a wait with a timeout get until it expires (plus a tick), within
    `extension` seconds more: a poller that leaves on its next tick is a straggler. Then, and only then,
    a garbage collection is forced (never earlier: a unit the program's own collections would have to
    stop must not be hidden by ours), followed by a short grace. A unit whose owner, given by
    `collected_with` (an executor's weak reference), died in that collection is a leak left to the
    collector, reported with `detail["gone"] = "collected"` even though it is gone now, once the ignore
    rules have judged it again with that mark. An unproven unit first seen less than a tick before the
    verdict (started meanwhile, say by a service thread) has had no time to leave: the verdict waits until
    each has been seen for a tick, `NEWCOMER_LOOKS` times at most. The verdict always comes from a look
    taken after the (slow) collection and proof attempts, never from one before them.
    """
    state = _Settling(timeout, extension, backoff, prove, collected_with, _clock, _collect)
    attempt = 0
    while True:
        snapshot = look(False)
        found: list[Unit] = []
        ignored: list[Unit] = []
        if any(is_candidate(unit) for unit in snapshot.units):
            snapshot = look(True)
            for unit in snapshot.units:
                if is_candidate(unit):
                    (found if is_leak(unit) else ignored).append(unit)
        leaks = tuple(found)
        step = state.next_step(leaks, attempt)
        if step is None:
            settled = state.verdict(snapshot, leaks, attempt + 1)
            # Units gone in the collection carry a mark the rules did not see: a rule may know them now.
            excused = [u for u in settled.leaks if u.blocked_on.left_to_the_collector and not is_leak(u)]
            leaks = tuple(unit for unit in settled.leaks if unit not in excused)
            return replace(settled, leaks=leaks, ignored=(*ignored, *excused))
        if step > 0:
            yield step
            attempt += 1


class _Settling:
    """What one settle carries from look to look; each step below is one paragraph of `settle`'s docstring.

    `next_step` answers None (judge now), 0 (look again at once) or a delay to sleep before the next look.
    """

    def __init__(
        self,
        timeout: float,
        extension: float,
        backoff: Backoff,
        prove: Prover | None,
        collected_with: Callable[[Unit], Callable[[], object] | None],
        clock: Callable[[], float],
        collect: Callable[[], object],
    ) -> None:
        self._clock, self._collect, self._backoff = clock, collect, backoff
        self._started = clock()
        self._deadline = self._started + timeout
        self._last_deadline = self._started + timeout + extension
        self._collected_with = collected_with
        self._proofs = _Proofs(prove) if prove is not None else None
        self._first_attempt = self._proofs is not None
        self._confirm = False  # the next look owes a proof attempt that confirms the last one
        self._extended = self._at_deadline = False
        self._collection: _Collection | None = None
        self._first_seen: dict[Hashable, tuple[Unit, float]] = {}
        self._newcomer_looks = 0

    def next_step(self, leaks: tuple[Unit, ...], attempt: int) -> float | None:
        now = self._clock()
        self._first_seen = {unit.key: self._seen_since(unit, now) for unit in leaks}
        step = self._next_step(leaks, attempt, now)
        if step is not None or not leaks or self._newcomer_looks >= NEWCOMER_LOOKS:
            return step
        proofs = self._proofs
        unproven = [u for u in leaks if proofs is None or proofs.proof(u) is None]
        youngest = max((self._first_seen[u.key][1] for u in unproven), default=now - TICK)
        if now - youngest >= TICK:
            return None
        self._newcomer_looks += 1
        return youngest + TICK - now

    def _seen_since(self, unit: Unit, now: float) -> tuple[Unit, float]:
        seen = self._first_seen.get(unit.key)
        return seen if seen is not None and seen[0].same_object(unit) else (unit, now)

    def _next_step(self, leaks: tuple[Unit, ...], attempt: int, now: float) -> float | None:
        remaining = self._deadline - now
        if self._proofs is not None and leaks and (self._first_attempt or self._confirm):
            return self._prove(self._proofs, leaks)
        unproven = leaks and not _all_proven(self._proofs, leaks)
        if unproven and remaining <= 0 and not self._extended:
            remaining = self._extend(leaks)
        if unproven and remaining <= 0 and self._collection is None:
            self._collection = _Collection(leaks, self._collected_with)
            self._collect()
            self._deadline = self._clock() + GRACE  # woken workers need a moment to leave
            return 0.0
        if self._proofs is not None and leaks and remaining <= 0 and not self._at_deadline:
            self._at_deadline = True
            if self._prove_again(self._proofs, leaks):
                return CONFIRM_STEP
        if not leaks or remaining <= 0:
            return None
        return min(self._backoff.delay(attempt), remaining)

    def _prove(self, proofs: _Proofs, leaks: tuple[Unit, ...]) -> float | None:
        """The first time something looks leaked, and on the look after to confirm."""
        self._first_attempt = False
        proofs.attempt(leaks)
        self._confirm = proofs.unconfirmed
        if proofs.all_confirmed(leaks):
            return None  # proven stuck forever: settling longer cannot change the verdict
        # Proving takes time (a second on a large heap): judge from a look taken after it.
        return CONFIRM_STEP if self._confirm else 0.0

    def _extend(self, leaks: tuple[Unit, ...]) -> float:
        """A timed wait may end by itself: give it until then, within the extension."""
        self._extended = True
        wait = max((_time_left(unit) for unit in leaks), default=0.0)
        if wait > 0:
            self._deadline = min(self._clock() + wait + TICK, self._last_deadline)
        return self._deadline - self._clock()

    def _prove_again(self, proofs: _Proofs, leaks: tuple[Unit, ...]) -> bool:
        """At the deadline units may have blocked since the first attempts: try them, to confirm next."""
        if proofs.all_confirmed(leaks):
            return False
        proofs.attempt(leaks)
        self._confirm = proofs.unconfirmed
        return self._confirm

    def verdict(self, snapshot: Snapshot, leaks: tuple[Unit, ...], looks: int) -> Settled:
        collection = self._collection
        gone = collection.left_to_the_collector(leaks) if collection is not None else ()
        gone_keys = {unit.key for unit in gone}
        leaks = tuple(unit for unit in leaks if unit.key not in gone_keys)
        proofs = self._proofs
        if proofs is not None:
            leaks = tuple(replace(unit, proof=proofs.proof(unit)) for unit in leaks)
        tried = proofs is not None and proofs.attempts > 0
        abandoned = proofs.abandoned if proofs is not None else None
        return Settled(snapshot, gone + leaks, looks, tried, proofs_abandoned=abandoned)


TICK = 0.05  # after a timed wait expires, the moment its unit needs to leave
GRACE = 0.1  # after the forced collection, the moment woken workers need to leave
NEWCOMER_LOOKS = 3  # looks more at most for units too new to judge, when new ones keep coming


def _all_proven(proofs: _Proofs | None, leaks: Sequence[Unit]) -> bool:
    return proofs is not None and proofs.all_confirmed(leaks)


def _time_left(unit: Unit) -> float:
    """The longest a unit's current wait can still last by itself (its timeout, a sleep's delay)."""
    detail = unit.blocked_on.detail
    value = detail.get("timeout", detail.get("delay"))
    return float(value) if isinstance(value, int | float) else 0.0


class _Collection:
    """The leaks seen just before the forced collection, and the owners whose death would explain them."""

    def __init__(
        self, leaks: Sequence[Unit], owner_of: Callable[[Unit], Callable[[], object] | None]
    ) -> None:
        self._before = {unit.key: unit for unit in leaks}
        self._owners = {unit.key: owner for unit in leaks if (owner := owner_of(unit)) is not None}

    def left_to_the_collector(self, leaks_now: Sequence[Unit]) -> tuple[Unit, ...]:
        """Units (as last seen before the collection) whose owner the collection freed."""
        gone = []
        for key, owner in self._owners.items():
            if owner() is None:
                unit = self._before[key]
                detail = {**unit.blocked_on.detail, GONE: GONE_AFTER_COLLECTION}
                gone.append(replace(unit, blocked_on=replace(unit.blocked_on, detail=detail)))
        return tuple(gone)


def run_sync(steps: Generator[float, None, T], *, _sleep: Callable[[float], None] = time.sleep) -> T:
    """Drive a settle generator with blocking sleeps."""
    while True:
        try:
            delay = next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        _sleep(delay)


async def run_async(steps: Generator[float, None, T]) -> T:
    """Drive a settle generator with the running event loop's sleep (asyncio's or uvloop's, or trio's),
    so the loop keeps running while the check waits."""
    sleep = _loop_sleep()
    while True:
        try:
            delay = next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        await sleep(delay)


def _loop_sleep() -> Callable[[float], Awaitable[None]]:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        trio = sys.modules.get("trio")  # never imported here: only a program running trio has it
        if trio is not None and trio.lowlevel.in_trio_task():
            return trio.sleep  # type: ignore[no-any-return]
        raise RuntimeError(
            "looseends: an async check needs a running asyncio (or uvloop) or trio event loop"
        ) from None
    return asyncio.sleep
