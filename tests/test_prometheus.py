"""Prometheus exposition, parsed back with prometheus_client's own parser."""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import threading
from importlib import resources
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import looseends
from looseends.frontends import cli, prometheus
from looseends.model import DESTROYED_LAST, BlockedOn, Frame, Kind, Origin, Snapshot, Unit

from leakfixtures import Cleanup, wait_blocked


def test_exposition_counts_units_by_kind_and_blocked_on_and_bounds_groups(cleanup: Cleanup) -> None:
    never = threading.Event()
    threads = [threading.Thread(target=never.wait, name=f"prom-{n}", daemon=True) for n in range(4)]
    cleanup.stop(never.set, *threads)
    for thread in threads:
        thread.start()
    wait_blocked("prom-", 4, "event.wait")
    registry = CollectorRegistry()
    prometheus.register(registry, top_groups=2)
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    units = {(s.labels["kind"], s.labels["blocked_on"]): s.value for s in families["looseends_units"].samples}
    assert units[("thread", "event.wait")] >= 4
    groups = families["looseends_group_units"].samples
    assert len(groups) <= 2
    assert groups[0].value >= 4
    assert groups[0].labels["blocked_on"] == "event.wait"
    # Stuck in library code only: the place is where they were created, relative to the project.
    here = test_exposition_counts_units_by_kind_and_blocked_on_and_bounds_groups.__name__
    assert groups[0].labels["where"].startswith(f"{here} tests/test_prometheus.py:")
    assert not any(sys.base_prefix in s.labels["where"] or sys.prefix in s.labels["where"] for s in groups)


def test_looseends_own_threads_are_not_counted_and_the_scraping_thread_is_counted_running() -> None:
    """The thread serving the scrape is the program's (prometheus_client's server): dropping it while it
    scrapes would make the program's thread count dip; it counts, running, outside our collector."""

    def unit(name: str, *modules: str) -> Unit:
        frames = tuple(Frame(f"/srv/{module.replace('.', '/')}.py", 1, "f", module) for module in modules)
        return Unit(Kind.THREAD, name, name, stack=frames, blocked_on=BlockedOn("event.wait", "Event.wait"))

    snapshot = Snapshot(
        (
            unit("worker", "app.jobs"),
            unit("looseends-http", "looseends.frontends.serve"),
            unit("Thread-9 (serve_forever)", "looseends.frontends.prometheus", "app.metrics"),  # the scrape
        ),
        0.0,
    )
    registry = CollectorRegistry()
    registry.register(prometheus.LooseEndsCollector(_snapshot=lambda: snapshot))
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert [s.value for s in families["looseends_units"].samples] == [1.0, 1.0]
    places = {(s.labels["blocked_on"], s.labels["where"]) for s in families["looseends_group_units"].samples}
    assert places == {("event.wait", "f /srv/app/jobs.py:1"), ("running", "f /srv/app/metrics.py:1")}


def test_a_place_counts_its_pending_and_its_destroyed_tasks_together() -> None:
    """A fire-and-forget leak: its live count falls whenever the collector runs, the place's never does."""
    site = Frame("/srv/app/views.py", 12, "send", "app.views")
    wait = BlockedOn("asyncio.event.wait", "asyncio.Event.wait")
    origin = Origin((site,))
    live = [Unit(Kind.TASK, ("task", n), f"Task-{n}", blocked_on=wait, origin=origin) for n in range(3)]
    gone = BlockedOn(wait.code, wait.description, {DESTROYED_LAST: 0.5})
    destroyed = Unit(
        Kind.TASK, ("destroyed", "x"), "destroyed while pending", blocked_on=gone, origin=origin, count=5
    )
    registry = CollectorRegistry()
    registry.register(prometheus.LooseEndsCollector(_snapshot=lambda: Snapshot((*live, destroyed), 0.0)))
    families = {f.name: f for f in text_string_to_metric_families(generate_latest(registry).decode())}
    assert [s.value for s in families["looseends_units"].samples] == [3.0]  # live only
    assert [s.value for s in families["looseends_tasks_destroyed_pending"].samples] == [5.0]
    (place,) = families["looseends_place_units"].samples
    assert place.labels == {"kind": "task", "where": "send /srv/app/views.py:12"}
    assert place.value == 8.0


def test_a_place_in_library_code_is_its_qualified_name_not_a_path() -> None:
    """Label values must be the same on every machine: no installation's path, no stdlib line number."""
    library = Frame(threading.__file__, 327, "Condition.wait", "threading")
    mine = Frame(__file__, 12, "worker", "tests.test_prometheus")
    assert library.place == "threading.Condition.wait"
    assert mine.place == "tests/test_prometheus.py:12"


def test_bad_options_and_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(looseends.OptionError, match="top_groups"):
        prometheus.LooseEndsCollector(top_groups=1000)

    monkeypatch.setitem(sys.modules, "prometheus_client.core", None)  # as if the extra were not installed
    with pytest.raises(looseends.LooseEndsError, match=r"looseends\[prometheus\]"):
        prometheus.LooseEndsCollector()


RULES_TEST = Path(__file__).parent / "data" / "prometheus" / "rules_test.yml"


def test_the_shipped_alert_fires_for_a_growing_group_only() -> None:
    """promtool runs the rules on series that must fire (a leak) and must not (a pool that grows and
    shrinks, a group too small, a fall inside the window)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool is missing: apt-get install prometheus (.ci/run does)")
    done = subprocess.run(
        [promtool, "test", "rules", RULES_TEST.name],
        cwd=RULES_TEST.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_the_cli_prints_the_rules_it_ships() -> None:
    out = io.StringIO()
    assert cli.main(["prometheus-rules"], out=out) == 0
    shipped = resources.files("looseends.frontends").joinpath("prometheus_rules.yml").read_text()
    assert out.getvalue() == shipped
    assert "alert: LooseEndsGroupKeepsGrowing" in shipped
