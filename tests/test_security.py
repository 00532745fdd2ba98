"""Safe to leave on in production: one regression test per finding of the security and reliability probe.

Each test fails on the code before the fix (see the commit that added it); docs/security.md has the
threat model these tests hold to.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import http.server
import io
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import looseends
from looseends.analysis.glob import glob_match
from looseends.frontends import cli, fetching, http_app, serve
from looseends.model import Frame
from looseends.report_json import report_from_dict
from looseends.sources import _tracking

from leakfixtures import DEADLINE, Cleanup, wait_blocked, wait_until


def get(url: str, timeout: float = 30.0, **headers: str) -> tuple[int, bytes, dict[str, str]]:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    real_err = sys.stderr
    sys.stderr = err
    try:
        status = cli.main(list(args), out=out)
    finally:
        sys.stderr = real_err
    return status, out.getvalue(), err.getvalue()


class Recorder(http.server.BaseHTTPRequestHandler):
    """A tiny HTTP server for tests: answers from `self.server.script(path)` and records headers."""

    def do_GET(self) -> None:
        self.server.seen.append(dict(self.headers))  # type: ignore[attr-defined]
        status, headers, body = self.server.script(self.path)  # type: ignore[attr-defined]
        self.send_response(status)
        for name, value in headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def http_server() -> Iterator[Callable[[Callable[[str], tuple[int, list[tuple[str, str]], bytes]]], str]]:
    servers: list[http.server.HTTPServer] = []

    def start(script: Callable[[str], tuple[int, list[tuple[str, str]], bytes]]) -> str:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
        server.script = script  # type: ignore[attr-defined]
        server.seen = []  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, name="test-http", daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def many_units(count: int) -> looseends.Snapshot:
    stack = (Frame("/app/jobs.py", 12, "wait_for_job", "jobs"),)
    blocked = looseends.BlockedOn("asyncio.event.wait", "asyncio.Event.wait")
    units = tuple(
        looseends.Unit(
            kind=looseends.Kind.TASK, key=("task", n), name=f"job-{n}", stack=stack, blocked_on=blocked
        )
        for n in range(count)
    )
    return looseends.Snapshot(units, time.monotonic())


# High ------------------------------------------------------------------------------------------------


def test_2_a_json_dump_over_the_limit_keeps_its_group_and_says_it_was_truncated(tmp_path: Path) -> None:
    response = http_app.respond("GET", "/dump", "format=json", {}, _snapshot=lambda **_: many_units(50_000))
    assert response.status == 200
    assert len(response.body) <= http_app.MAX_BODY
    data = json.loads(response.body)
    assert data["truncated"] is True
    assert [group["count"] for group in data["groups"]] == [50_000]
    assert 0 < len(data["groups"][0]["units"]) < 50_000
    saved = tmp_path / "dump.json"
    saved.write_bytes(response.body)
    status, out, _ = run_cli("dump", str(saved))
    assert status == 0
    assert "50000 live units in 1 group" in out
    assert "warning: the dump was truncated" in out


def test_3_the_token_never_follows_a_redirect_to_another_origin(http_server: Callable[..., str]) -> None:
    elsewhere = http_server(lambda path: (200, [], b"{}"))
    origin = http_server(lambda path: (302, [("Location", f"{elsewhere}/steal")], b""))
    status, _, err = run_cli("dump", f"{origin}/debug/looseends/", "--token", "t" * 20)
    assert status == 2
    assert "refusing to follow a redirect to another origin" in err
    ftp = http_server(lambda path: (302, [("Location", "ftp://127.0.0.1/x")], b""))
    status, _, err = run_cli("dump", f"{ftp}/debug/looseends/")
    assert status == 2
    assert "not http or https" in err


def test_3_the_token_goes_with_a_redirect_within_its_origin(http_server: Callable[..., str]) -> None:
    report = looseends.Report.from_units([]).to_json().encode()
    seen: list[str] = []

    def script(path: str) -> tuple[int, list[tuple[str, str]], bytes]:
        seen.append(path)
        if path.startswith("/old"):
            return 302, [("Location", "/debug/looseends/dump?format=json")], b""
        return 200, [], report

    base = http_server(script)
    status, out, err = run_cli("dump", f"{base}/old/dump", "--token", "t" * 20)
    assert status == 0, err
    assert "no live units" in out


def test_4_frames_from_input_never_open_local_files(tmp_path: Path) -> None:
    secret = tmp_path / "secret.py"
    secret.write_text("PASSWORD = 'hunter2'\n")
    unit = looseends.Unit(
        kind=looseends.Kind.THREAD,
        key=("thread", 1),
        name="w",
        stack=(Frame(str(secret), 1, "f", "m"),),
        blocked_on=looseends.BlockedOn("event.wait", "threading.Event.wait"),
    )
    data = json.loads(json.dumps(looseends.Report.from_units([unit]).to_dict()).replace("hunter2", "elided"))
    data["groups"][0]["stack"][0]["source"] = "the line as the dump carried it"
    saved = tmp_path / "dump.json"
    saved.write_text(json.dumps(data))
    for args in (("dump", str(saved)), ("dump", str(saved), "--json"), ("dump", str(saved), "--debug", "2")):
        status, out, _ = run_cli(*args)
        assert status == 0
        assert "hunter2" not in out
    assert "the line as the dump carried it" in run_cli("dump", str(saved))[1]
    go = tmp_path / "go.txt"
    go.write_text(f"goroutine 1 [chan send]:\nmain.f()\n\t{secret}:1 +0x1\n")
    status, out, _ = run_cli("dump", str(go), "--debug", "2")
    assert status == 0
    assert "hunter2" not in out


def test_4_devices_and_fifos_are_refused_not_read(tmp_path: Path) -> None:
    status, _, err = run_cli("dump", "/dev/zero")
    assert status == 2
    assert "not a regular file" in err
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    status, _, err = run_cli("dump", str(fifo))  # would block forever if opened for a plain read
    assert status == 2
    assert "not a regular file" in err


# Medium ----------------------------------------------------------------------------------------------


def test_5_secrets_in_command_lines_and_thread_targets_are_masked(cleanup: Cleanup) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()", "--db-password=hunter2", "--token", "s3cr3t"],
        stdin=subprocess.PIPE,
    )
    cleanup(lambda: (child.communicate(b""), child.wait(DEADLINE)))

    def job(password: str, release: threading.Event) -> None:
        release.wait()

    release = threading.Event()
    thread = threading.Thread(
        target=functools.partial(job, "pa55word", release), name="partial-job", daemon=True
    )
    cleanup.stop(release.set, thread)
    thread.start()
    wait_blocked("partial-job", 1, "event.wait")
    snapshot = looseends.snapshot()
    texts = [snapshot.render(debug=2), looseends.Report.from_units(snapshot.units).to_json()]
    for text in texts:
        assert "hunter2" not in text
        assert "s3cr3t" not in text
        assert "pa55word" not in text
    assert "--db-password=***" in texts[0]
    assert "functools.partial(test_security.test_5_secrets" in texts[0]


@pytest.mark.parametrize(
    ("command", "shown"),
    [
        (["curl", "-H", "Authorization: Bearer abc.def", "https://x"], "curl -H Authorization: Bearer *** https://x"),
        ('curl -H "Authorization: Bearer abc.def" https://x', 'curl -H "Authorization: Bearer ***" https://x'),
        (["curl", "-H", "X-Api-Key: abc", "-H", "Cookie: s=abc"], "curl -H X-Api-Key: *** -H Cookie: ***"),
        (["curl", "-u", "me:hunter2", "https://x"], "curl -u me:*** https://x"),
        (["curl", "--user=me:hunter2"], "curl --user=me:***"),
        (["curl", "-ume:hunter2"], "curl -ume:***"),
        (["sshpass", "-p", "hunter2", "ssh", "host"], "sshpass -p *** ssh host"),
        (["sshpass", "-phunter2", "ssh", "host"], "sshpass -p*** ssh host"),
        (["tool", "--pass=hunter2"], "tool --pass=***"),
        (["openssl", "rsa", "-passin", "pass:hunter2"], "openssl rsa -passin ***"),
        (["helm", "--set", "password=hunter2"], "helm --set password=***"),
        (["helm", "--set", "a=1,db.password=hunter2,b=2"], "helm --set a=1,db.password=***,b=2"),
        (["curl", "https://x/?access_token=abc&page=2"], "curl https://x/?access_token=***&page=2"),
        (["app", "--db-password=hunter2", "--token", "s3cr3t"], "app --db-password=*** --token ***"),
        (["PGPASSWORD=hunter2", "psql", "postgres://me:hunter2@h/db"], "PGPASSWORD=*** psql postgres://me:***@h/db"),
        (["mysql", "-phunter2", "db"], "mysql -p*** db"),
        # What looks like a secret only by a few letters stays as it was.
        (["mysql", "-p", "db"], "mysql -p db"),
        (["python", "-u", "app.py", "--bypass-cache", "--pass-through", "--compass"],
         "python -u app.py --bypass-cache --pass-through --compass"),
    ],
)  # fmt: skip
def test_5_credentials_in_the_shapes_command_lines_carry_them_are_masked(
    command: str | list[str], shown: str
) -> None:
    from looseends._redaction import redact_command

    assert redact_command(command) == shown


def test_5_extra_redaction_patterns() -> None:
    from looseends._redaction import _extra, redact_command

    before = list(_extra)
    try:
        looseends.redact(r"--license\s+(?P<secret>\S+)")
        assert redact_command(["tool", "--license", "ABC-123", "--verbose"]) == "tool --license *** --verbose"
    finally:
        _extra[:] = before


def test_6_a_token_less_server_answers_only_loopback_host_names() -> None:
    with looseends.serve() as live:
        assert get(live.url + "dump")[0] == 200
        assert get(live.url + "dump", Host="rebind.attacker.example")[0] == 403
        assert get(live.url + "dump", Host="localhost:1234")[0] == 200


def _raw_request(url: str, head: str) -> bytes:
    """Send `head` as is (urllib would never send two Host headers) and read the whole answer."""
    host, port = url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=DEADLINE) as connection:
        connection.sendall(head.encode("latin-1"))
        return b"".join(iter(lambda: connection.recv(65536), b""))


def test_6_two_host_headers_are_refused_whichever_comes_last() -> None:
    """The last of two Host headers once decided: `Host: localhost` after a rebinding name passed."""
    with looseends.serve() as live:
        for first, second in (
            ("rebind.attacker.example", "localhost"),
            ("localhost", "rebind.attacker.example"),
        ):
            head = (
                f"GET /debug/looseends/dump HTTP/1.1\r\nHost: {first}\r\nHost: {second}\r\n"
                "Connection: close\r\n\r\n"
            )
            assert _raw_request(live.url, head).startswith(b"HTTP/1.0 400"), (first, second)
    app = looseends.asgi_app()
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/dump",
        "query_string": b"",
        "headers": [(b"host", b"rebind.attacker.example"), (b"host", b"localhost")],
    }
    asyncio.run(app(scope, receive, send))
    assert sent[0]["status"] == 400


class LockedName(threading.Thread):
    """A thread whose `name` property takes a lock the thread itself holds while it waits."""

    lock = threading.Lock()

    @property  # type: ignore[override]
    def name(self) -> str:
        with self.lock:
            return "never-read"

    @name.setter
    def name(self, value: str) -> None:
        self._name = value


def test_7_snapshots_never_run_the_programs_code(cleanup: Cleanup) -> None:
    touched: list[str] = []

    class Target:
        def __call__(self) -> None:
            release.wait()

        def __repr__(self) -> str:
            touched.append("repr")
            return "Target()"

        def __getattr__(self, name: str) -> object:
            touched.append(name)
            raise AttributeError(name)

    release = threading.Event()
    holder_ready = threading.Event()

    def hold_the_lock() -> None:
        with LockedName.lock:
            holder_ready.set()
            release.wait()

    thread = LockedName(target=Target(), daemon=True)
    thread.name = "locked-name"
    touched.clear()  # Thread.__init__ itself asks the target for its __name__
    holder = threading.Thread(target=hold_the_lock, name="lock-holder", daemon=True)
    cleanup.stop(release.set, thread, holder)
    holder.start()
    assert holder_ready.wait(DEADLINE)
    thread.start()
    outcome: list[str] = []

    def dump() -> None:  # in a thread: a deadlock here must fail the test, not hang the suite
        outcome.append(looseends.snapshot().render(debug=2))
        with looseends.serve() as live:
            outcome.append(get(live.url + "dump?debug=2")[1].decode())

    worker = threading.Thread(target=dump, name="dumper", daemon=True)
    worker.start()
    worker.join(DEADLINE)
    assert not worker.is_alive(), "a snapshot deadlocked on the program's own lock"
    assert all("locked-name" in text for text in outcome)
    assert touched == []


# Glob bombs, queries and bounded serving --------------------------------------------------------------


def test_8_a_long_query_is_refused_and_globs_take_linear_time() -> None:
    response = http_app.respond("GET", "/dump", "blocked_on=" + "[a" * 20_000, {})
    assert response.status == 414
    assert glob_match("queue.put", "[a" * 400 + "*") is False  # would take seconds with fnmatch


@given(st.text("ab[]!*?-", max_size=12), st.text("ab]-[!", max_size=12))
@example("[?--!]", "[")  # fnmatch drops the empty range ?--, and the ! left leading negates: any char
@settings(max_examples=500, deadline=None)
def test_8_glob_matches_exactly_what_fnmatch_does(pattern: str, text: str) -> None:
    import fnmatch

    assert glob_match(text, pattern) == fnmatch.fnmatchcase(text, pattern)


def test_9_slow_connections_cannot_starve_the_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(serve, "READ_TIMEOUT", 1.0)
    with looseends.serve() as live:
        port = int(live.url.split(":")[2].split("/")[0])
        idle = [socket.create_connection(("127.0.0.1", port)) for _ in range(serve.MAX_CONNECTIONS + 4)]
        try:
            status, _, headers = get(live.url + "dump", timeout=DEADLINE)
            assert status in (200, 503)  # answered at once, never queued behind the slow ones
            if status == 503:
                assert headers.get("Retry-After") == "1"
        finally:
            for connection in idle:
                connection.close()
        wait_until(lambda: get(live.url + "dump", timeout=DEADLINE)[0] == 200, what="a free slot again")


def test_9_clients_dripping_a_byte_at_a_time_cannot_hold_the_slots(
    monkeypatch: pytest.MonkeyPatch, cleanup: Cleanup
) -> None:
    """Each read of theirs arrives well within the read timeout; the request never does."""
    monkeypatch.setattr(serve, "REQUEST_DEADLINE", 1.0)
    stop = threading.Event()

    def drip(port: int) -> None:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port)) as connection:
            connection.sendall(b"GET /debug/looseends/dump HTTP/1.1\r\n")
            while not stop.wait(0.2):  # the pace of a slow client, not a synchronisation
                connection.sendall(b"X")

    with looseends.serve() as live:
        port = int(live.url.split(":")[2].split("/")[0])
        drippers = [
            threading.Thread(target=drip, args=(port,), daemon=True) for _ in range(serve.MAX_CONNECTIONS)
        ]
        cleanup.stop(stop.set, *drippers)
        for dripper in drippers:
            dripper.start()
        wait_until(
            lambda: get(live.url + "dump", timeout=DEADLINE)[0] == 200, what="a slot the drippers lost"
        )
        for dripper in drippers:  # dropped by the server, not stopped by the test
            dripper.join(DEADLINE)
            assert not dripper.is_alive()


def test_9_every_method_gets_an_answer_and_resets_print_nothing() -> None:
    script = (
        "import socket, struct, urllib.request, looseends\n"
        "live = looseends.serve()\n"
        "port = int(live.url.split(':')[2].split('/')[0])\n"
        "for method in ('PUT', 'OPTIONS', 'BREW'):\n"
        "    request = urllib.request.Request(live.url + 'dump', method=method)\n"
        "    try:\n"
        "        urllib.request.urlopen(request, timeout=10)\n"
        "    except urllib.error.HTTPError as exc:\n"
        "        print(method, exc.code)\n"
        "for _ in range(5):\n"
        "    s = socket.create_connection(('127.0.0.1', port))\n"
        "    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))\n"
        "    s.sendall(b'GET /debug/looseends/dump HTTP/1.1\\r\\nHost: localhost\\r\\n\\r\\n')\n"
        "    s.close()\n"
        "live.close()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:3] == ["PUT 405", "OPTIONS 405", "BREW 405"]
    assert done.stderr == ""


def test_10_the_asgi_app_takes_its_snapshot_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    from looseends.frontends import mounts

    threads: list[int] = []

    def recording(*args: object, **kwargs: object) -> http_app.Response:
        threads.append(threading.get_ident())
        return http_app.Response(200, b"ok")

    monkeypatch.setattr(mounts, "respond", recording)
    app = looseends.asgi_app()

    async def request() -> int:
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request"}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/dump", "headers": [], "query_string": b""}
        await app(scope, receive, send)
        return int(sent[0]["status"])  # type: ignore[call-overload]

    loop_thread = threading.get_ident()
    assert asyncio.run(request()) == 200
    assert threads
    assert threads[0] != loop_thread


def test_11_a_protobuf_bomb_is_refused_quickly() -> None:
    import gzip

    from looseends.sources.go_profile import parse_pprof_profile

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n & 0x7F, n >> 7
            out.append(byte | 0x80 if n else byte)
            if not n:
                return bytes(out)

    def message(number: int, payload: bytes) -> bytes:
        return varint(number << 3 | 2) + varint(len(payload)) + payload

    def integer(number: int, value: int) -> bytes:
        return varint(number << 3) + varint(value)

    profile = message(1, integer(1, 1) + integer(2, 2))
    profile += message(5, integer(1, 1) + integer(2, 3) + integer(4, 4))
    profile += message(4, integer(1, 1) + message(4, integer(1, 1) + integer(2, 7)))
    profile += message(2, integer(1, 1) + integer(2, 1)) * 2_000_000
    profile += b"".join(message(6, s) for s in (b"", b"goroutine", b"count", b"main.f", b"main.go"))
    bomb = gzip.compress(profile)
    assert len(bomb) < 64 * 1024
    with pytest.raises(looseends.DumpParseError, match="more than 200,000 samples"):
        parse_pprof_profile(bomb)


# Low -------------------------------------------------------------------------------------------------


class Drip(http.server.BaseHTTPRequestHandler):
    """Promises a large body and sends it a byte at a time, each read well within the read timeout."""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "100000")
        self.end_headers()
        for _ in range(100_000):
            try:
                self.wfile.write(b" ")
                self.wfile.flush()
            except OSError:
                return
            self.server.stopping.wait(0.05)  # type: ignore[attr-defined]  # the server's own pace

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_a_dripping_server_cannot_hang_the_command(monkeypatch: pytest.MonkeyPatch) -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Drip)
    server.stopping = threading.Event()  # type: ignore[attr-defined]
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="test-drip", daemon=True).start()
    monkeypatch.setattr(fetching, "FETCH_DEADLINE", 1.0)
    try:
        status, _, err = run_cli("dump", f"http://127.0.0.1:{server.server_address[1]}/debug/looseends/")
    finally:
        server.stopping.set()  # type: ignore[attr-defined]
        server.shutdown()
        server.server_close()
    assert status == 2
    assert "not complete within 1 s" in err


def test_terminal_escapes_in_names_are_shown_escaped(cleanup: Cleanup) -> None:
    release = threading.Event()
    thread = threading.Thread(target=release.wait, name="evil\x1b[2J\nforged line", daemon=True)
    cleanup.stop(release.set, thread)
    thread.start()
    text = looseends.snapshot().render(debug=2)
    assert "\x1b" not in text
    assert "evil\\x1b[2J\\x0aforged line" in text


@pytest.mark.parametrize("token", ["", "short", 123, b"a-bytes-token-of-20"])
def test_mount_tokens_are_validated(token: object) -> None:
    for make in (looseends.asgi_app, looseends.wsgi_app):
        with pytest.raises(looseends.OptionError, match="at least 16 characters"):
            make(token=token)  # type: ignore[arg-type]


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=30,
    )
)
@settings(max_examples=300, deadline=None)
def test_malformed_reports_give_one_line_errors(data: object) -> None:
    document = {"schema": "looseends.report", "version": 1, "groups": data}
    try:
        report_from_dict(document)
    except ValueError as exc:  # the only exception it may raise
        message = str(exc)
    else:
        message = ""
    assert "\n" not in message


@given(st.text(max_size=200))
@settings(max_examples=300, deadline=None)
def test_query_strings_give_a_page_or_a_short_error(query: str) -> None:
    response = http_app.respond("GET", "/dump", query, {}, _snapshot=lambda **_: many_units(3))
    assert response.status in (200, 400, 414)
    if response.status != 200:
        assert response.body.count(b"\n") == 1


def test_deeply_nested_json_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    status, _, err = run_cli("dump", str(deep))
    assert status == 2
    assert "Traceback" not in err


def test_bad_serve_arguments_and_kinds_are_refused() -> None:
    with pytest.raises(looseends.OptionError, match="port"):
        looseends.serve(port=True)  # type: ignore[arg-type]
    with pytest.raises(looseends.OptionError, match="at least one kind"):
        looseends.find(kinds=[])


def test_dropping_the_server_object_keeps_tracking_on_until_close() -> None:
    live = looseends.serve()
    url = live.url
    del live
    gc.collect()
    assert _tracking.is_tracking()
    assert get(url + "dump")[0] == 200
    next(server for server in serve._serving if server.url == url).close()


def test_run_keeps_the_programs_exit_message_atexit_handlers_and_status(tmp_path: Path) -> None:
    script = tmp_path / "prog.py"
    script.write_text(
        "import atexit, sys, threading\n"
        "atexit.register(lambda: print('atexit ran', flush=True))\n"
        "threading.Thread(target=threading.Event().wait, name='stuck', daemon=True).start()\n"
        "sys.exit('fatal: config missing')\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "looseends", "run", "--timeout", "0.05", str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1
    assert "fatal: config missing" in done.stderr
    assert "atexit ran" in done.stdout
    assert "unit: stuck" in done.stderr
