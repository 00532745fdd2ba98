"""A baseline file: the leaks a suite already had when it turned looseends on, so that only new ones fail.

What linters and type checkers do for existing warnings, for leaks: record what exists, fail only on what
is new, and show the count going down. An entry names its owner (a test id, a fixture, "session end"),
the kind, where the units were created (`module.function`, not a line number: it survives edits
elsewhere in the file) and what they are blocked on, and counts units: the same test leaking more of them
than recorded is new, and a different leak of the same test never matches another's entry. The file is
sorted JSON, one entry a line, to be reviewed in a pull request like any other change.

What a unit waits on is read when it can be: a task the collector destroyed with its coroutine closed
first has no wait left to read, and is written as `unknown`. The same leak is read live in another run,
so where either side has an unknown wait, a place's units are compared in total, whatever their waits.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from looseends.errors import OptionError
from looseends.model import Unit, first_user_frame
from looseends.sources.tasks import UNREAD

__all__ = ["FORMAT", "UNKNOWN_WAIT", "Key", "LeakBaseline", "keys_of", "open_baseline", "place"]

FORMAT = 1
MAX_BYTES = 16 * 1024 * 1024  # a baseline is a few entries per leaking test; anything larger is not one
FIELDS = ("owner", "kind", "where", "blocked_on")

Key = tuple[str, str, str, str]  # owner, kind, where, blocked on
UNKNOWN_WAIT = "unknown"  # the wait of a unit destroyed before anything could read it


def place(unit: Unit) -> str:
    """Where a unit comes from, by function: its creation site, else the user's code it runs."""
    site = unit.origin.site if unit.origin is not None else None
    if site is not None:
        return f"created in {site.qualified_name}"
    running = first_user_frame(unit.stack)
    return f"running {running.qualified_name}" if running is not None else "unknown"


def key_of(owner: str, unit: Unit) -> Key:
    wait = UNKNOWN_WAIT if UNREAD in unit.blocked_on.detail else unit.blocked_on.code
    return owner, str(unit.kind), place(unit), wait


def _comparable(entries: Iterable[Key], seen: Iterable[Key]) -> Callable[[Key], Key]:
    """The key a count is compared under: its own, or, for a place with an unknown wait on either side,
    that place's with the wait unknown (its waits summed)."""
    vague = {key[:3] for keys in (entries, seen) for key in keys if key[3] == UNKNOWN_WAIT}
    return lambda key: (*key[:3], UNKNOWN_WAIT) if key[:3] in vague else key


def _summed(counts: Mapping[Key, int], comparable: Callable[[Key], Key]) -> Counter[Key]:
    summed: Counter[Key] = Counter()
    for key, count in counts.items():
        summed[comparable(key)] += count
    return summed


def keys_of(owner: str, units: Iterable[Unit]) -> Counter[Key]:
    counts: Counter[Key] = Counter()
    for unit in units:
        counts[key_of(owner, unit)] += unit.count
    return counts


