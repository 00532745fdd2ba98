"""Live: a real web app under a real server never has an idle worker, a loop or a running thread proven.

Starlette under uvicorn on loopback: sync endpoints run in anyio's worker threads (idle ones wait on a
queue their loop keeps), async ones use the loop's default executor. Whatever their state, something that
may still run reaches what they wait on.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest

pytest.importorskip("starlette", reason="the live extra is not installed: pip install -e '.[live]'")

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import looseends

from leakfixtures import DEADLINE, uvicorn_serving, wait_until


def sync_page(request: Request) -> PlainTextResponse:
    return PlainTextResponse("sync")  # runs in an anyio worker thread


async def executor_page(request: Request) -> PlainTextResponse:
    await asyncio.get_running_loop().run_in_executor(None, time.monotonic)
    return PlainTextResponse("executor")


@pytest.fixture(params=["asyncio", "uvloop"])
def server(request: pytest.FixtureRequest) -> Iterator[str]:
    app = Starlette(routes=[Route("/sync", sync_page), Route("/executor", executor_page)])
    with uvicorn_serving(app, request.param) as url:
        yield url


def test_idle_workers_of_a_real_app_are_never_proven(server: str) -> None:
    with httpx.Client(base_url=server, timeout=DEADLINE) as client:
        for _ in range(5):
            assert client.get("/sync").text == "sync"
            assert client.get("/executor").text == "executor"

    def anyio_idle(unit: looseends.Unit) -> bool:
        return unit.name.startswith("AnyIO worker") and unit.blocked_on.code == "queue.get"

    def executor_idle(unit: looseends.Unit) -> bool:
        return unit.blocked_on.context == "ThreadPoolExecutor worker" and unit.blocked_on.code == "queue.get"

    def both_idle() -> bool:
        units = looseends.snapshot().units
        return any(map(anyio_idle, units)) and any(map(executor_idle, units))

    wait_until(both_idle, what="an idle anyio worker and an idle default-executor worker")
    assert looseends.snapshot(proven=True).units == ()
