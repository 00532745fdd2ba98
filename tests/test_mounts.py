"""The pages mounted inside real frameworks: Starlette (ASGI) and Flask (WSGI)."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

import looseends

from leakfixtures import Cleanup


def test_asgi_app_mounted_in_starlette_sees_the_apps_own_tasks() -> None:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Mount, Route
    from starlette.testclient import TestClient

    release = asyncio.Event()
    started: list[asyncio.Task[object]] = []

    async def leak(request: object) -> PlainTextResponse:
        for n in range(3):
            started.append(asyncio.get_running_loop().create_task(release.wait(), name=f"asgi-leak-{n}"))
        return PlainTextResponse("started")

    async def stop(request: object) -> PlainTextResponse:
        release.set()
        await asyncio.gather(*started)
        return PlainTextResponse("stopped")

    app = Starlette(
        routes=[
            Route("/leak", leak),
            Route("/stop", stop),
            Mount("/debug/looseends", app=looseends.asgi_app(token="a-token-of-sixteen+")),
        ]
    )
    with TestClient(app) as client:
        assert client.get("/leak").text == "started"
        try:
            assert client.get("/debug/looseends/dump").status_code == 401
            auth = {"Authorization": "Bearer a-token-of-sixteen+"}
            response = client.get("/debug/looseends/dump?format=json&kind=task", headers=auth)
            assert response.status_code == 200
            data = response.json()
            group = next(g for g in data["groups"] if g["units"][0]["name"].startswith("asgi-leak-"))
            assert group["count"] == 3
            assert group["blocked_on"]["code"] == "asyncio.event.wait"
            text = client.get("/debug/looseends/dump", headers=auth).text
            assert "3 tasks blocked in asyncio.Event.wait" in text
            assert client.get("/debug/looseends/dump?debug=9", headers=auth).status_code == 400
            assert client.post("/debug/looseends/dump", headers=auth).status_code == 405
        finally:
            assert client.get("/stop").text == "stopped"


def test_wsgi_app_mounted_in_flask(cleanup: Cleanup) -> None:
    from flask import Flask
    from werkzeug.middleware.dispatcher import DispatcherMiddleware

    flask_app = Flask(__name__)
    never = threading.Event()
    workers: list[threading.Thread] = []

    @flask_app.route("/leak")
    def leak() -> str:
        for n in range(4):
            worker = threading.Thread(target=never.wait, name=f"wsgi-leak-{n}", daemon=True)
            worker.start()
            workers.append(worker)
        return "started"

    cleanup(lambda: [never.set(), *(w.join(10) for w in workers)])
    flask_app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
        flask_app.wsgi_app, {"/debug/looseends": looseends.wsgi_app()}
    )
    client = flask_app.test_client()
    assert client.get("/leak").get_data(as_text=True) == "started"
    response = client.get("/debug/looseends/dump?format=json&kind=thread")
    assert response.status_code == 200
    data = json.loads(response.get_data())
    group = next(g for g in data["groups"] if g["units"][0]["name"].startswith("wsgi-leak-"))
    assert group["count"] == 4
    assert group["created_by"]["site"]["function"].endswith("leak")
    assert client.get("/debug/looseends/").status_code == 200
    assert client.get("/debug/looseends/dump?kind=nothing").status_code == 400


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
def test_only_get(method: str) -> None:
    from looseends.frontends.http_app import respond

    assert respond(method, "/dump", "", {}).status == 405
