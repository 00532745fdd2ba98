"""A baseline file: a suite adopting looseends records the leaks it has and fails only on new ones."""

from __future__ import annotations

import json

import pytest

HELPERS = """
import queue
import threading

NEVER = threading.Event()  # never set: whatever waits on it is stuck for the rest of the run

def start_worker():
    thread = threading.Thread(target=queue.Queue().get, daemon=True)
    thread.start()

def start_waiter():
    threading.Thread(target=NEVER.wait, daemon=True).start()
"""

SUITE = """
def test_leaks_two_workers():
    start_worker()
    start_worker()

def test_leaks_a_waiter():
    start_waiter()

def test_clean():
    pass
"""


def edited(source: str, *changes: tuple[str, str]) -> str:
    """`source` with each change made; a change whose text is missing fails here, not as a vacuous pass."""
    for old, new in changes:
        assert old in source, old
        source = source.replace(old, new)
    return source


NEW_LEAK = edited(SUITE, ("def test_clean():\n    pass", "def test_clean():\n    start_waiter()"))


def run(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_suite=HELPERS + source)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--looseends", *args)


def against_the_baseline(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    return run(pytester, source, "--looseends-baseline=leaks.json", *args)


def entries(pytester: pytest.Pytester) -> list[dict[str, object]]:
    data = json.loads((pytester.path / "leaks.json").read_text())
    assert data["looseends_baseline"] == 1
    return list(data["leaks"])


def record(pytester: pytest.Pytester, source: str = SUITE, *args: str) -> pytest.RunResult:
    result = against_the_baseline(pytester, source, "--looseends-baseline-update", *args)
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    return result


def test_update_writes_sorted_entries_by_function_and_passes(pytester: pytest.Pytester) -> None:
    result = record(pytester)
    result.stdout.fnmatch_lines(["*wrote leaks.json: 2 known leaks, 3 units*"])
    assert entries(pytester) == [
        {
            "owner": "test_suite.py::test_leaks_a_waiter",
            "kind": "thread",
            "where": "created in test_suite.start_waiter",
            "blocked_on": "event.wait",
            "count": 1,
        },
        {
            "owner": "test_suite.py::test_leaks_two_workers",
            "kind": "thread",
            "where": "created in test_suite.start_worker",
            "blocked_on": "queue.get",
            "count": 2,
        },
    ]
    lines = (pytester.path / "leaks.json").read_text().splitlines()
    # One entry a line: a pull request shows one changed line per leak.
    assert [json.loads(line.rstrip(",")) for line in lines[3:5]] == entries(pytester)
    assert lines[5:] == ["  ]", "}"]


def test_known_leaks_pass_and_new_ones_fail(pytester: pytest.Pytester) -> None:
    record(pytester)
    again = against_the_baseline(pytester, SUITE)
    again.assert_outcomes(passed=3)
    again.stdout.fnmatch_lines(["*known, in the baseline leaks.json: 3 leaked units of 2 tests or fixtures*"])
    failing = against_the_baseline(pytester, NEW_LEAK)
    failing.assert_outcomes(passed=3, errors=1)
    failing.stdout.fnmatch_lines(["ERROR test_suite.py::test_clean - leaked 1 thread blocked in*"])


def test_a_different_leak_of_a_baselined_test_is_new(pytester: pytest.Pytester) -> None:
    """An entry matches its own place and wait only: a stale entry never hides another leak."""
    record(pytester)
    other = edited(
        SUITE,
        ("def test_leaks_a_waiter():\n    start_waiter()", "def test_leaks_a_waiter():\n    start_worker()"),
    )
    result = against_the_baseline(pytester, other)
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        ["ERROR test_suite.py::test_leaks_a_waiter - leaked 1 thread blocked in queue*"]
    )


def test_more_units_than_recorded_fail_and_say_how_many_the_baseline_allows(
    pytester: pytest.Pytester,
) -> None:
    record(pytester)
    more = edited(SUITE, ("    start_worker()\n    start_worker()", "\n".join(["    start_worker()"] * 3)))
    result = against_the_baseline(pytester, more)
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(
        [
            "*leaks.json allows 2 threads created in test_suite.start_worker (queue.get); this run found 3*",
            "ERROR test_suite.py::test_leaks_two_workers - leaked 3 threads*",
        ]
    )


