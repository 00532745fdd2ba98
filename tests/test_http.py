"""The inspection endpoint: right groups and counts, filters, bad queries, security, large dumps."""

from __future__ import annotations

import asyncio
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

import looseends
from looseends.frontends import http_app

from leakfixtures import LoopThread, wait_until


def get(url: str, **headers: str) -> tuple[int, str]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def server() -> Iterator[looseends.LiveServer]:
    with looseends.serve() as live:
        yield live


@pytest.fixture
def leaky_process(loop_thread: LoopThread) -> Iterator[None]:
    """5 threads and 7 tasks (on another thread's loop) stuck on events nobody sets; released at teardown."""
    never = threading.Event()
    threads = [threading.Thread(target=never.wait, name=f"srv-leak-{n}", daemon=True) for n in range(5)]
    for thread in threads:
        thread.start()
    loop_event = asyncio.Event()

    async def start() -> None:
        for n in range(7):
            asyncio.get_running_loop().create_task(loop_event.wait(), name=f"srv-task-{n}")

    loop_thread.run(start())
    wait_until(lambda: sum(u.name.startswith("srv-") for u in looseends.snapshot().units) == 12)
    yield
    never.set()
    for thread in threads:
        thread.join(10)

    async def release() -> None:
        loop_event.set()
        await asyncio.sleep(0)

    loop_thread.run(release())


def groups_by_name(data: dict[str, object], prefix: str) -> list[dict[str, object]]:
    return [g for g in data["groups"] if any(u["name"].startswith(prefix) for u in g["units"])]  # type: ignore[attr-defined,index,union-attr]


@pytest.mark.usefixtures("leaky_process")
def test_dump_of_a_live_process_has_the_right_groups_and_counts(server: looseends.LiveServer) -> None:
    status, body = get(server.url + "dump?format=json")
    assert status == 200
    data = json.loads(body)
    (threads,) = groups_by_name(data, "srv-leak-")
    assert threads["count"] == 5
    assert threads["blocked_on"]["code"] == "event.wait"  # type: ignore[index]
    (tasks,) = groups_by_name(data, "srv-task-")
    assert tasks["count"] == 7
    assert tasks["blocked_on"]["code"] == "asyncio.event.wait"  # type: ignore[index]
    assert {u["thread"] for u in tasks["units"]} == {"loop-thread"}  # type: ignore[union-attr,index]

    status, text = get(server.url + "dump")
    assert status == 200
    assert text.startswith("looseends dump: ")
    assert "5 threads blocked in threading.Event.wait" in text
    assert "7 tasks blocked in asyncio.Event.wait" in text
    status, full = get(server.url + "dump?debug=2")
    assert "srv-task-6 (loop in thread loop-thread" in full
    assert "f_locals" not in full


@pytest.mark.usefixtures("leaky_process")
def test_filters_by_kind_and_blocked_on(server: looseends.LiveServer) -> None:
    _, body = get(server.url + "dump?format=json&kind=task")
    assert {g["kind"] for g in json.loads(body)["groups"]} == {"task"}
    _, body = get(server.url + "dump?format=json&blocked_on=event.*")
    data = json.loads(body)
    assert {g["blocked_on"]["code"] for g in data["groups"]} == {"event.wait"}
    assert groups_by_name(data, "srv-leak-")[0]["count"] == 5


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("debug=3", "debug='3': expected 1 (grouped) or 2 (every unit)"),
        ("format=xml", "format='xml': expected text or json"),
        ("kind=fiber", "kind='fiber': expected thread, task, process, goroutine"),
        ("colour=red", "unknown parameter 'colour'"),
    ],
)
def test_bad_queries_get_400_with_the_reason(server: looseends.LiveServer, query: str, reason: str) -> None:
    status, body = get(server.url + "dump?" + query)
    assert status == 400
    assert reason in body


def test_only_get_and_known_pages(server: looseends.LiveServer) -> None:
    request = urllib.request.Request(server.url + "dump", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(request, timeout=10)
    assert info.value.code == 405
    assert get(server.url + "nowhere")[0] == 404
    status, index = get(server.url)
    assert status == 200
    assert "dump?debug=2" in index


def test_non_loopback_needs_a_token_and_requests_must_present_it() -> None:
    with pytest.raises(looseends.OptionError, match=r"refusing to serve on '0\.0\.0\.0' without a token"):
        looseends.serve(host="0.0.0.0")
    with pytest.raises(looseends.OptionError, match="at least 16 characters"):
        looseends.serve(token="short")
    token = "s3cret-token-for-tests"
    with looseends.serve(host="0.0.0.0", token=token) as live:
        url = live.url.replace("0.0.0.0", "127.0.0.1")
        assert get(url + "dump")[0] == 401
        assert get(url + "dump", Authorization="Bearer wrong-token-wrong-token")[0] == 401
        assert get(url + "dump", Authorization=f"Bearer {token}")[0] == 200
        assert get(url + f"dump?token={token}")[0] == 200


def test_bodies_are_bounded(server: looseends.LiveServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_app, "MAX_BODY", 300)
    _, text = get(server.url + "dump?debug=2")
    assert "truncated at 300 bytes" in text
    _, body = get(server.url + "dump?format=json")
    assert json.loads(body).get("truncated") is True


def test_endpoint_stays_responsive_with_ten_thousand_tasks(
    server: looseends.LiveServer, loop_thread: LoopThread
) -> None:
    release = asyncio.Event()

    async def start() -> None:
        for _ in range(10_000):
            asyncio.get_running_loop().create_task(release.wait())

    loop_thread.run(start())
    try:
        status, body = get(server.url + "dump?format=json&kind=task")
        assert status == 200
        assert json.loads(body)["summary"]["units"] >= 10_000
        assert get(server.url)[0] == 200
    finally:

        async def stop() -> None:
            release.set()
            await asyncio.sleep(0)

        loop_thread.run(stop())


def test_a_failing_snapshot_is_a_500_not_a_crash() -> None:
    def broken(**options: object) -> looseends.Snapshot:
        raise RuntimeError("boom")

    response = http_app.respond("GET", "/dump", "", {}, _snapshot=broken)
    assert response.status == 500
    assert b"RuntimeError: boom" in response.body


@pytest.mark.usefixtures("leaky_process")
def test_proven_only_dump(server: looseends.LiveServer) -> None:
    status, body = get(server.url + "dump?format=json&proven=1")
    assert status == 200
    data = json.loads(body)
    names = {u["name"] for g in data["groups"] for u in g["units"]}
    # The fixture's threads wait on an Event its own frame holds: reachable, so never proven.
    assert not any(name.startswith("srv-leak-") for name in names)
    assert all(g["proven"] for g in data["groups"])
    assert get(server.url + "dump?proven=yes")[0] == 400


def test_importing_looseends_loads_no_server_until_one_is_asked_for() -> None:
    import subprocess
    import sys

    code = (
        "import sys, looseends\n"
        "assert 'http.server' not in sys.modules and 'looseends.frontends.mounts' not in sys.modules\n"
        "assert callable(looseends.serve) and callable(looseends.asgi_app) and 'http.server' in sys.modules\n"
        "try:\n    looseends.no_such_name\nexcept AttributeError as exc:\n    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "module 'looseends' has no attribute 'no_such_name'"
