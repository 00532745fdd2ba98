"""The inspection pages, independent of any server: `serve()`, the ASGI app and the WSGI app all call
`respond()`. Only GET; a bad query is a 400 that says why; with a token, every request must present it
(`Authorization: Bearer TOKEN` or `?token=TOKEN`); bodies are bounded; nothing here takes a lock the
inspected program could hold, and no local variable is ever shown.

Pages, under the mount prefix:

    /                 index
    /dump             grouped dump with counts (pprof goroutine debug=1); debug=2 lists every unit
                      format=json for the looseends.report schema; kind=thread,task,process and
                      blocked_on=GLOB (a blocked-on code such as queue.*) filter
"""

from __future__ import annotations

import fnmatch
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs

from looseends._find import snapshot
from looseends.model import Kind, Snapshot
from looseends.report import Report

MAX_BODY = 4 * 1024 * 1024
OWN_THREADS = "looseends-http"  # serve()'s thread and its request threads
PARAMETERS = frozenset({"debug", "format", "kind", "blocked_on", "proven", "token"})
INDEX = """looseends: live threads, asyncio tasks and child processes of this process

  dump                      grouped dump with counts (like pprof goroutine?debug=1)
  dump?debug=2              every unit in full: state, blocked-on, age, created by
  dump?format=json          the same as JSON (looseends.report schema, version 1)
  dump?kind=task            only tasks (thread, task, process; comma-separated)
  dump?blocked_on=queue.*   only units whose blocked-on code matches the glob
  dump?proven=1             only units proven stuck forever (like /debug/pprof/goroutineleak)
"""


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
            404: "Not Found",
            405: "Method Not Allowed",
        }.get(self.status, "Internal Server Error")


def _text(status: int, text: str, *headers: tuple[str, str]) -> Response:
    return Response(status, text.encode(), headers=headers)


class BadQuery(ValueError):
    """A query the pages do not understand; the message is sent back with a 400."""


@dataclass(frozen=True)
class Query:
    debug: int = 1
    json: bool = False
    kinds: frozenset[Kind] | None = None
    blocked_on: str | None = None
    proven: bool = False

    @classmethod
    def parse(cls, query_string: str) -> Query:
        try:
            raw = parse_qs(query_string, keep_blank_values=True, strict_parsing=False, max_num_fields=32)
        except ValueError as exc:
            raise BadQuery(f"malformed query: {exc}") from None
        unknown = sorted(set(raw) - PARAMETERS)
        if unknown:
            raise BadQuery(f"unknown parameter {unknown[0]!r}; known: {', '.join(sorted(PARAMETERS))}")
        values = {name: items[-1] for name, items in raw.items()}
        debug = values.get("debug", "1")
        if debug not in ("1", "2"):
            raise BadQuery(f"debug={debug!r}: expected 1 (grouped) or 2 (every unit)")
        form = values.get("format", "text")
        if form not in ("text", "json"):
            raise BadQuery(f"format={form!r}: expected text or json")
        kinds = None
        if "kind" in values:
            try:
                kinds = frozenset(Kind(k.strip()) for k in values["kind"].split(",") if k.strip())
            except ValueError:
                raise BadQuery(f"kind={values['kind']!r}: expected thread, task or process") from None
        proven = values.get("proven", "0")
        if proven not in ("0", "1"):
            raise BadQuery(f"proven={proven!r}: expected 1 (only proven leaks) or 0")
        return cls(int(debug), form == "json", kinds, values.get("blocked_on") or None, proven == "1")

    def select(self, snapshot: Snapshot) -> Report:
        """The units asked for; never the endpoint's own threads, which come and go with requests."""
        units = [
            unit
            for unit in snapshot.units
            if not unit.name.startswith(OWN_THREADS)
            and (self.kinds is None or unit.kind in self.kinds)
            and (self.blocked_on is None or fnmatch.fnmatchcase(unit.blocked_on.code, self.blocked_on))
            and (not self.proven or unit.proof is not None)
        ]
        return Report.from_units(units, now=snapshot.taken_at, errors=snapshot.errors, max_groups=10_000)


def authorized(token: str | None, headers: Mapping[str, str], query_string: str) -> bool:
    if token is None:
        return True
    offered = ""
    bearer = headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        offered = bearer[7:].strip()
    else:
        offered = (parse_qs(query_string).get("token") or [""])[-1]
    return hmac.compare_digest(offered.encode(), token.encode())


def respond(
    method: str,
    path: str,
    query_string: str,
    headers: Mapping[str, str],
    *,
    token: str | None = None,
    _snapshot: Callable[..., Snapshot] = snapshot,
) -> Response:
    """One request, already stripped of the mount prefix. Header names are lower-case."""
    if method not in ("GET", "HEAD"):
        return _text(405, "only GET is served here\n", ("Allow", "GET"))
    if not authorized(token, headers, query_string):
        return _text(401, "a token is required: Authorization: Bearer TOKEN, or ?token=TOKEN\n")
    route = path.rstrip("/") or "/"
    if route == "/":
        return _text(200, INDEX)
    if route != "/dump":
        return _text(404, f"no page {path!r}; see / for the pages\n")
    try:
        query = Query.parse(query_string)
    except BadQuery as exc:
        return _text(400, f"{exc}\n")
    try:
        report = query.select(_snapshot(proven_only=query.proven))
    except Exception as exc:  # never let an inspection take the host down
        return _text(500, f"could not take a snapshot: {type(exc).__name__}: {exc}\n")
    if query.json:
        return Response(200, _bounded_json(report), "application/json")
    return Response(200, _bounded_text(report.render(full=query.debug == 2, title="looseends dump")))


def _bounded_text(text: str) -> bytes:
    body = text.encode()
    if len(body) <= MAX_BODY:
        return body
    cut = body[:MAX_BODY].rsplit(b"\n", 1)[0]
    return cut + f"\n... truncated at {MAX_BODY} bytes; filter with kind= or blocked_on=\n".encode()


def _bounded_json(report: Report) -> bytes:
    data = report.to_dict()
    groups = list(data["groups"])  # type: ignore[call-overload]
    body = json.dumps(data).encode()
    while len(body) > MAX_BODY and groups:
        groups = groups[: len(groups) // 2]
        data["groups"] = groups
        data["truncated"] = True
        body = json.dumps(data).encode()
    return body
