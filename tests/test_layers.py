"""The layers hold: model <- sources <- analysis <- report <- composition <- front ends <- the package.

Each module may import its own layer and the layers below, never one above (imports under
`if TYPE_CHECKING:` are for types only and do not count). Module-level imports form no cycle; an
import inside a function may only stay within its layer or go down.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "looseends"

# Lowest first. A module belongs to the first layer with a prefix matching its dotted name.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "base",
        (
            "looseends.model",
            "looseends.codes",
            "looseends.errors",
            "looseends._redaction",
            "looseends._text",
            "looseends._safe",
            "looseends._version",
            "looseends._cpython",
            "looseends._heap",
            "looseends._library",
        ),
    ),
    ("sources", ("looseends.sources",)),
    ("analysis", ("looseends.analysis",)),
    ("report", ("looseends.report", "looseends.report_json")),
    (
        "composition",
        (
            "looseends.options",
            "looseends.selection",
            "looseends.core",
        ),
    ),
    ("front ends", ("looseends.frontends", "looseends.attach")),
    ("package", ("looseends.__main__", "looseends")),
)


def layer_of(module: str) -> int:
    for rank, (_, prefixes) in enumerate(LAYERS):
        if any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes):
            return rank
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS")


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _target(node: ast.ImportFrom | ast.Import, alias: ast.alias) -> str | None:
    """The looseends module an import names (a submodule when `from package import submodule`)."""
    if isinstance(node, ast.Import):
        return alias.name if alias.name.startswith("looseends") else None
    if node.module is None or not node.module.startswith("looseends"):
        return None
    candidate = f"{node.module}.{alias.name}"
    relative = Path(*candidate.split(".")[1:])
    if (SRC / relative).with_suffix(".py").exists() or (SRC / relative).is_dir():
        return candidate
    return node.module


def _type_checking_only(tree: ast.Module) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, (inner.end_lineno or inner.lineno) + 1))
    return lines


def imports(source: str) -> list[tuple[str, bool]]:
    """(imported looseends module, at module level?) for each runtime import in `source`."""
    tree = ast.parse(source)
    typing_only = _type_checking_only(tree)
    top_level = {id(node) for node in tree.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and node.lineno not in typing_only:
            for alias in node.names:
                target = _target(node, alias)
                if target is not None:
                    found.append((target, id(node) in top_level))
    return found


def graph(sources: dict[str, str]) -> dict[str, list[tuple[str, bool]]]:
    return {module: imports(text) for module, text in sources.items()}


def upward_imports(edges: dict[str, list[tuple[str, bool]]]) -> list[str]:
    return [
        f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
        for module, targets in edges.items()
        for target, _ in targets
        if layer_of(target) > layer_of(module)
    ]


def cycles(edges: dict[str, list[tuple[str, bool]]]) -> list[list[str]]:
    """Cycles among module-level imports (a package importing its own submodules is not one)."""
    top = {
        module: sorted({t for t, at_top in targets if at_top and not t.startswith(module + ".")})
        for module, targets in edges.items()
    }
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the path, 2: done

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in top.get(module, []):
            if state.get(target) == 1:
                found.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target, [*path, target])
        state[module] = 2

    for module in sorted(top):
        if module not in state:
            visit(module, [module])
    return found


@pytest.fixture(scope="module")
def real() -> dict[str, list[tuple[str, bool]]]:
    return graph({module_name(path): path.read_text() for path in sorted(SRC.rglob("*.py"))})


def test_every_module_belongs_to_a_layer(real: dict[str, list[tuple[str, bool]]]) -> None:
    for module in real:
        layer_of(module)


def test_nothing_imports_upward(real: dict[str, list[tuple[str, bool]]]) -> None:
    assert upward_imports(real) == []


def test_no_import_cycles(real: dict[str, list[tuple[str, bool]]]) -> None:
    assert cycles(real) == []


TYPING_ONLY = """
from typing import TYPE_CHECKING
if TYPE_CHECKING:
    from looseends.report import Report
"""


def test_the_contract_fails_on_an_upward_import_and_a_cycle() -> None:
    edges = graph(
        {
            "looseends.model": "from looseends.report import Report\n",
            "looseends.report": "from looseends.model import Unit\n",
            "looseends.errors": TYPING_ONLY,
        }
    )
    assert upward_imports(edges) == ["looseends.model (base) imports looseends.report (report)"]
    assert cycles(edges) == [["looseends.model", "looseends.report", "looseends.model"]]


DRAWN_COLUMNS = 62  # docs/architecture.md's picture: layer name and files, then a description


def test_the_architecture_page_draws_the_layers_this_test_enforces() -> None:
    """docs/architecture.md's picture: the layers in this order, every module of the package root and
    every folder drawn in the layer LAYERS gives it, and every path its table names exists."""
    text = (SRC.parent.parent / "docs" / "architecture.md").read_text()
    diagram = text.split("```")[1]
    drawn: dict[str, int] = {}
    order: list[str] = []
    for block in diagram.split("▲"):
        lines = [line for line in block.splitlines() if line.strip()]
        name = next(layer for layer, _ in LAYERS if lines[0].lstrip().startswith(layer))
        order.append(name)
        for line in lines:
            files = line[:DRAWN_COLUMNS]  # the files and folders; after them, what the layer is for
            for word in re.findall(r"(?<![\w/.])(?:looseends/)?([\w]+(?:\.py|/))", files):
                stem = word.rstrip("/").removesuffix(".py")
                drawn["looseends" if stem == "__init__" else f"looseends.{stem}"] = len(order) - 1
    assert order == [name for name, _ in reversed(LAYERS)]
    rank_of = {name: rank for rank, (name, _) in enumerate(LAYERS)}
    for module, block in drawn.items():
        assert rank_of[order[block]] == layer_of(module), f"{module} is drawn in the wrong layer"
    root = {f"looseends.{p.stem}" for p in SRC.glob("*.py") if p.stem != "__init__"}
    folders = {f"looseends.{p.name}" for p in SRC.iterdir() if (p / "__init__.py").exists()}
    assert root | folders | {"looseends"} <= set(drawn), sorted((root | folders) - set(drawn))
    for path in re.findall(r"`((?:sources|analysis|frontends|attach)/[\w.]+|[\w]+\.py)`", text):
        assert (SRC / path).exists() or (SRC.parent.parent / "docs" / path).exists(), path
