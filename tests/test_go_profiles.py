"""Aggregated Go profiles (pprof debug=1 text, debug=0 protobuf): counts, inferred states, bad input."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import looseends
from looseends.frontends import cli
from looseends.model import Kind, Unit
from looseends.report import Report
from looseends.report_json import report_from_dict
from looseends.sources import go_profile
from looseends.sources.go_dumps import PROVEN_BY_GO, parse_go_dump
from looseends.sources.go_profile import is_pprof_profile, parse_pprof_profile

DATA = Path(__file__).parent / "data" / "go"


def parse(name: str) -> tuple[Unit, ...]:
    raw = (DATA / name).read_bytes()
    snapshot = parse_pprof_profile(raw) if is_pprof_profile(raw) else parse_go_dump(raw.decode())
    assert snapshot.errors == ()
    return snapshot.units


def by_user_top(units: tuple[Unit, ...]) -> dict[str, Unit]:
    out = {}
    for unit in units:
        user = [f for f in unit.stack if not f.is_library]
        out[user[0].function] = unit
    return out


@pytest.mark.parametrize("name", ["pprof_debug0.pb.gz", "pprof_debug1.txt"])
def test_a_record_is_one_unit_standing_for_its_count(name: str) -> None:
    units = parse(name)
    assert sum(u.count for u in units) == 11
    top = by_user_top(units)
    senders = top["main.doJobs.func1"]
    assert (senders.kind, senders.count) == (Kind.GOROUTINE, 5)
    assert senders.stack[-1].location == "example.com/leaky/main.go:26"
    assert top["main.selectNoCancel.func1.1"].blocked_on.detail["labels"] == '{"worker":"ticker"}'
    # Go's own frames say what each waits for; debug=1 hides the runtime's, so channels stay unknown there.
    assert top["main.lockedForever.func1"].blocked_on.code == "go.mutex.lock"
    assert top["main.waitGroupForever.func1"].blocked_on.code == "go.waitgroup.wait"
    assert top["main.sleeper.func1"].blocked_on.code == "go.sleep"
    channels = {top["main.doJobs.func1"].blocked_on.code, top["main.abandonedReceiver.func1"].blocked_on.code}
    if name.endswith(".pb.gz"):
        assert channels == {"go.chan.send", "go.chan.receive"}
        assert "inferred from the stack" in str(senders.blocked_on.detail["state"])
    else:
        assert channels == {"go.unknown"}
    report = Report.from_units(units)
    assert report.summary("live") == "11 live units in 7 groups: 11 goroutines"
    assert "5 goroutines blocked in" in report.render()
    assert "units: record 1 (x5)\n" in report.render()


def test_inlined_calls_are_frames_innermost_first() -> None:
    locked = by_user_top(parse("pprof_debug0.pb.gz"))["main.lockedForever.func1"]
    names = [f.function for f in locked.stack]
    assert names[-3:] == ["internal/sync.(*Mutex).Lock", "sync.(*Mutex).Lock", "main.lockedForever.func1"]
    assert locked.stack[-1].lineno == 50


@pytest.mark.parametrize("name", ["goroutineleak_debug0.pb.gz", "goroutineleak_debug1.txt"])
def test_goroutineleak_profiles_are_proven_by_go(name: str) -> None:
    units = parse(name)
    assert {u.proof for u in units} == {PROVEN_BY_GO}
    assert sum(u.count for u in units) == 7
    assert "main.sleeper.func1" not in by_user_top(units)  # Go never flags sleepers


def test_a_million_goroutines_on_one_stack_stay_one_object() -> None:
    text = "goroutine profile: total 1000000\n1000000 @ 0x1\n#\t0x1\tmain.f+0x1\t/a.go:1\n"
    (unit,) = parse_go_dump(text).units
    assert unit.count == 1_000_000
    data = Report.from_units([unit]).to_dict()
    assert data["groups"][0]["count"] == 1_000_000
    assert report_from_dict(data).groups[0].count == 1_000_000  # survives a JSON round trip


def test_a_count_no_process_could_hold_is_refused_not_summed() -> None:
    """A hostile count once reached `len()` of a report and raised OverflowError in the CLI."""
    text = (
        "goroutine profile: total 99999999999999999999\n"
        "99999999999999999999 @ 0x1\n#\t0x1\tmain.f+0x1\t/a.go:1\n\n"
        "2 @ 0x2\n#\t0x2\tmain.g+0x1\t/a.go:2\n"
    )
    snapshot = parse_go_dump(text)
    assert [unit.count for unit in snapshot.units] == [2]
    assert snapshot.errors == ("line 2: a record with a count of 99999999999999999999",)
    assert "2 goroutines" in Report.from_units(snapshot.units).render()
    raw = gzip.compress(_profile("goroutine", [([1], 1 << 62)]), mtime=0)
    with pytest.raises(looseends.DumpParseError, match="a count of 4611686018427387904"):
        parse_pprof_profile(raw)


# Hand-built profiles: a minimal encoder for the few protobuf fields the reader uses.


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _field(number: int, value: int | bytes) -> bytes:
    if isinstance(value, int):
        return _varint(number << 3) + _varint(value)
    return _varint(number << 3 | 2) + _varint(len(value)) + value


def _profile(kind: str, samples: list[tuple[list[int], int]]) -> bytes:
    """Strings: "", kind, "count", "main.f", "/a.go"; one function (id 1), one location (id 1)."""
    strings = b"".join(_field(6, s.encode()) for s in ["", kind, "count", "main.f", "/a.go"])
    sample_type = _field(1, _field(1, 1) + _field(2, 2))
    function = _field(5, _field(1, 1) + _field(2, 3) + _field(4, 4))
    location = _field(4, _field(1, 1) + _field(4, _field(1, 1) + _field(2, 7)))
    encoded = b"".join(
        _field(2, _field(1, b"".join(map(_varint, ids))) + _field(2, _varint(count)))
        for ids, count in samples
    )
    return sample_type + encoded + location + function + strings


def test_hand_built_profile_and_a_bad_sample_beside_good_ones() -> None:
    raw = gzip.compress(_profile("goroutine", [([1], 3), ([99], 1)]), mtime=0)
    snapshot = parse_pprof_profile(raw)
    (unit,) = snapshot.units
    assert (unit.count, unit.stack[0].location, unit.blocked_on.code) == (3, "/a.go:7", "go.unknown")
    assert snapshot.errors == ("sample 2: unknown location 99",)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (gzip.compress(b"\xff\xff\xff", mtime=0), "not a pprof profile"),
        (gzip.compress(_profile("goroutine", [([1], 3)]), mtime=0)[:-12], "truncated"),
        (b"\x1f\x8bnot gzip at all", "not a gzip-compressed pprof profile"),
        (gzip.compress(_profile("samples", [([1], 3)]), mtime=0), "not a goroutine profile"),
        (gzip.compress(_profile("goroutine", []), mtime=0), "no samples"),
    ],
)
def test_bad_profiles_raise_one_clear_error(raw: bytes, message: str) -> None:
    with pytest.raises(looseends.DumpParseError, match=message):
        parse_pprof_profile(raw)


def test_decompression_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(go_profile, "MAX_PROFILE_BYTES", 64)
    with pytest.raises(looseends.DumpParseError, match="larger than"):
        parse_pprof_profile(gzip.compress(bytes(65), mtime=0))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mutated_profiles_never_raise_anything_but_the_parse_error(data: st.DataObject) -> None:
    raw = bytearray(gzip.decompress((DATA / "pprof_debug0.pb.gz").read_bytes()))
    for _ in range(data.draw(st.integers(1, 6))):
        at = data.draw(st.integers(0, len(raw) - 1))
        raw[at : at + data.draw(st.integers(0, 8))] = data.draw(st.binary(max_size=8))
    try:
        parse_pprof_profile(bytes(raw))
    except looseends.DumpParseError:
        pass


@given(st.binary(max_size=300))
def test_arbitrary_bytes(raw: bytes) -> None:
    for candidate in (raw, gzip.compress(raw, mtime=0)):
        try:
            parse_pprof_profile(candidate)
        except looseends.DumpParseError:
            pass


def test_cli_dumps_a_protobuf_profile() -> None:
    out = io.StringIO()
    assert cli.main(["dump", str(DATA / "goroutineleak_debug0.pb.gz")], out=out) == 0
    text = out.getvalue()
    assert "5 goroutines blocked in chan send: forgotten sender" in text
    assert "stuck forever (proven)" in text
