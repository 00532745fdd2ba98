"""Prometheus exposition, parsed back with prometheus_client's own parser."""

from __future__ import annotations

import sys
import threading

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

import looseends
from looseends.frontends import prometheus

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
    assert units[("thread", "running")] >= 1  # this very thread
    groups = families["looseends_group_units"].samples
    assert len(groups) <= 2
    assert groups[0].value >= 4
    assert groups[0].labels["blocked_on"] == "event.wait"


def test_bad_options_and_missing_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(looseends.OptionError, match="top_groups"):
        prometheus.LooseEndsCollector(top_groups=1000)

    monkeypatch.setitem(sys.modules, "prometheus_client.core", None)  # as if the extra were not installed
    with pytest.raises(looseends.LooseEndsError, match=r"looseends\[prometheus\]"):
        prometheus.LooseEndsCollector()
