"""Reports: grouping, bounded text, versioned JSON."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

import looseends
from looseends.model import BlockedOn, Frame, Kind, Origin, Unit
from looseends.report import MAX_NAMES
from looseends.report_json import report_from_dict

USER = Frame("/project/app/jobs.py", 11, "worker", "app.jobs")
LIB = Frame(__import__("queue").__file__, 150, "Queue.put", "queue")
SITE = Frame("/project/app/jobs.py", 16, "do_jobs", "app.jobs")
FULL = BlockedOn("queue.put", "queue.Queue.put (queue full, maxsize=1, size=1)", {"maxsize": 1, "size": 1})


def unit(n: int, *, line: int = 11, blocked: BlockedOn = FULL, kind: Kind = Kind.THREAD) -> Unit:
    stack = (LIB, Frame(USER.filename, line, USER.function, USER.module))
    return Unit(
        kind=kind,
        key=(str(kind), n),
        name=f"worker-{n}",
        ident=n,
        stack=stack,
        blocked_on=blocked,
        origin=Origin((SITE,), "thread MainThread", created_at=100.0, during="test_jobs"),
        daemon=True,
    )


def test_a_hundred_identical_leaks_are_one_short_paragraph() -> None:
    report = looseends.Report.from_units([unit(n) for n in range(100)], now=101.5)
    assert len(report.groups) == 1
    text = report.render()
    assert text.splitlines()[0] == "looseends: 100 leaked units in 1 group: 100 threads"
    assert (
        "100 threads blocked in queue.Queue.put (queue full, maxsize=1, size=1) for 1.5 s: forgotten sender"
        in text
    )
    assert f"+{100 - MAX_NAMES} more" in text
    assert "created by do_jobs at /project/app/jobs.py:16 in thread MainThread, during test_jobs" in text
    assert len(text.splitlines()) < 20
    assert "[library] queue.Queue.put" in text


def test_names_are_in_natural_order_and_full_render_lists_everyone() -> None:
    report = looseends.Report.from_units([unit(n) for n in (10, 2, 1)], now=101.0)
    assert "units: worker-1, worker-2, worker-10 (daemon)" in report.render()
    full = report.render(full=True)
    assert "worker-10 (ident 10, daemon, age 1.0 s)" in full
    assert "queue.Queue.put at" in full  # library frames unfolded


def test_repeated_names_are_shown_once_with_their_count() -> None:
    """Three runs of a test each leaving a `worker-2`: one name, counted, not "worker-2, worker-2, ..."."""
    units = [replace(unit(n), name=f"worker-{n % 3}") for n in range(7)]
    report = looseends.Report.from_units(units, now=101.0)
    assert "units: worker-0 (x3), worker-1 (x2), worker-2 (x2) (daemon)" in report.render()
    many = [replace(unit(n), name=f"worker-{n % 10}") for n in range(40)]
    hidden = 40 - 4 * MAX_NAMES
    assert f"worker-7 (x4), +{hidden} more (daemon)" in looseends.Report.from_units(many, now=101.0).render()


def test_headline_is_one_line_with_the_largest_group_and_its_creation_site() -> None:
    idle = BlockedOn("event.wait", "threading.Event.wait", {})
    report = looseends.Report.from_units(
        [unit(n) for n in range(3)] + [unit(9, blocked=idle, kind=Kind.TASK)], now=101.0
    )
    assert report.headline() == (
        "3 threads blocked in queue.Queue.put (queue full, maxsize=1, size=1) for 1.0 s: forgotten sender, "
        "created at /project/app/jobs.py:16 (and 1 more group: 1 task)"
    )
    assert looseends.Report.from_units(()).headline() == "nothing leaked"


def test_many_distinct_groups_are_truncated_with_a_count() -> None:
    units = [unit(n, line=n) for n in range(30)]
    report = looseends.Report.from_units(units, now=101.0, max_groups=5)
    assert len(report.groups) == 30
    text = report.render()
    assert text.count("blocked in queue.Queue.put") == 5
    assert text.rstrip().endswith("... and 25 more groups (25 units) not shown")


def test_groups_are_ordered_largest_first_and_split_by_blocked_on_and_kind() -> None:
    idle = BlockedOn("event.wait", "threading.Event.wait")
    units = [unit(1, blocked=idle), *(unit(n) for n in range(2, 5)), unit(9, kind=Kind.TASK)]
    report = looseends.Report.from_units(units, now=101.0)
    assert [(g.kind, g.count, g.blocked_on.code) for g in report.groups] == [
        (Kind.THREAD, 3, "queue.put"),
        (Kind.THREAD, 1, "event.wait"),
        (Kind.TASK, 1, "queue.put"),
    ]
    assert report.summary() == "5 leaked units in 3 groups: 4 threads, 1 task"


def test_json_is_versioned_and_complete() -> None:
    report = looseends.Report.from_units([unit(n) for n in range(3)], now=102.0)
    data = json.loads(report.to_json())
    assert data["schema"] == "looseends.report"
    assert data["version"] == 1
    assert data["summary"] == {"units": 3, "groups": 1, "by_kind": {"thread": 3}}
    group = data["groups"][0]
    assert group["blocked_on"] == {
        "code": "queue.put",
        "description": "queue.Queue.put (queue full, maxsize=1, size=1)",
        "detail": {"maxsize": 1, "size": 1},
        "context": None,
    }
    assert group["pattern"]["code"] == "forgotten-sender"
    assert group["created_by"]["site"]["line"] == 16
    assert group["created_by"]["during"] == ["test_jobs"]
    assert group["age_seconds"] == {"min": 2.0, "max": 2.0}
    assert group["top_user_frame"]["function"] == "worker"
    assert [u["name"] for u in group["units"]] == ["worker-0", "worker-1", "worker-2"]


def test_empty_report_is_falsy_and_says_so() -> None:
    report = looseends.Report.from_units([])
    assert not report
    assert report.render() == "looseends: no leaked units"


def test_snapshot_render_is_a_dump() -> None:
    text = looseends.snapshot().render()
    assert text.startswith("looseends dump: ")
    assert "live unit" in text


def test_json_round_trip_rebuilds_the_same_groups() -> None:
    units = [unit(n) for n in range(3)] + [unit(9, kind=Kind.TASK)]
    report = looseends.Report.from_units(units, now=102.0)
    again = report_from_dict(json.loads(report.to_json()))
    assert again.render() == report.render()
    assert again.to_dict()["groups"] == report.to_dict()["groups"]


def test_json_of_the_wrong_schema_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match=r"not a looseends\.report version 1 document"):
        report_from_dict({"schema": "other"})
    with pytest.raises(ValueError, match="malformed"):
        report_from_dict({"schema": "looseends.report", "version": 1, "groups": [{"kind": "thread"}]})


def test_library_files_are_shown_from_their_import_root_not_where_python_is_installed() -> None:
    """`concurrent/futures/thread.py:199` says what the reader needs; `/root/.pyenv/versions/...` does not,
    and differs between machines. The user's own files stay relative to the working directory."""
    import concurrent.futures.thread

    stdlib = Frame(concurrent.futures.thread.__file__, 199, "ThreadPoolExecutor._adjust_thread_count")
    installed = Frame(pytest.__file__, 1, "<module>")
    assert stdlib.location == "concurrent/futures/thread.py:199"
    assert installed.location in {"pytest/__init__.py:1", "_pytest/__init__.py:1"}
    assert Frame("/nowhere/else/app.py", 3, "f").location == "/nowhere/else/app.py:3"
