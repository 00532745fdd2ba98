"""looseends's own code as an attach hands it to its target: the snapshot's modules in a zip that
travels inside the script, so the target reads no file of ours.

A target in another mount namespace (a container) cannot see our files, nor can one whose user may
not read our install; and a directory of ours on the target's import path would be a path someone
else could write. The archive holds source only: no compiled module of ours can be loaded from it, so
none stays mapped in the target (the C speed-ups are for tracking, which an attach never installs;
psutil stays out, as the attacher reads the target's children from outside).
"""

from __future__ import annotations

import functools
import io
import zipfile
from pathlib import Path

__all__ = ["archive"]

PACKAGE = Path(__file__).resolve().parents[1]
LEFT_OUT = ("attach", "frontends")  # the attacher's side and the front ends: a snapshot needs neither
FIXED_TIME = (2020, 1, 1, 0, 0, 0)  # the same bytes from every install of one version


@functools.cache
def archive() -> str:
    """The zip, in hex for a script's literal (`bytes.fromhex` needs no import in the target; stored,
    not compressed: inflating needs zlib, which a target may not have loaded)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as zipped:
        for path in sorted(PACKAGE.rglob("*.py")):
            inside = path.relative_to(PACKAGE)
            if inside.parts[0] in LEFT_OUT:
                continue
            entry = zipfile.ZipInfo(f"{PACKAGE.name}/{inside.as_posix()}", FIXED_TIME)
            zipped.writestr(entry, path.read_bytes())
    return buffer.getvalue().hex()
