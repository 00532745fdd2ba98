"""Attach through a borrowed thread, again and again, into a target that checks its own work.

The target runs four CPU-busy threads that keep recomputing float sums and copying and comparing
buffers (the C code behind them uses the SSE/AVX registers the trampoline must give back intact), two
threads that sleep a millisecond at a time, one blocked in `queue.get`, one in `select`, one sending
the process a real-time signal every 2 ms (they queue, and the C handler writes a byte for each to the
wake-up fd: none may be lost while a thread is stopped or borrowed), and a main thread in a short sleep
loop; its switch interval is 1 µs. Each round attaches with `--via thread` and
checks the report. At the end the target says how many of its own checks failed, which of our modules
it still holds and how many anonymous executable pages it has (a trampoline left behind).

    python bench/attach_race.py --rounds 500
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from looseends.attach import AttachError, attach

TARGET = """
import json, math, os, queue, select, signal, socket, sys, threading, time
sys.setswitchinterval(1e-6)
wakeups, wake_writes = os.pipe()
os.set_blocking(wake_writes, False)
os.set_blocking(wakeups, False)
signal.signal(signal.SIGRTMIN, lambda *_: None)
signal.set_wakeup_fd(wake_writes)  # the C handler writes a byte for every delivery: an exact count
stop = sys.argv[1]
failures = []
checks = [0]
WANT = math.fsum(math.sqrt(i) * 1.000001 for i in range(2000))
BLOCK = bytes(range(256)) * 64

def busy():
    while not os.path.exists(stop):
        if math.fsum(math.sqrt(i) * 1.000001 for i in range(2000)) != WANT:
            failures.append("float")
        copy = bytearray(BLOCK)
        if bytes(copy) != BLOCK or copy.hex()[:8] != "00010203":
            failures.append("copy")
        checks[0] += 1

def napper():
    while not os.path.exists(stop):
        time.sleep(0.001)

sent = [0]
def signaller():  # real-time signals queue: each one sent must arrive, none lost while a thread is ours
    while not os.path.exists(stop):
        os.kill(os.getpid(), signal.SIGRTMIN)
        sent[0] += 1
        time.sleep(0.002)

inbox = queue.Queue()
left, right = socket.socketpair()
threads = [threading.Thread(target=busy, daemon=True) for _ in range(4)]
threads += [threading.Thread(target=napper, daemon=True) for _ in range(2)]
threads += [threading.Thread(target=signaller, daemon=True, name="signaller")]
threads += [threading.Thread(target=inbox.get, daemon=True, name="inbox")]
threads += [threading.Thread(target=select.select, args=([left], [], []), daemon=True, name="selecting")]
for thread in threads:
    thread.start()
print(json.dumps({"threads": threading.active_count()}), flush=True)
received = 0
def drain():
    global received
    while True:
        try:
            received += len(os.read(wakeups, 65536))
        except BlockingIOError:
            return

while not os.path.exists(stop):
    time.sleep(0.005)
    drain()  # the wake-up pipe holds 64 KB
inbox.put(None)
right.send(b"x")
for thread in threads:
    thread.join()
drain()
ours = sorted(m for m in sys.modules if m.partition(".")[0] in ("looseends", "psutil"))
with open(f"/proc/{os.getpid()}/maps") as maps:
    pages = sum(1 for line in maps if line.split()[1] == "r-xp" and len(line.split()) == 5)
end = {"failures": failures[:5], "checks": checks[0], "ours": ours, "code_pages": pages}
end.update(signals_sent=sent[0], signals_handled=received)
print(json.dumps(end), flush=True)
"""


def run(rounds: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as where:
        script, stop = Path(where, "target.py"), Path(where, "stop")
        script.write_text(TARGET)
        target = subprocess.Popen([sys.executable, str(script), str(stop)], stdout=subprocess.PIPE, text=True)
        try:
            assert target.stdout is not None
            threads = json.loads(target.stdout.readline())["threads"]
            answered, refused, seconds = 0, [], 0.0
            for _ in range(rounds):
                started = time.monotonic()
                try:
                    report = attach(target.pid, via="thread", timeout=10)
                except AttachError as exc:
                    refused.append(str(exc))
                    continue
                seconds = max(seconds, time.monotonic() - started)
                answered += len(report.units) >= threads
                if target.poll() is not None:
                    break
            stop.touch()
            end = json.loads(target.stdout.readline())
            code = target.wait(60)
        finally:
            target.kill()
            target.wait(10)
    return {
        "rounds": rounds,
        "answered": answered,
        "refused": len(refused),
        "first refusal": refused[0] if refused else None,
        "slowest attach s": round(seconds, 3),
        "target exit": code,
        **end,
    }


def clean(result: dict[str, object]) -> bool:
    """Every attach answered, and the target saw nothing of them: its checks, signals and memory."""
    return (
        result["answered"] == result["rounds"]
        and result["target exit"] == 0
        and not result["failures"]
        and not result["ours"]
        and result["code_pages"] == 0
        and result["signals_sent"] == result["signals_handled"]
    )


def table(result: dict[str, object]) -> str:
    """Figure 11 of BENCHMARKS.md."""
    failures = result["failures"]
    assert isinstance(failures, list)
    ours = result["ours"]
    assert isinstance(ours, list)
    rows = [
        ("attaches answered (`--via thread`)", f"{result['answered']} of {result['rounds']}"),
        ("slowest attach", f"{result['slowest attach s']} s"),
        ("the busy threads' checks of their own results", f"{result['checks']:,}, {len(failures)} wrong"),
        ("real-time signals sent / delivered", f"{result['signals_sent']:,} / {result['signals_handled']:,}"),
        (
            "left in the target at the end",
            f"{len(ours)} modules of ours, {result['code_pages']} trampoline pages",
        ),
        ("the target's exit status", str(result["target exit"])),
    ]
    return "| | |\n|---|---|\n" + "\n".join(f"| {name} | {value} |" for name, value in rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=500)
    result = run(parser.parse_args().rounds)
    print(json.dumps(result))
    return 0 if clean(result) else 1


if __name__ == "__main__":
    sys.exit(main())
