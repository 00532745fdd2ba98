"""gevent: every greenlet, and the threads monkey-patching turned into greenlets, by their real names.

gevent keeps no registry of its greenlets; like gevent's own `GreenletTree`, the source finds them
among the objects the collector tracks, only once gevent is imported. A monkey-patched `Thread` runs
in a greenlet whose id is its ident: it is reported as that thread (name, daemon flag, target), not
as an anonymous greenlet. The hub (gevent's event loop) and each OS thread's main greenlet are not
units of their own: the OS thread is, through the thread source, which `os_thread_aliases` tells
which `Thread` the real main thread is.

Created-by comes from looseends' tracking (gevent's spawn callback, with the check's label) or else
from the stack gevent records itself for each spawn (`config.track_greenlet_tree`, on by default).
Everything is read statically (`_cpython.read_attr`); nothing of gevent runs during a snapshot.
"""

from __future__ import annotations

import functools
import sys
import threading
import types
import weakref
from collections.abc import Iterator
from contextlib import ExitStack
from typing import Any

from looseends import _cpython
from looseends._cpython import MISSING, read_attr
from looseends._safe import safe
from looseends.model import BlockedOn, Frame, Kind, Origin, Unit
from looseends.sources import _tracking
from looseends.sources._frames import module_of_file, to_frame, walk_back
from looseends.sources._origins import Record, task_record, thread_origin, to_origin
from looseends.sources._waits import C_WAITS, classify_or_running
from looseends.sources.threads import callable_name

__all__ = ["GreenletSource", "current_key", "suspended_frames", "threads_by_os_ident"]

MAX_ORIGINS = 100_000
SPAWN_STACK = 6  # frames of gevent's own spawning stack kept as a creation site

SCHEDULED = BlockedOn("running", "running (spawned, not started yet)")
UNRECOGNISED = BlockedOn("gevent.wait", "gevent (compiled code, no Python frame to tell what)")

_origins: dict[int, Record] = {}  # id(greenlet) -> record of its start, while tracking
# id(greenlet) -> (id of its target, its name): gevent keeps the target where no static read reaches,
# so the spawn callback notes it (a greenlet spawned on a compiled wait has no frame to classify).
_targets: dict[int, tuple[int, str]] = {}


def _modules() -> tuple[Any, Any] | None:
    """(greenlet, gevent.hub) once the program imported gevent; looseends never imports it."""
    greenlet, hub = sys.modules.get("greenlet"), sys.modules.get("gevent.hub")
    return (greenlet, hub) if greenlet is not None and hub is not None else None


def is_patched() -> bool:
    """Did gevent monkey-patch threading? Then threads are greenlets."""
    monkey = sys.modules.get("gevent.monkey")
    return monkey is not None and bool(safe(lambda: monkey.is_module_patched("threading"), False))


def _greenlets(greenlet: Any, hub: Any) -> Iterator[object]:
    """Live greenlets that are the program's: not dead, not a main greenlet, not the hub, not the caller."""
    kind, hub_type, me = greenlet.greenlet, getattr(hub, "Hub", None), greenlet.getcurrent()
    for obj in _cpython.tracked_instances(kind):  # by type: `isinstance` asks others for `__class__`
        if (
            obj is not me
            and type(obj) is not hub_type
            and read_attr(obj, "dead") is False
            and read_attr(obj, "parent") is not None  # each OS thread's main greenlet has none
        ):
            yield obj


class GreenletSource:
    """Reads every greenlet (none, at no cost, when gevent is not imported)."""

    name = "greenlets"

    def read(self, *, detail: bool = True) -> list[Unit]:
        found = _modules()
        if found is None:
            return []
        threads = _cpython.active_threads() if is_patched() else {}
        units = []
        for obj in _greenlets(*found):
            thread = threads.get(id(obj))
            unit = _unit(obj, thread) if detail else _identity(obj, thread)
            if unit is not None:
                units.append(unit)
        return units


