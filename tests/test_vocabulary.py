"""One vocabulary: every blocked-on code, pattern and wait API in one table, and the docs list exactly it."""

from __future__ import annotations

import re
from pathlib import Path

from looseends.analysis.patterns import PATTERNS
from looseends.codes import CODES
from looseends.sources._waits import C_WAITS, PYTHON_WAITS, SELECTOR_WAIT

SCHEMA = Path(__file__).resolve().parent.parent / "docs" / "json-schema.md"


def documented_codes(text: str) -> dict[str, tuple[str, str | None]]:
    """The rows of the codes table: code -> (meaning, pattern)."""
    rows = re.findall(r"^\| `([^`]+)` \| (.+?) \| (?:`([^`]+)`|-) \|$", text, re.M)
    return {code: (meaning, pattern or None) for code, meaning, pattern in rows}


def test_the_schema_lists_exactly_the_codes_with_their_meanings_and_patterns() -> None:
    documented = documented_codes(SCHEMA.read_text())
    assert documented == {code.code: (code.meaning, code.pattern) for code in CODES.values()}


def test_the_schema_lists_exactly_the_pattern_codes() -> None:
    text = SCHEMA.read_text()
    sentence = text[text.index("- `pattern.code` is one of") :].split("\n- ", 1)[0]
    assert set(re.findall(r"`([a-z-]+)`", sentence)) - {"pattern.code", "pattern"} == set(PATTERNS)


def test_every_wait_api_and_pattern_uses_a_known_code() -> None:
    waits = [*PYTHON_WAITS.values(), *C_WAITS.values(), SELECTOR_WAIT]
    assert {wait.code for wait in waits} <= set(CODES)
    assert {code.pattern for code in CODES.values()} - {None} <= set(PATTERNS)


def test_the_docs_test_fails_on_a_wrong_table() -> None:
    wrong = SCHEMA.read_text().replace("| `queue.put` |", "| `queue.push` |")
    assert documented_codes(wrong) != {code.code: (code.meaning, code.pattern) for code in CODES.values()}


def test_provable_codes_are_exactly_the_waits_with_a_primitive() -> None:
    waits = [*PYTHON_WAITS.values(), *C_WAITS.values()]
    with_primitive = {wait.code for wait in waits if wait.primitive is not None}
    assert {code.code for code in CODES.values() if code.provable} == with_primitive | {
        "asyncio.task",
        "asyncio.future",
    }
