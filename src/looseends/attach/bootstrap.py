"""The script an attach runs inside its target: take the snapshot there and hand the report back
through memory only the two processes share.

This file is sent as text (attach.script) and run in a dictionary of its own, with one call to `run`
appended and a `globals().clear()` after it, so it leaves no name in any module of the target's and no
reference cycle behind. It imports only the standard library at the top of `run`; looseends (and
psutil) are loaded from the attacher's directories by import spec, never through the target's
`sys.path`, unless the target has its own loaded, and are taken back out of `sys.modules` at the end.

The answer travels in a memfd (an anonymous file in memory) named after a nonce: the attacher finds it
in /proc/PID/fd, opens its own reference and sets the first byte; the script writes the report's
length after it and the report, then waits (bounded, and only while the attacher lives) for that byte
before it closes its end. Nothing is written to disk, and nothing outlives the attach on any path: if
the attacher is gone, the memfd goes with the script's last reference.
"""

from __future__ import annotations

from typing import Any

__all__ = ["ACK", "BUSY", "LENGTH", "PAYLOAD", "run"]

ACK, LENGTH, PAYLOAD = 0, 1, 9  # the memfd: the attacher's byte, the report's length (8 bytes), the report
OURS = ("looseends", "psutil")
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
    if time.monotonic() > arguments["deadline"]:
        return  # the attacher gave up long ago: nobody would read it
    try:
        answer = os.memfd_create("looseends-" + arguments["nonce"], getattr(os, "MFD_CLOEXEC", 1))
    except OSError:
        return
    try:
        os.write(answer, bytes(PAYLOAD))
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
    import os

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # alive, and not ours to signal (a root attacher of another user's process)
    return True


def report(arguments: dict[str, Any]) -> str:
    """The report as JSON text, or {"attach_error": ...} saying what went wrong."""
    import json
    import sys
    import sysconfig
    import time
    import types

    claim = types.ModuleType(BUSY)  # a module, for the program's code that walks sys.modules
    while sys.modules.setdefault(BUSY, claim) is not claim:  # atomic: one attach's script at a time
        if time.monotonic() > arguments["deadline"]:
            return json.dumps({"attach_error": "another attach's script was still running inside"})
        time.sleep(0.005)  # the other script, in another thread: it ends on its own
    before = set(sys.modules)
    try:
        load(arguments["packages"])
        from looseends import _find
        from looseends.report import Report

        look = getattr(_find, "visit", _find.snapshot)  # an older looseends of the target's own
        dump = look(proven_only=arguments["proven"])
        data = Report.from_units(dump.units, now=dump.taken_at, errors=dump.errors).to_dict()
        paths = sysconfig.get_paths()
        data["target"] = {
            "version": list(sys.version_info[:3]),
            "stdlib": sorted({paths["stdlib"], paths["platstdlib"]}),
        }
        return json.dumps(data)
    except Exception as exc:  # the target must never see an exception of ours
        return json.dumps({"attach_error": f"{type(exc).__name__}: {exc}"})
    finally:
        for name in set(sys.modules) - before:  # ours only: the target's threads may be importing too
            if name.partition(".")[0] in OURS:
                del sys.modules[name]
        del sys.modules[BUSY]


def load(packages: list[list[str]]) -> None:
    """Our packages, from the directories the attacher names, unless the target has its own loaded.

    The package module is made without running its `__init__` (which would import every front end):
    the snapshot's modules come in under it as they are imported."""
    import importlib.machinery
    import importlib.util
    import sys

    for name, where in packages:
        if name in sys.modules:
            continue
        spec = importlib.machinery.PathFinder.find_spec(name, [where])
        if spec is None or spec.loader is None:
            raise ImportError(f"{name} is not in {where} (can the target's user read it?)")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        if name == "psutil":
            spec.loader.exec_module(module)