def suspended_frames() -> list[types.FrameType]:
    """The top frame of every suspended greenlet: for proofs, what they may still touch when resumed."""
    found = _modules()
    if found is None:
        return []
    frames = (read_attr(obj, "gr_frame") for obj in _greenlets(*found))
    return [frame for frame in frames if isinstance(frame, types.FrameType)]


def current_key() -> tuple[object, ...] | None:
    """The calling greenlet's unit key (a checker never reports itself); None without gevent."""
    greenlet = sys.modules.get("greenlet")
    if greenlet is None or "gevent" not in sys.modules:
        return None
    return ("greenlet", id(greenlet.getcurrent()))


def threads_by_os_ident() -> dict[int, threading.Thread]:
    """threading's registry, plus what monkey-patching hides from the thread source: `threading` knows
    the main thread by its main greenlet's id, not by the OS ident `sys._current_frames()` uses."""
    return {**_cpython.active_threads(), **_os_thread_aliases()}


def _os_thread_aliases() -> dict[int, threading.Thread]:
    """The calling OS thread's real ident, mapped to its Thread (under monkey-patching only)."""
    monkey, greenlet = sys.modules.get("gevent.monkey"), sys.modules.get("greenlet")
    if monkey is None or greenlet is None or not is_patched():
        return {}
    real_ident = safe(lambda: monkey.get_original("_thread", "get_ident")(), None)
    main = greenlet.getcurrent()
    while read_attr(main, "parent") not in (None, MISSING):
        main = read_attr(main, "parent")
    thread = _cpython.active_threads().get(id(main))
    return {real_ident: thread} if isinstance(real_ident, int) and thread is not None else {}


def _name(obj: object, thread: threading.Thread | None) -> str:
    if thread is not None:
        return _cpython.thread_name(thread) or f"<thread {id(obj)}>"
    number = read_attr(obj, "minimal_ident")  # gevent's default names are Greenlet-<this>
    return f"Greenlet-{number}" if isinstance(number, int) else f"<greenlet {id(obj)}>"


def _identity(obj: object, thread: threading.Thread | None) -> Unit:
    if thread is not None:
        kind, key = Kind.THREAD, ("thread", id(obj))
    else:
        kind, key = Kind.GREENLET, ("greenlet", id(obj))
    return Unit(kind=kind, key=key, name=_name(obj, thread), ident=id(obj), ref=_weak(thread or obj))


def _weak(obj: object) -> weakref.ref[Any] | None:
    try:
        return weakref.ref(obj)
    except TypeError:
        return None


def _unit(obj: object, thread: threading.Thread | None) -> Unit | None:
    return safe(functools.partial(_read, obj, thread), None)


def _read(obj: object, thread: threading.Thread | None) -> Unit:
    """Callers guard with `safe`: a greenlet finishing mid-read may fail anywhere here."""
    top = read_attr(obj, "gr_frame")
    live = list(walk_back(top if isinstance(top, types.FrameType) else None))
    stack = tuple(to_frame(frame) for frame in live)
    target = callable_name(_cpython.thread_target(thread)) if thread is not None else _target(obj)
    if live:
        blocked_on = classify_or_running(live)
    elif not _started(obj):
        blocked_on = SCHEDULED
    else:  # suspended in its target, compiled code with no Python frame: the target says what it waits on
        wait = C_WAITS.get(target or "")
        blocked_on = BlockedOn(wait.code, wait.label) if wait is not None else UNRECOGNISED
    live.clear()
    identity = _identity(obj, thread)
    return Unit(
        kind=identity.kind,
        key=identity.key,
        name=identity.name,
        ident=id(obj),
        stack=stack,
        blocked_on=blocked_on,
        origin=(thread_origin(thread) if thread is not None else None) or _origin(obj),
        daemon=_cpython.thread_daemon(thread) if thread is not None else None,
        target=target,
        ref=identity.ref,
    )


def _target(obj: object) -> str | None:
    noted = _targets.get(id(obj))
    return noted[1] if noted is not None and noted[0] == id(type(obj)) else None


