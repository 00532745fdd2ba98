"""The inspection pages, independent of any server: `serve()`, the ASGI app and the WSGI app all call
`respond()`. Only GET and HEAD (405 otherwise); a bad query is a 400 that says why; with a token, every
request must present it (`Authorization: Bearer TOKEN` or `?token=TOKEN`); without one, only requests
naming an allowed host (loopback names for `serve()`) are answered, so a page in a browser cannot read
the dump through DNS rebinding. Bodies are bounded; one snapshot runs at a time, and a request that cannot
get its turn within a moment gets 503 with Retry-After; queries are bounded in length. Nothing here takes
a lock the inspected program could hold, and no local variable is ever shown.

Pages, under the mount prefix:

    /                 index (text); a web page of the last hour for a browser (Accept: text/html,
                      or ?view=html)
    /dump             grouped dump with counts (pprof goroutine debug=1); debug=2 lists every unit
                      format=json for the looseends.report schema; kind=thread,task,process and
                      blocked_on=GLOB (a blocked-on code such as queue.*) filter
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from looseends._text import printable
from looseends.core.find import snapshot
from looseends.errors import OptionError
from looseends.model import Snapshot
from looseends.report import Report
from looseends.selection import Selection, parse_kinds

__all__ = [
    "LOOPBACK_NAMES",
    "MAX_BODY",
    "Response",
    "check_token",
    "request_headers",
    "respond",
    "sample_report",
]

MAX_BODY = 4 * 1024 * 1024
MAX_QUERY = 1024  # characters: every legitimate query is far shorter
SNAPSHOT_WAIT = 2.0  # seconds a request waits for the snapshot in progress before a 503
RETRY_AFTER = "1"
PARAMETERS = frozenset({"debug", "format", "kind", "blocked_on", "proven", "token", "view"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
INDEX = """looseends: live threads, asyncio tasks and child processes of this process

  dump                      grouped dump with counts (like pprof goroutine?debug=1)
  dump?debug=2              every unit in full: state, blocked-on, age, created by
  dump?format=json          the same as JSON (looseends.report schema, version 1)
  dump?kind=task            only tasks (thread, task, process, greenlet; comma-separated)
  dump?blocked_on=queue.*   only units whose blocked-on code matches the glob
  dump?proven=1             only units proven stuck forever (like /debug/pprof/goroutineleak)
  ?view=html                this index as a web page: the last hour by place, the growing ones first
