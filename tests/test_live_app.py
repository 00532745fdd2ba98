"""A real app under a real server: uvicorn on loopback, on asyncio's loop and on uvloop, with the dump
mounted in the app. Fire-and-forget leaks show as a growing count; a healthy app's dump shows states, not
leak patterns, and folds the framework's frames."""

from __future__ import annotations

import asyncio
import gc
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

pytest.importorskip("starlette", reason="the live extra is not installed: pip install -e '.[live]'")

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

import looseends
from looseends.core.growth import Growth
from looseends.report_json import report_from_dict

from leakfixtures import DEADLINE, uvicorn_serving, wait_until

# These tests leak tasks into a live server on purpose, to read its dump.
pytestmark = pytest.mark.looseends_allow(reason="leaks tasks into a live server on purpose, to read its dump")

kept: set[asyncio.Task[object]] = set()


async def wait_for_a_reply(event: asyncio.Event) -> None:
    await event.wait()


async def fire_and_forget(request: Request) -> PlainTextResponse:
    # The leak: a task awaiting an Event only it holds, never kept: the collector destroys it while pending.
    asyncio.create_task(wait_for_a_reply(asyncio.Event()))  # noqa: RUF006 - the leak under test
    return PlainTextResponse("sent")


async def kept_task(request: Request) -> PlainTextResponse:
    task = asyncio.create_task(wait_for_a_reply(asyncio.Event()), name="kept-forever")
    kept.add(task)
    return PlainTextResponse("kept")


async def collect(request: Request) -> PlainTextResponse:
    for _ in range(3):  # let the last requests' tasks reach their wait
        await asyncio.sleep(0)
    gc.collect()  # the host's own collection, as it happens sooner or later
    return PlainTextResponse("collected")


