"""A signal dump: `kill -USR1 PID` writes the grouped dump to stderr or a file.

The handler runs in the main thread between two bytecodes, possibly while that thread holds a lock.
So the dump takes no lock: the snapshot reads under the GIL only, and the text is written with
`os.write` on a file descriptor, never through `sys.stderr`, whose buffer lock the interrupted code
may hold.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from looseends.errors import OptionError
from looseends.report import Report
from looseends.sources import take_snapshot

__all__ = ["install_dump_signal"]


def install_dump_signal(
    signum: int = signal.SIGUSR1, *, path: str | os.PathLike[str] | None = None, debug: int = 1
) -> Callable[[], None]:
    """Dump on `signum` (SIGUSR1) to stderr, or appended to `path`; returns a function that uninstalls it."""
    if threading.current_thread() is not threading.main_thread():
        raise OptionError("install_dump_signal() must be called from the main thread (Python's signal rule)")
    if debug not in (1, 2):
        raise OptionError(f"invalid debug={debug!r} from install_dump_signal(): expected 1 or 2")
    target = None if path is None else Path(path)

    def handler(received: int, frame: FrameType | None) -> None:
        del frame  # never keep the interrupted frame
        try:
            snapshot = take_snapshot()
            text = Report.from_units(snapshot.units, now=snapshot.taken_at, errors=snapshot.errors).render(
                full=debug == 2,
                title=f"looseends dump (signal {signal.Signals(received).name}, pid {os.getpid()})",
            )
        except Exception as exc:  # a dump must never take the program down
            text = f"looseends: dump failed: {type(exc).__name__}: {exc}"
        _write(target, (text + "\n\n").encode())

    previous = signal.signal(signum, handler)

    def uninstall() -> None:
        signal.signal(signum, previous)

    return uninstall


def _write(target: Path | None, data: bytes) -> None:
    fd = 2 if target is None else os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
    except OSError:
        pass  # nowhere to write: say nothing rather than fail inside the program
    finally:
        if target is not None:
            os.close(fd)
