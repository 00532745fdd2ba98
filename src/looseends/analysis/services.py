"""Services: threads owned by a module-level object, started lazily on first use, serving the whole run.

A pool held in a module global (or by an object held in one) that a test happens to use first is not
that test's leak; blaming it is the false alarm users forgive least. Go's goroutineleak profile draws
the same line: what globals can reach is not a leak. The owner is the Thread object itself, or, for a
ThreadPoolExecutor worker, its executor; a walk of a few hops forwards from the user's module
namespaces says which owners they reach. It runs only when units already look leaked.
"""

from __future__ import annotations

import gc
import sys
import threading
import time
import types
import weakref
from collections.abc import Collection

from looseends import _cpython
from looseends._library import is_stdlib_file
from looseends.analysis.ignore import IgnoreRule
from looseends.model import Kind, Unit

__all__ = ["SERVICES", "module_holding"]

MAX_HOPS = 4  # module global -> object -> its __dict__ -> executor (-> a worker thread)
MAX_VISITS = 50_000  # objects the walk may visit from each module: bounds the worst case


def _owner(thread: threading.Thread) -> object:
    """The executor behind a pool worker (its first argument is a weak reference to it), else the thread."""
    executor = _cpython.pool_executor_ref(thread)
    owner = executor() if executor is not None else None
    return owner if owner is not None else thread


def _namespaces() -> dict[int, tuple[str, dict[str, object]]]:
    """Every module's namespace by id, with the module's name (one entry for a module under two names)."""
    found = {}
    for name, module in list(sys.modules.items()):
        namespace = _cpython.module_namespace(module)
        if namespace is not None:
            found[id(namespace)] = (name, namespace)
    return found


def _users(namespace: dict[str, object]) -> bool:
    """A module of the program's, installed packages included (a library's module-level client owns its
    pool as much as the program's does); the standard library's registries do not count."""
    filename = namespace.get("__file__")
    return type(filename) is str and not is_stdlib_file(filename)


class _Walk:
    """What one walk found, and what it can answer for. A walk remembers objects by address, and an
    address freed since may hold a newer object: so it answers only for threads that were alive when it
    began (held weakly: one of them, not a newcomer at its address), and names a module only for the
    owner it reached itself (a newer object at that address is not it)."""

    def __init__(self) -> None:
        self.taken = time.monotonic()
        self.threads: dict[int, weakref.ref[threading.Thread]] = {}
        self.owners: dict[int, weakref.ref[object]] = {}
        for thread in _cpython.known_threads():
            self.threads[id(thread)] = weakref.ref(thread)
            owner = _owner(thread)
            self.owners[id(owner)] = weakref.ref(owner)
        self.holders = _holders(self.owners.keys())

    def answers_for(self, thread: threading.Thread) -> bool:
        alive = self.threads.get(id(thread))
        return alive is not None and alive() is thread and time.monotonic() - self.taken < CACHE_SECONDS

    def holder(self, owner: object) -> str | None:
        reached = self.owners.get(id(owner))
        return self.holders.get(id(owner)) if reached is not None and reached() is owner else None


def _holders(owners: Collection[int]) -> dict[int, str]:
    """For each owner (by id) that a user module's namespace reaches within MAX_HOPS, that module's name.

    Forwards, from a few namespaces, is far cheaper than asking the collector for referrers (each
    such call scans the whole heap). The walk stops at other modules' namespaces and at threading's
    registries, which hold every thread and say nothing about ownership; it visits MAX_VISITS objects
    at most from each module.
    """
    namespaces = _namespaces()
    stop = set(namespaces) | set(map(id, _cpython.thread_registries()))
    found: dict[int, str] = {}
    for namespace_id, (name, namespace) in namespaces.items():
        if not _users(namespace):
            continue
        budget = MAX_VISITS
        reached: set[int] = set()
        frontier: list[object] = list(namespace.values())
        for _ in range(MAX_HOPS):
            following: list[object] = []
            for item in frontier:
                key = id(item)
                if (
                    key in reached
                    or key in stop
                    or key == namespace_id
                    or issubclass(type(item), types.ModuleType)
                ):
                    continue
                reached.add(key)
                if key in owners:
                    found.setdefault(key, name)
                budget -= 1
                if budget <= 0:
                    break
                following.extend(gc.get_referents(item))
            frontier = following
    return found


_cache: _Walk | None = None
CACHE_SECONDS = 0.5  # one walk serves every candidate of one check, and stays fresh


def module_holding(thread: threading.Thread) -> str | None:
    """Name of the user module whose namespace reaches `thread`'s owner within MAX_HOPS, else None."""
    global _cache
    walk = _cache
    if walk is None or not walk.answers_for(thread):
        walk = _cache = _Walk()
    return walk.holder(_owner(thread))


def _is_service(unit: Unit) -> bool:
    if unit.kind is not Kind.THREAD or unit.ref is None:
        return False
    thread = unit.ref()
    if not isinstance(thread, threading.Thread):
        return False
    return module_holding(thread) is not None


SERVICES = IgnoreRule("threads owned by module-level objects (lazily started services)", _is_service)
