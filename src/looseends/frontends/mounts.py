"""The inspection pages as ASGI and WSGI apps, to mount inside an existing web service.

    app.mount("/debug/looseends", looseends.asgi_app())                    # Starlette, FastAPI
    DispatcherMiddleware(app, {"/debug/looseends": looseends.wsgi_app()})  # Flask, any WSGI server

Paths are taken relative to the mount point (ASGI `root_path`, WSGI `SCRIPT_NAME`). A token, when
given, must be presented by every request; the host framework's own authentication also applies.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

from looseends.frontends.http_app import Response, respond

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


def _relative(path: str, root: str) -> str:
    return (path[len(root) :] if root and path.startswith(root) else path) or "/"


def asgi_app(*, token: str | None = None) -> ASGIApp:
    """An ASGI 3 app serving the pages (HTTP only)."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        path = _relative(scope.get("path", "/"), scope.get("root_path", ""))
        query = scope.get("query_string", b"").decode("latin-1")
        response = respond(scope["method"], path, query, headers, token=token)
        await send(
            {
                "type": "http.response.start",
                "status": response.status,
                "headers": [(k.lower().encode(), v.encode()) for k, v in _headers(response)],
            }
        )
        await send(
            {"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else response.body}
        )

    return app


def wsgi_app(*, token: str | None = None) -> WSGIApp:
    """A WSGI app serving the pages."""

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        headers = {
            key[5:].replace("_", "-").lower(): str(value)
            for key, value in environ.items()
            if key.startswith("HTTP_")
        }
        path = environ.get("PATH_INFO", "/") or "/"
        response = respond(
            environ["REQUEST_METHOD"], path, environ.get("QUERY_STRING", ""), headers, token=token
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
