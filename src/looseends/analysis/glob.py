"""Glob matching in time proportional to text times pattern, whatever the pattern.

`fnmatch` translates a glob into a regular expression, which takes quadratic time to even build for a
pattern full of unclosed `[`, and may backtrack. Patterns reach us from the command line, ini files and
the endpoint's query string, so matching is done here with the classic two-pointer walk: `*`, `?`,
`[abc]`, `[a-z]`, `[!abc]`; a `[` with no closing `]` is an ordinary character.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from collections.abc import Callable

__all__ = ["glob_match"]

# ("*", None) | ("?", None) | ("=", char) | ("[", the class's matcher)
Item = tuple[str, str | Callable[[str], object] | None]


@functools.lru_cache(maxsize=256)
def _compile(pattern: str) -> tuple[Item, ...]:
    items: list[Item] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "*":
            if not items or items[-1][0] != "*":
                items.append(("*", None))
        elif char == "?":
            items.append(("?", None))
        elif char == "[" and (close := _class_end(pattern, index)) is not None:
            items.append(("[", _class(pattern[index + 1 : close])))
            index = close
        else:
            items.append(("=", char))
        index += 1
    return tuple(items)


def _class_end(pattern: str, start: int) -> int | None:
    index = start + 1
    if index < len(pattern) and pattern[index] == "!":
        index += 1
    if index < len(pattern) and pattern[index] == "]":
        index += 1  # a leading ] is literal
    close = pattern.find("]", index)
    return close if close >= 0 else None


def _class(body: str) -> Callable[[str], object]:
    """A class as fnmatch reads it (a range it finds empty is dropped, which can leave a `!` leading and
    negating): its own translation of this one class, linear in its length; a class it cannot
    translate matches nothing."""
    try:
        return re.compile(fnmatch.translate(f"[{body}]")).fullmatch
    except (re.error, IndexError, ValueError):
        return _nothing


def _nothing(char: str) -> None:
    return None


def _one(item: Item, char: str) -> bool:
    kind, value = item
    if kind == "?":
        return True
    if isinstance(value, str):
        return value == char
    assert value is not None
    return value(char) is not None


def glob_match(text: str, pattern: str) -> bool:
    """True when `text` matches the glob `pattern` as a whole (case-sensitive, like fnmatchcase)."""
    items = _compile(pattern)
    t = p = 0
    star_p, star_t = -1, 0
    while t < len(text):
        if p < len(items) and items[p][0] == "*":
            star_p, star_t = p, t
            p += 1
        elif p < len(items) and _one(items[p], text[t]):
            t += 1
            p += 1
        elif star_p >= 0:  # let the last star swallow one more character and try again from there
            star_t += 1
            t, p = star_t, star_p + 1
        else:
            return False
    while p < len(items) and items[p][0] == "*":
        p += 1
    return p == len(items)