"""

# The page runs no script and loads nothing: a policy that forbids both, should a name slip through.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:"
_one_snapshot = threading.Lock()  # one snapshot at a time, whichever server asks


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: tuple[tuple[str, str], ...] = field(default=())

    @property
    def reason(self) -> str:
        return {
            200: "OK",
            400: "Bad Request",
            401: "Unauthorized",
            403: "Forbidden",
            404: "Not Found",
            405: "Method Not Allowed",
            414: "URI Too Long",
            503: "Service Unavailable",
        }.get(self.status, "Internal Server Error")


def _text(status: int, text: str, *headers: tuple[str, str]) -> Response:
    return Response(status, text.encode(), headers=headers)


class BadQuery(ValueError):
    """A query the pages do not understand; the message is sent back with a 400."""


@dataclass(frozen=True)
class Query:
    debug: int = 1
    json: bool = False
    selection: Selection = field(default_factory=Selection)

    @classmethod
    def parse(cls, query_string: str) -> Query:
        try:
            raw = parse_qs(query_string, keep_blank_values=True, strict_parsing=False, max_num_fields=32)
        except ValueError as exc:
            raise BadQuery(f"malformed query: {exc}") from None
        unknown = sorted(set(raw) - PARAMETERS)
        if unknown:
            raise BadQuery(f"unknown parameter {unknown[0][:40]!r}; known: {', '.join(sorted(PARAMETERS))}")
        values = {name: items[-1] for name, items in raw.items()}
        debug = values.get("debug", "1")
        if debug not in ("1", "2"):
            raise BadQuery(f"debug={debug[:40]!r}: expected 1 (grouped) or 2 (every unit)")
        form = values.get("format", "text")
        if form not in ("text", "json"):
            raise BadQuery(f"format={form[:40]!r}: expected text or json")
        kinds = None
        if "kind" in values:
            try:
                kinds = parse_kinds(values["kind"])
            except ValueError as exc:
                raise BadQuery(str(exc)[:200]) from None
        proven = values.get("proven", "0")
        if proven not in ("0", "1"):
            raise BadQuery(f"proven={proven[:40]!r}: expected 1 (only proven leaks) or 0")
        selection = Selection(kinds, values.get("blocked_on") or None, proven == "1")
        return cls(int(debug), form == "json", selection)


def authorized(token: str | None, headers: Mapping[str, str], query_string: str) -> bool:
    if token is None:
        return True
    offered = ""
    bearer = headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        offered = bearer[7:].strip()
    else:
        offered = (parse_qs(query_string, max_num_fields=32).get("token") or [""])[-1]
    return hmac.compare_digest(offered.encode(), token.encode())


def host_allowed(headers: Mapping[str, str], allowed: Collection[str] | None) -> bool:
    """The Host header names an allowed host (any port); no Host header (HTTP/1.0) is allowed."""
    if allowed is None or "host" not in headers:
        return True
    host = headers["host"].strip().lower()
    if host.startswith("["):  # [::1]:8080
        name = host[1 : host.find("]")] if "]" in host else host
    else:
        name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name in allowed


def check_token(token: object, source: str) -> str | None:
    """A token is a string of at least 16 characters, or None for none."""
    if token is None:
        return None
    if not isinstance(token, str) or len(token) < 16:
        raise OptionError(f"invalid token from {source}: expected a string of at least 16 characters")
    return token


def request_headers(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Header names lower-cased; a repeated header's values joined with ", " as HTTP reads them, so
    that no front end lets the last of two Host headers decide (`respond` refuses a repeated Host)."""
    headers: dict[str, str] = {}
    for name, value in pairs:
        key = name.lower()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def respond(
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    *,
    token: str | None = None,
    allowed_hosts: Collection[str] | None = None,
    base: str = "",
    _snapshot: Callable[..., Snapshot] = snapshot,
) -> Response:
    """One request, already stripped of the mount prefix (`base`, as the client reached it, for the
    web page's links). Header names are lower-case.

    `allowed_hosts` applies only without a token: a server that anyone may reach on loopback answers
    only requests addressed to it by a loopback name."""
    refused = _refusal(method, query_string, headers, token, allowed_hosts)
    if refused is not None:
        return refused
    route = path.rstrip("/") or "/"
    if route == "/":
        if not _wants_page(headers, query_string):
            return _text(200, INDEX)
        return _web_page(headers, query_string, base, _snapshot)
    if route != "/dump":
        return _text(404, "no such page; see / for the pages\n")
    try:
        query = Query.parse(query_string)
    except BadQuery as exc:
        return _text(400, f"{exc}\n")
    taken = _snapshot_or_refusal(_snapshot, query.selection.proven)
    if isinstance(taken, Response):
        return taken
    report = query.selection.select(taken)
    if query.selection == Selection():  # the whole process: a sample for the web page's chart
        from looseends.frontends.history import sampling

        sampling.history.note(report)
    if query.json:
        return Response(200, _bounded_json(report), "application/json")
    return Response(200, _bounded_text(report.render(full=query.debug == 2, title="looseends dump")))


def sample_report() -> Report:
    """A snapshot for the page's history, sharing the endpoint's one-at-a-time turn (TimeoutError when
    a dump held it too long: a skipped sample)."""
    taken = _shared_snapshot(snapshot, False)
    if taken is None:
        raise TimeoutError("another dump held the turn")
    return Selection().select(taken)


def _wants_page(headers: Mapping[str, str], query_string: str) -> bool:
    """A browser asks for HTML first; `?view=html` asks for the page from anywhere."""
    view = (parse_qs(query_string, max_num_fields=32).get("view") or [""])[-1]
    if view:
        return view == "html"
    accepted = [part.split(";")[0].strip() for part in headers.get("accept", "").split(",")]
    return bool(accepted) and accepted[0] in ("text/html", "application/xhtml+xml")


