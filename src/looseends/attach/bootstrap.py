"""The script an attach runs inside its target: take the snapshot there and hand the report back
through memory only the two processes share.

This file is sent as text (attach.script) and run in a dictionary of its own, with one call to `run`
appended and a `globals().clear()` after it, so it leaves no name in any module of the target's and no
reference cycle behind. It imports only the standard library at the top of `run`; looseends comes in
the script itself, a zip read from a memfd (attach.shipment), never through the target's `sys.path`,
unless the target has its own loaded, and is taken back out of `sys.modules` and every import cache
at the end. Nothing compiled is loaded for it: no psutil (the attacher reads the target's children
from outside), no C speed-ups, no `json` accelerator.

The answer travels in a memfd (an anonymous file in memory) named after a nonce: the attacher finds it
in /proc/PID/fd, opens its own reference and sets the first byte; the script writes the report's
length after it and the report, then waits (bounded, and only while the attacher lives) for that byte
before it closes its end. Nothing is written to disk, and nothing outlives the attach on any path: if
the attacher is gone, the memfd goes with the script's last reference.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["ACK", "BUSY", "LENGTH", "PAYLOAD", "run"]

ACK, LENGTH, PAYLOAD = 0, 1, 9  # the memfd: the attacher's byte, the report's length (8 bytes), the report
BUSY = "looseends.attach-in-progress"  # held in sys.modules while one attach's script runs


def run(arguments: dict[str, Any]) -> None:
    """Take the snapshot and hand it back; never raise (the target must not see an error of ours)."""
    import os
    import time

    for path in arguments.get("remove", ()):  # sys.remote_exec's script file and its directories
        try:
            (os.rmdir if path.endswith("/") else os.unlink)(path)
        except OSError:
            pass
    if time.monotonic() > arguments["deadline"] or not alive(arguments["attacher"]):
        return  # the attacher gave up long ago, or was killed: nobody would read it
    try:
        answer = os.memfd_create("looseends-" + arguments["nonce"], getattr(os, "MFD_CLOEXEC", 1))
    except OSError:
        return
    try:
        # Nothing is written before the report: the attacher may have set its byte already (it does as
        # soon as it finds the memfd), and writing over it would make this wait out the deadline.
        payload = report(arguments).encode()
        os.pwrite(answer, payload, PAYLOAD)
        os.pwrite(answer, len(payload).to_bytes(8, "little"), LENGTH)
        while os.pread(answer, 1, ACK) != b"\x01" and time.monotonic() < arguments["deadline"]:
            if not alive(arguments["attacher"]):
                break
            time.sleep(0.001)  # the attacher's poll: another process, nothing shared to wait on
    except OSError:
        pass
    finally:
        os.close(answer)


def alive(pid: int) -> bool:
    """Whether the attacher lives; 0 when it is in another pid namespace than ours (we are in a
    container): then only the deadline bounds the wait."""
    import os

    if not pid:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # alive, and not ours to signal (a root attacher of another user's process)
    return True


def report(arguments: dict[str, Any]) -> str:
    """The report as JSON text, or {"attach_error": ...} saying what went wrong."""
    import importlib
    import sys
    import time
    import types

    claim = types.ModuleType(BUSY)  # a module, for the program's code that walks sys.modules
    while sys.modules.setdefault(BUSY, claim) is not claim:  # atomic: one attach's script at a time
        if time.monotonic() > arguments["deadline"]:
            return as_json({"attach_error": "another attach's script was still running inside"})
        time.sleep(0.005)  # the other script, in another thread: it ends on its own
    before = set(sys.modules)
    forget = None
    try:
        ours = "looseends" not in sys.modules  # else the target's own, whose state is not ours to set
        forget = load(arguments["code"])
        from looseends import _cpython, _library, sources
        from looseends.report import Report

        try:
            composing: Any = importlib.import_module("looseends.core.find")
        except ImportError:  # an older looseends of the target's own, from before the core package
            composing = importlib.import_module("looseends._find")
        if ours:
            _cpython.as_a_guest()

        if hasattr(composing, "visit"):  # processes are read from outside, by the attacher
            chosen = tuple(source for source in sources.DEFAULT_SOURCES if source.name != "processes")
            dump = composing.visit(sources=chosen, proven=arguments["proven"])
        else:  # an older looseends of the target's own
            dump = composing.snapshot(proven=arguments["proven"])
        data = Report.from_units(dump.units, now=dump.taken_at, errors=dump.errors).to_dict()
        # An older looseends of the target's own may not say: then its frames are folded as ours are.
        stdlib: set[str] = getattr(_library, "standard_library_paths", set)()
        data["target"] = {"version": list(sys.version_info[:3]), "stdlib": sorted(stdlib)}
        return as_json(data)
    except Exception as exc:  # the target must never see an exception of ours
        return as_json({"attach_error": f"{type(exc).__name__}: {exc}"})
    finally:
        for name in set(sys.modules) - before:  # ours only: the target's threads may be importing too
            if name.partition(".")[0] == "looseends":
                del sys.modules[name]
        if forget is not None:
            forget()
        del sys.modules[BUSY]


ESCAPES = {
    **{code: f"\\u{code:04x}" for code in (*range(32), *range(0xD800, 0xE000))},
    ord('"'): '\\"',
    ord("\\"): "\\\\",
}


def as_json(value: Any) -> str:
    """JSON text of a report's plain data, written here rather than by `json`, whose accelerator is
    a compiled module the target may not have loaded (it would stay mapped there for good)."""
    if isinstance(value, str):
        return '"' + value.translate(ESCAPES) + '"'
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else "null"
    if isinstance(value, dict):
        return "{" + ",".join(f"{as_json(str(key))}:{as_json(item)}" for key, item in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(as_json(item) for item in value) + "]"
    return as_json(str(value))


HOME = "/<looseends attach>"  # where our modules say they are: a path no file system holds


def load(code: dict[str, tuple[bool, str]]) -> Callable[[], None]:
    """Our package from the sources the attacher sent (attach.shipment), unless the target has its own
    loaded; returns what forgets it again: every import cache entry that names it.

    Each package's `__path__` names a place under HOME, whose finder, set in `sys.path_importer_cache`,
    answers from memory: the import system asks it and nothing else, and no file is opened. The
    package module is made without running its `__init__` (which would import every front end): the
    snapshot's modules come in under it as they are imported."""
    import importlib.machinery
    import sys

    if "looseends" in sys.modules:
        return lambda: None

    class Memory:  # a path entry finder and loader, for our names only
        @staticmethod
        def find_spec(name: str, target: object = None) -> importlib.machinery.ModuleSpec | None:
            if name not in code:
                return None
            package, _ = code[name]
            where = HOME + "/" + name.replace(".", "/")
            spec = importlib.machinery.ModuleSpec(
                name,
                Memory,  # type: ignore[arg-type]  # a loader by its methods (importlib.abc is heavy)
                origin=where + ("/__init__.py" if package else ".py"),
            )
            spec.has_location = True
            if package:
                spec.submodule_search_locations = [where]
                sys.path_importer_cache[where] = Memory  # a path entry finder, by its method
            return spec

        @staticmethod
        def create_module(spec: object) -> None:
            return None

        @staticmethod
        def exec_module(module: Any) -> None:
            source = code[module.__name__][1]
            exec(compile(source, module.__spec__.origin, "exec", dont_inherit=True), module.__dict__)

    def forget() -> None:
        for path in [
            path for path in sys.path_importer_cache if isinstance(path, str) and path.startswith(HOME)
        ]:
            sys.path_importer_cache.pop(path, None)

    spec = Memory.find_spec("looseends")
    if spec is None or spec.submodule_search_locations is None:
        raise ImportError("the script holds no looseends package")
    package = type(sys)("looseends")  # importlib.util.module_from_spec, without importing it
    package.__spec__, package.__file__ = spec, spec.origin
    package.__loader__ = Memory  # type: ignore[assignment]
    package.__package__, package.__path__ = "looseends", list(spec.submodule_search_locations)
    sys.modules["looseends"] = package
    return forget
