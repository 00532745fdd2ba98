"""The plugin costs nothing when it is off: pytest loads it in every run where looseends is installed."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from looseends.frontends import pytest_plugin
from looseends.options import DEFAULT_TIMEOUT

REPORT_MODULES = "import json, sys\nprint(json.dumps([m for m in sys.modules if 'looseends' in m]))"


def loaded_after(code: str) -> set[str]:
    command = [sys.executable, "-c", f"{code}\n{REPORT_MODULES}"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    return set(json.loads(done.stdout))


def test_the_entry_point_imports_none_of_the_core() -> None:
    assert loaded_after("import looseends.frontends.pytest_plugin") == {
        "looseends",
        "looseends._version",
        "looseends.frontends",
        "looseends.frontends.pytest_plugin",
    }


def test_a_run_with_the_plugin_off_never_loads_the_checks(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_nothing():\n    pass\n")
    pytester.makeconftest(
        "import sys\n"
        "def pytest_unconfigure():\n"
        "    print('core loaded:', 'looseends.frontends.pytest_checks' in sys.modules)\n"
    )
    off = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s")
    off.stdout.fnmatch_lines(["*core loaded: False*"])
    on = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-s", "--looseends")
    on.stdout.fnmatch_lines(["*core loaded: True*"])


def test_the_help_states_the_real_default_timeout() -> None:
    assert f"(default {DEFAULT_TIMEOUT})" in pytest_plugin.HELP_TIMEOUT


def test_a_looseends_option_alone_turns_the_checks_on_and_is_validated(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_plain="def test_nothing():\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--looseends-timeout=-1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*looseends: invalid timeout=-1.0*"])
