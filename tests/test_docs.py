"""The docs say what the program does: samples are checked against real runs, so drift fails CI.

- The README's report and docs/proofs.md's are the real output of `python examples/dojobs_threads.py leaky`.
- The README's options table lists exactly the options `check()`/`find()` accept.
- docs/testing.md's failing-test sample is the real output of `pytest --looseends -q` in
  examples/pytest_suite, and its options block is the plugin's section of `pytest --help`.
- docs/cli.md has a section per command `looseends --help` lists, and says how many there are.
- Every Python block in the README and docs/ compiles; every Markdown file closes its code fences.
Output is compared after normalising what changes from run to run: ages and durations.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from looseends.frontends.cli import parser
from looseends.options import OptionValues

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
_DURATION = re.compile(r"\b\d+(?:\.\d+)? (?:ms|s)\b")
_WORKER = re.compile(r"\bworker-\d+")
_RUN_TIME = re.compile(r" in \d+\.\d+s\b")
SUITE = ROOT / "examples" / "pytest_suite"


def normalised(text: str) -> str:
    """Ages, durations and which of the workers came late change from run to run."""
    return _WORKER.sub("worker-N", _DURATION.sub("N s", _RUN_TIME.sub(" in Ns", text.strip())))


def code_blocks(text: str, language: str) -> list[str]:
    """The bodies of the fenced blocks opened with ```language (exactly), fences paired in order."""
    blocks, body, opened = [], [], None
    for line in text.splitlines():
        if line.startswith("```"):
            if opened is None:
                opened, body = line[3:].strip(), []
                continue
            if opened == language:
                blocks.append("\n".join(body) + "\n")
            opened = None
        elif opened is not None:
            body.append(line)
    return blocks


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    following = text.find("\n## ", start + len(heading))
    return text[start : following if following >= 0 else len(text)]


def demo_report() -> str:
    done = subprocess.run(
        [sys.executable, "examples/dojobs_threads.py", "leaky"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    lines = done.stdout.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("looseends: "))
    return "\n".join(lines[start:])


def matches_the_demo(shown: str, real: str) -> bool:
    return normalised(shown) == normalised(real)


@pytest.fixture(scope="module")
def real_report() -> str:
    return demo_report()


@pytest.mark.parametrize(
    ("document", "heading"),
    [("README.md", "## What a leak report looks like"), ("docs/proofs.md", "## A real report")],
)
def test_the_shown_report_is_the_demos_real_output(real_report: str, document: str, heading: str) -> None:
    shown = code_blocks(section((ROOT / document).read_text(), heading), "")[0]
    assert matches_the_demo(shown, real_report), (
        f"{document} shows an old report; the demo prints:\n{real_report}"
    )


def test_the_comparison_fails_on_a_wrong_sample(real_report: str) -> None:
    wrong = real_report.replace("forgotten sender", "abandoned receiver")
    assert not matches_the_demo(wrong, real_report)
    assert matches_the_demo(real_report.replace("for 0.7 s", "for 12 ms"), real_report)


def pytest_in_the_example_suite(*args: str) -> str:
    """As a user runs it there (its own rootdir) in an 80-column terminal, not on CI (where pytest does
    not trim the short summary); the dev venv's other plugins stay out of the way."""
    env = {k: v for k, v in os.environ.items() if k not in {"CI", "BUILD_NUMBER", "PYTEST_ADDOPTS"}}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:asyncio", *args],
        cwd=SUITE,
        env={**env, "COLUMNS": "80"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.stdout


def test_the_testing_guides_sample_is_a_real_run() -> None:
    shown = code_blocks(section((ROOT / "docs/testing.md").read_text(), "### What a failing test"), "")[0]
    real = pytest_in_the_example_suite("--looseends", "-q")
    assert matches_the_demo(shown, real), f"docs/testing.md shows an old run; pytest prints:\n{real}"


def test_the_testing_guides_options_are_pytest_help() -> None:
    shown = code_blocks(section((ROOT / "docs/testing.md").read_text(), "### Options"), "")[0]
    real = pytest_in_the_example_suite("--help")
    plugin_section = real[real.index("leaked threads, asyncio tasks and child processes:") :].split("\n\n")[0]
    assert shown.strip() == plugin_section.strip()


def test_the_options_table_lists_exactly_the_options() -> None:
    table = section((ROOT / "README.md").read_text(), "Options (keyword-only")
    documented = set(re.findall(r"^\| `(\w+)` \|", table, re.M))
    assert documented == set(OptionValues.__annotations__) | {"label"}


def test_docs_cli_has_a_section_per_command() -> None:
    text = (ROOT / "docs" / "cli.md").read_text()
    commands = set(parser()._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    documented = set(re.findall(r"^## `looseends ([\w-]+)", text, re.M))
    assert documented == commands
    words = {2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
    assert f"has {words[len(commands)]} commands" in text


@pytest.mark.parametrize("document", DOCS, ids=lambda path: path.name)
def test_python_blocks_compile_and_fences_close(document: Path) -> None:
    text = document.read_text()
    assert len(re.findall(r"^```", text, re.M)) % 2 == 0, f"{document.name}: an unclosed code fence"
    for block in code_blocks(text, "python"):
        compile(block, document.name, "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