class LeakBaseline:
    """The entries of one baseline file, and what a run makes of them."""

    def __init__(self, path: Path, entries: Mapping[Key, int]) -> None:
        self.path = path
        self.entries = dict(entries)

    @classmethod
    def read(cls, path: Path, *, missing_ok: bool = False) -> LeakBaseline:
        """The file's entries; a clear `OptionError` for anything that is not a baseline file."""
        where = f"--looseends-baseline={path}"
        if missing_ok and not path.exists():
            return cls(path, {})
        try:
            if path.stat().st_size > MAX_BYTES:
                raise OptionError(f"{where}: larger than {MAX_BYTES // (1024 * 1024)} MiB, not a baseline")
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise OptionError(f"{where}: no such file (write it with --looseends-baseline-update)") from None
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:  # nested past the parser
            raise OptionError(f"{where}: not a looseends baseline ({exc})") from None
        return cls(path, _entries(data, where))

    def split(self, owner: str, units: Iterable[Unit]) -> tuple[list[Unit], list[Unit], list[str]]:
        """The units the baseline covers, the new ones, and a line for each place that now leaks more
        units than its entry allows (all of that place's units are then new)."""
        keyed = [(key_of(owner, unit), unit) for unit in units]
        comparable = _comparable(self.entries, (key for key, _ in keyed))
        allowed_by = _summed(self.entries, comparable)
        by_key: dict[Key, list[Unit]] = {}
        for key, unit in keyed:
            by_key.setdefault(comparable(key), []).append(unit)
        known: list[Unit] = []
        new: list[Unit] = []
        over: list[str] = []
        for key, found in by_key.items():
            allowed, count = allowed_by.get(key, 0), sum(unit.count for unit in found)
            if count <= allowed:
                known += found
                continue
            new += found
            if allowed:
                over.append(f"{self.path} allows {allowed} {_describe(key)}; this run found {count}")
        return known, new, over

    def progress(self, seen: Mapping[Key, int], ran: Callable[[str], bool]) -> tuple[int, int]:
        """Entries of owners that ran which no longer occur (fixed), and which occur less (shrunk)."""
        comparable = _comparable(self.entries, seen)
        found = _summed(seen, comparable)
        fixed = shrunk = 0
        for key, allowed in _summed(self.entries, comparable).items():
            if not ran(key[0]):
                continue
            count = found.get(key, 0)
            fixed += count == 0
            shrunk += 0 < count < allowed
        return fixed, shrunk

    def updated(self, seen: Mapping[Key, int], ran: Callable[[str], bool]) -> dict[Key, int]:
        """The entries a run leaves: what it saw, and the entries of owners it did not run (a run of a
        few tests does not forget the rest of the suite's)."""
        kept = {key: count for key, count in self.entries.items() if not ran(key[0])}
        return {**kept, **{key: count for key, count in seen.items() if count > 0}}

    def write(self, entries: Mapping[Key, int]) -> None:
        """Sorted, one entry a line: a change to the baseline reads as a diff of the leaks it records."""
        lines = [
            json.dumps({**dict(zip(FIELDS, key, strict=True)), "count": entries[key]}, ensure_ascii=False)
            for key in sorted(entries)
        ]
        body = ",".join(f"\n    {line}" for line in lines)
        self.path.write_text(
            f'{{\n  "looseends_baseline": {FORMAT},\n  "leaks": [{body}\n  ]\n}}\n', encoding="utf-8"
        )


def open_baseline(path: str | None, update: bool) -> LeakBaseline | None:
    """A run's known leaks, as its options name them (None without a file); with `update`, a file to
    (re)write, which need not exist yet. Both front ends (pytest, Django) use the same flags."""
    if not path:
        if update:
            raise OptionError("--looseends-baseline-update needs --looseends-baseline=PATH")
        return None
    return LeakBaseline.read(Path(path), missing_ok=update)


def _describe(key: Key) -> str:
    _owner, kind, where, blocked_on = key
    wait = "whatever they wait on" if blocked_on == UNKNOWN_WAIT else blocked_on
    return f"{kind}s {where} ({wait})"


def _entries(data: object, where: str) -> dict[Key, int]:
    if not isinstance(data, dict) or data.get("looseends_baseline") != FORMAT:
        raise OptionError(f'{where}: not a looseends baseline (expected "looseends_baseline": {FORMAT})')
    leaks = data.get("leaks")
    if not isinstance(leaks, list):
        raise OptionError(f'{where}: "leaks" must be a list')
    entries: dict[Key, int] = {}
    for number, item in enumerate(leaks, 1):
        item = item if isinstance(item, dict) else {}
        strings = [value for value in (item.get(name) for name in FIELDS) if isinstance(value, str)]
        if len(strings) != len(FIELDS):
            raise OptionError(f"{where}: entry {number} needs the strings {', '.join(FIELDS)}")
        count = item.get("count")
        if not isinstance(count, int) or isinstance(count, bool) or count < 1:
            raise OptionError(f"{where}: entry {number} needs a count of 1 or more")
        key = (strings[0], strings[1], strings[2], strings[3])
        entries[key] = entries.get(key, 0) + count
    return entries
