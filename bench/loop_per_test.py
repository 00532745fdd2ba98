"""A loop-per-test suite: every async test gets an event loop that is closed after it (pytest-asyncio's,
anyio's plugin), so every loop shutdown runs looseends' capture hook. Wall time, whole runs alternated:
plain pytest against `--looseends`. Also anyio's own `tests/test_synchronization.py` when a checkout of
anyio is given (`--anyio PATH`, with anyio's test dependencies installed).

    python bench/loop_per_test.py --runs 15 [--anyio ../anyio --anyio-python ../anyio-venv/bin/python]
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from common import alternating, ratio, spread

import looseends

TESTS = """
import asyncio

import anyio
import pytest


@pytest.mark.asyncio
@pytest.mark.parametrize("n", range(100))
async def test_asyncio(n):
    queue = asyncio.Queue()
    async def producer():
        await queue.put(n)
    await asyncio.gather(producer(), asyncio.sleep(0))
    assert await queue.get() == n


@pytest.mark.anyio
@pytest.mark.parametrize("n", range(100))
async def test_anyio(n):
    async with anyio.create_task_group() as group:
        group.start_soon(anyio.sleep, 0)
    event = anyio.Event()
    event.set()
    await event.wait()


@pytest.fixture
def anyio_backend():
    return "asyncio"
"""
INI = "[pytest]\nasyncio_default_fixture_loop_scope = function\n"


def run(
    runs: int, anyio_checkout: str | None = None, anyio_python: str = sys.executable
) -> dict[str, object]:
    # An installed looseends carries its bytecode (pip compiles it); so does this checkout, for a fair run.
    compileall.compile_dir(Path(looseends.__file__).parent, quiet=1)
    base = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly"]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    result: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as where:
        Path(where, "pytest.ini").write_text(INI)
        Path(where, "test_loops.py").write_text(TESTS)
        times = alternating({"plain": base, "--looseends": [*base, "--looseends"]}, runs, cwd=where, env=env)
    result["suite"] = {name: spread(samples) for name, samples in times.items()}
    result["suite ratio"] = round(ratio(times["--looseends"], times["plain"]), 3)
    if anyio_checkout:
        base = [anyio_python, *base[1:]]
        target = ["tests/test_synchronization.py", "-p", "no:looseends"]
        times = alternating(
            {
                "plain": [*base, *target],
                "--looseends": [*base, "tests/test_synchronization.py", "--looseends"],
            },
            runs,
            cwd=anyio_checkout,
            env=env,
        )
        result["anyio test_synchronization"] = {name: spread(samples) for name, samples in times.items()}
        result["anyio ratio"] = round(ratio(times["--looseends"], times["plain"]), 3)
        result["anyio medians"] = {name: statistics.median(samples) for name, samples in times.items()}
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--anyio", help="a checkout of anyio, to time its tests/test_synchronization.py")
    parser.add_argument("--anyio-python", default=sys.executable, help="a Python with anyio's test extras")
    args = parser.parse_args()
    print(json.dumps(run(args.runs, args.anyio, args.anyio_python), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())


def table(result: dict[str, object]) -> str:
    """Figure 13 of BENCHMARKS.md."""
    rows = [
        "| whole runs, alternated (median, range) | plain pytest | --looseends | ÷ plain |",
        "|---|---|---|---|",
    ]
    suite = dict(result["suite"])  # type: ignore[call-overload]
    rows.append(
        f"| 200 async tests, a loop each (pytest-asyncio, anyio) | {suite['plain']} | {suite['--looseends']} "
        f"| {result['suite ratio']}x |"
    )
    if "anyio ratio" in result:
        anyio = dict(result["anyio test_synchronization"])  # type: ignore[call-overload]
        rows.append(
            f"| anyio's own tests/test_synchronization.py | {anyio['plain']} | {anyio['--looseends']} "
            f"| {result['anyio ratio']}x |"
        )
    return "\n".join(rows)
