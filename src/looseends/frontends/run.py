"""`looseends run script.py ARGS` (or `-m module`): run a program, then report what it left running.

The program runs in this interpreter under one check spanning its whole run, as `python script.py`
would run it (same `sys.argv`, `__main__`, exit status). When it leaves units running, the report goes
to stderr, the program's own exit handlers run, and the process exits at once with a non-zero status:
leftover non-daemon threads would otherwise keep it alive forever.
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import os
import runpy
import sys
import traceback
from pathlib import Path
from typing import TextIO

from looseends.analysis.settle import run_sync
from looseends.core.watch import Watch
from looseends.errors import LooseEndsError
from looseends.options import build_options

__all__ = ["run_program"]

EXIT_FOUND = 1


def _exit_status(code: object) -> int:
    """What `sys.exit(code)` makes the interpreter exit with; a message is printed as Python does."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


def _check_exists(module: str | None, target: list[str]) -> None:
    """A program that is not there is a usage error (exit 2, one line), not a run that went wrong: exit 1
    would read as "left something running". Only a module's top-level package is looked up: finding a
    submodule imports its parents, which would run the program's code before the check began."""
    if module is None:
        if not Path(target[0]).is_file():
            raise LooseEndsError(f"{target[0]}: no such file")
    elif importlib.util.find_spec(module.partition(".")[0]) is None:
        raise LooseEndsError(f"no module named {module.partition('.')[0]!r}")


def run_program(args: argparse.Namespace, out: TextIO) -> int:
    target = list(args.program)
    if args.module is None and not target:
        raise LooseEndsError("run needs a script (looseends run app.py ...) or -m module")
    _check_exists(args.module, target)
    options = build_options(source="looseends run", timeout=args.timeout)
    name = args.module if args.module is not None else target[0]
    span = Watch(options, label=f"looseends run {name}")
    status = 0
    sys.argv = [name, *target] if args.module is not None else target
    span.start()
    try:
        if args.module is not None:
            runpy.run_module(args.module, run_name="__main__", alter_sys=True)
        else:
            sys.path.insert(0, str(Path(target[0]).resolve().parent))
            runpy.run_path(target[0], run_name="__main__")
    except SystemExit as exc:
        status = _exit_status(exc.code)
    except BaseException:
        traceback.print_exc()
        status = 1
    try:
        report = run_sync(span.verdict())
    finally:
        span.stop()
    if not report:
        return status
    try:
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):  # `looseends run app.py | head`: the report still goes to stderr
        pass
    print(
        f"\nlooseends: the program left {report.kinds_text()} running\n{report.render()}",
        file=sys.stderr,
        flush=True,
    )
    # Leftover non-daemon threads would keep the interpreter alive: the report is the point, so exit,
    # after the program's own exit handlers, as a normal exit would run them.
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (BrokenPipeError, ValueError):
            pass
    os._exit(status or EXIT_FOUND)
