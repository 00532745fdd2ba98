"""Figure 9: what an installed but disabled plugin adds to a pytest run (pytest loads it in every run).

A fresh venv gets pytest and psutil; a one-test project is run there before and after installing the
looseends wheel, the plugin off. Instructions are counted by valgrind (deterministic where wall time on a
shared VM is not) and turned into time at the uninstalled run's own rate. pytest rewrites the modules of
every plugin it loads and caches the result as bytecode; under PYTHONDONTWRITEBYTECODE=1 (common in
containers) it cannot, and parses them again in every run, so both cases are shown.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

from common import table

ROOT = Path(__file__).resolve().parent.parent
RUNS = 11
PYTEST_PYC = "-pytest-*.pyc"  # pytest's cache of a rewritten module, beside Python's own


def _instructions(python: Path, project: Path, *args: str, cache: bool) -> int:
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    command += [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *args]
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    if not cache:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    done = subprocess.run(command, cwd=project, capture_output=True, text=True, env=env, check=True)
    return int(done.stderr.rsplit("I   refs:", 1)[1].split()[0].replace(",", ""))


def _seconds(python: Path, project: Path) -> float:
    def once() -> float:
        started = time.perf_counter()
        subprocess.run(
            [str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=project,
            capture_output=True,
            check=True,
        )
        return time.perf_counter() - started

    return statistics.median(once() for _ in range(RUNS))


def _pip(python: Path, *args: str) -> None:
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", *args], check=True, capture_output=True)


def run() -> tuple[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        venv.create(where / "venv", with_pip=True)
        python = where / "venv" / "bin" / "python"
        _pip(python, "pytest", "psutil")
        subprocess.run(
            [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(where), str(ROOT)],
            check=True,
            capture_output=True,
        )
        project = where / "project"
        project.mkdir()
        (project / "test_one.py").write_text("def test_one():\n    pass\n")
        counts = {"uninstalled": _instructions(python, project, cache=True)}
        rate = counts["uninstalled"] / _seconds(python, project)
        _pip(python, *map(str, where.glob("looseends-*.whl")))
        _instructions(python, project, "--looseends", cache=True)  # pytest caches its rewritten modules
        counts["installed, off"] = _instructions(python, project, cache=True)
        counts["installed, --looseends"] = _instructions(python, project, "--looseends", cache=True)
        for cached in (where / "venv").rglob(f"looseends/**/*{PYTEST_PYC}"):
            cached.unlink()
        counts["installed, off, PYTHONDONTWRITEBYTECODE=1"] = _instructions(python, project, cache=False)
        counts["installed, --looseends, PYTHONDONTWRITEBYTECODE=1"] = _instructions(
            python, project, "--looseends", cache=False
        )
    base = counts["uninstalled"]
    rows = [
        [
            name,
            f"{count / 1e6:.1f} M",
            "" if name == "uninstalled" else f"+{(count - base) / rate * 1000:.1f} ms",
        ]
        for name, count in counts.items()
    ]
    extra = (counts["installed, off"] - base) / rate
    text = table(["one-test pytest run", "instructions", "added (at this machine's rate)"], rows)
    return text, {
        "extra": extra,
        "extra_no_cache": (counts["installed, off, PYTHONDONTWRITEBYTECODE=1"] - base) / rate,
    }


if __name__ == "__main__":
    print(run()[0])
