"""Services: threads owned by a module-level object, started lazily on first use, serving the whole run.

A pool held in a module global (or by an object held in one) that a test happens to use first is not
that test's leak; blaming it is the false alarm users forgive least. Go's goroutineleak profile draws
the same line: what globals can reach is not a leak. The owner is the Thread object itself, or, for a
ThreadPoolExecutor worker, its executor; the search walks the garbage collector's referrers a few
hops up from it, looking for a module's namespace, and runs only for units that already look leaked.
"""

from __future__ import annotations

import gc
import sys
import threading
import types
import weakref
from collections.abc import Callable

from looseends.analysis.ignore import IgnoreRule
from looseends.model import Kind, Unit, is_library_file

MAX_HOPS = 3  # module global -> object -> its __dict__ -> executor
MAX_VISITS = 64  # each visit scans the heap once: keep the worst case bounded


def _owner(thread: threading.Thread) -> object:
    """The executor behind a pool worker (its first argument is a weak reference to it), else the thread."""
    args = getattr(thread, "_args", ())
    if args and isinstance(args[0], weakref.ref):
        executor = args[0]()
        if executor is not None:
            return executor
    return thread


def _user_namespaces() -> dict[int, str]:
    """Namespaces of the program's own modules; the standard library's registries do not count."""
    out = {}
    for name, module in list(sys.modules.items()):
        filename = getattr(module, "__file__", None)
        if (
            isinstance(module, types.ModuleType)
            and isinstance(filename, str)
            and not is_library_file(filename)
        ):
            out[id(module.__dict__)] = name
    return out


def module_holding(obj: object, *, _referrers: Callable[..., list[object]] = gc.get_referrers) -> str | None:
    """Name of the first user module whose namespace reaches `obj` within MAX_HOPS, else None."""
    namespaces = _user_namespaces()
    # threading's own registries hold every thread; they say nothing about ownership.
    seen = {id(obj), id(threading._active), id(threading._limbo)}  # type: ignore[attr-defined]
    frontier: list[object] = [obj]
    visits = 0
    for _ in range(MAX_HOPS):
        found: list[object] = []
        seen.update((id(frontier), id(found)))
        for current in frontier:
            visits += 1
            if visits > MAX_VISITS:
                return None
            for referrer in _referrers(current):
                if id(referrer) in seen or isinstance(referrer, types.FrameType):
                    continue
                seen.add(id(referrer))
                if id(referrer) in namespaces:
                    return namespaces[id(referrer)]
                found.append(referrer)
        frontier = found
    return None


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
