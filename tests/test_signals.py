"""The signal dump: grouped dump on SIGUSR1, safe while another thread holds threading's own lock."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

import looseends

from leakfixtures import Cleanup, wait_blocked, wait_until


def test_sigusr1_writes_the_grouped_dump_even_while_a_lock_the_dump_could_need_is_held(
    tmp_path: Path, cleanup: Cleanup
) -> None:
    never = threading.Event()
    stuck = [threading.Thread(target=never.wait, name=f"sig-leak-{n}", daemon=True) for n in range(3)]
    cleanup.stop(never.set, *stuck)
    for thread in stuck:
        thread.start()
    wait_blocked("sig-leak-", 3, "event.wait")

    # Another thread holds threading's registry lock (what threading.enumerate() takes) while we dump.
    registry_lock = threading._active_limbo_lock  # type: ignore[attr-defined]
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with registry_lock:
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold, name="lock-holder")
    holder.start()
    cleanup(lambda: (release.set(), holder.join(10)))
    assert holding.wait(10)

    target = tmp_path / "dump.txt"
    uninstall = looseends.install_dump_signal(path=target)
    try:
        os.kill(os.getpid(), signal.SIGUSR1)
        wait_until(lambda: target.exists() and target.read_text().strip() != "", what="the signal dump")
    finally:
        uninstall()
    text = target.read_text()
    assert text.startswith("looseends dump (signal SIGUSR1, pid ")
    assert "3 threads blocked in threading.Event.wait" in text
    assert "sig-leak-0, sig-leak-1, sig-leak-2" in text
    assert signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, signal.default_int_handler, None)


def test_signal_dump_goes_to_stderr_by_default(capfd: pytest.CaptureFixture[str]) -> None:
    seen: list[str] = []

    def dumped() -> bool:
        seen.append(capfd.readouterr().err)
        return "looseends dump (signal SIGUSR2" in "".join(seen)

    uninstall = looseends.install_dump_signal(signal.SIGUSR2)
    try:
        os.kill(os.getpid(), signal.SIGUSR2)
        wait_until(dumped, what="the dump on stderr")
    finally:
        uninstall()


def test_signal_dump_rules() -> None:
    with pytest.raises(looseends.OptionError, match="expected 1 or 2"):
        looseends.install_dump_signal(debug=3)
    errors: list[BaseException] = []

    def from_a_thread() -> None:
        try:
            looseends.install_dump_signal()
        except looseends.OptionError as exc:
            errors.append(exc)

    thread = threading.Thread(target=from_a_thread)
    thread.start()
    thread.join()
    assert "main thread" in str(errors[0])
