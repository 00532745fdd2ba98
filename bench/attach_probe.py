"""Kill the attach at random moments while it holds a thread of its target, and see what the target
saw: the black-box probe of docs/attach.md's promise that an attach never harms its target.

Each round starts `looseends attach PID --via thread` as a user would (a new process), watches the
target's threads in /proc until one is traced (TracerPid), waits a random moment inside the window,
and sends the attach SIGKILL or SIGINT. Real-time signals go to the target at random moments too (at
the kill, and between rounds); real-time signals queue, so each one sent must be handled, in order.

The target checks itself all along and says at the end what it saw: its busy threads recompute float
sums and compare copied buffers (the vector registers a borrowed thread must give back), a thread
sleeps 20 ms at a time and counts sleeps that came back early or raised, a thread reads a pipe fed
with a known pattern and counts reads that came back short, wrong or with an error, and its signal
handler timestamps every delivery. After the rounds the probe waits for whatever an attach left
running in the target to end, then counts what is left of ours: threads still traced, pages of
code, memfds, modules. A round hurts the target if it dies, any check fails, any signal is lost or
handled later than half the attach's time-out after it was sent (a thread or a signal held until the
attach gives up), or anything of ours is left. Before the rounds, signals go to the target with no
attach at all: how late its handler runs on its own (its busy threads hold the GIL the main thread
needs to run it) is the yardstick the rounds' slowest handling is read against.

    python bench/attach_probe.py --rounds 200 --signal KILL
    python bench/attach_probe.py --rounds 200 --signal INT
    python bench/attach_probe.py --rounds 100 --signal KILL --shape single   # the main thread borrowed
    python bench/attach_probe.py --rounds 100 --signal INT --shape timed     # ... in a timed lock wait
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = r"""
import json, math, os, queue, select, signal, socket, sys, threading, time
shape, stop = sys.argv[1], sys.argv[2]
handled = []  # when the Python handler ran (it runs once for deliveries that come close together)
wakeups, wake_writes = os.pipe()  # the C handler writes a byte for every delivery: an exact count
os.set_blocking(wakeups, False)
os.set_blocking(wake_writes, False)
signal.set_wakeup_fd(wake_writes)
delivered = []  # bytes per read: appended, never added to in place, as handlers may nest
def on_signal(*_):
    handled.append(time.monotonic())
    try:
        delivered.append(len(os.read(wakeups, 65536)))
    except BlockingIOError:
        pass
signal.signal(signal.SIGRTMIN + 1, on_signal)
problems = []
checks = [0]
WANT = math.fsum(math.sqrt(i) * 1.000001 for i in range(2000))
BLOCK = bytes(range(256)) * 64

def sleeps(step):  # a sleep must last what it was asked, and never raise
    while not os.path.exists(stop):
        started = time.monotonic()
        try:
            time.sleep(step)
        except OSError as exc:
            problems.append(f"sleep raised {exc!r}")
        if time.monotonic() - started < step:
            problems.append(f"sleep came back after {time.monotonic() - started:.4f} s of {step}")

def timed_waits(step):  # a lock wait with a timeout must last it, never come back early or raise
    held = threading.Lock()
    held.acquire()
    while not os.path.exists(stop):
        started = time.monotonic()
        try:
            if held.acquire(timeout=step):
                problems.append("a timed wait took a lock that is held")
        except OSError as exc:
            problems.append(f"timed wait raised {exc!r}")
        if time.monotonic() - started < step:
            problems.append(f"timed wait came back after {time.monotonic() - started:.4f} s of {step}")

def busy():
    while not os.path.exists(stop):
        if math.fsum(math.sqrt(i) * 1.000001 for i in range(2000)) != WANT:
            problems.append("float sum")
        copy = bytearray(BLOCK)
        if bytes(copy) != BLOCK:
            problems.append("copy")
        checks[0] += 1

reads, writes = os.pipe()
def reader():  # every read returns whole 16-byte records of the known pattern, or the writer's end
    pending = b""
    while True:
        try:
            data = os.read(reads, 4096)
        except OSError as exc:
            problems.append(f"read raised {exc!r}")
            continue
        if not data:
            return
        pending += data
        while len(pending) >= 16:
            if pending[:16] != b"0123456789abcdef":
                problems.append(f"read garbage {pending[:16]!r}")
            pending = pending[16:]

def writer():
    while not os.path.exists(stop):
        os.write(writes, b"0123456789abcdef")
        time.sleep(0.003)
    os.close(writes)

