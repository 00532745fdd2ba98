"""Reports as versioned JSON (docs/json-schema.md): written for machines, read back from other processes.

Reading treats the document as hostile: every field is checked for its type and bounded, anything
unexpected is one `ValueError` with a one-line reason, and frames read back are not local (no local file
is opened for their source lines; the line the document carried is shown, escaped).

A document may be truncated to fit a size limit (the endpoint's 4 MiB): then `truncated` is true, a group
may list fewer units than its `count`, and the reader keeps the count with one stand-in unit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from looseends._text import printable
from looseends.analysis.group import Group
from looseends.model import BlockedOn, Frame, Kind, Origin, Unit, first_user_frame
from looseends.report import MAX_GROUPS, Report

__all__ = ["report_from_dict", "report_to_dict"]

SCHEMA = "looseends.report"
SCHEMA_VERSION = 1
MAX_TEXT = 1000  # characters kept of any text field read back
MAX_INT = 2**64  # idents, native ids and counts all fit


def report_to_dict(report: Report) -> dict[str, object]:
    return {
        "schema": SCHEMA,
        "version": SCHEMA_VERSION,
        "summary": {
            "units": len(report),
            "groups": len(report.groups),
            "by_kind": {str(kind): count for kind, count in report.counts().items()},
        },
        "groups": [group_to_dict(group, report.now) for group in report.groups],
        "errors": list(report.errors),
        "ignored": _ignored(report),
    }


def _ignored(report: Report) -> list[dict[str, object]]:
    """What ignore rules kept out, by rule: its units' counts by kind, and their names."""
    by_rule: dict[str, dict[str, object]] = {}
    for rule, unit in report.ignored:
        entry = by_rule.setdefault(rule, {"rule": rule, "by_kind": {}, "names": []})
        kinds: dict[str, int] = entry["by_kind"]  # type: ignore[assignment]
        kinds[str(unit.kind)] = kinds.get(str(unit.kind), 0) + unit.count
        entry["names"].append(unit.name)  # type: ignore[attr-defined]
    return list(by_rule.values())


def group_to_dict(group: Group, now: float) -> dict[str, object]:
    ages = group.ages(now)
    origin = group.origin
    top_user = first_user_frame(group.stack)
    return {
        "count": group.count,
        "kind": str(group.kind),
        "blocked_on": {
            "code": group.blocked_on.code,
            "description": group.blocked_on.description,
            "detail": dict(group.blocked_on.detail),
            "context": group.blocked_on.context,
        },
        "pattern": group.pattern.as_dict() if group.pattern is not None else None,
        "proven": group.units[0].proof is not None,
        "created_by": None
        if origin is None
        else {
            "site": origin.site.as_dict() if origin.site is not None else None,
            "user_stack": [f.as_dict() for f in origin.user_frames],
            "creator": origin.creator,
            "during": group.during(),
        },
        "age_seconds": {"min": min(ages), "max": max(ages)} if ages else None,
        "top_user_frame": top_user.as_dict() if top_user is not None else None,
        "stack": [f.as_dict() for f in group.stack],
        "units": [
            {
                "name": unit.name,
                "ident": unit.ident,
                "native_id": unit.native_id,
                "daemon": unit.daemon,
                "target": unit.target,
                "thread": unit.thread,
                "age_seconds": unit.age(now),
                "during": unit.origin.during if unit.origin is not None else None,
                "proof": unit.proof,
                "count": unit.count,
            }
            for unit in group.units
        ],
    }


# Reading -----------------------------------------------------------------------------------------------


class _Bad(ValueError):
    pass


def _text(data: Mapping[str, Any], name: str, *, optional: bool = False) -> str:
    value = data.get(name)
    if value is None and optional:
        return ""
    if not isinstance(value, str):
        raise _Bad(f"{name!r} should be a string")
    return printable(value, MAX_TEXT)


def _maybe_text(data: Mapping[str, Any], name: str) -> str | None:
    return _text(data, name) if data.get(name) is not None else None


