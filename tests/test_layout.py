"""The README's Layout is the real tree: every module (and C source) under src/looseends with its docstring's
first line.

When a module is added, moved or renamed, this fails and prints the block to paste into the README
(`python tests/test_layout.py` prints it too).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "looseends"
WIDTH = 110


def summary(path: Path) -> str:
    """The docstring's first sentence (a C file's opening comment's), cut to fit the line."""
    if path.suffix == ".c":
        comment = path.read_text().split("*/", 1)[0].removeprefix("/*")
        docstring = "\n".join(line.strip().removeprefix("*").strip() for line in comment.splitlines())
    else:
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    first = " ".join(docstring.split("\n\n")[0].split())
    return re.split(r"(?<=\.)\s", first, maxsplit=1)[0].rstrip(".")


def layout() -> str:
    lines = ["src/looseends/"]

    def walk(folder: Path, depth: int) -> None:
        for path in sorted(folder.iterdir(), key=lambda p: (p.is_dir(), p.name)):
            if path.is_dir() and path.name != "__pycache__":
                entry(f"{path.name}/", path / "__init__.py", depth)
                walk(path, depth + 1)
            elif path.suffix in (".py", ".c") and path.name != "__init__.py":
                entry(path.name, path, depth)

    def entry(name: str, module: Path, depth: int) -> None:
        head = "  " * depth + name
        text = f"{head}{' ' * max(1, 24 - len(head))}{summary(module)}"
        lines.append(text if len(text) <= WIDTH else text[: WIDTH - 4].rsplit(" ", 1)[0] + " ...")

    walk(PACKAGE, 1)
    return "\n".join(lines)


def readme_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Layout") :]
    return re.search(r"```\n(src/looseends/.*?)\n```", section, re.S).group(1)  # type: ignore[union-attr]


def test_the_readme_layout_is_the_real_tree() -> None:
    assert readme_block() == layout(), f"README's Layout is stale; paste this block:\n{layout()}"


def test_every_module_says_what_it_is_for() -> None:
    missing = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if not summary(path) and path.name != "__main__.py"
    ]
    assert missing == []


if __name__ == "__main__":
    print(layout())
