"""No function in the library is longer than pyproject's `[tool.looseends.dev] max-function-lines`.

ruff keeps complexity, branches and statements in check (its limits are in pyproject too) but has no rule
for a function's length in lines, which is what a reader scrolls through.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def limit() -> int:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return int(config["tool"]["looseends"]["dev"]["max-function-lines"])


def too_long(source: str, name: str, most: int) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            lines = (node.end_lineno or node.lineno) - first + 1
            if lines > most:
                found.append(f"{name}:{node.lineno} {node.name} has {lines} lines")
    return found


def test_no_library_function_is_longer_than_the_limit() -> None:
    most = limit()
    found = [
        problem
        for path in sorted((ROOT / "src").rglob("*.py"))
        for problem in too_long(path.read_text(), str(path.relative_to(ROOT)), most)
    ]
    assert found == [], f"split these (limit {most} lines)"


def test_the_check_counts_a_long_function() -> None:
    body = "".join(f"    x{n} = {n}\n" for n in range(5))
    assert too_long(f"def short():\n{body}", "m.py", 6) == []
    assert too_long(f"@decorated\ndef long():\n{body}", "m.py", 6) == ["m.py:2 long has 7 lines"]