def _integer(data: Mapping[str, Any], name: str, default: int | None = None) -> int | None:
    value = data.get(name, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not -MAX_INT <= value <= MAX_INT:
        raise _Bad(f"{name!r} should be a whole number")
    return value


def _number(data: Mapping[str, Any], name: str) -> float | None:
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _Bad(f"{name!r} should be a number")
    return float(value)


def _mapping(data: Mapping[str, Any], name: str, *, optional: bool = False) -> Mapping[str, Any] | None:
    value = data.get(name)
    if value is None and optional:
        return None
    if not isinstance(value, dict):
        raise _Bad(f"{name!r} should be an object")
    return value


def _items(data: Mapping[str, Any], name: str) -> list[Any]:
    value = data.get(name, [])
    if not isinstance(value, list):
        raise _Bad(f"{name!r} should be a list")
    return value


def _frame(data: object) -> Frame:
    if not isinstance(data, dict):
        raise _Bad("a frame should be an object")
    line = _integer(data, "line")
    return Frame(
        _text(data, "file"),
        line if line is not None else 0,
        _text(data, "function"),
        _text(data, "module", optional=True),
        local=False,
        given_source=_text(data, "source", optional=True),
        given_library=library if isinstance(library := data.get("library"), bool) else None,
    )


def _detail(data: Mapping[str, Any]) -> dict[str, int | float | str]:
    detail: dict[str, int | float | str] = {}
    for key, value in (_mapping(data, "detail", optional=True) or {}).items():
        if isinstance(value, str):
            detail[printable(str(key), 100)] = printable(value, MAX_TEXT)
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            detail[printable(str(key), 100)] = value
    return detail


def _units_from(group: object, index: int) -> list[Unit]:
    if not isinstance(group, dict):
        raise _Bad("a group should be an object")
    try:
        kind = Kind(_text(group, "kind"))
    except ValueError:
        raise _Bad(f"unknown kind {group.get('kind')!r}") from None
    blocked = _mapping(group, "blocked_on") or {}
    code, description = _text(blocked, "code"), _text(blocked, "description")
    blocked_on = BlockedOn(code, description, _detail(blocked), _maybe_text(blocked, "context"))
    stack = tuple(_frame(f) for f in _items(group, "stack"))
    created = _mapping(group, "created_by", optional=True)
    origin_frames: tuple[Frame, ...] = ()
    creator = None
    if created is not None:
        origin_frames = tuple(_frame(f) for f in _items(created, "user_stack"))
        if not origin_frames and created.get("site") is not None:
            origin_frames = (_frame(created["site"]),)
        creator = _maybe_text(created, "creator")
    units = []
    members = _items(group, "units")
    for n, member in enumerate(members):
        if not isinstance(member, dict):
            raise _Bad("a unit should be an object")
        age = _number(member, "age_seconds")
        daemon = member.get("daemon")
        during = _maybe_text(member, "during")
        created_at = None if age is None else -age  # reports from elsewhere are rendered at now=0
        units.append(
            Unit(
                kind=kind,
                key=("json", index, n),
                name=_text(member, "name"),
                ident=_integer(member, "ident"),
                stack=stack,
                blocked_on=blocked_on,
                origin=None if created is None else Origin(origin_frames, creator, created_at, during),
                daemon=daemon if isinstance(daemon, bool) else None,
                native_id=_integer(member, "native_id"),
                target=_maybe_text(member, "target"),
                thread=_maybe_text(member, "thread"),
                proof=_maybe_text(member, "proof"),
                count=max(1, _integer(member, "count", 1) or 1),
            )
        )
    missing = (_integer(group, "count", 0) or 0) - sum(unit.count for unit in units)
    if missing > 0 and units:  # a truncated document listed only some of the group's units
        units.append(
            Unit(
                kind=kind,
                key=("json", index, "not listed"),
                name="(not listed: the dump was truncated)",
                stack=stack,
                blocked_on=blocked_on,
                origin=units[0].origin,
                proof=units[0].proof,
                count=missing,
            )
        )
    return units


def report_from_dict(data: object, *, max_groups: int = MAX_GROUPS) -> Report:
    """Rebuild a report from `report_to_dict()` output (another process's, say); ages are kept.

    Raises ValueError, with a one-line reason, for anything that is not a well-formed report of a schema
    version this code reads.
    """
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or data.get("version") != SCHEMA_VERSION:
        raise ValueError(f"not a {SCHEMA} version {SCHEMA_VERSION} document")
    try:
        units = [unit for n, group in enumerate(_items(data, "groups")) for unit in _units_from(group, n)]
        errors = [printable(str(error), MAX_TEXT) for error in _items(data, "errors")]
    except _Bad as exc:
        raise ValueError(f"malformed {SCHEMA} document: {exc}") from None
    except (RecursionError, MemoryError, TypeError, ValueError, OverflowError) as exc:
        raise ValueError(f"malformed {SCHEMA} document: {type(exc).__name__}") from None
    if data.get("truncated"):
        errors.append("the dump was truncated to fit its size limit: some groups or units are not listed")
    return Report.from_units(units, now=0.0, errors=errors, max_groups=max_groups)
