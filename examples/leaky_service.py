"""A small service with two leaks, to look at with the live endpoint.

    python examples/leaky_service.py [PORT [REQUESTS [PACE]]]     # defaults: 6061, 600, 0.1 s

Each "request" (one every PACE seconds) starts a thread that puts its reply on a full queue nobody
reads (a forgotten sender); an event loop in another thread runs heartbeat tasks, one of which waits
for an Event nobody sets. Then:
`curl -s http://127.0.0.1:6061/debug/looseends/dump` (or `looseends dump URL`, `looseends watch URL`).
"""

from __future__ import annotations

import asyncio
import queue
import sys
import threading

import looseends

replies: queue.Queue[int] = queue.Queue(maxsize=1)


def handle_request(n: int) -> None:
    threading.Thread(target=replies.put, args=(n,), name=f"reply-{n}", daemon=True).start()


def loop_thread() -> None:
    async def heartbeat(period: float) -> None:
        while True:
            await asyncio.sleep(period)

    async def main() -> None:
        beats = [asyncio.create_task(heartbeat(0.5), name=f"heartbeat-{n}") for n in range(3)]
        await asyncio.Event().wait()  # nobody sets it: this task never returns
        await asyncio.gather(*beats)

    asyncio.run(main())


def run(port: int, requests: int, pace: float, stop: threading.Event) -> None:
    live = looseends.serve(port=port)
    print(live.url, flush=True)
    threading.Thread(target=loop_thread, name="event-loop", daemon=True).start()
    for n in range(requests):
        handle_request(n)
        if stop.wait(pace):  # the service's own pace
            break
    stop.wait()
    live.close()


if __name__ == "__main__":
    port, requests, pace = (sys.argv[1:] + ["6061", "600", "0.1"][len(sys.argv) - 1 :])[:3]
    run(int(port), int(requests), float(pace), threading.Event())
