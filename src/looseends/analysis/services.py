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

from looseends._library import is_stdlib_file
from looseends.analysis.ignore import IgnoreRule
from looseends.model import Kind, Unit

__all__ = ["SERVICES", "module_holding"]

MAX_HOPS = 4  # module global -> object -> its __dict__ -> executor (-> a worker thread)
MAX_VISITS = 50_000  # objects the walk may visit from each module: bounds the worst case


def _owner(thread: threading.Thread) -> object:
    """The executor behind a pool worker (its first argument is a weak reference to it), else the thread."""
    args = getattr(thread, "_args", ())
    if args and isinstance(args[0], weakref.ref):
        executor = args[0]()
        if executor is not None:
            return executor
    return thread


def _user_namespaces() -> dict[int, tuple[str, dict[str, object]]]:
    """Namespaces of the program's modules, installed packages included (a library's module-level client
    owns its pool as much as the program's does); the standard library's registries do not count."""
    out = {}
    for name, module in list(sys.modules.items()):
        filename = getattr(module, "__file__", None)
        if (
            isinstance(module, types.ModuleType)
            and isinstance(filename, str)
            and not is_stdlib_file(filename)
        ):
            out[id(module.__dict__)] = (name, module.__dict__)
    return out


def module_holding(obj: object) -> str | None:
    """Name of the user module whose namespace reaches `obj` within MAX_HOPS references, else None."""
    for name, reached in _reached_from_user_modules().items():
        if id(obj) in reached:
            return name
    return None


_cache: tuple[float, dict[str, set[int]]] | None = None
CACHE_SECONDS = 0.5  # one walk serves every candidate of one check, and stays fresh


def _reached_from_user_modules() -> dict[str, set[int]]:
    """Ids of objects each user module's namespace reaches within MAX_HOPS, walking forwards.

    Forwards, from a few namespaces, is far cheaper than asking the collector for referrers (each
    such call scans the whole heap). The walk stops at other modules' namespaces and at threading's
    registries, which hold every thread and say nothing about ownership; it visits MAX_VISITS objects
    at most from each module.
    """
    global _cache
    now = time.monotonic()
    if _cache is not None and now - _cache[0] < CACHE_SECONDS:
        return _cache[1]
    namespaces = _user_namespaces()
    every_namespace = {id(m.__dict__) for m in list(sys.modules.values()) if isinstance(m, types.ModuleType)}
    stop = every_namespace | {id(threading._active), id(threading._limbo)}  # type: ignore[attr-defined]
    out: dict[str, set[int]] = {}
    for namespace_id, (name, namespace) in namespaces.items():
        budget = MAX_VISITS
        reached: set[int] = set()
        frontier: list[object] = list(namespace.values())
        for _ in range(MAX_HOPS):
            following: list[object] = []
            for item in frontier:
                key = id(item)
                if key in reached or key in stop or key == namespace_id or isinstance(item, types.ModuleType):
                    continue
                reached.add(key)
                budget -= 1
                if budget <= 0:
                    break
                following.extend(gc.get_referents(item))
            frontier = following
        out[name] = reached
    _cache = (now, out)
    return out


def _is_service(unit: Unit) -> bool:
    if unit.kind is not Kind.THREAD or unit.ref is None:
        return False
    thread = unit.ref()
    if not isinstance(thread, threading.Thread):
        return False
    owner = _owner(thread)
    del thread
    return module_holding(owner) is not None


SERVICES = IgnoreRule("threads owned by module-level objects (lazily started services)", _is_service)