async def healthy(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


def app() -> Starlette:
    return Starlette(
        routes=[
            Route("/leak", fire_and_forget),
            Route("/keep", kept_task),
            Route("/gc", collect),
            Route("/ok", healthy),
            Mount("/debug/looseends", looseends.asgi_app()),
        ]
    )


@pytest.fixture(params=["asyncio", "uvloop"])
def server(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    try:
        with (
            uvicorn_serving(app(), request.param) as url,
            httpx.Client(base_url=url, timeout=DEADLINE) as client,
        ):
            yield client
    finally:
        for task in list(kept):
            task.get_loop().call_soon_threadsafe(task.cancel) if not task.get_loop().is_closed() else None
        kept.clear()


def dump(client: httpx.Client) -> looseends.Report:
    return report_from_dict(client.get("/debug/looseends/dump?format=json").json(), max_groups=1000)


def destroyed_here(report: looseends.Report) -> int:
    return sum(
        group.count
        for group in report.groups
        if "destroyed_last_s_ago" in group.blocked_on.detail
        and group.origin is not None
        and group.origin.site is not None
        and group.origin.site.function.endswith("fire_and_forget")
    )


def test_fire_and_forget_tasks_destroyed_while_pending_show_as_a_growing_group(server: httpx.Client) -> None:
    growth = Growth(min_growth=40, min_blocked=10**6)
    before = destroyed_here(dump(server))  # the process's count since tracking began
    for sample in range(1, 6):
        for _ in range(10):
            assert server.get("/leak").text == "sent"
        wait_until(
            lambda: (
                server.get("/gc").text == "collected" and destroyed_here(dump(server)) - before >= 10 * sample  # noqa: B023
            ),
            what="the collector to destroy this batch",
        )
        report = dump(server)
        assert destroyed_here(report) - before == 10 * sample
        growth.add(report)
    suspects = growth.suspects()
    assert any(
        "tasks created at" in key and "destroyed while pending during the watch" in why
        for key, why in suspects.items()
    ), suspects
    group = next(g for g in dump(server).groups if "destroyed_last_s_ago" in g.blocked_on.detail)
    assert group.blocked_on.detail["vanished"].startswith("destroyed while pending")
    assert group.units[0].proof == "destroyed by the garbage collector while pending: nothing could reach it"


def test_every_dump_of_a_mounted_app_shows_the_thread_running_its_loop(server: httpx.Client) -> None:
    """The loop's thread is caught starting the dump's own thread more often than not: it is the
    program's thread all the same, and a dump that dropped it would be an all-clear for it."""
    for _ in range(8):
        report = dump(server)
        threads = [unit for unit in report.units if unit.kind.value == "thread"]
        assert any(unit.name == "uvicorn-server" for unit in threads), [u.name for u in report.units]
        assert not any(unit.name.startswith("looseends-http") for unit in threads)


def test_a_mounted_app_says_who_created_each_task_and_how_long_ago(server: httpx.Client) -> None:
    assert server.get("/keep").text == "kept"
    report = dump(server)
    group = next(g for g in report.groups if g.units[0].name == "kept-forever")
    assert group.origin is not None
    assert group.origin.site is not None
    assert group.origin.site.function.endswith("kept_task")
    assert group.ages(report.now)  # an age: it was tracked from its creation
    assert group.units[0].thread == "uvicorn-server"


HEALTHY = """
import sys, threading
import uvicorn
from starlette.applications import Starlette  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Mount, Route  # noqa: E402
import looseends


async def ok(request):
    return PlainTextResponse("ok")


def sync_ok(request):
    return PlainTextResponse("sync ok")


routes = [Route("/ok", ok), Route("/sync", sync_ok), Mount("/debug/looseends", looseends.asgi_app())]
app = Starlette(routes=routes)
config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="error", loop=sys.argv[1])
server = uvicorn.Server(config)
threading.Thread(target=lambda: (server.started or None), daemon=True)
server.run()
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_healthy_apps_dump_shows_states_and_folds_the_framework(tmp_path: Path, loop: str) -> None:
    script = tmp_path / "healthy.py"
    script.write_text(HEALTHY)
    process = subprocess.Popen([sys.executable, str(script), loop], stderr=subprocess.PIPE, text=True)
    try:
        port = _port_of(process.pid)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=DEADLINE) as client:
            for _ in range(5):
                assert client.get("/ok").text == "ok"
                assert client.get("/sync").text == "sync ok"
            text = client.get("/debug/looseends/dump").text
    finally:
        process.terminate()
        process.wait(DEADLINE)
    assert "why:" not in text, text  # states, not leak patterns, in a dump
    assert "fix:" not in text, text
    stack_lines = [line.strip() for line in text.splitlines() if line.startswith("    ") and " at " in line]
    assert stack_lines, text  # the app's own frames are there
    framework = ("uvicorn.", "starlette.", "anyio.", "click.")
    assert not [line for line in stack_lines if line.startswith(framework)], text


def _port_of(pid: int) -> int:
    """The port the server listens on, once it listens (psutil: no parsing of its log)."""
    import psutil

    ports: list[int] = []

    def listening() -> bool:
        ports[:] = [c.laddr.port for c in psutil.Process(pid).net_connections() if c.status == "LISTEN"]
        return bool(ports)

    wait_until(listening, what="the server to listen")
    return ports[0]


LEAKY_SERVICE = """
import asyncio
from starlette.applications import Starlette  # noqa: E402
from starlette.responses import PlainTextResponse  # noqa: E402
from starlette.routing import Mount, Route  # noqa: E402
import looseends


async def send_analytics(done: asyncio.Event) -> None:
    await done.wait()  # nobody ever sets it


async def leak(request):
    asyncio.create_task(send_analytics(asyncio.Event()))  # fire and forget: the reference is dropped
    return PlainTextResponse("sent")


app = Starlette(routes=[Route("/leak", leak), Mount("/debug/looseends", looseends.asgi_app())])
"""


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_watch_flags_fire_and_forget_tasks_of_a_service_run_by_uvicorns_own_command(
    tmp_path: Path, loop: str
) -> None:
    """The leak as it is deployed: `uvicorn app:app`, the collector running as it does on its own, and
    `looseends watch` with its default verdict rules: the place must be flagged, exit status 1."""
    (tmp_path / "service.py").write_text(LEAKY_SERVICE)
    uvicorn = Path(sys.executable).with_name("uvicorn")
    server = subprocess.Popen(
        [str(uvicorn), "service:app", "--port", "0", "--loop", loop, "--log-level", "info"],
        cwd=tmp_path,
        stderr=subprocess.PIPE,
        text=True,
    )
    stop = threading.Event()
    requests: threading.Thread | None = None
    try:
        assert server.stderr is not None
        line = ""
        while "Uvicorn running on" not in line:
            line = server.stderr.readline()
            assert line, "uvicorn ended before it served"
        url = line.split("Uvicorn running on ")[1].split()[0]

        def client() -> None:  # a steady trickle of requests, as a service sees
            with httpx.Client(base_url=url, timeout=DEADLINE) as http:
                while not stop.wait(0.02):
                    http.get("/leak")

        requests = threading.Thread(target=client, name="client", daemon=True)
        requests.start()
        watched = subprocess.run(
            [sys.executable, "-m", "looseends", "watch", f"{url}/debug/looseends/", "--interval", "0.5"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        stop.set()
        if requests is not None:  # its last request must end before the server does
            requests.join(DEADLINE)
        server.kill()
        server.wait(10)
    assert watched.returncode == 1, watched.stdout + watched.stderr
    assert re.search(r"tasks created at \S*service.py:\d+: \d+ made here were destroyed", watched.stdout)
    assert "destroyed while pending during the watch" in watched.stdout
