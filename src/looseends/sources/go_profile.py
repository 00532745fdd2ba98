"""Go's pprof protobuf profiles (`/debug/pprof/goroutine?debug=0`, `go tool pprof -proto`): gzip-compressed
profile.proto messages, read into the same goroutine units as the text dumps.

The parts read (github.com/google/pprof/proto/profile.proto):

    Profile  { sample_type=1 ValueType, sample=2 Sample, location=4 Location, function=5 Function,
               string_table=6 string }
    ValueType{ type=1 (string index), unit=2 }          goroutine/count, or goroutineleak/count (Go 1.27)
    Sample   { location_id=1 (innermost first), value=2, label=3 Label{key=1, str=2, num=3} }
    Location { id=1, line=4 Line{function_id=1, line=2} }  (several lines: inlined calls, innermost first)
    Function { id=1, name=2, filename=4 }

Like pprof debug=1, a sample is a stack and a count, with no wait state: the state is inferred from
Go's runtime frames, which this format keeps (runtime.chansend1, runtime.selectgo...).
"""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Iterator

from looseends.errors import DumpParseError
from looseends.model import Frame, Snapshot
from looseends.sources._protobuf import Value, WireError, fields, integers, signed
from looseends.sources.go_dumps import Record, record_units

__all__ = ["is_pprof_profile", "parse_pprof_profile"]

GZIP_MAGIC = b"\x1f\x8b"
MAX_PROFILE_BYTES = 256 * 1024 * 1024  # decompressed: a bomb stops here, not at the end of memory
# A goroutine profile lists each distinct stack once; a crafted one can hold millions of tiny samples.
# Samples with the same stack and labels are added up as they are read, and reading stops at these caps,
# so time and memory stay bounded whatever the input.
MAX_SAMPLES = 200_000
MAX_TABLE = 1_000_000  # locations or functions
MAX_ERRORS = 50
SOURCE = "pprof debug=0"


def is_pprof_profile(raw: bytes) -> bool:
    """Go writes every profile gzip-compressed; looseends' own dumps are text or JSON."""
    return raw.startswith(GZIP_MAGIC)


def parse_pprof_profile(raw: bytes) -> Snapshot:
    """Units of kind goroutine from a (gzip-compressed or bare) goroutine or goroutineleak profile."""
    data = _decompress(raw) if raw.startswith(GZIP_MAGIC) else raw
    errors: list[str] = []
    try:
        profile = _Profile(data)
        leaked = profile.kind == "goroutineleak"
        units = list(record_units(profile.records(errors), leaked, SOURCE, errors))
    except WireError as exc:
        raise DumpParseError(f"not a pprof profile: {exc}") from None
    if not units:
        detail = "; ".join(errors[:5]) or "no samples"
        raise DumpParseError(f"no goroutine could be read from the pprof profile: {detail}")
    return Snapshot(tuple(units), time.monotonic(), tuple(errors))


def _decompress(raw: bytes) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)  # gzip framing
    try:
        data = inflater.decompress(raw, MAX_PROFILE_BYTES)
    except zlib.error as exc:
        raise DumpParseError(f"not a gzip-compressed pprof profile: {exc}") from None
    if inflater.unconsumed_tail:
        raise DumpParseError(f"pprof profile larger than {MAX_PROFILE_BYTES // 2**20} MB decompressed")
    if not inflater.eof:
        raise DumpParseError("pprof profile truncated: the gzip stream ends early")
    return data


class _Profile:
    """The tables of one profile message, indexed; samples are decoded lazily by `records()`."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.strings: list[str] = []
        sample_types: list[bytes] = []
        functions: list[bytes] = []
        locations: list[bytes] = []
        tables = {1: sample_types, 4: locations, 5: functions}
        samples = 0
        for number, value in fields(data):
            if number == 2:
                samples += 1
                if samples > MAX_SAMPLES:  # Go lists each distinct stack once: this is no real profile
                    raise WireError(f"more than {MAX_SAMPLES:,} samples")
            elif number == 6:
                self.strings.append(_bytes(value).decode("utf-8", errors="replace"))
            elif number in tables:
                table = tables[number]
                if len(table) >= MAX_TABLE:
                    raise WireError(f"more than {MAX_TABLE:,} entries in one table")
                table.append(_bytes(value))
        kinds = [self.string(_field(t, 1)) for t in sample_types]
        if not kinds or kinds[0] not in ("goroutine", "goroutineleak"):
            raise WireError(f"a {kinds[0] if kinds else 'typeless'} profile, not a goroutine profile")
        self.kind = kinds[0]
        self.functions = {
            _field(f, 1): (self.string(_field(f, 2)), self.string(_field(f, 4))) for f in functions
        }
        self.locations = {_field(loc, 1): self._frames(loc) for loc in locations}

    def string(self, index: int) -> str:
        if not 0 <= index < len(self.strings):
            raise WireError(f"string index {index} outside the string table ({len(self.strings)} entries)")
        return self.strings[index]

    def _frames(self, location: bytes) -> tuple[Frame, ...]:
        frames = []
        for number, value in fields(location):
            if number == 4:
                line = _bytes(value)
                name, filename = self.functions.get(_field(line, 1), ("?", "?"))
                frames.append(Frame(filename, signed(_field(line, 2)), name, local=False))
        return tuple(frames)

    def records(self, errors: list[str]) -> Iterator[Record]:
        """One record per distinct stack and labels, its count the sum over samples."""
        merged: dict[tuple[tuple[int, ...], str], tuple[str, int]] = {}
        samples = 0
        for number, value in fields(self.data):
            if number != 2:
                continue
            samples += 1
            sample = self._sample(f"sample {samples}", _bytes(value), errors)
            if sample is not None:
                key, count = sample
                where, total = merged.get(key, (f"sample {samples}", 0))
                merged[key] = (where, total + count)
        for (location_ids, labels), (where, count) in merged.items():
            frames = tuple(frame for i in location_ids for frame in self.locations[i])
            yield Record(where, count, frames, labels)

    def _sample(
        self, where: str, sample: bytes, errors: list[str]
    ) -> tuple[tuple[tuple[int, ...], str], int] | None:
        location_ids: list[int] = []
        counts: list[int] = []
        labels: dict[str, str | int] = {}
        for number, value in fields(sample):
            if number == 1:
                location_ids.extend(integers(value))
            elif number == 2:
                counts.extend(signed(v) for v in integers(value))
            elif number == 3:
                label = _bytes(value)
                text = _field(label, 2)
                labels[self.string(_field(label, 1))] = self.string(text) if text else _field(label, 3)
        missing = [i for i in location_ids if i not in self.locations]
        if missing or not counts:
            if len(errors) < MAX_ERRORS:
                errors.append(f"{where}: " + (f"unknown location {missing[0]}" if missing else "no count"))
            return None
        shown = json.dumps(labels, separators=(",", ":")) if labels else ""
        return (tuple(location_ids), shown), counts[0]


def _field(message: bytes, wanted: int) -> int:
    """The last value of an integer field (protobuf's rule for repeated scalars read as one), 0 if absent."""
    found = 0
    for number, value in fields(message):
        if number == wanted:
            if not isinstance(value, int):
                raise WireError(f"field {wanted} is not an integer")
            found = value
    return found


def _bytes(value: Value) -> bytes:
    if not isinstance(value, bytes):
        raise WireError("a message or string field holds an integer")
    return value
