"""The plugin costs nothing when it is off: pytest loads it in every run where looseends is installed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from looseends.frontends.pytest import plugin as pytest_plugin
from looseends.options import DEFAULT_TIMEOUT

REPORT_MODULES = "import json, sys\nprint(json.dumps([m for m in sys.modules if 'looseends' in m]))"


def loaded_after(code: str) -> set[str]:
    command = [sys.executable, "-c", f"{code}\n{REPORT_MODULES}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(done.stdout))


def test_the_entry_point_imports_none_of_the_core() -> None:
    assert loaded_after("import looseends.frontends.pytest.plugin") == {
        "looseends",
        "looseends._version",
        "looseends.frontends",
        "looseends.frontends.pytest",
        "looseends.frontends.pytest.plugin",
    }


def test_a_run_with_the_plugin_off_never_loads_the_checks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_nothing():\n    pass\n")
    pytester.makeconftest(
        "import sys\n"
        "def pytest_unconfigure():\n"
        "    print('core loaded:', 'looseends.frontends.pytest.checks' in sys.modules)\n"
    )
    off = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    off.stdout.fnmatch_lines(["*core loaded: False*"])
    on = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", "--looseends")
    on.stdout.fnmatch_lines(["*core loaded: True*"])


# What only a leak needs: the report stack, pytest's failure objects, the prover, the unittest mixin;
# and the redaction patterns, which only a child process's command line needs.
LEAK_PATH = (
    "looseends._redaction",
    "looseends.report",
    "looseends.report_json",
    "looseends.frontends.pytest.failures",
    "looseends.analysis.reachability",
    "looseends.frontends.unittest_support",
)


def test_a_clean_checked_run_never_loads_what_only_a_leak_needs(pytester: pytest.Pytester) -> None:
    """Start-up is paid by every run (BENCHMARKS.md figure 9); a leak loads the rest when it is found."""
    pytester.makepyfile(
        test_work="""
import asyncio, threading

def test_joined():
    thread = threading.Thread(target=sum, args=((),))
    thread.start()
    thread.join()

def test_awaited():
    async def main():
        await asyncio.create_task(asyncio.sleep(0))
    asyncio.run(main())
"""
    )
    pytester.makeconftest(
        "import sys\n"
        f"LEAK_PATH = {LEAK_PATH!r}\n"
        "def pytest_unconfigure():\n"
        "    print('leak path loaded:', [m for m in LEAK_PATH if m in sys.modules])\n"
    )
    clean = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", "--looseends")
    clean.assert_outcomes(passed=2)
    clean.stdout.fnmatch_lines(["*leak path loaded: []*"])
    pytester.makepyfile(
        test_leak="import threading\n"
        "def test_leaks():\n"
        "    threading.Thread(target=threading.Event().wait, daemon=True).start()\n"
    )
    leaky = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", "--looseends")
    leaky.assert_outcomes(passed=3, errors=1)
    leaky.stdout.fnmatch_lines(
        ["*leak path loaded: ['looseends.report', *'looseends.frontends.pytest.failures'*"]
    )


def test_the_help_states_the_real_default_timeout() -> None:
    assert f"(default {DEFAULT_TIMEOUT})" in pytest_plugin.HELP_TIMEOUT


def test_a_looseends_option_alone_turns_the_checks_on_and_is_validated(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--looseends-timeout=-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*looseends: invalid timeout=-1.0*"])
