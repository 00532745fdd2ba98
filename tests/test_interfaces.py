"""Every public module says what it offers in `__all__`, and the rest of the package keeps to it.

A public module is one whose dotted name has no `_`-prefixed part; its `__all__` names only what it defines
(or imports on purpose), and every name another module of the package imports from it is in that list, so
`__all__` is the truthful interface a newcomer can read first.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parent.parent / "src" / "looseends"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_public(module: str) -> bool:
    return not any(part.startswith("_") for part in module.split("."))


def exported(tree: ast.Module) -> list[str] | None:
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets):
                return list(ast.literal_eval(node.value)) if node.value is not None else []
    return None


def bound_names(tree: ast.Module) -> set[str]:
    """Names a module binds at top level (definitions, assignments, imports, also under `if`)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef) and node in tree.body:
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def problems(sources: dict[str, str]) -> list[str]:
    trees = {module: ast.parse(text) for module, text in sources.items()}
    interfaces = {module: exported(tree) for module, tree in trees.items()}
    found = []
    for module, names in interfaces.items():
        if not is_public(module):
            continue
        if names is None:
            found.append(f"{module} has no __all__")
            continue
        found += [
            f"{module}.__all__ names {n}, which it does not bind"
            for n in names
            if n not in bound_names(trees[module])
        ]
    for module, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module in interfaces and is_public(node.module):
                offered = interfaces[node.module] or []
                for alias in node.names:
                    submodule = f"{node.module}.{alias.name}" in interfaces
                    if alias.name not in offered and not submodule:
                        found.append(f"{module} imports {alias.name} from {node.module}, not in its __all__")
    return found


def test_every_public_module_keeps_to_its_interface() -> None:
    sources = {module_name(path): path.read_text() for path in sorted(SRC.rglob("*.py"))}
    assert problems(sources) == []


def test_the_check_fails_on_a_missing_interface_and_an_import_outside_it() -> None:
    sources = {
        "looseends.model": "__all__ = ['Unit', 'Gone']\nclass Unit: ...\nclass Frame: ...\n",
        "looseends.report": "from looseends.model import Frame, Unit\n",
        "looseends._text": "from looseends.model import Frame\n",
    }
    assert problems(sources) == [
        "looseends.model.__all__ names Gone, which it does not bind",
        "looseends.report has no __all__",
        "looseends.report imports Frame from looseends.model, not in its __all__",
        "looseends._text imports Frame from looseends.model, not in its __all__",
    ]
