"""The settle loop and its back-off policy, driven by fakes: no threads, no sleeps."""

from __future__ import annotations

from dataclasses import replace

from looseends.analysis.settle import CONFIRM_STEP, Backoff, Settled, run_sync, settle
from looseends.model import Frame, Kind, Snapshot, Unit

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
    assert world.collections == 1  # once, only because something looked leaked


def test_leak_is_reported_once_the_deadline_passes() -> None:
    world = FakeWorld((A,))
    settled = world.run(timeout=0.5)
    assert settled.leaks == (A,)
    assert abs(sum(world.slept) - 0.5) < 1e-9  # never sleeps past the deadline
    assert world.slept[0] == 1e-6
    assert max(world.slept) <= 0.1


def test_zero_timeout_never_sleeps_and_judges_after_the_collection() -> None:
    world = FakeWorld((A,))
    settled = world.run(timeout=0)
    assert settled.leaks == (A,)
    assert world.looks == [False, True, False, True]
    assert world.slept == []


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
    assert abs(sum(world.slept) - 0.2) < 1e-9  # no proof held: it settled the whole timeout


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
    # waited out the deadline (the first try proved nothing), then one step to confirm
    assert abs(sum(world.slept) - 0.2 - CONFIRM_STEP) < 1e-9
    assert [u.proof for u in settled.leaks] == ["proven later"]
    assert answers == []