def _web_page(
    headers: Mapping[str, str], query_string: str, base: str, take: Callable[..., Snapshot]
) -> Response:
    from looseends.frontends.history import sampling
    from looseends.frontends.html_page import page

    taken = _snapshot_or_refusal(take, False)
    if isinstance(taken, Response):
        return taken
    report = Selection().select(taken)
    history = sampling.history
    history.note(report)
    times, series, growing = history.view()
    host = printable(headers.get("host", "127.0.0.1"), 200)
    url = f"http://{host}{base.rstrip('/')}/"
    given = (parse_qs(query_string, max_num_fields=32).get("token") or [""])[-1] or None
    body = page(report, times, series, growing, url, given).encode()
    return Response(200, body, "text/html; charset=utf-8", (("Content-Security-Policy", CSP),))


def _refusal(
    method: str,
    query_string: str,
    headers: Mapping[str, str],
    token: str | None,
    allowed_hosts: Collection[str] | None,
) -> Response | None:
    """Why a request is turned away before any page is looked at, or None to go on."""
    if method not in ("GET", "HEAD"):
        return _text(405, "only GET and HEAD are served here\n", ("Allow", "GET, HEAD"))
    if len(query_string) > MAX_QUERY:
        return _text(414, f"query longer than {MAX_QUERY} characters\n")
    if "," in headers.get("host", ""):  # two Host headers, joined: which one the request means is unknown
        return _text(400, "one Host header, please\n")
    if not authorized(token, headers, query_string):
        return _text(401, "a token is required: Authorization: Bearer TOKEN, or ?token=TOKEN\n")
    if token is None and not host_allowed(headers, allowed_hosts):
        return _text(403, "this endpoint answers only requests addressed to a loopback name\n")
    return None


def _snapshot_or_refusal(take: Callable[..., Snapshot], proven: bool) -> Snapshot | Response:
    """The shared snapshot, or the answer that says why there is none (500: it failed; 503: busy)."""
    try:
        taken = _shared_snapshot(take, proven)
    except Exception as exc:  # never let an inspection take the host down
        return _text(500, f"could not take a snapshot: {type(exc).__name__}: {printable(str(exc), 200)}\n")
    if taken is None:
        return _text(503, "another dump is being taken; try again\n", ("Retry-After", RETRY_AFTER))
    return taken


def _shared_snapshot(take: Callable[..., Snapshot], proven: bool) -> Snapshot | None:
    """One snapshot at a time; requests that waited for it share a snapshot begun after they arrived (as
    fresh as one of their own), so a burst of requests costs a few snapshots, not one each. None when the
    turn does not come within SNAPSHOT_WAIT."""
    arrived = time.monotonic()
    if not _one_snapshot.acquire(timeout=SNAPSHOT_WAIT):
        return None
    try:
        key = (take, proven)
        begun, shared = _latest.get(key, (0.0, None))
        if shared is not None and begun >= arrived:
            return shared
        begun = time.monotonic()
        taken = take(proven=proven)
        _latest.clear()  # keep one: a snapshot holds no frames, but need not outlive its burst
        _latest[key] = (begun, taken)
        return taken
    finally:
        _one_snapshot.release()


_latest: dict[tuple[Callable[..., Snapshot], bool], tuple[float, Snapshot]] = {}


def _bounded_text(text: str) -> bytes:
    body = text.encode()
    if len(body) <= MAX_BODY:
        return body
    cut = body[:MAX_BODY].rsplit(b"\n", 1)[0]
    return cut + f"\n... truncated at {MAX_BODY} bytes; filter with kind= or blocked_on=\n".encode()


def _bounded_json(report: Report) -> bytes:
    """The report as JSON within MAX_BODY. Too large, it keeps every group it can, largest first, and cuts
    their unit lists instead (each group's `count` stays true); `truncated` says so."""
    data = report.to_dict()
    body = json.dumps(data).encode()
    if len(body) <= MAX_BODY:
        return body
    data["truncated"] = True
    groups: list[dict[str, object]] = list(data["groups"])  # type: ignore[call-overload]
    full_units = [group["units"] for group in groups]
    kept = len(groups)
    limit = max((len(units) for units in full_units), default=0)  # type: ignore[arg-type]
    while True:
        limit = limit // 4
        for group, units in zip(groups, full_units, strict=True):
            group["units"] = units[: max(limit, 1)]  # type: ignore[index]
        data["groups"] = groups[:kept]
        body = json.dumps(data).encode()
        if len(body) <= MAX_BODY:
            return body
        if limit <= 1:
            if kept <= 1:
                data["groups"] = []  # one group's stack alone is over the limit: say so rather than fail
                return json.dumps(data).encode()
            kept //= 2  # smallest groups go first: they are last
