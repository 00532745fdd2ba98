"""The endpoint's web page: the last hour by place, growing places first and marked, everything escaped,
bounded in size, the history bounded in memory; and the page as a real browser renders it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

import looseends
from looseends.frontends import history as history_module
from looseends.frontends import http_app
from looseends.frontends.history import MAX_PLACES, MAX_SAMPLES, OTHERS, History, sample_every
from looseends.model import Frame, Origin
from looseends.report import Report

ROOT = Path(__file__).resolve().parent.parent
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture(autouse=True)
def fresh_history(monkeypatch: pytest.MonkeyPatch) -> History:
    """Each test charts only what it sampled itself."""
    made = History(every=1.0)
    monkeypatch.setattr(history_module.sampling, "history", made)
    return made


def units_at(place: int, count: int, name: str = "job") -> list[looseends.Unit]:
    site = Frame(f"/app/place{place}.py", 10 + place, f"start_{place}", f"place{place}")
    blocked = looseends.BlockedOn("asyncio.event.wait", "asyncio.Event.wait")
    return [
        looseends.Unit(
            kind=looseends.Kind.TASK,
            key=("task", place, n),
            name=f"{name}-{n}",
            stack=(Frame("/app/jobs.py", 12, "wait_for_job", "jobs"),),
            blocked_on=blocked,
            origin=Origin((site,), created_at=time.monotonic() - 5),
        )
        for n in range(count)
    ]


def report_of(*parts: list[looseends.Unit]) -> Report:
    return Report.from_units([unit for part in parts for unit in part], now=time.monotonic())


def get_page(snapshot: looseends.Snapshot, query: str = "", accept: str = BROWSER) -> http_app.Response:
    return http_app.respond("GET", "/", query, {"accept": accept}, _snapshot=lambda **_: snapshot)


def test_a_browser_gets_the_page_and_everyone_else_the_text_index() -> None:
    snapshot = looseends.Snapshot(tuple(units_at(1, 2)), time.monotonic())
    page = get_page(snapshot)
    assert page.status == 200
    assert page.content_type == "text/html; charset=utf-8"
    assert ("Content-Security-Policy", http_app.CSP) in page.headers
    assert b"<script" not in page.body  # the page runs no script at all
    assert get_page(snapshot, accept="*/*").body == http_app.INDEX.encode()  # curl
    assert get_page(snapshot, "view=html", accept="*/*").content_type.startswith("text/html")
    assert get_page(snapshot, "view=text").body == http_app.INDEX.encode()


def test_names_and_lines_from_the_program_are_shown_as_text() -> None:
    hostile = "<script>alert(1)</script>"
    snapshot = looseends.Snapshot(tuple(units_at(1, 1, name=hostile)), time.monotonic())
    body = get_page(snapshot).body.decode()
    assert "<script" not in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;-0" in body


def test_the_growing_place_is_first_marked_and_drawn(fresh_history: History) -> None:
    start = time.monotonic() - 10  # the page's own snapshot, now, is the last sample
    for step in range(6):  # place 1 climbs; place 2 holds more units, flat
        fresh_history.note(report_of(units_at(1, 2 + 3 * step), units_at(2, 40)), now=start + step)
    snapshot = looseends.Snapshot(tuple(units_at(1, 20) + units_at(2, 40)), start + 6)
    body = get_page(snapshot).body.decode()
    rows = re.findall(r"<tr( class=\"growing\")?><td class=\"n\">(\d+)", body)
    assert rows == [(' class="growing"', "20"), ("", "40")]  # growing first, though smaller
    assert body.count('<span class="tag">growing</span>') == 2  # its row and its line's legend
    assert "tasks created at /app/place1.py:11" in body
    assert body.count("<polyline") == 2
    assert "2 → 20" in body  # its count over the hour


def test_two_thousand_groups_make_a_page_under_100_kb(fresh_history: History) -> None:
    start = time.monotonic()
    places = [units_at(place, 1 + place % 7) for place in range(2000)]
    for step in range(MAX_SAMPLES + 5):
        fresh_history.note(report_of(*places), now=start + step)
    snapshot = looseends.Snapshot(tuple(unit for part in places for unit in part), start)
    body = get_page(snapshot).body
    assert len(body) < 100_000
    assert b"more groups: see the text dump" in body


def test_the_history_is_bounded_in_samples_and_places(fresh_history: History) -> None:
    start = time.monotonic()
    places = [units_at(place, 1 + place) for place in range(MAX_PLACES + 30)]
    for step in range(MAX_SAMPLES + 50):
        assert fresh_history.note(report_of(*places), now=start + step)
    times, series, _ = fresh_history.view()
    assert len(times) == MAX_SAMPLES
    assert len(series) == MAX_PLACES + 1
    assert series[OTHERS][-1] == sum(1 + place for place in range(30))  # the 30 smallest, summed
    assert not fresh_history.note(report_of(*places), now=start + MAX_SAMPLES + 49.2)  # within half a period


def test_an_hour_old_sample_is_dropped(fresh_history: History) -> None:
    fresh_history.note(report_of(units_at(1, 1)), now=0.0)
    fresh_history.note(report_of(units_at(2, 1)), now=3601.0)
    times, series, _ = fresh_history.view()
    assert times == [3601.0]
    assert list(series) == ["tasks created at /app/place2.py:12"]


def test_sampling_slows_down_rather_than_cost_over_one_percent_of_a_core() -> None:
    assert history_module.pause(10.0, 0.02) == 10.0  # 0.2 % of a core: the period
    assert history_module.pause(10.0, 0.5) == 50.0  # a huge process: 0.5 s every 50 s, 1 %
    assert history_module.pause(0.2, 0.01) == 1.0


def test_a_bad_sampling_period_falls_back_to_the_default() -> None:
    assert sample_every({"LOOSEENDS_HISTORY_EVERY": "0.5"}) == 0.5
    for bad in ("soon", "0", "-3", "nan", "inf", "0.01"):
        assert sample_every({"LOOSEENDS_HISTORY_EVERY": bad}) == history_module.DEFAULT_EVERY


def test_the_links_carry_a_token_given_in_the_query_and_a_missing_one_is_refused() -> None:
    token = "a-token-of-sixteen-characters"
    snapshot = looseends.Snapshot(tuple(units_at(1, 1)), time.monotonic())
    refused = http_app.respond("GET", "/", "view=html", {}, token=token, _snapshot=lambda **_: snapshot)
    assert refused.status == 401
    ok = http_app.respond(
        "GET", "/", f"view=html&token={token}", {}, token=token, _snapshot=lambda **_: snapshot
    )
    assert f"dump?format=json&amp;token={token}" in ok.body.decode()


def test_a_server_samples_while_it_runs_and_leaves_no_thread_when_closed(
    monkeypatch: pytest.MonkeyPatch, fresh_history: History
) -> None:
    monkeypatch.setenv("LOOSEENDS_HISTORY_EVERY", "0.2")
    live = looseends.serve()
    try:
        # The first sample at once, the next after 0.2 s, or after 100 times the first one's CPU time.
        deadline = time.monotonic() + 120
        while len(fresh_history.view()[0]) < 2 and time.monotonic() < deadline:
            threading.Event().wait(0.05)
        assert len(fresh_history.view()[0]) >= 2
    finally:
        live.close()
    assert history_module.THREAD_NAME not in {thread.name for thread in threading.enumerate()}


# A real browser -------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.fixture
def leaky_service(tmp_path: Path) -> Iterator[str]:
    """examples/leaky_service.py, sampled every 0.3 s; its base URL."""
    env = {**os.environ, "LOOSEENDS_HISTORY_EVERY": "0.3", "PYTHONUNBUFFERED": "1"}
    command = [sys.executable, str(ROOT / "examples" / "leaky_service.py"), "0", "100000", "0.05"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), url
        yield url
    finally:
        process.kill()
        process.wait(timeout=30)


def browser(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (Debian: apt-get install chromium)")
def test_chromium_shows_the_growing_group_first_with_the_counts_of_the_json_dump(
    leaky_service: str, tmp_path: Path
) -> None:
    def grown() -> bool:
        with urllib.request.urlopen(leaky_service + "?view=html", timeout=10) as response:
            return b'class="growing"' in response.read()

    deadline = time.monotonic() + 60
    while not grown():
        assert time.monotonic() < deadline, "the reply threads never showed as growing"
        threading.Event().wait(0.3)
    dom = browser("--dump-dom", leaky_service + "?view=html")
    assert dom.returncode == 0, dom.stderr
    with urllib.request.urlopen(leaky_service + "dump?format=json", timeout=10) as response:
        groups = json.load(response)["groups"]
    first_row = re.search(r'<tr class="growing"><td class="n">(\d+)', dom.stdout)
    assert first_row is not None, dom.stdout[:2000]
    assert dom.stdout.index('<tr class="growing">') < dom.stdout.index("<tr><td")  # growing first
    assert "handle_request" in dom.stdout  # the user's line that starts them
    replies = [g["count"] for g in groups if g["blocked_on"]["code"] == "queue.put"]
    # The service adds a thread every 50 ms: the page and the JSON dump are a moment apart.
    assert replies
    assert abs(int(first_row.group(1)) - replies[0]) <= 40
    shot = tmp_path / "page.png"
    taken = browser("--window-size=1100,900", f"--screenshot={shot}", leaky_service + "?view=html")
    assert taken.returncode == 0, taken.stderr
    assert shot.stat().st_size > 10_000
