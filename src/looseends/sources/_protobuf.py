"""The protobuf wire format, decode only: enough to read pprof profiles with no dependency.

A pprof profile is a handful of flat messages (profile.proto), so the five wire types below are the
whole of what is needed; a generated-code library would add a dependency and a build step for that.
Every read is bounds-checked: truncated or corrupt input raises WireError, never IndexError or a hang.
"""

from __future__ import annotations

from collections.abc import Iterator

VARINT, FIXED64, LENGTH, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5

Value = int | bytes


class WireError(ValueError):
    """Bytes that are not a well-formed protobuf message."""


def fields(data: bytes) -> Iterator[tuple[int, Value]]:
    """(field number, value) for each field of one message: ints for varint and fixed fields, bytes for
    length-delimited ones (sub-messages, strings, packed repeated scalars)."""
    position, end = 0, len(data)
    while position < end:
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if number == 0:
            raise WireError(f"field number 0 at byte {position}")
        if wire_type == VARINT:
            value, position = _varint(data, position)
            yield number, value
        elif wire_type == LENGTH:
            size, position = _varint(data, position)
            if position + size > end:
                raise WireError(f"field {number} runs past the end of its message")
            yield number, data[position : position + size]
            position += size
        elif wire_type in (FIXED64, FIXED32):
            width = 8 if wire_type == FIXED64 else 4
            if position + width > end:
                raise WireError(f"field {number} runs past the end of its message")
            yield number, int.from_bytes(data[position : position + width], "little")
            position += width
        else:
            raise WireError(f"unsupported wire type {wire_type} (field {number}) at byte {position}")


def integers(value: Value) -> list[int]:
    """A repeated integer field's items: one unpacked value, or a packed run of varints."""
    if isinstance(value, int):
        return [value]
    out, position = [], 0
    while position < len(value):
        item, position = _varint(value, position)
        out.append(item)
    return out


def signed(value: int) -> int:
    """An int64 read as a varint: two's complement over 64 bits."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _varint(data: bytes, position: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if position >= len(data):
            raise WireError("truncated varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, position
        shift += 7
        if shift >= 70:
            raise WireError(f"varint longer than 10 bytes at byte {position}")
