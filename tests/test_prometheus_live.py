"""The shipped alert against a real Prometheus server scraping two instrumented processes on loopback.

The rules are the shipped ones with their windows shortened (30m -> 15s, 5m -> 3s, for 10m -> 0s, at
least 20 -> 3), so the same PromQL runs in seconds; one process leaks a stuck thread every 0.2 s, the
other holds five stuck threads that never change. The alert must come for the leaking process only.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import pytest

SERVICE = """
import queue, sys, threading
import prometheus_client
from looseends import prometheus

prometheus.register()
server, _ = prometheus_client.start_http_server(0, addr="127.0.0.1")
print(server.server_port, flush=True)
full = queue.Queue(maxsize=1)
full.put(0)
stop = threading.Event()
for _ in range(5):  # a stable group above the alert's minimum size: only growth may make it fire
    threading.Thread(target=stop.wait, name="steady", daemon=True).start()
while not stop.wait(0.2):  # the service's own pace
    if sys.argv[1] == "leak":
        threading.Thread(target=full.put, args=(1,), name="stuck-sender", daemon=True).start()
"""
FAST = {"[30m]": "[15s]", "[30m:1m]": "[15s:1s]", "offset 5m": "offset 3s", "for: 10m": "for: 0s"}
DEADLINE = 90.0  # seconds for Prometheus to start, scrape, and evaluate the alert


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def services(tmp_path: Path) -> Iterator[dict[str, str]]:
    script = tmp_path / "service.py"
    script.write_text(SERVICE)
    processes = {
        mode: subprocess.Popen([sys.executable, str(script), mode], stdout=subprocess.PIPE, text=True)
        for mode in ("leak", "steady")
    }
    try:
        yield {mode: f"127.0.0.1:{p.stdout.readline().strip()}" for mode, p in processes.items() if p.stdout}
    finally:
        for process in processes.values():
            process.kill()
            process.wait(10)


def _alerts(port: int) -> list[dict[str, object]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v1/alerts", timeout=5) as response:
        return list(json.load(response)["data"]["alerts"])


def test_a_real_prometheus_alerts_on_the_leaking_process_only(
    tmp_path: Path, services: dict[str, str]
) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("the prometheus server is missing: apt-get install prometheus (.ci/run does)")
    rules = resources.files("looseends.frontends").joinpath("prometheus_rules.yml").read_text()
    for slow, fast in FAST.items():
        rules = rules.replace(slow, fast)
    rules = rules.replace("looseends_group_units >= 20", "looseends_group_units >= 3")
    (tmp_path / "rules.yml").write_text(rules)
    targets = json.dumps([services["leak"], services["steady"]])
    (tmp_path / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "rule_files: [rules.yml]\n"
        f"scrape_configs:\n  - job_name: svc\n    static_configs:\n      - targets: {targets}\n"
    )
    port = _free_port()
    server = subprocess.Popen(
        [
            binary,
            "--config.file=prometheus.yml",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        alerting: set[str] = set()
        deadline = time.monotonic() + DEADLINE
        while not alerting and time.monotonic() < deadline and server.poll() is None:
            try:
                alerts = _alerts(port)
            except OSError:  # not listening yet
                alerts = []
            alerting = {
                str(a["labels"]["instance"])
                for a in alerts
                if a["labels"]["alertname"] == "LooseEndsGroupKeepsGrowing"
            }  # type: ignore[index]
            if not alerting:
                time.sleep(1)  # polling a separate server's evaluation cycle, bounded by DEADLINE
        assert server.poll() is None, server.stderr.read() if server.stderr else ""
        assert alerting == {services["leak"]}
        (alert,) = [a for a in _alerts(port) if a["labels"]["instance"] == services["leak"]]  # type: ignore[index]
        assert alert["labels"]["blocked_on"] == "queue.put"  # type: ignore[index]
        assert "looseends dump http://" in alert["annotations"]["runbook"]  # type: ignore[index]
    finally:
        server.kill()
        server.wait(10)
