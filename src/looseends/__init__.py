"""looseends: find the threads, asyncio tasks and child processes a program forgot to stop, and say why.

with looseends.check():          # or @looseends.check(), or async with looseends.check()
    do_jobs()

print(looseends.snapshot())      # a grouped dump of everything running now
"""

import importlib
from typing import TYPE_CHECKING, Any

from looseends._check import check
from looseends._find import find, find_async, snapshot, verify_none
from looseends._library import my_packages
from looseends._version import __version__
from looseends.analysis.group import Group
from looseends.analysis.ignore import (
    BUILTIN_IGNORES,
    IgnoreRule,
    ignore_any_function,
    ignore_command,
    ignore_created_at,
    ignore_if,
    ignore_kind,
    ignore_name,
    ignore_top_function,
)
from looseends.analysis.patterns import Pattern
from looseends.errors import DumpParseError, LeakError, LooseEndsError, LooseEndsWarning, OptionError
from looseends.frontends.unittest_support import LeakCheckMixin
from looseends.model import BlockedOn, Frame, Kind, Origin, Snapshot, Unit
from looseends.redact import redact
from looseends.report import Report
from looseends.sources._tracking import Tracking, track

if TYPE_CHECKING:
    from looseends.frontends.mounts import asgi_app, wsgi_app
    from looseends.frontends.serve import LiveServer, serve
    from looseends.frontends.signals import install_dump_signal


# Live-inspection front ends load on first use: a test run or a library importing looseends should not
# pay for http.server, urllib and the signal machinery.
_LAZY = {
    "asgi_app": "looseends.frontends.mounts",
    "wsgi_app": "looseends.frontends.mounts",
    "LiveServer": "looseends.frontends.serve",
    "serve": "looseends.frontends.serve",
    "install_dump_signal": "looseends.frontends.signals",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'looseends' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)  # the public names, lazy ones included; not this module's own imports


__all__ = [
    "BUILTIN_IGNORES",
    "BlockedOn",
    "DumpParseError",
    "Frame",
    "Group",
    "IgnoreRule",
    "Kind",
    "LeakCheckMixin",
    "LeakError",
    "LiveServer",
    "LooseEndsError",
    "LooseEndsWarning",
    "OptionError",
    "Origin",
    "Pattern",
    "Report",
    "Snapshot",
    "Tracking",
    "Unit",
    "__version__",
    "asgi_app",
    "check",
    "find",
    "find_async",
    "ignore_any_function",
    "ignore_command",
    "ignore_created_at",
    "ignore_if",
    "ignore_kind",
    "ignore_name",
    "ignore_top_function",
    "install_dump_signal",
    "my_packages",
    "redact",
    "serve",
    "snapshot",
    "track",
    "verify_none",
    "wsgi_app",
]
