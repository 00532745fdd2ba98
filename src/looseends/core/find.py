"""The composing functions: snapshot, filter, settle, report (goleak's Find)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Generator, Hashable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Unpack

from looseends import _cpython
from looseends.analysis.baseline import ignore_current
from looseends.analysis.ignore import IgnoreRule, idle_pool_worker
from looseends.analysis.settle import Settled, confirmed_proofs, run_async, run_sync, settle
from looseends.core import canary
from looseends.errors import LeakError
from looseends.model import Kind, Snapshot, Unit
from looseends.options import Options, OptionValues, build_options
from looseends.sources import (
    DEFAULT_SOURCES,
    Source,
    greenlets,
    identities,
    take_snapshot,
    trio_tasks,
)
from looseends.sources._collection import until_collected
from looseends.sources._vanished import ShutdownProver

__all__ = [
    "LeakFilter",
    "Reasons",
    "candidate_filter",
    "find",
    "find_async",
    "leak_filter",
    "proofs",
    "settle_steps",
    "shutdown_proofs",
    "shutdown_prover",
    "snapshot",
    "to_report",
    "verify_none",
    "visit",
]

if TYPE_CHECKING:  # the report stack and the prover load when first used, not with every run (figure 9)
    from looseends.report import Dump, Report


def snapshot(
    *, sources: Sequence[Source] = DEFAULT_SOURCES, proven: bool = False, proven_only: bool | None = None
) -> Dump:
    """Every live thread, task and process now: `print(looseends.snapshot())` is a grouped dump.

    With `proven` (the CLI's `--proven`, the endpoint's `proven=1`), only the units reachability proves
    stuck forever (Go's goroutineleak profile), each carrying its proof, confirmed on two looks a few
    milliseconds apart. That walks the heap twice: it costs more than a plain snapshot. `proven_only`
    is its former name, still accepted.
    """
    if proven_only is not None:
        import warnings

        warnings.warn("snapshot(proven_only=...) is now snapshot(proven=...)", DeprecationWarning, 2)
        proven = proven or proven_only
    canary.sing_once()
    return visit(sources=sources, proven=proven)


def visit(*, sources: Sequence[Source] = DEFAULT_SOURCES, proven: bool = False) -> Dump:
    """`snapshot()` without the canary: what `looseends attach` takes inside a process it only visits,
    which must start no thread or event loop of its own (the canary starts both, and under gevent its
    threads are greenlets that cannot run while the hub is borrowed)."""
    from looseends.report import Dump

    # With the tasks destroyed while pending since tracking began, summed by place: a fire-and-forget
    # leak grows there.
    taken = take_snapshot(sources, destroyed=True)
    taken = replace(taken, errors=taken.errors + canary.problems())
    if not proven:
        return Dump(taken.units, taken.taken_at, taken.errors)
    looks: list[Snapshot] = []

    def look() -> tuple[Unit, ...]:
        looks.append(take_snapshot(sources) if looks else taken)
        return looks[-1].units

    found = confirmed_proofs(look, proofs)
    last = looks[-1]
    units = tuple(replace(unit, proof=found[unit.key]) for unit in last.units if unit.key in found)
    return Dump(units, last.taken_at, last.errors)


def _me() -> frozenset[tuple[object, ...]]:
    """Keys of the caller's own thread and task: the checker never reports itself."""
    keys: set[tuple[object, ...]] = {("thread", threading.get_ident())}
    try:
        task = asyncio.current_task()
    except RuntimeError:
        task = None
    if task is not None:
        keys.add(("task", id(task)))
    for key in (trio_tasks.current_task_key(), greenlets.current_key()):
        if key is not None:
            keys.add(key)
    return frozenset(keys)


def candidate_filter(
    options: Options, baseline: IgnoreRule | None = None, only: Callable[[Unit], bool] | None = None
) -> Callable[[Unit], bool]:
    """True for units that may be leaks, judged by identity alone: kind, not the caller, not the baseline,
    and (with `only`) among a known set, such as the units a fixture started."""
    me = _me()
    kinds = options.kinds

    def is_candidate(unit: Unit) -> bool:
        if unit.kind not in kinds or unit.key in me or (baseline is not None and baseline(unit)):
            return False
        return only is None or only(unit)

    return is_candidate


class LeakFilter:
    """True for candidates no ignore rule matches; remembers which rule kept each other one out, so a
    report can say what it ignored (the services rule walks the heap: it is not run twice)."""

    def __init__(self, options: Options) -> None:
        self.rules = options.rules
        self.reasons: dict[Hashable, str] = {}

    def __call__(self, unit: Unit) -> bool:
        for rule in self.rules:
            if rule(unit):
                self.reasons[unit.key] = rule.description
                return False
        return True

    def ignored(self, units: Sequence[Unit]) -> tuple[tuple[str, Unit], ...]:
        return tuple((self.reasons.get(unit.key, "ignored"), unit) for unit in units)


def leak_filter(options: Options) -> LeakFilter:
    return LeakFilter(options)


def _look(detail: bool) -> Snapshot:
    """Identity looks go through `identities()`: what one check saw last stays the next one's baseline
    while nothing starts or ends in between."""
    return take_snapshot(detail=True) if detail else identities()[1]


def settle_steps(
    options: Options, baseline: IgnoreRule | None = None, *, only: Callable[[Unit], bool] | None = None
) -> Generator[float, None, tuple[Settled, LeakFilter]]:
    """Settle; the verdict, with the filter that says which rule ignored what. It ends once no other
    thread's collection is under way: what vanished in one begun before the last look is recorded by
    then, for the caller to read (`with_vanished`)."""
    canary.sing_once()
    is_leak = leak_filter(options)
    settled = yield from settle(
        _look,
        candidate_filter(options, baseline, only),
        is_leak,
        options.timeout,
        prove=proofs if options.prove else None,
        extension=options.timed_extension,
        collected_with=_pool_owner,
    )
    yield from until_collected()
    return settled, is_leak


def _pool_owner(unit: Unit) -> Callable[[], object] | None:
    """An idle pool worker's executor, whose death in a forced collection makes the worker's leak the
    GC's (a worker inside a job is not stopped by its executor's death: its job says what is wrong)."""
    if unit.kind is not Kind.THREAD or unit.ref is None or not idle_pool_worker(unit):
        return None
    thread = unit.ref()
    return _cpython.pool_executor_ref(thread) if thread is not None else None


class Reasons(dict[Hashable, str]):
    """Proofs' reasons by unit key, and why the walk gave up, when it did."""

    abandoned: str | None = None


def proofs(units: Sequence[Unit]) -> Reasons:
    """Reasons by unit key, for the units reachability proves stuck forever."""
    from looseends.analysis.reachability import prove

    found = prove(units)
    reasons = Reasons((key, proof.reason) for key, proof in found.items())
    reasons.abandoned = found.abandoned
    return reasons


def shutdown_proofs(look: Callable[[], Sequence[Unit]]) -> dict[Hashable, str]:
    """Proofs for the tasks a loop's shutdown is about to cancel, for checks that want proofs."""
    return confirmed_proofs(look, proofs)


def shutdown_prover(options: Options) -> ShutdownProver | None:
    """What a check hands a loop's shutdown to prove its pending tasks stuck with: none without `prove`."""
    return shutdown_proofs if options.prove else None


def to_report(judged: tuple[Settled, LeakFilter], options: Options) -> Report:
    from looseends.report import Report

    settled, is_leak = judged
    return Report.from_units(
        settled.leaks,
        now=settled.snapshot.taken_at,
        errors=settled.snapshot.errors + canary.problems(),
        max_groups=options.max_groups,
        proofs_tried=settled.proofs_tried,
        proofs_abandoned=settled.proofs_abandoned,
        ignored=is_leak.ignored(settled.ignored),
    )


def _baseline_rule(baseline: Snapshot | None) -> IgnoreRule | None:
    return None if baseline is None else ignore_current(baseline)


def find(*, baseline: Snapshot | None = None, **options: Unpack[OptionValues]) -> Report:
    """Units still running after settling, other than the caller, the baseline and ignored ones."""
    opts = build_options(source="looseends.find()", **options)
    return to_report(run_sync(settle_steps(opts, _baseline_rule(baseline))), opts)


async def find_async(*, baseline: Snapshot | None = None, **options: Unpack[OptionValues]) -> Report:
    """`find()` for async code: settles with `await asyncio.sleep`, so the loop keeps running."""
    opts = build_options(source="looseends.find_async()", **options)
    return to_report(await run_async(settle_steps(opts, _baseline_rule(baseline))), opts)


def verify_none(*, baseline: Snapshot | None = None, **options: Unpack[OptionValues]) -> Report:
    """Raise `LeakError` when `find()` reports anything; else return the (clean) report, whose
    `ignored` says what the ignore rules kept out."""
    report = find(baseline=baseline, **options)
    if report:
        raise LeakError(report)
    return report
