"""Bringing a dump's bytes in: from a URL, a file or standard input, bounded in size and time.

Everything here may face a hostile peer or file:
- URLs are http or https only; redirects are followed only to http or https, and, when a token is sent,
  only to the same scheme, host and port (a token is never forwarded to another origin);
- a whole fetch has one deadline, however slowly the server drips its bytes, and a size cap;
- files must be regular files (never a FIFO that would hang or a device that never ends) within the cap.
"""

from __future__ import annotations

import os
import stat
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from http.client import HTTPMessage
from typing import IO, Any

from looseends._text import printable

__all__ = ["FetchError", "fetch_url", "read_file", "read_stdin"]

MAX_FETCH = 64 * 1024 * 1024
FETCH_DEADLINE = 30.0  # seconds for a whole fetch, connection to last byte
READ_TIMEOUT = 10.0  # seconds any single read may block
CHUNK = 1 << 16


class FetchError(Exception):
    """A dump that could not be brought in; the message says why in one line."""


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follow http(s) redirects; with a token, only within the origin the token was meant for."""

    def __init__(self, origin: tuple[str, str], token: bool) -> None:
        self._origin = origin
        self._token = token

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: HTTPMessage,
        newurl: str,
    ) -> urllib.request.Request | None:
        target = urllib.parse.urlsplit(newurl)
        if target.scheme not in ("http", "https"):
            raise FetchError(f"refusing to follow a redirect to {printable(newurl, 200)}: not http or https")
        if self._token and (target.scheme, target.netloc) != self._origin:
            raise FetchError(
                f"refusing to follow a redirect to another origin ({printable(newurl, 200)}) "
                "with the endpoint's token"
            )
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def fetch_url(url: str, token: str | None) -> bytes:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise FetchError(f"{printable(url, 200)}: only http and https URLs are read")
    opener = urllib.request.build_opener(_Redirects((parts.scheme, parts.netloc), bool(token)))
    request = urllib.request.Request(url)
    if token:
        request.add_unredirected_header("Authorization", f"Bearer {token}")  # never copied onto a redirect
    ends = time.monotonic() + FETCH_DEADLINE
    try:
        with opener.open(request, timeout=READ_TIMEOUT) as response:
            return _read_until(response, ends, url)
    except urllib.error.HTTPError as exc:
        detail = exc.read(2000).decode(errors="replace").strip()
        raise FetchError(f"HTTP {exc.code}: {printable(detail, 300)}") from None
    except urllib.error.URLError as exc:
        raise FetchError(printable(str(exc.reason), 300)) from None
    except (OSError, ValueError) as exc:
        raise FetchError(printable(str(exc), 300)) from None


def _read_until(stream: Any, ends: float, what: str) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        if time.monotonic() > ends:
            raise FetchError(f"{printable(what, 200)}: not complete within {FETCH_DEADLINE:.0f} s")
        chunk = stream.read1(CHUNK)  # what has arrived: a plain read would wait for the whole chunk
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > MAX_FETCH:
            raise FetchError(f"{printable(what, 200)}: larger than {MAX_FETCH // (1024 * 1024)} MiB")
        chunks.append(chunk)


def read_file(path: str) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        raise FetchError(printable(exc.strerror or str(exc), 200)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise FetchError("not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as file:
            data = file.read(MAX_FETCH + 1)
    finally:
        os.close(fd)
    if len(data) > MAX_FETCH:
        raise FetchError(f"larger than {MAX_FETCH // (1024 * 1024)} MiB")
    return data


def read_stdin() -> bytes:
    data = sys.stdin.buffer.read(MAX_FETCH + 1)
    if len(data) > MAX_FETCH:
        raise FetchError(f"larger than {MAX_FETCH // (1024 * 1024)} MiB")
    return data
