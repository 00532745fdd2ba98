"""The settle loop and its back-off policy, driven by fakes: no threads, no sleeps."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from dataclasses import replace

from looseends.analysis.patterns import pattern_for
from looseends.analysis.settle import (
    CONFIRM_STEP,
    GRACE,
    NEWCOMER_LOOKS,
    TICK,
    Backoff,
    Settled,
    run_sync,
    settle,
)
from looseends.model import BlockedOn, Frame, Kind, Snapshot, Unit

A = Unit(kind=Kind.THREAD, key=("thread", 1), name="a")
B = Unit(kind=Kind.THREAD, key=("thread", 2), name="b")


class FakeWorld:
    """Snapshots from a script; a clock that advances only when the loop sleeps."""

    def __init__(self, *frames: tuple[Unit, ...]) -> None:
        self.frames = list(frames)
        self.now = 0.0
        self.looks: list[bool] = []
        self.slept: list[float] = []
        self.collections = 0

    def look(self, detail: bool) -> Snapshot:
        self.looks.append(detail)
        units = self.frames[0] if len(self.frames) == 1 else self.frames.pop(0) if detail else self.frames[0]
        return Snapshot(units, self.now)

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def collect(self) -> None:
        self.collections += 1

    def run(self, timeout: float, *, is_candidate: object = None) -> Settled:
        steps = settle(
            self.look,
            (lambda unit: unit.name != "baseline") if is_candidate is None else is_candidate,  # type: ignore[arg-type]
            lambda unit: True,
            timeout,
            _clock=lambda: self.now,
            _collect=self.collect,
        )
        return run_sync(steps, _sleep=self.sleep)


def test_clean_world_is_judged_from_identities_alone() -> None:
    world = FakeWorld((Unit(kind=Kind.THREAD, key=("thread", 9), name="baseline"),))
    settled = world.run(timeout=1.0)
    assert settled.leaks == ()
    assert world.looks == [False]  # no stack was read, nothing slept, nothing collected
    assert world.slept == []
    assert world.collections == 0


def test_straggler_that_leaves_is_not_a_leak() -> None:
    world = FakeWorld((A, B), (A,), ())
    settled = world.run(timeout=1.0)
    assert settled.leaks == ()
    assert world.collections == 0  # no forced collection: only a leak at the deadline gets one


def test_leak_is_reported_once_the_deadline_passes() -> None:
    world = FakeWorld((A,))
    settled = world.run(timeout=0.5)
    assert settled.leaks == (A,)
    assert world.collections == 1  # at the deadline, then a short grace for what it stops
    assert abs(sum(world.slept) - 0.5 - GRACE) < 1e-9  # never sleeps past the deadline and grace
    assert world.slept[0] == 1e-6
    assert max(world.slept) <= 0.1


def test_zero_timeout_collects_at_once_and_judges_after_the_grace() -> None:
    world = FakeWorld((A,))
    settled = world.run(timeout=0)
    assert settled.leaks == (A,)
    assert world.collections == 1
    assert world.looks[:2] == [False, True]
    assert abs(sum(world.slept) - GRACE) < 1e-9


def test_verdict_comes_from_a_look_after_the_slow_proof_attempt() -> None:
    """Proving can outlast the deadline on a large heap; a straggler gone meanwhile is no leak."""
    world = FakeWorld((A,), ())

    def slow_prove(units: object) -> dict[object, str]:
        world.now += 5.0  # far past the deadline
        return {}

    steps = settle(
        world.look, lambda u: True, lambda u: True, 0.5, prove=slow_prove, _clock=lambda: world.now
    )
    settled = run_sync(steps, _sleep=world.sleep)
    assert settled.leaks == ()
    assert world.slept == []


def test_backoff_doubles_from_a_microsecond_to_a_cap() -> None:
    policy = Backoff()
    delays = [policy.delay(i) for i in range(20)]
    assert delays[0] == 1e-6
    assert delays[1] == 2e-6
    assert delays[-1] == 0.1
    assert delays == sorted(delays)
    assert policy.delay(10_000) == 0.1  # no overflow for absurd attempt counts


def test_leaks_proven_stuck_on_two_looks_end_the_settling_at_once() -> None:
    world = FakeWorld((A, B))
    tried: list[tuple[str, ...]] = []

    def prove(units: object) -> dict[object, str]:
        tried.append(tuple(u.name for u in units))  # type: ignore[attr-defined]
        return {A.key: "nobody can reach its queue", B.key: "nobody can reach its lock"}

    steps = settle(world.look, lambda u: True, lambda u: True, 10.0, prove=prove, _clock=lambda: world.now)
    settled = run_sync(steps, _sleep=world.sleep)
    assert world.slept == [CONFIRM_STEP]  # one step to confirm, no waiting out the 10 s deadline
    assert tried == [("a", "b"), ("a", "b")]
    assert [u.proof for u in settled.leaks] == ["nobody can reach its queue", "nobody can reach its lock"]
    assert settled.proofs_tried


def test_a_proof_the_second_look_does_not_repeat_is_not_reported() -> None:
    """The walk runs while the program runs: one walk alone never makes a "proven"."""
    world = FakeWorld((A,))
    answers = [{A.key: "looked stuck once"}, {}]

    def prove(units: object) -> dict[object, str]:
        return answers.pop(0) if answers else {}

    steps = settle(world.look, lambda u: True, lambda u: True, 0.2, prove=prove, _clock=lambda: world.now)
    settled = run_sync(steps, _sleep=world.sleep)
    assert [u.proof for u in settled.leaks] == [None]
    assert abs(sum(world.slept) - 0.2 - GRACE) < 1e-9  # no proof held: it settled the whole timeout


def test_a_unit_that_moved_between_the_two_looks_is_not_proven() -> None:
    moved = replace(A, stack=(Frame("x.py", 2, "f"),))
    world = FakeWorld((A,), (moved,))

    def prove(units: object) -> dict[object, str]:
        return {A.key: "stuck"}

    steps = settle(world.look, lambda u: True, lambda u: True, 0.05, prove=prove, _clock=lambda: world.now)
    settled = run_sync(steps, _sleep=world.sleep)
    assert settled.leaks[0].stack == moved.stack
    assert settled.leaks[0].proof == "stuck"  # confirmed only later, by two looks at the new place
    assert len(world.slept) > 1


def test_unproven_leaks_are_tried_again_at_the_deadline_and_confirmed() -> None:
    world = FakeWorld((A,))
    answers = [{}, {A.key: "proven later"}, {A.key: "proven later"}]

    def prove(units: object) -> dict[object, str]:
        return answers.pop(0)

    steps = settle(world.look, lambda u: True, lambda u: True, 0.2, prove=prove, _clock=lambda: world.now)
    settled = run_sync(steps, _sleep=world.sleep)
    # waited out the deadline (the first try proved nothing) and the collection's grace, one step to confirm
    assert abs(sum(world.slept) - 0.2 - GRACE - CONFIRM_STEP) < 1e-9
    assert [u.proof for u in settled.leaks] == ["proven later"]
    assert answers == []


def test_a_unit_whose_owner_only_the_forced_collection_frees_is_a_leak_left_to_the_collector() -> None:
    class Owner:
        pass

    owner = [Owner()]
    ref = weakref.ref(owner[0])
    context = "ThreadPoolExecutor worker"
    worker = replace(A, blocked_on=BlockedOn("queue.get", "queue.SimpleQueue.get", {}, context))
    now = [0.0]

    def look(detail: bool) -> Snapshot:
        return Snapshot((worker,) if owner else (), now[0])  # the worker leaves once its executor is freed

    def sleep(seconds: float) -> None:
        now[0] += seconds

    steps = settle(
        look,
        lambda u: True,
        lambda u: True,
        0.2,
        collected_with=lambda unit: ref if unit.key == worker.key else None,
        _clock=lambda: now[0],
        _collect=owner.clear,  # the forced collection is what frees the executor
    )
    settled = run_sync(steps, _sleep=sleep)
    assert [u.key for u in settled.leaks] == [worker.key]  # gone now, but only the collection stopped it
    assert settled.leaks[0].blocked_on.detail["gone"] == "collected"
    found = pattern_for(settled.leaks[0].blocked_on)
    assert found is not None
    assert found.code == "pool-left-to-the-collector"


def test_a_unit_gone_in_the_collection_is_judged_again_by_the_rules_with_that_mark() -> None:
    """The mark `gone: collected` is set after the rules judged the unit; a rule about it still applies."""
    worker = replace(
        A, blocked_on=BlockedOn("queue.get", "queue.SimpleQueue.get", {}, "ThreadPoolExecutor worker")
    )
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    class Owner:
        pass

    owner = [Owner()]
    ref = weakref.ref(owner[0])
    steps = settle(
        lambda detail: Snapshot((worker,) if owner else (), now[0]),
        lambda u: True,
        lambda u: u.blocked_on.detail.get("gone") != "collected",
        0.2,
        collected_with=lambda unit: ref,
        _clock=lambda: now[0],
        _collect=owner.clear,
    )
    settled = run_sync(steps, _sleep=sleep)
    assert settled.leaks == ()
    assert [(u.key, u.blocked_on.detail["gone"]) for u in settled.ignored] == [(worker.key, "collected")]


def test_a_unit_freed_by_reference_counting_before_the_deadline_stays_clean() -> None:
    world = FakeWorld((A,), ())
    settled = world.run(timeout=0.2)
    assert settled.leaks == ()
    assert world.collections == 0


def test_a_timed_wait_gets_until_its_timeout_within_the_extension() -> None:
    poller = replace(A, blocked_on=BlockedOn("event.wait", "threading.Event.wait", {"timeout": 0.5}))
    now = [0.0]

    def look(detail: bool) -> Snapshot:
        return Snapshot((poller,) if now[0] < 0.45 else (), now[0])  # it leaves on its next tick

    def sleep(seconds: float) -> None:
        now[0] += seconds

    def run(extension: float) -> Settled:
        now[0] = 0.0
        steps = settle(look, lambda u: True, lambda u: True, 0.1, extension=extension, _clock=lambda: now[0])
        return run_sync(steps, _sleep=sleep)

    assert run(extension=0.0).leaks == (poller,)  # judged at the deadline (and the collection's grace)
    assert run(extension=1.0).leaks == ()  # it left within its timeout, inside the extension
    assert run(extension=0.2).leaks == (poller,)  # the extension caps the wait


class Owner:
    pass


def _settle_timed(present: Callable[[float], tuple[Unit, ...]], timeout: float) -> tuple[Settled, float]:
    """Settle a world whose units depend on the clock: `present(now)` says which are running then."""
    now = [0.0]

    def look(detail: bool) -> Snapshot:
        return Snapshot(present(now[0]), now[0])

    def sleep(seconds: float) -> None:
        now[0] += seconds

    steps = settle(
        look, lambda u: True, lambda u: True, timeout, _clock=lambda: now[0], _collect=lambda: None
    )
    return run_sync(steps, _sleep=sleep), now[0]


def test_a_unit_started_just_before_the_verdict_gets_a_tick_to_leave() -> None:
    """A service thread's short-lived child, started during the collection's grace, is not a leak."""
    settled, ended = _settle_timed(lambda now: (A, B) if 0.55 <= now < 0.62 else (A,), timeout=0.5)
    assert settled.leaks == (A,)
    assert abs(ended - (0.5 + GRACE + TICK)) < 1e-9  # one tick more, no longer


def test_a_unit_started_just_before_the_verdict_that_stays_is_reported() -> None:
    settled, ended = _settle_timed(lambda now: (A, B) if now >= 0.55 else (A,), timeout=0.5)
    assert settled.leaks == (A, B)  # waiting for a newcomer never hides it
    assert abs(ended - (0.5 + GRACE + TICK)) < 1e-9


def test_a_reused_ident_is_a_newcomer() -> None:
    """Thread idents are reused at once: a new thread under an old key has not been seen for long."""
    owner_a, owner_b = Owner(), Owner()
    first, second = replace(B, ref=weakref.ref(owner_a)), replace(B, ref=weakref.ref(owner_b))

    def present(now: float) -> tuple[Unit, ...]:
        return (A, first) if now < 0.2 else (A, second) if 0.55 <= now < 0.62 else (A,)

    assert _settle_timed(present, timeout=0.5)[0].leaks == (A,)


def test_newcomers_that_keep_coming_delay_the_verdict_a_bounded_time() -> None:
    def present(now: float) -> tuple[Unit, ...]:
        if now < 0.55:
            return (A,)
        return (A, Unit(kind=Kind.THREAD, key=("thread", round(now * 1e6)), name="churn"))

    settled, ended = _settle_timed(present, timeout=0.5)
    assert ended <= 0.5 + GRACE + NEWCOMER_LOOKS * TICK + 1e-9
    assert [u.name for u in settled.leaks] == ["a", "churn"]  # then judged as it is: never silent
