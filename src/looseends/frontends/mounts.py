"""The inspection pages as ASGI and WSGI apps, to mount inside an existing web service.

    app.mount("/debug/looseends", looseends.asgi_app())                    # Starlette, FastAPI
    DispatcherMiddleware(app, {"/debug/looseends": looseends.wsgi_app()})  # Flask, any WSGI server

Paths are taken relative to the mount point (ASGI `root_path`, WSGI `SCRIPT_NAME`). A token, when
given, must be presented by every request; the host framework's own authentication also applies.
Creating an app turns creation tracking on for the rest of the process (`looseends.track()`), so dumps say
who started each unit: a few microseconds on every task and thread start (BENCHMARKS.md figure 3).

The ASGI app takes its snapshot in a thread of its own, so the host's event loop keeps serving while a
dump of 50,000 tasks is built (it shares the GIL with that thread, in turns of the switch interval).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from looseends.frontends.http_app import Response, check_token, request_headers, respond
from looseends.sources._tracking import track

__all__ = ["asgi_app", "wsgi_app"]

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
THREAD_NAME = "looseends-http-request"


def _relative(path: str, root: str) -> str:
    return (path[len(root) :] if root and path.startswith(root) else path) or "/"


async def _off_the_loop(answer: Callable[[], Response]) -> Response:
    """`answer()` in a thread of its own, awaited without blocking the event loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:  # not asyncio (trio through anyio): anyio's own worker thread
        try:
            import anyio.to_thread
        except ImportError:
            return answer()
        return await anyio.to_thread.run_sync(answer)
    future: asyncio.Future[Response] = loop.create_future()

    def deliver(response: Response | None, error: BaseException | None) -> None:
        if future.done():  # the request was cancelled (client gone)
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(response)  # type: ignore[arg-type]

    def work() -> None:
        try:
            outcome: tuple[Response | None, BaseException | None] = (answer(), None)
        except BaseException as exc:
            outcome = (None, exc)
        try:
            loop.call_soon_threadsafe(deliver, *outcome)
        except RuntimeError:  # the loop closed meanwhile
            pass

    threading.Thread(target=work, name=THREAD_NAME, daemon=True).start()
    return await future


def asgi_app(*, token: str | None = None) -> ASGIApp:
    """An ASGI 3 app serving the pages (HTTP only)."""
    token = check_token(token, "looseends.asgi_app()")
    track()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = request_headers(
            (k.decode("latin-1"), v.decode("latin-1")) for k, v in scope.get("headers", [])
        )
        path = _relative(scope.get("path", "/"), scope.get("root_path", ""))
        query = scope.get("query_string", b"").decode("latin-1")
        method = scope["method"]
        base = scope.get("root_path", "")
        response = await _off_the_loop(lambda: respond(method, path, query, headers, token=token, base=base))
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [(k.lower().encode(), v.encode()) for k, v in _headers(response)],
            }
        )
        await send({"type": "http.response.body", "body": b"" if method == "HEAD" else response.body})

    return app


def wsgi_app(*, token: str | None = None) -> WSGIApp:
    """A WSGI app serving the pages."""
    token = check_token(token, "looseends.wsgi_app()")
    track()

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        headers = {
            key[5:].replace("_", "-").lower(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        path = environ.get("PATH_INFO", "/") or "/"
        response = respond(
            environ["REQUEST_METHOD"],
            path,
            environ.get("QUERY_STRING", ""),
            headers,
            token=token,
            base=environ.get("SCRIPT_NAME", ""),
        )
        start_response(f"{response.status} {response.reason}", _headers(response))
        return [b"" if environ["REQUEST_METHOD"] == "HEAD" else response.body]

    return app


def _headers(response: Response) -> list[tuple[str, str]]:
    return [
        ("Content-Type", response.content_type),
        ("Content-Length", str(len(response.body))),
        *response.headers,
    ]
