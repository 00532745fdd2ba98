"""pytest-xdist: checks run in each worker; the controller's summary and JSON report gather them all."""

from __future__ import annotations

import json

import pytest


def test_workers_check_and_the_controller_aggregates(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_many="""
import threading
import pytest

NEVER = threading.Event()

@pytest.mark.parametrize("n", range(4))
def test_leaks(n):
    threading.Thread(target=NEVER.wait, name=f"leak-{n}", daemon=True).start()

@pytest.mark.parametrize("n", range(4))
def test_clean(n):
    pass
"""
    )
    report_path = pytester.path / "leaks.json"
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "2", "--looseends", f"--looseends-report={report_path}"
    )
    result.assert_outcomes(passed=8, errors=4)
    # One group in the controller's summary for the four identical leaks, from both workers.
    result.stdout.fnmatch_lines(
        [
            "*looseends: what the tests left running*",
            "failed by leaks (full reports above): test_*[[]0], test_*[[]1], test_*[[]2], test_*[[]3]",
            "*4 threads blocked in threading.Event.wait*",
        ]
    )
    data = json.loads(report_path.read_text())
    assert data["summary"]["units"] == 4
    assert len(data["groups"]) == 1
    assert sorted(u["name"] for u in data["groups"][0]["units"]) == [f"leak-{n}" for n in range(4)]
    assert len(data["findings"]) == 4
    assert result.ret == pytest.ExitCode.TESTS_FAILED
