"""looseends: find the threads, asyncio tasks and child processes a program forgot to stop, and say why.

with looseends.check():          # or @looseends.check(), or async with looseends.check()
    do_jobs()

print(looseends.snapshot())      # a grouped dump of everything running now
"""

import importlib
from typing import TYPE_CHECKING, Any

from looseends._version import __version__

if TYPE_CHECKING:
    from looseends._library import my_packages
    from looseends._redaction import redact
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
    from looseends.core.check import check
    from looseends.core.find import find, find_async, snapshot, verify_none
    from looseends.errors import DumpParseError, LeakError, LooseEndsError, LooseEndsWarning, OptionError
    from looseends.frontends import prometheus
    from looseends.frontends.mounts import asgi_app, wsgi_app
    from looseends.frontends.serve import LiveServer, serve
    from looseends.frontends.signals import install_dump_signal
    from looseends.frontends.unittest_support import LeakCheckMixin
    from looseends.model import BlockedOn, Frame, Kind, Origin, Snapshot, Unit
    from looseends.options import OptionValues
    from looseends.report import Dump, Report
    from looseends.sources._tracking import Tracking, track


# Every public name loads on first use: importing looseends (as pytest does for its plugin, in every run
# where looseends is installed) costs almost nothing until something is used.
_LAZY = {
    "check": "looseends.core.check",
    "find": "looseends.core.find",
    "find_async": "looseends.core.find",
    "snapshot": "looseends.core.find",
    "verify_none": "looseends.core.find",
    "my_packages": "looseends._library",
    "redact": "looseends._redaction",
    "Group": "looseends.analysis.group",
    "BUILTIN_IGNORES": "looseends.analysis.ignore",
    "IgnoreRule": "looseends.analysis.ignore",
    "ignore_any_function": "looseends.analysis.ignore",
    "ignore_command": "looseends.analysis.ignore",
    "ignore_created_at": "looseends.analysis.ignore",
    "ignore_if": "looseends.analysis.ignore",
    "ignore_kind": "looseends.analysis.ignore",
    "ignore_name": "looseends.analysis.ignore",
    "ignore_top_function": "looseends.analysis.ignore",
    "Pattern": "looseends.analysis.patterns",
    "DumpParseError": "looseends.errors",
    "LeakError": "looseends.errors",
    "LooseEndsError": "looseends.errors",
    "LooseEndsWarning": "looseends.errors",
    "OptionError": "looseends.errors",
    "OptionValues": "looseends.options",
    "asgi_app": "looseends.frontends.mounts",
    "wsgi_app": "looseends.frontends.mounts",
    "LiveServer": "looseends.frontends.serve",
    "serve": "looseends.frontends.serve",
    "install_dump_signal": "looseends.frontends.signals",
    "LeakCheckMixin": "looseends.frontends.unittest_support",
    "BlockedOn": "looseends.model",
    "Frame": "looseends.model",
    "Kind": "looseends.model",
    "Origin": "looseends.model",
    "Snapshot": "looseends.model",
    "Unit": "looseends.model",
    "Dump": "looseends.report",
    "Report": "looseends.report",
    "Tracking": "looseends.sources._tracking",
    "track": "looseends.sources._tracking",
}
_SUBMODULES = {"prometheus": "looseends.frontends.prometheus"}  # `from looseends import prometheus`


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        value = importlib.import_module(_SUBMODULES[name])
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'looseends' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)  # the public names; not this module's own imports


__all__ = [
    "BUILTIN_IGNORES",
    "BlockedOn",
    "Dump",
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
    "OptionValues",
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
    "prometheus",
    "redact",
    "serve",
    "snapshot",
    "track",
    "verify_none",
    "wsgi_app",
]
