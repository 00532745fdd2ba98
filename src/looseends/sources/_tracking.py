"""Creation tracking, switched on and off: one lease count over one ExitStack of patches.

While at least one check, test session, endpoint or `track()` wants it, the modules that record creations
(`_origins`: threads and tasks; `_spawns`: child processes; `_vanished`: tasks that vanish while pending)
have their patches installed; the last one out undoes them all, in reverse, from the same stack. Every
user enters through the `tracking()` context manager. Each module registers its installer here when it
is imported (the `looseends.sources` package imports them all).

Wrappers must never make the host's call fail: they read shared state without locks (single reads and
stores, which the GIL makes atomic), and anything they mutate is either per-call or changed by one
atomic operation.
"""

from __future__ import annotations

import itertools
import sys
import threading
import types
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    import importlib.machinery

Installer = Callable[[ExitStack], None]


class _State:
    """What wrappers read on every call, as attributes of one object they bind once."""

    __slots__ = ("checks", "labels", "others", "tasks", "threads", "users")

    def __init__(self) -> None:
        self.users = 0
        self.checks = 0  # users that are checks: while any runs, vanished tasks are kept for it to take
        self.labels: tuple[str, ...] = ()  # the checks running now, innermost last; replaced, never mutated
        # Creation marks, by what was created: the number (from one shared sequence) of the latest tracked
        # thread, task, and anything else (child process, trio task, greenlet). Kept apart so that a look
        # after a test that started a thread re-reads threads only (sources.identities).
        self.threads = 0
        self.tasks = 0
        self.others = 0


state = _State()
sequence = itertools.count(1)  # next() is one atomic C call
_lock = threading.Lock()  # guards installing and uninstalling only; never taken by a wrapper
_installers: list[Installer] = []
_stack: ExitStack | None = None


def register(installer: Installer, *, again_on_entry: bool = False) -> None:
    """Called once per recording module, at import: `installer(stack)` installs its patches.

    With `again_on_entry`, it also runs when a LATE_MODULES module appeared since it last ran (uvloop
    imported after tracking began): it must patch only what is not patched yet (`is_patched`)."""
    _installers.append(installer)
    if again_on_entry:
        _late_installers.append(installer)


_late_installers: list[Installer] = []
_patched: set[tuple[int, str]] = set()


def is_patched(owner: object, name: str) -> bool:
    return (id(owner), name) in _patched


def patch(stack: ExitStack, owner: object, name: str, replacement: object) -> None:
    """Replace `owner.name` until the stack unwinds; if someone patched it again meanwhile, theirs stays
    (our wrapper then does nothing more than call through, see `is_tracking`)."""
    original = getattr(owner, name)
    own = isinstance(owner, type) and name in vars(owner)  # or inherited: then undo by deleting ours
    setattr(owner, name, replacement)
    _patched.add((id(owner), name))

    def restore() -> None:
        _patched.discard((id(owner), name))
        if getattr(owner, name) is replacement:
            if isinstance(owner, type) and not own:
                delattr(owner, name)
            else:
                setattr(owner, name, original)

    stack.callback(restore)


def is_tracking() -> bool:
    return state.users > 0


def noted(kind: Literal["threads", "tasks", "others"]) -> None:
    """A creation of this kind finished registering (thread started, task created, child spawned): move
    its mark.

    Called after the unit is registered, so a creation whose mark predates a baseline is in that
    baseline. Each number is stored once, so a late store can never bring back an earlier mark.
    (Hot wrappers inline this as `state.threads = next(sequence)`.)"""
    setattr(state, kind, next(sequence))


def _all_moved() -> None:
    """Creations went unseen while tracking was off: every cached look is stale."""
    state.threads = state.tasks = state.others = next(sequence)


def current_label() -> str | None:
    labels = state.labels
    return labels[-1] if labels else None


