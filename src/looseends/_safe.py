"""Reading other people's objects without letting their quirks break a snapshot."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TypeVar

T = TypeVar("T")
K = TypeVar("K")
V = TypeVar("V")

# Copying a container another thread mutates can raise "changed size during iteration"; asyncio's
# own all_tasks() retries the same way.
_COPY_ATTEMPTS = 1000


def safe(read: Callable[[], T], default: T) -> T:
    """`read()`, or `default` when it raises (a name property that raises, a half-closed loop)."""
    try:
        return read()
    except Exception:
        return default


def safe_copy(mapping: Mapping[K, V]) -> dict[K, V]:
    for _ in range(_COPY_ATTEMPTS):
        try:
            return dict(mapping)
        except RuntimeError:
            continue
    return {}


def safe_list(items: Iterable[T]) -> list[T]:
    for _ in range(_COPY_ATTEMPTS):
        try:
            return list(items)
        except RuntimeError:
            continue
    return []