threads = []
if shape == "threads":
    inbox = queue.Queue()
    left, right = socket.socketpair()
    threads += [threading.Thread(target=busy, daemon=True) for _ in range(2)]
    threads += [threading.Thread(target=sleeps, args=(0.02,), daemon=True, name="sleeper")]
    threads += [threading.Thread(target=timed_waits, args=(0.02,), daemon=True, name="timed")]
    threads += [threading.Thread(target=reader, daemon=True), threading.Thread(target=writer, daemon=True)]
    threads += [threading.Thread(target=inbox.get, daemon=True, name="inbox")]
    threads += [threading.Thread(target=select.select, args=([left], [], []), daemon=True)]
    for thread in threads:
        thread.start()
print("ready", flush=True)
if shape == "timed":  # alone, in timed lock waits (a pre-fork master's loop)
    timed_waits(0.05)
elif shape == "threads":  # the main thread, where handlers run, woken by every delivery: a delivery
    # to another thread does not end the main thread's sleep, and a 0.5 s sleep made the handler up to
    # 0.5 s late on its own (the sleeper thread checks sleeps)
    while not os.path.exists(stop):
        select.select([wakeups], [], [], 0.5)
else:  # alone, the borrowed thread: signals are handled here
    sleeps(0.05)
if shape == "threads":
    inbox.put(None)
    right.send(b"x")
    for thread in threads:
        thread.join()
ours = sorted(m for m in sys.modules if m.partition(".")[0] in ("looseends", "psutil"))
on_signal()
print(json.dumps({"problems": problems[:10], "problem_count": len(problems), "checks": checks[0],
                  "handled": handled, "delivered": sum(delivered), "ours": ours}), flush=True)
"""


TIMEOUT = 10.0  # the attach's own default, stated: LATE is read against it
LATE = TIMEOUT / 2  # what a held thread or signal would take; the target alone is late by up to ~0.3 s

SHAPES = {  # the probe's targets, as figure 12 names them
    "threads": "nine threads",
    "single": "one thread, in sleeps",
    "timed": "one thread, in timed lock waits",
}


def traced(pid: int) -> bool:
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as file:
                for line in file:
                    if line.startswith("TracerPid:"):
                        if line.split()[1] != "0":
                            return True
                        break
        except OSError:
            continue
    return False


def leftovers(pid: int) -> dict[str, int]:
    """What of an attach is still in the target: anonymous code pages, our memfds, traced threads."""
    with open(f"/proc/{pid}/maps") as file:
        code = sum(1 for line in file if len(line.split()) == 5 and line.split()[1] == "r-xp")
    memfds = 0
    for entry in os.listdir(f"/proc/{pid}/fd"):
        try:
            memfds += os.readlink(f"/proc/{pid}/fd/{entry}").startswith("/memfd:looseends-")
        except OSError:
            continue
    return {"code_mappings": code, "memfds": memfds, "traced": int(traced(pid))}


def _threads(pid: int) -> list[str]:
    """Each thread's system call and kernel wait, for a report of what is still running."""
    found = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            call = Path(f"/proc/{pid}/task/{tid}/syscall").read_text().split()[:1]
            found.append(f"{tid}:{call}:{Path(f'/proc/{pid}/task/{tid}/wchan').read_text()}")
        except OSError:
            continue
    return found


def one_round(pid: int, kill: signal.Signals, sent: list[float], rng: random.Random) -> str:
    """'hit' when the attach was killed while it held a thread, 'missed' when it had let go or ended."""
    attach = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "looseends",
            "attach",
            str(pid),
            "--via",
            "thread",
            "--json",
            "--timeout",
            str(TIMEOUT),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while attach.poll() is None and not traced(pid):
            pass  # the window is a millisecond or two: look as fast as /proc answers
        if attach.poll() is not None:
            return "missed"
        time.sleep(rng.uniform(0, 0.002))
        hit = traced(pid)
        attach.send_signal(kill)
        if rng.random() < 0.5:
            sent.append(time.monotonic())
            os.kill(pid, signal.SIGRTMIN + 1)
        return "hit" if hit else "missed"
    finally:
        attach.wait(30)


