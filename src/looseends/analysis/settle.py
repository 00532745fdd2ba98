"""Settling: look again, with capped exponential back-off, until nothing is left or the deadline passes.

A thread that has finished its work but not yet exited, or an executor dropped without shutdown whose
workers stop when the garbage collector reaps it, is a straggler, not a leak. The policy (how long to
wait between looks) is separate from the loop, and the loop is a generator that yields the delays, so
the same algorithm runs under `time.sleep` and under `await asyncio.sleep` without blocking a loop.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Generator, Hashable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

from looseends.model import Snapshot, Unit

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


@dataclass(frozen=True, slots=True)
class Settled:
    snapshot: Snapshot
    leaks: tuple[Unit, ...]
    looks: int
    proofs_tried: bool = False


def settle(
    look: Callable[[bool], Snapshot],
    is_candidate: Callable[[Unit], bool],
    is_leak: Callable[[Unit], bool],
    timeout: float,
    *,
    backoff: Backoff = Backoff(),
    prove: Callable[[Sequence[Unit]], Mapping[Hashable, str]] | None = None,
    _clock: Callable[[], float] = time.monotonic,
    _collect: Callable[[], object] = gc.collect,
) -> Generator[float, None, Settled]:
    """Yield delays to sleep until `look()` shows no leak or `timeout` seconds have passed.

    Each look first reads identities only (`look(False)`): `is_candidate` (kind, self, baseline) needs
    nothing more, and when no candidate is left the verdict is clean without reading a single stack.
    Only candidates are read in detail and judged by `is_leak` (the ignore rules). The verdict always
    comes from a look taken after the (slow) collection and proof attempt, never from one before them.

    With `prove`, the first time something looks leaked the candidates are also tried for proofs of
    being stuck forever (by unit key); when every leak is proven there is nothing to wait for. Units
    still unproven at the deadline are tried once more (they may have blocked meanwhile).
    """
    deadline = _clock() + timeout
    attempt = 0
    proofs: Mapping[Hashable, str] | None = None
    while True:
        snapshot = look(False)
        leaks: tuple[Unit, ...] = ()
        if any(is_candidate(unit) for unit in snapshot.units):
            snapshot = look(True)
            leaks = _leaks(snapshot.units, lambda unit: is_candidate(unit) and is_leak(unit))
        remaining = deadline - _clock()
        if leaks and proofs is None:
            # Only paid when something looks leaked: a collection stops workers of executors that
            # were dropped without shutdown(), which would otherwise linger until the next GC, and
            # finalises pending tasks nothing references (tracking records those as leaks).
            _collect()
            proofs = prove(leaks) if prove is not None else {}
            if proofs and all(unit.key in proofs for unit in leaks):
                remaining = 0  # proven stuck forever: settling longer cannot change the verdict
            else:
                # Collecting and proving take time (most of the deadline on a large heap), and a
                # straggler released just before may have finished meanwhile: never judge from the
                # look taken before them.
                continue
        if not leaks or remaining <= 0:
            if prove is not None and attempt > 0 and any(u.key not in (proofs or {}) for u in leaks):
                proofs = {**(proofs or {}), **prove(leaks)}  # units may have blocked since the first try
            proven = tuple(replace(u, proof=proofs.get(u.key)) if proofs else u for u in leaks)
            return Settled(snapshot, proven, attempt + 1, proofs is not None and prove is not None)
        yield min(backoff.delay(attempt), remaining)
        attempt += 1


def _leaks(units: Sequence[Unit], is_leak: Callable[[Unit], bool]) -> tuple[Unit, ...]:
    return tuple(unit for unit in units if is_leak(unit))


def run_sync(steps: Generator[float, None, T], *, _sleep: Callable[[float], None] = time.sleep) -> T:
    """Drive a settle generator with blocking sleeps."""
    while True:
        try:
            delay = next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        _sleep(delay)


async def run_async(steps: Generator[float, None, T]) -> T:
    """Drive a settle generator with `await asyncio.sleep`, so the event loop keeps running."""
    import asyncio

    while True:
        try:
            delay = next(steps)
        except StopIteration as done:
            return done.value  # type: ignore[no-any-return]
        await asyncio.sleep(delay)