def test_fixed_leaks_are_counted_and_an_update_locks_them_in(pytester: pytest.Pytester) -> None:
    record(pytester)
    fixed = edited(
        SUITE,
        ("    start_worker()\n    start_worker()", "    start_worker()"),
        ("def test_leaks_a_waiter():\n    start_waiter()", "def test_leaks_a_waiter():\n    pass"),
    )
    result = against_the_baseline(pytester, fixed)
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*of the 2 known leaks in leaks.json, 1 no longer occurs and 1 leaks fewer units: "
            "run with --looseends-baseline-update to lock that in*"
        ]
    )
    record(pytester, fixed)
    assert [(entry["owner"], entry["count"]) for entry in entries(pytester)] == [
        ("test_suite.py::test_leaks_two_workers", 1)
    ]


def test_an_entry_survives_code_moved_above_its_creation_site(pytester: pytest.Pytester) -> None:
    record(pytester)
    moved = "\n\n# a comment\nimport os  # and an import, above everything\n\n" + SUITE
    result = against_the_baseline(pytester, moved)
    result.assert_outcomes(passed=3)


def test_a_partial_update_keeps_the_entries_of_tests_it_did_not_run(pytester: pytest.Pytester) -> None:
    record(pytester)
    record(pytester, SUITE, "-k", "waiter")
    assert [entry["owner"] for entry in entries(pytester)] == [
        "test_suite.py::test_leaks_a_waiter",
        "test_suite.py::test_leaks_two_workers",
    ]


def test_under_xdist_the_workers_results_merge_into_one_update(pytester: pytest.Pytester) -> None:
    pytest.importorskip("xdist", reason="pytest-xdist is not installed")
    record(pytester, SUITE, "-n", "2")
    assert [entry["count"] for entry in entries(pytester)] == [1, 2]
    again = against_the_baseline(pytester, SUITE, "-n", "2")
    again.assert_outcomes(passed=3)
    failing = against_the_baseline(pytester, NEW_LEAK, "-n", "2")
    failing.assert_outcomes(passed=3, errors=1)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "*--looseends-baseline=leaks.json: no such file (write it with --looseends-baseline-update)*"),
        ("not json", "*--looseends-baseline=leaks.json: not a looseends baseline (*"),
        ("[" * 100_000, "*--looseends-baseline=leaks.json: not a looseends baseline (*"),
        ('{"leaks": []}', '*not a looseends baseline (expected "looseends_baseline": 1)*'),
        ('{"looseends_baseline": 1, "leaks": {}}', '*"leaks" must be a list*'),
        ('{"looseends_baseline": 1, "leaks": [{"owner": 1}]}', "*entry 1 needs the strings owner, kind*"),
        (
            '{"looseends_baseline": 1, "leaks": '
            '[{"owner": "a", "kind": "b", "where": "c", "blocked_on": "d", "count": 0}]}',
            "*entry 1 needs a count of 1 or more*",
        ),
    ],
)
def test_a_bad_baseline_file_is_a_usage_error_naming_it(
    pytester: pytest.Pytester, content: str | None, message: str
) -> None:
    if content is not None:
        (pytester.path / "leaks.json").write_text(content)
    result = against_the_baseline(pytester, SUITE)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])


def test_update_needs_a_path_and_never_overwrites_what_is_not_a_baseline(pytester: pytest.Pytester) -> None:
    result = run(pytester, SUITE, "--looseends-baseline-update")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--looseends-baseline-update needs --looseends-baseline=PATH*"])
    (pytester.path / "leaks.json").write_text("my notes")
    result = against_the_baseline(pytester, SUITE, "--looseends-baseline-update")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert (pytester.path / "leaks.json").read_text() == "my notes"


def test_a_wider_fixtures_leak_is_baselined_under_the_fixtures_name(pytester: pytest.Pytester) -> None:
    source = """
import pytest

@pytest.fixture(scope="module")
def server():
    start_worker()
    yield

def test_uses_server(server):
    pass
"""
    record(pytester, source)
    assert [entry["owner"] for entry in entries(pytester)] == ["fixture 'server' (module scope)"]
    against_the_baseline(pytester, source).assert_outcomes(passed=1)
    fixed = edited(source, ("    start_worker()\n    yield", "    yield"))
    result = against_the_baseline(pytester, fixed)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*of the 1 known leak in leaks.json, 1 no longer occurs*"])
