"""looseends's own code as an attach hands it to its target: the snapshot's modules as source text,
inside the script, so the target reads no file of ours.

A target in another mount namespace (a container) cannot see our files, nor can one whose user may
not read our install; and a directory of ours on the target's import path would be a path someone
else could write. Imported from memory (attach.bootstrap), the modules cost the target no system
call either: in a process whose threads are busy in Python code, every call that lets the GIL go
waits up to a switch interval to get it back, and reading 40 files that way takes seconds. Source
only: no compiled module of ours can come from it, so none stays mapped in the target (the C
speed-ups are for tracking, which an attach never installs; psutil stays out, as the attacher reads
the target's children from outside).
"""

from __future__ import annotations

import functools
from pathlib import Path

__all__ = ["sources"]

PACKAGE = Path(__file__).resolve().parents[1]
LEFT_OUT = ("attach", "frontends")  # the attacher's side and the front ends: a snapshot needs neither


@functools.cache
def sources() -> dict[str, tuple[bool, str]]:
    """By module name: whether it is a package, and its source."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        inside = path.relative_to(PACKAGE)
        if inside.parts[0] in LEFT_OUT:
            continue
        package = inside.name == "__init__.py"
        parts = (
            (PACKAGE.name, *inside.parent.parts) if package else (PACKAGE.name, *inside.with_suffix("").parts)
        )
        found[".".join(parts)] = (package, path.read_text(encoding="utf-8"))
    return found
