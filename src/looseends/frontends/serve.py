"""`looseends.serve()`: the inspection pages on a background thread, standard library only.

Binds to loopback by default. Any other address needs a token, which every request must then
present; without one, serve() refuses to start.
"""

from __future__ import annotations

import ipaddress
import threading
from contextlib import AbstractContextManager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from looseends.errors import OptionError
from looseends.frontends.http_app import Response, respond
from looseends.sources._tracking import tracking

THREAD_NAME = "looseends-http"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


class LiveServer:
    """A running endpoint: `url`, and `close()` to stop it (it also stops with the process)."""

    def __init__(
        self,
        server: ThreadingHTTPServer,
        thread: threading.Thread,
        prefix: str,
        tracked: AbstractContextManager[None],
    ) -> None:
        self._server = server
        self._thread = thread
        self._tracked = tracked
        host, port = str(server.server_address[0]), int(server.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}{prefix}/"

    def close(self) -> None:
        if self._thread.is_alive():
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._tracked.__exit__(None, None, None)

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    *, port: int = 0, host: str = "127.0.0.1", token: str | None = None, prefix: str = "/debug/looseends"
) -> LiveServer:
    """Serve the pages on `host:port` (0 picks a free port) under `prefix`, from a daemon thread."""
    if not isinstance(port, int) or not 0 <= port <= 65535:
        raise OptionError(f"invalid port={port!r} from looseends.serve(): expected 0-65535")
    if token is not None and (not isinstance(token, str) or len(token) < 16):
        raise OptionError("invalid token from looseends.serve(): expected a string of at least 16 characters")
    if not is_loopback(host) and token is None:
        raise OptionError(
            f"refusing to serve on {host!r} without a token: the pages show every stack of this process. "
            "Pass token=... (every request must then present it), or bind to 127.0.0.1."
        )
    prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
    server_class = _server_class(host)
    server = server_class((host, port), _handler(prefix, token))
    server.daemon_threads = True
    # While serving, creations are tracked, so the full dump can say who started each unit.
    tracked = tracking()
    tracked.__enter__()
    thread = threading.Thread(target=server.serve_forever, name=THREAD_NAME, daemon=True)
    thread.start()
    return LiveServer(server, thread, prefix, tracked)


def _server_class(host: str) -> type[ThreadingHTTPServer]:
    import socket

    if ":" in host:

        class IPv6Server(ThreadingHTTPServer):
            address_family = socket.AF_INET6

        return IPv6Server
    return ThreadingHTTPServer


def _handler(prefix: str, token: str | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "looseends"

        def _answer(self) -> None:
            threading.current_thread().name = f"{THREAD_NAME}-request"
            path, _, query = self.path.partition("?")
            if prefix and not (path == prefix or path.startswith(prefix + "/")):
                response = Response(404, f"not found; the pages are under {prefix}/\n".encode())
            else:
                headers = {k.lower(): v for k, v in self.headers.items()}
                response = respond(self.command, path[len(prefix) :] or "/", query, headers, token=token)
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

        def log_message(self, format: str, *args: Any) -> None:  # the host's stderr is not ours to fill
            pass

    return Handler
