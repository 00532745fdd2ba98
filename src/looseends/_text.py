"""Text from the inspected program or from input data, made safe to print on a terminal.

Thread and task names, command lines, source lines and HTTP error bodies can hold anything: terminal
escape sequences that rewrite the screen, newlines that forge report lines. Every control character is
shown escaped instead (`\\x1b`), and long texts are cut.
"""

from __future__ import annotations

import re

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, limit: int = 1000) -> str:
    """`text` with control characters escaped, cut to `limit` characters."""
    cut = text if len(text) <= limit else text[: limit - 3] + "..."
    return _CONTROL.sub(_escape, cut)