def _started(obj: object) -> bool:
    """Has it run yet? greenlet's own C-level truth ("active"), never a subclass's `__bool__`."""
    greenlet = sys.modules.get("greenlet")
    return greenlet is None or bool(safe(lambda: greenlet.greenlet.__bool__(obj), True))


def _origin(obj: object) -> Origin | None:
    record = _origins.get(id(obj))
    if record is not None and record[0] == id(type(obj)):
        return to_origin(record)
    return _spawning_stack(obj)


def _spawning_stack(obj: object) -> Origin | None:
    """gevent's own record of the spawn: a chain of frame-like objects, innermost first."""
    frames: list[Frame] = []
    frame = read_attr(obj, "spawning_stack")
    while frame not in (None, MISSING) and len(frames) < SPAWN_STACK:
        code, line = read_attr(frame, "f_code"), read_attr(frame, "f_lineno")
        if isinstance(code, types.CodeType) and isinstance(line, int):
            frames.append(Frame(code.co_filename, line, code.co_qualname, module_of_file(code.co_filename)))
        frame = read_attr(frame, "f_back")
    return Origin(tuple(frames), _creator(obj)) if frames else None


def _creator(obj: object) -> str | None:
    ref = read_attr(obj, "spawning_greenlet")
    parent = ref() if isinstance(ref, weakref.ref) else None
    if parent is None:
        return None
    thread = _cpython.active_threads().get(id(parent))
    if thread is not None:
        return f"thread {_cpython.thread_name(thread)}"
    return f"greenlet {_name(parent, None)}"


# Tracking --------------------------------------------------------------------------------------------


def _spawned(obj: object) -> None:
    """gevent's spawn callback: where the program started this greenlet, and during which check."""
    try:
        if _tracking.state.users:
            if len(_origins) >= MAX_ORIGINS:
                _origins.clear()
                _targets.clear()
            _origins[id(obj)] = task_record(type(obj), _creator_now(), skip=1)
            gevent = sys.modules.get("gevent")
            if gevent is not None and type(obj) is gevent.Greenlet:  # gevent's own class: its own getter
                _targets[id(obj)] = (id(type(obj)), callable_name(getattr(obj, "_run", None)) or "?")
            _tracking.noted("others")
    except Exception:  # never break the program's spawn
        pass


def _creator_now() -> str | None:
    greenlet = sys.modules.get("greenlet")
    current = greenlet.getcurrent() if greenlet is not None else None
    if current is None or read_attr(current, "parent") in (None, MISSING):
        return None  # a thread's main greenlet: the thread, which the record names already
    return f"greenlet {_name(current, None)}"


_installed = [False]  # the spawn callback is in place (gevent's Greenlet class cannot be patched)


def _install(stack: ExitStack) -> None:
    gevent = sys.modules.get("gevent")
    greenlet_class = getattr(gevent, "Greenlet", None)
    if greenlet_class is None or _installed[0]:
        return
    greenlet_class.add_spawn_callback(_spawned)
    _installed[0] = True
    _trace_first_switches(stack, sys.modules["greenlet"])

    def remove() -> None:
        _installed[0] = False
        safe(lambda: greenlet_class.remove_spawn_callback(_spawned), None)

    stack.callback(remove)


def _trace_first_switches(stack: ExitStack, greenlet: Any) -> None:
    """Move the creation mark when any greenlet runs for the first time, however it was made: gevent's
    spawn callback sees `Greenlet`s only, not `spawn_raw` or a plain `greenlet(...)`. A greenlet about to
    start has no frame and is not dead; the check costs an attribute read per switch."""
    previous = greenlet.gettrace()

    def trace(event: str, args: Any) -> None:
        try:
            if event == "switch":
                target = args[1]
                if read_attr(target, "gr_frame") is None and read_attr(target, "dead") is False:
                    _tracking.noted("others")
        except Exception:  # ours: never break a switch
            pass
        if previous is not None:
            previous(event, args)

    greenlet.settrace(trace)
    stack.callback(lambda: greenlet.settrace(previous) if greenlet.gettrace() is trace else None)


_tracking.register(_install, again_on_entry=True)