class tracking:
    """Track creations while the block runs; `label` is recorded as `Origin.during`; `check`: this is a
    check, which takes the tasks that vanish meanwhile (`_vanished`).

    A class rather than a generator: a lease held until the process ends must not run anything when the
    interpreter tears its modules down. Every checked test enters one, so the usual case (tracking already
    on, nothing new imported, the label innermost) is a few stores under the lock."""

    def __init__(self, label: str | None = None, *, check: bool = False) -> None:
        self._label = label
        self._check = check

    def __enter__(self) -> None:
        global _stack
        with _lock:
            if state.users == 0:
                stack = ExitStack()
                try:
                    for install in _installers:
                        install(stack)
                except BaseException:
                    stack.close()
                    raise
                _stack = stack
                _late_seen.clear()
                _modules_seen[0] = -1
                _late_arrivals()  # what is loaded now was just patched
                _watch_imports(stack)
                _all_moved()
            elif _stack is not None and _late_arrivals():
                for install in _late_installers:
                    install(_stack)
            state.users += 1
            if self._check:
                state.checks += 1
            if self._label is not None:
                state.labels = (*state.labels, self._label)

    def __exit__(self, *exc: object) -> None:
        global _stack
        label = self._label
        with _lock:
            labels = state.labels
            if label is None:
                pass
            elif labels and labels[-1] == label:
                state.labels = labels[:-1]
            elif label in labels:  # blocks ended out of order (threads): remove the innermost of that name
                index = len(labels) - 1 - labels[::-1].index(label)
                state.labels = labels[:index] + labels[index + 1 :]
            if self._check:
                state.checks -= 1
            state.users -= 1
            if state.users == 0 and _stack is not None:
                stack, _stack = _stack, None
                stack.close()


# Modules whose arrival calls for the late installers (a loop class, a run or a start to wrap), while
# tracking is on.
LATE_MODULES = frozenset({"uvloop", "trio", "gevent", "multiprocessing.process"})


_late_seen: set[str] = set()
_modules_seen = [0]  # len(sys.modules) at the last look


def _late_arrivals() -> bool:
    """A LATE_MODULES module loaded since the late installers last ran (the import hook misses modules
    loaded by other means); nested entries skip the installers otherwise. When nothing was imported since
    the last look (the module count stands still), that is one len() per test."""
    count = len(sys.modules)
    if count == _modules_seen[0]:
        return False
    _modules_seen[0] = count
    present = LATE_MODULES & sys.modules.keys()
    if present <= _late_seen:
        return False
    _late_seen.update(present)
    return True


def _after_late_import() -> None:
    with _lock:
        if _stack is not None:
            for install in _late_installers:
                install(_stack)


class _LateImports:  # a meta path finder: importlib.abc (heavy since 3.12) is not needed for one
    """Runs the late installers right after a LATE_MODULES module is imported (uvicorn imports uvloop
    only when its server starts, after the app turned tracking on). It finds nothing itself: it wraps the
    loader the other finders return, and steps aside on any surprise."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name not in LATE_MODULES:
            return None
        try:
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(name, path, target)
                if spec is not None:
                    if spec.loader is not None and hasattr(spec.loader, "exec_module"):
                        spec.loader = _Notifying(spec.loader)
                    return spec  # type: ignore[no-any-return]
        except Exception:
            pass
        return None


class _Notifying:  # a loader
    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        return self._inner.create_module(spec)  # type: ignore[no-any-return]

    def exec_module(self, module: types.ModuleType) -> None:
        self._inner.exec_module(module)
        try:
            _after_late_import()
        except Exception:  # a wrapper we could not install: the import itself must still succeed
            pass

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def _watch_imports(stack: ExitStack) -> None:
    finder = _LateImports()
    sys.meta_path.insert(0, finder)

    def remove() -> None:
        if finder in sys.meta_path:
            sys.meta_path.remove(finder)

    stack.callback(remove)


class Tracking:
    """Creation tracking held on for a process: until `stop()`, or the end of a `with` block."""

    def __init__(self) -> None:
        self._held = ExitStack()
        self._held.enter_context(tracking())
        _held.add(self)

    def stop(self) -> None:
        """Let tracking go (it stays on while anything else still wants it); safe to call twice."""
        _held.discard(self)
        self._held.close()

    def __enter__(self) -> Tracking:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


_held: set[Tracking] = set()  # a plain `track()` call keeps tracking on even when its result is dropped


def track() -> Tracking:
    """Turn creation tracking on for this process, so dumps say who started each thread, task and child.

    `looseends.track()` keeps it on until `.stop()`; `with looseends.track():` for a block. Costs a few
    microseconds on every task and thread start (BENCHMARKS.md figure 3)."""
    return Tracking()
