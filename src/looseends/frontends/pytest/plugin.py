"""pytest plugin: per-test, per-fixture and whole-session leak checks. Off until asked.

Turn it on with `--looseends` (ini `looseends = true`) or per test, class or module with the
`looseends` marker. This module is what pytest loads in every run where looseends is installed, so it
holds only the options and markers: the checks (`checks`) are imported and registered when asked
for, and a run with the plugin off pays nothing for them. The per-test check spans setup, call and
teardown of function-scoped fixtures; units started while a wider-scoped fixture is set up belong to that
fixture and are checked when it is torn down.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

import pytest

__all__ = [
    "HELP_TIMEOUT",
    "activate",
    "pytest_addoption",
    "pytest_collection_modifyitems",
    "pytest_configure",
    "pytest_testnodedown",
]

# Help texts shared by each flag and its ini twin. (The timeout default is options.DEFAULT_TIMEOUT; a test
# keeps the two equal without this module importing the core.)
HELP_ENABLE = "check every test for threads, asyncio tasks and child processes it leaves running"
HELP_TIMEOUT = "seconds a check waits for stragglers before calling them leaks (default 0.5)"
HELP_IGNORE_TOP = "ignore units whose innermost frame is this function (module.Qualname); repeatable"
HELP_IGNORE_FUNCTION = "ignore units with this function anywhere in their stack; repeatable"
HELP_IGNORE_CREATED_AT = "ignore units created at a location matching this glob (*/file.py:12); repeatable"
HELP_IGNORE_NAME = "ignore units whose name matches this glob (worker-*); repeatable"
HELP_IGNORE_COMMAND = "ignore child processes whose command line matches this glob (*my-server*); repeatable"
HELP_WARN_ONLY = "report leaks in the summary without failing tests or the run"
HELP_REPORT = (
    "write every leak of the session to this file as JSON (looseends.report schema); checked at start"
)
HELP_BASELINE = (
    "known leaks, in this file (docs/adopting.md): fail only on leaks it does not list; summary says how "
    "many it lists that no longer occur"
)
HELP_BASELINE_UPDATE = "write --looseends-baseline's file from this run's leaks instead of failing on them"
HELP_FORCE_EXIT = "when non-daemon threads would keep pytest from exiting, report them and exit anyway"

MARKER = (
    "looseends(timeout=None, ignore=(), enabled=True, ...): check this test (class, module) for leaked "
    "threads, asyncio tasks and child processes, even without --looseends; enabled=False opts out"
)
ALLOW_MARKER = (
    "looseends_allow(reason): this test is known to leak; report the leak as allowed, with the reason"
)

# Options that, given on the command line or in the ini, mean the checks are wanted (and validated now).
_OPTIONS = (
    "looseends",
    "looseends_timeout",
    "looseends_ignore_top",
    "looseends_ignore_function",
    "looseends_ignore_created_at",
    "looseends_ignore_name",
    "looseends_ignore_command",
    "looseends_warn_only",
    "looseends_report",
    "looseends_force_exit",
    "looseends_baseline",
    "looseends_baseline_update",
)
_CHECKS = "looseends-checks"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("looseends", "leaked threads, asyncio tasks and child processes")

    def add(flag: str, ini_type: str, help: str, **kwargs: Any) -> None:
        dest = flag.lstrip("-").replace("-", "_")
        group.addoption(flag, dest=dest, help=help, **kwargs)
        parser.addini(dest, help=help, type=ini_type)  # type: ignore[arg-type]

    add("--looseends", "bool", HELP_ENABLE, action="store_true", default=False)
    add("--looseends-timeout", "string", HELP_TIMEOUT, metavar="SECONDS", default=None)

    def add_rule(flag: str, help: str, metavar: str) -> None:  # repeatable; ini: one per line
        add(flag, "linelist", help, action="append", default=[], metavar=metavar)

    add_rule("--looseends-ignore-top", HELP_IGNORE_TOP, "FUNC")
    add_rule("--looseends-ignore-function", HELP_IGNORE_FUNCTION, "FUNC")
    add_rule("--looseends-ignore-created-at", HELP_IGNORE_CREATED_AT, "GLOB")
    add_rule("--looseends-ignore-name", HELP_IGNORE_NAME, "GLOB")
    add_rule("--looseends-ignore-command", HELP_IGNORE_COMMAND, "GLOB")
    add("--looseends-warn-only", "bool", HELP_WARN_ONLY, action="store_true", default=False)
    add("--looseends-report", "string", HELP_REPORT, metavar="PATH", default=None)
    add("--looseends-force-exit", "bool", HELP_FORCE_EXIT, action="store_true", default=False)
    add("--looseends-baseline", "string", HELP_BASELINE, metavar="PATH", default=None)
    add("--looseends-baseline-update", "bool", HELP_BASELINE_UPDATE, action="store_true", default=False)


def _wanted(config: pytest.Config) -> bool:
    return any(config.getoption(name) not in (None, [], False) or config.getini(name) for name in _OPTIONS)


def activate(config: pytest.Config) -> None:
    """Import and register the checks (their own pytest_configure runs at once: a historic hook)."""
    if config.pluginmanager.get_plugin(_CHECKS) is None:
        with _without_assertion_rewriting():
            from looseends.frontends.pytest.checks import ChecksPlugin

        config.pluginmanager.register(ChecksPlugin(), _CHECKS)


@contextlib.contextmanager
def _without_assertion_rewriting() -> Iterator[None]:
    """pytest rewrites the asserts of every module of a plugin's distribution, ours included, though
    looseends' code is a library's, not tests: each module is parsed and compiled again, and where its
    cache cannot be written (PYTHONDONTWRITEBYTECODE, a read-only site-packages) on every run, which
    cost 120 ms of start-up. The checks' modules are imported with the rewriting hook stepped aside."""
    from _pytest.assertion.rewrite import AssertionRewritingHook

    hooks = [finder for finder in sys.meta_path if isinstance(finder, AssertionRewritingHook)]
    for hook in hooks:
        sys.meta_path.remove(hook)
    try:
        yield
    finally:
        sys.meta_path[:0] = hooks


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    config.addinivalue_line("markers", ALLOW_MARKER)
    if _wanted(config):
        activate(config)


@pytest.hookimpl(trylast=True)  # after every other plugin and conftest has added its markers
def pytest_collection_modifyitems(items: list[pytest.Item], config: pytest.Config) -> None:
    if _marked(items):
        activate(config)
        from looseends.frontends.pytest.checks import mark_active

        mark_active(config)


def _marked(items: list[pytest.Item]) -> bool:
    """Whether a collected test, or a class, module or package above it, carries the looseends marker:
    what `get_closest_marker` answers, with each node looked at once (it walks every test's whole chain
    of parents, in every run with looseends installed, on or off)."""
    seen: set[int] = set()
    for item in items:
        node: pytest.Item | pytest.Collector | None = item
        while node is not None and id(node) not in seen:
            seen.add(id(node))
            if any(getattr(mark, "name", None) == "looseends" for mark in node.own_markers):
                return True
            node = node.parent
    return False


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: Any) -> None:
    """xdist controller: fold each worker's findings into the session's ledger."""
    output = getattr(node, "workeroutput", {})
    data = output.get("looseends")
    if data:
        activate(node.config)
        from looseends.frontends.pytest.checks import merge_worker

        merge_worker(node.config, data, output.get("looseends_ran", ()))
