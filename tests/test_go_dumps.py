"""Go goroutine dumps: every format, per-goroutine facts, grouping at scale, malformed input, fuzzing."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import looseends
from looseends.analysis.ignore import GO_IGNORES
from looseends.model import Kind
from looseends.sources.go_dumps import PROVEN_BY_GO, is_go_dump, parse_go_dump

DATA = Path(__file__).parent / "data" / "go"
TRACEBACKS = ["stack_all.txt", "pprof_debug2.txt", "goroutineleak_debug2.txt", "panic.txt"]
GOLEAK = [  # made by the real goleak (tests/data/go/goleak, see the README there)
    "goleak_find.txt",
    "goleak_go_test.log",
    "goleak_go_test_v.log",
    "goleak_verify_test_main.log",
    "goleak_go_test_packages.log",
]


def read(name: str) -> str:
    return (DATA / name).read_text()


def by_top(name: str) -> dict[str, list[looseends.Unit]]:
    units = parse_go_dump(read(name)).units
    out: dict[str, list[looseends.Unit]] = {}
    for unit in units:
        user = [f for f in unit.stack if not f.is_library]
        out.setdefault(user[0].function if user else unit.stack[0].function, []).append(unit)
    return out


@pytest.mark.parametrize("name", TRACEBACKS)
def test_traceback_formats_give_the_same_per_goroutine_facts(name: str) -> None:
    snapshot = parse_go_dump(read(name))
    assert snapshot.errors == ()
    groups = by_top(name)
    senders = groups["main.doJobs.func1"]
    assert len(senders) == 5
    sender = senders[0]
    assert sender.kind is Kind.GOROUTINE
    assert sender.blocked_on.code == "go.chan.send"
    assert sender.origin is not None
    assert sender.origin.frames[0].function == "main.doJobs"
    assert sender.origin.frames[0].location == "example.com/leaky/main.go:24"
    assert sender.origin.creator == "goroutine 1"
    receiver = groups["main.abandonedReceiver.func1"][0]
    assert receiver.blocked_on.code == "go.chan.receive"
    assert groups["main.lockedForever.func1"][0].blocked_on.code == "go.mutex.lock"
    assert groups["main.waitGroupForever.func1"][0].blocked_on.code == "go.waitgroup.wait"
    assert groups["main.sleeper.func1"][0].blocked_on.code == "go.sleep"
    ticker = groups["main.selectNoCancel.func1.1"][0]
    assert ticker.blocked_on.detail["labels"] == "worker: ticker"
    leaked = [u for u in snapshot.units if u.proof is not None]
    if name == "goroutineleak_debug2.txt":
        assert {u.proof for u in leaked} == {PROVEN_BY_GO}
        assert receiver.proof is not None
        assert groups["main.sleeper.func1"][0].proof is None  # Go never flags sleepers
    else:
        assert leaked == []


def test_ids_and_method_names_are_exact() -> None:
    units = {u.ident: u for u in parse_go_dump(read("pprof_debug2.txt")).units}
    main = units[1]
    assert main.blocked_on.code == "running"
    assert [f.function for f in main.stack][:3] == [
        "runtime/pprof.writeGoroutineStacks",
        "runtime/pprof.writeGoroutine",
        "runtime/pprof.(*Profile).WriteTo",
    ]
    assert main.origin is None


def test_crash_output_skips_registers_and_keeps_system_goroutines() -> None:
    snapshot = parse_go_dump(read("sigquit.txt"))
    assert snapshot.errors == ()
    states = {u.blocked_on.detail["state"] for u in snapshot.units}
    assert {"idle", "IO wait", "chan send", "GC worker (idle)"} <= states
    assert not any(u.name.startswith("rax") for u in snapshot.units)
    panic = parse_go_dump(read("panic.txt"))
    assert panic.units[0].ident == 1
    assert panic.units[0].blocked_on.code == "running"


def test_headers_of_every_go_version() -> None:
    text = (
        "goroutine 7 [chan receive, 3 minutes, locked to thread]:\n"
        "main.worker(0xc000012345, ...)\n\t/src/app/main.go:12 +0x3a\n"
        "created by main.start\n\t/src/app/main.go:9 +0x1f\n\n"  # before Go 1.21: no "in goroutine N"
        "goroutine 8 [select (no cases)]:\nmain.wait()\n\t/src/app/main.go:20 +0x1\n"
        "...additional frames elided...\n"
        "created by main.start in goroutine 1\n\t/src/app/main.go:10 +0x2\n"
        "[originating from goroutine 1]:\nmain.main()\n\t/src/app/main.go:5 +0x9\n\n"
        "goroutine 9 [chan send (nil chan)]:\nmain.nilSend()\n\t/src/app/main.go:30 +0x1\n"
    )
    units = {u.ident: u for u in parse_go_dump(text).units}
    assert units[7].blocked_on.detail["minutes"] == 3
    assert units[7].blocked_on.detail["locked_to_thread"] == "yes"
    assert units[7].blocked_on.description == "chan receive for 3 minutes"
    assert units[7].origin is not None
    assert units[7].origin.creator is None
    assert units[8].blocked_on.code == "go.select.empty"
    assert [f.function for f in units[8].stack] == ["main.wait"]  # ancestors are not its stack
    assert units[9].blocked_on.code == "go.nil-chan"
    report = looseends.Report.from_units(units.values())
    assert ": wait on nothing" in report.render()


def test_malformed_blocks_are_reported_by_line_and_the_rest_parses() -> None:
    good = read("stack_all.txt")
    broken = good.replace("main.doJobs.func1(0x0)\n", "main.doJobs.func1(0x0)\nmain.oops()\n", 1)
    snapshot = parse_go_dump(broken)
    assert len(snapshot.errors) == 1
    assert re.match(r"line \d+: expected a file:line after 'main.doJobs.func1\(0x0\)'", snapshot.errors[0])
    assert len(snapshot.units) == len(parse_go_dump(good).units) - 1
    with pytest.raises(looseends.DumpParseError, match="no goroutine found"):
        parse_go_dump("hello\nworld\n")


def test_ten_thousand_goroutines_group_right() -> None:
    blocks = read("stack_all.txt").strip().split("\n\n")
    sender = next(b for b in blocks if "main.doJobs.func1" in b)
    receiver = next(b for b in blocks if "main.abandonedReceiver.func1" in b)
    many = [re.sub(r"^goroutine \d+", f"goroutine {n + 100}", sender) for n in range(9_000)]
    many += [re.sub(r"^goroutine \d+", f"goroutine {n + 20_000}", receiver) for n in range(1_000)]
    report = looseends.Report.from_units(parse_go_dump("\n\n".join(many)).units)
    assert [(g.count, g.blocked_on.code) for g in report.groups] == [
        (9_000, "go.chan.send"),
        (1_000, "go.chan.receive"),
    ]
    assert len(report.render().splitlines()) < 40


def test_goleaks_default_ignores() -> None:
    text = (
        "goroutine 1 [chan receive]:\ntesting.(*T).Run(0x1, {0x2, 0x3}, 0x4)\n"
        "\t/go/src/testing/testing.go:1 +0x1\n\n"
        "goroutine 2 [syscall]:\nruntime.goexit({})\n\t/go/src/runtime/asm_amd64.s:1 +0x1\n\n"
        "goroutine 3 [select]:\nos/signal.loop()\n\t/go/src/os/signal/signal_unix.go:1 +0x1\n\n"
        "goroutine 4 [chan send]:\nmain.leak()\n\t/src/app/main.go:3 +0x1\n"
    )
    units = parse_go_dump(text).units
    kept = [u.ident for u in units if not any(rule(u) for rule in GO_IGNORES)]
    assert kept == [4]


def test_is_go_dump() -> None:
    assert all(is_go_dump(read(name)) for name in [*TRACEBACKS, *GOLEAK, "pprof_debug1.txt", "sigquit.txt"])
    assert not is_go_dump('{"schema": "looseends.report"}')


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    name=st.sampled_from([*TRACEBACKS, *GOLEAK, "pprof_debug1.txt", "sigquit.txt"]),
)
def test_mutated_dumps_never_raise_anything_but_the_parse_error(data: st.DataObject, name: str) -> None:
    text = read(name)
    for _ in range(data.draw(st.integers(0, 8))):
        at = data.draw(st.integers(0, len(text)))
        cut = data.draw(st.integers(0, 40))
        junk = data.draw(st.text(alphabet=st.characters(codec="utf-8"), max_size=20))
        text = text[:at] + junk + text[at + cut :]
    try:
        parse_go_dump(text)
    except looseends.DumpParseError:
        pass


@given(st.binary(max_size=300))
def test_arbitrary_bytes(raw: bytes) -> None:
    try:
        parse_go_dump(raw.decode(errors="replace"))
    except looseends.DumpParseError:
        pass


def facts(name: str) -> list[tuple[str, str, str | None, str | None, str]]:
    """(state, top function, creator site, during, labels) per goroutine, in dump order."""
    snapshot = parse_go_dump(read(name))
    assert snapshot.errors == ()
    return [
        (
            unit.blocked_on.detail["state"],
            next(f for f in unit.stack if not f.is_library).function.rsplit("/", 1)[-1],
            unit.origin.site.location if unit.origin is not None and unit.origin.site is not None else None,
            unit.origin.during if unit.origin is not None else None,
            str(unit.blocked_on.detail.get("labels", "")),
        )
        for unit in snapshot.units
    ]


def test_goleak_find_raw() -> None:
    sender = ("chan send", "main.main.func1", "example.com/goleakdata/find/main.go:13", None, "")
    receiver = ("chan receive", "main.main.func2", "example.com/goleakdata/find/main.go:16", None, "")
    assert facts("goleak_find.txt") == [sender, sender, receiver]


@pytest.mark.parametrize("name", ["goleak_go_test.log", "goleak_go_test_v.log"])
def test_goleak_in_a_go_test_log_names_the_test_that_reported_each_goroutine_first(name: str) -> None:
    """Later tests see the first test's senders still running: they stay the first test's."""
    verify = "(example.com/goleakdata/verify)"
    sender = (
        "chan send",
        "verify.TestForgottenSender.func1",
        "example.com/goleakdata/verify/leak_test.go:18",
        f"TestForgottenSender {verify}",
        "",
    )
    receiver = (
        "chan receive",
        "verify.TestLabelledReceiver.func1.1",
        "example.com/goleakdata/verify/leak_test.go:27",
        f"TestLabelledReceiver {verify}",
        "tenant: t1",
    )
    assert facts(name) == [sender, sender, sender, receiver]
    units = parse_go_dump(read(name)).units
    assert len({u.ident for u in units}) == 4
    assert all(u.origin is not None and u.origin.creator is not None for u in units)


def test_goleak_verify_test_main_after_pass() -> None:
    during = "goleak.VerifyTestMain (example.com/goleakdata/testmain)"
    assert [(state, top, during_) for state, top, _, during_, _ in facts("goleak_verify_test_main.log")] == [
        ("chan receive", "testmain.TestLeavesTwo.func1", during),
        ("sync.Mutex.Lock", "testmain.TestLeavesTwo.func2", during),
    ]
    assert {u.blocked_on.code for u in parse_go_dump(read("goleak_verify_test_main.log")).units} == {
        "go.chan.receive",
        "go.mutex.lock",
    }


def test_goleak_several_packages_keep_goroutines_of_each_run_apart() -> None:
    """Goroutine ids restart in each package's test process: the same id in two runs is two goroutines."""
    units = parse_go_dump(read("goleak_go_test_packages.log")).units
    assert len(units) == 6
    assert len({u.key for u in units}) == 6
    by_package = {u.origin.during.rsplit(" ", 1)[-1] for u in units if u.origin and u.origin.during}
    assert by_package == {"(example.com/goleakdata/verify)", "(example.com/goleakdata/testmain)"}
    twice = read("goleak_verify_test_main.log") * 2  # the same package run twice: the same ids again
    assert len(parse_go_dump(twice).units) == 2 * len(
        parse_go_dump(read("goleak_verify_test_main.log")).units
    )