def run(rounds: int, kill: signal.Signals, shape: str, seed: int) -> dict[str, object]:
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as where:
        script, stop = Path(where, "target.py"), Path(where, "stop")
        script.write_text(TARGET)
        target = subprocess.Popen(
            [sys.executable, str(script), shape, str(stop)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert target.stdout is not None
            assert target.stdout.readline() == "ready\n"
            alone = yardstick(target.pid, rng)
            sent: list[float] = []
            outcomes = {"hit": 0, "missed": 0}
            for _ in range(rounds):
                outcomes[one_round(target.pid, kill, sent, rng)] += 1
                if target.poll() is not None:
                    break
                if rng.random() < 0.3:
                    sent.append(time.monotonic())
                    os.kill(target.pid, signal.SIGRTMIN + 1)
            deadline = time.monotonic() + 20  # a trampoline let go by a dead attach ends on its own
            left = leftovers(target.pid) if target.poll() is None else {}
            while target.poll() is None and any(left.values()) and time.monotonic() < deadline:
                time.sleep(0.05)
                left = leftovers(target.pid)
            alive = target.poll() is None
            if alive and any(left.values()):
                left["threads"] = _threads(target.pid)  # type: ignore[assignment]
            stop.touch()
            end = json.loads(target.stdout.readline() or "{}")
            code = target.wait(60)
        finally:
            target.kill()
            target.wait(10)
    handled = end.get("handled", [])
    delays = [_first_after(handled, moment) - moment for moment in sent]
    return {
        "rounds": rounds,
        "signal": kill.name,
        "shape": shape,
        **outcomes,
        "target alive after the rounds": alive,
        "target exit": code,
        "problems": end.get("problems"),
        "problem_count": end.get("problem_count"),
        "checks": end.get("checks"),
        "signals sent": len(alone) + len(sent),
        "signals delivered": end.get("delivered"),
        "slowest handling, no attach (s)": round(
            max((_first_after(handled, m) - m for m in alone), default=0), 3
        ),
        "slowest handling (s)": round(max(delays, default=0), 3),
        "handled later than half the time-out": [round(delay, 3) for delay in delays if delay > LATE],
        "left": left,
        "ours": end.get("ours"),
    }


def yardstick(pid: int, rng: random.Random) -> list[float]:
    """Send 20 signals with no attach running, paced: when each was sent."""
    sent = []
    for _ in range(20):
        sent.append(time.monotonic())
        os.kill(pid, signal.SIGRTMIN + 1)
        time.sleep(rng.uniform(0.01, 0.03))
    return sent


def _first_after(times: list[float], moment: float) -> float:
    """When the handler first ran after `moment` (infinity if it never did)."""
    return min((t for t in times if t >= moment), default=float("inf"))


def hurt(result: dict[str, object]) -> bool:
    return not (
        result["target alive after the rounds"]
        and result["target exit"] == 0
        and result["problem_count"] == 0
        and result["signals sent"] == result["signals delivered"]
        and not result["handled later than half the time-out"]
        and not any(dict(result["left"]).values())  # type: ignore[call-overload]
        and result["ours"] == []
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--signal", choices=("KILL", "INT"), default="KILL")
    parser.add_argument("--shape", choices=tuple(SHAPES), default="threads")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    result = run(args.rounds, signal.Signals[f"SIG{args.signal}"], args.shape, args.seed)
    result["hurt"] = hurt(result)
    print(json.dumps(result))
    return 1 if result["hurt"] else 0


if __name__ == "__main__":
    sys.exit(main())


def table(results: list[dict[str, object]]) -> str:
    """Figure 12 of BENCHMARKS.md: one row per probe run."""
    head = (
        "| attach killed by | target | rounds | killed while it held a thread | target's checks wrong | "
        "signals sent / delivered / handled > 5 s late | slowest handling, alone / in the rounds | "
        "left in the target | hurt |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    rows = []
    for result in results:
        left = dict(result["left"])  # type: ignore[call-overload]
        leftovers = sum(value for value in left.values() if isinstance(value, int)) + len(
            result["ours"] or []
        )  # type: ignore[arg-type]
        late = len(result["handled later than half the time-out"])  # type: ignore[arg-type]
        rows.append(
            f"| {result['signal']} | {SHAPES[str(result['shape'])]} | "
            f"{result['rounds']} | {result['hit']} | {result['problem_count']} | "
            f"{result['signals sent']} / {result['signals delivered']} / {late} | "
            f"{result['slowest handling, no attach (s)']} s / {result['slowest handling (s)']} s | "
            f"{leftovers} | {'yes' if result['hurt'] else 'no'} |"
        )
    return head + "\n".join(rows)
