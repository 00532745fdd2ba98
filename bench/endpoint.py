"""Figure 8: the endpoint under abuse, in a busy host.

1. serve() in a host with 5,000 blocked threads; 200 clients ask for /dump at once. Every request must be
   answered (200, or 503 with Retry-After); the host's own heartbeat (a thread ticking every 10 ms) must
   never stall for 0.5 s; its memory must stay bounded.
2. asgi_app() on a loop with 50,000 pending tasks; 20 requests at once. The loop's heartbeat (a task
   ticking every 10 ms) shows how long the loop is blocked while dumps are built.

    python bench/endpoint.py
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
import time
import urllib.error
import urllib.request

from common import table

HOST = textwrap.dedent(
    """
    import json, resource, sys, threading, time
    import looseends

    release = threading.Event()
    for n in range(5000):
        threading.Thread(target=release.wait, name=f"blocked-{n}", daemon=True).start()
    lag = [0.0]

    def heartbeat():
        last = time.monotonic()
        while not release.is_set():
            release.wait(0.01)
            now = time.monotonic()
            lag[0] = max(lag[0], now - last - 0.01)
            last = now

    threading.Thread(target=heartbeat, name="heartbeat", daemon=True).start()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    live = looseends.serve()
    print(live.url, flush=True)
    sys.stdin.readline()  # the load is done
    print(json.dumps({"lag": lag[0], "rss_before_kb": rss_before,
                      "rss_peak_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}), flush=True)
    release.set()
    """
)


def _request(url: str, codes: list[int], seconds: list[float]) -> None:
    start = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=300) as response:
            response.read()
            codes.append(response.status)
    except urllib.error.HTTPError as exc:
        codes.append(exc.code)
    except OSError:
        codes.append(0)  # refused or reset: not answered
    seconds.append(time.perf_counter() - start)


def served_under_load(clients: int = 200) -> dict[str, float]:
    host = subprocess.Popen(
        [sys.executable, "-c", HOST], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert host.stdout is not None
    assert host.stdin is not None
    url = host.stdout.readline().strip() + "dump"
    codes: list[int] = []
    seconds: list[float] = []
    started = time.perf_counter()
    threads = [threading.Thread(target=_request, args=(url, codes, seconds)) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    host.stdin.write("done\n")
    host.stdin.flush()
    facts = json.loads(host.stdout.readline())
    host.wait(60)
    return {
        "ok": codes.count(200),
        "busy": codes.count(503),
        "unanswered": len([c for c in codes if c not in (200, 503)]),
        "slowest": max(seconds),
        "elapsed": elapsed,
        "lag": facts["lag"],
        "rss_growth_mb": (facts["rss_peak_kb"] - facts["rss_before_kb"]) / 1024,
    }


async def _asgi_lag(requests: int = 20, tasks: int = 50_000) -> dict[str, float]:
    import looseends

    app = looseends.asgi_app()
    event = asyncio.Event()
    pending = [asyncio.create_task(event.wait()) for _ in range(tasks)]
    await asyncio.sleep(0)
    lag = 0.0
    stop = False

    async def heartbeat() -> None:
        nonlocal lag
        last = time.monotonic()
        while not stop:
            await asyncio.sleep(0.01)
            now = time.monotonic()
            lag = max(lag, now - last - 0.01)
            last = now

    async def request() -> int:
        sent: list[dict[str, object]] = []

        async def receive() -> dict[str, object]:
            return {"type": "http.request"}

        async def send(message: dict[str, object]) -> None:
            sent.append(message)

        scope = {"type": "http", "method": "GET", "path": "/dump", "headers": [], "query_string": b""}
        await app(scope, receive, send)
        return int(sent[0]["status"])  # type: ignore[call-overload]

    beat = asyncio.create_task(heartbeat())
    started = time.perf_counter()
    codes = await asyncio.gather(*(request() for _ in range(requests)))
    elapsed = time.perf_counter() - started
    stop = True
    await beat
    event.set()
    await asyncio.gather(*pending)
    return {"ok": codes.count(200), "busy": codes.count(503), "elapsed": elapsed, "lag": lag}


def run() -> tuple[str, dict[str, float]]:
    served = served_under_load()
    asgi = asyncio.run(_asgi_lag())
    rows = [
        [
            "serve(), 5,000 blocked threads, 200 clients at once",
            f"{served['ok']:.0f} x 200, {served['busy']:.0f} x 503, {served['unanswered']:.0f} unanswered",
            f"{served['slowest']:.1f} s",
            f"{served['lag'] * 1000:.0f} ms",
            f"{served['rss_growth_mb']:.0f} MB",
        ],
        [
            "asgi_app(), 50,000 pending tasks, 20 requests at once",
            f"{asgi['ok']:.0f} x 200, {asgi['busy']:.0f} x 503",
            f"{asgi['elapsed']:.1f} s (all)",
            f"{asgi['lag'] * 1000:.0f} ms (event loop)",
            "-",
        ],
    ]
    text = table(["load", "answers", "slowest answer", "host's worst stall", "host memory growth"], rows)
    return text, {"unanswered": served["unanswered"], "lag": served["lag"], "asgi_lag": asgi["lag"]}


if __name__ == "__main__":
    print(run()[0])
