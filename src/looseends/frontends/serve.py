"""`looseends.serve()`: the inspection pages on a background thread, standard library only.

Binds to loopback by default. Any other address needs a token, which every request must then present;
without one, serve() refuses to start. Without a token, only requests addressed to a loopback name are
answered (no DNS rebinding from a browser).

Bounded so that abuse cannot hurt the host: at most MAX_CONNECTIONS connections are served at once (the
others get an immediate 503), a request must arrive whole within REQUEST_DEADLINE (a client dripping a
byte at a time is dropped as surely as a silent one), one snapshot runs at a time (http_app), and client
resets are not printed on the host's stderr. Creation tracking is on while serving, so the full dump can
say who started each unit; `close()` always turns it off again.
"""

from __future__ import annotations

import io
import ipaddress
import socket
import threading
import time
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from looseends.errors import OptionError
from looseends.frontends.history import sampling
from looseends.frontends.http_app import (
    LOOPBACK_NAMES,
    Response,
    check_token,
    request_headers,
    respond,
    sample_report,
)
from looseends.sources._tracking import tracking

__all__ = ["MAX_CONNECTIONS", "LiveServer", "serve"]

THREAD_NAME = "looseends-http"
MAX_CONNECTIONS = 16
READ_TIMEOUT = 10.0  # seconds a client may take to read the answer
REQUEST_DEADLINE = 10.0  # seconds a client may take to send its whole request head
MAX_HEAD = 16 * 1024  # bytes of request line and headers: every legitimate request is far shorter
BACKLOG = 64

BUSY = b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"

_serving: set[LiveServer] = set()  # kept alive until closed: dropping serve()'s result must not stop it


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = BACKLOG

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.slots.acquire(blocking=False):
            _refuse(request)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that resets or times out is not the host's business: nothing on its stderr


def _request_head(connection: socket.socket, deadline: float) -> bytes:
    """The request line and headers, read within `deadline` seconds in all: each read may wait only for
    what is left of it. A timeout per read alone would let a byte every few seconds hold a slot forever."""
    head = b""
    ends = time.monotonic() + deadline
    while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
        left = ends - time.monotonic()
        if left <= 0:
            return b""  # the handler sees no request line and closes the connection
        connection.settimeout(left)
        try:
            chunk = connection.recv(4096)
        except OSError:
            return b""
        if not chunk:
            break
        head += chunk
    return head


def _refuse(request: socket.socket) -> None:
    try:
        request.settimeout(1.0)
        request.sendall(BUSY)
    except OSError:
        pass


class LiveServer:
    """A running endpoint: `url`, and `close()` to stop it (it also stops with the process)."""

    def __init__(self, server: _Server, prefix: str, cleanup: ExitStack) -> None:
        self._server = server
        self._cleanup = cleanup
        host, port = str(server.server_address[0]), int(server.server_address[1])
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{port}{prefix}/"

    def close(self) -> None:
        """Stop serving and end the creation tracking serving turned on; safe to call twice."""
        _serving.discard(self)
        self._cleanup.close()

    def __enter__(self) -> LiveServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def serve(
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    token: str | None = None,
    prefix: str = "/debug/looseends",
    allowed_hosts: tuple[str, ...] = (),
) -> LiveServer:
    """Serve the pages on `host:port` (0 picks a free port) under `prefix`, from a daemon thread.

    Without a token, requests must name the server by a loopback name (or one in `allowed_hosts`)."""
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise OptionError(f"invalid port={port!r} from looseends.serve(): expected 0-65535")
    token = check_token(token, "looseends.serve()")
    if not isinstance(host, str) or not host:
        raise OptionError(f"invalid host={host!r} from looseends.serve(): expected an address")
    if not is_loopback(host) and token is None:
        raise OptionError(
            f"refusing to serve on {host!r} without a token: the pages show every stack of this process. "
            "Pass token=... (every request must then present it), or bind to 127.0.0.1."
        )
    prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
    allowed = frozenset({*LOOPBACK_NAMES, host.lower(), *(name.lower() for name in allowed_hosts)})
    cleanup = ExitStack()
    try:
        server = _Server((host, port), _handler(prefix, token, allowed))
        cleanup.callback(server.server_close)
        cleanup.enter_context(tracking())
        thread = threading.Thread(target=server.serve_forever, name=THREAD_NAME, daemon=True)
        thread.start()
        cleanup.callback(thread.join, 5)
        cleanup.callback(server.shutdown)
        sampling.enter(sample_report)  # the web page's last hour
        cleanup.callback(sampling.leave)
    except BaseException:
        cleanup.close()
        raise
    live = LiveServer(server, prefix, cleanup)
    _serving.add(live)
    return live


def _handler(prefix: str, token: str | None, allowed: frozenset[str]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "looseends"
        timeout = READ_TIMEOUT

        def setup(self) -> None:
            super().setup()
            self.rfile = io.BytesIO(_request_head(self.connection, REQUEST_DEADLINE))
            self.connection.settimeout(READ_TIMEOUT)

        def _answer(self) -> None:
            threading.current_thread().name = f"{THREAD_NAME}-request"
            path, _, query = self.path.partition("?")
            if prefix and not (path == prefix or path.startswith(prefix + "/")):
                response = Response(404, f"not found; the pages are under {prefix}/\n".encode())
            else:
                headers = request_headers(self.headers.items())
                page = path[len(prefix) :] or "/"
                response = respond(
                    self.command, page, query, headers, token=token, allowed_hosts=allowed, base=prefix
                )
            self.send_response(response.status)
            self.send_header("Content-Type", response.content_type)
            self.send_header("Content-Length", str(len(response.body)))
            for name, value in response.headers:
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(response.body)

        def __getattr__(self, name: str) -> Any:
            if name.startswith("do_"):  # every method gets the pages' own answer (405 but for GET and HEAD)
                return self._answer
            raise AttributeError(name)

        def log_message(self, format: str, *args: Any) -> None:  # the host's stderr is not ours to fill
            pass

    return Handler
