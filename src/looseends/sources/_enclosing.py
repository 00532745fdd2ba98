"""Is a wait inside a loop? The evidence a "loop never stopped" or "polls and never exits" label needs.

A `time.sleep(5)` called once is a one-shot delay, not a loop nobody stops. The innermost user frame's
source is parsed (once per file) and asked whether a `while` or `for` statement of the same function
encloses the waiting line.
"""

from __future__ import annotations

import ast
import functools
import linecache
import types


def in_loop(code: types.CodeType, lineno: int) -> bool:
    """True when a `while`/`for` of the function `code` belongs to encloses line `lineno`."""
    return lineno in _loop_lines(code.co_filename, code.co_firstlineno)


@functools.lru_cache(maxsize=512)
def _loop_lines(filename: str, first_line: int) -> frozenset[int]:
    """The lines of the function starting at `first_line` that lie inside one of its own loops (loops of
    functions nested in it do not count for it)."""
    source = "".join(linecache.getlines(filename))
    if not source:
        return frozenset()
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return frozenset()
    function = _function_at(tree, first_line)
    if function is None:
        return frozenset()
    lines: set[int] = set()
    for node in _own_nodes(function):
        if isinstance(node, ast.While | ast.For | ast.AsyncFor):
            lines.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return frozenset(lines)


def _function_at(tree: ast.AST, first_line: int) -> ast.AST | None:
    """The function whose code starts at `first_line` (its decorators' line, or its `def`)."""
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            lines = {node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))}
            if first_line in lines:
                return node
    if isinstance(tree, ast.Module) and first_line == 1:
        return tree  # module-level code
    return None


def _own_nodes(function: ast.AST) -> list[ast.AST]:
    """The nodes of `function` itself, not those of functions or classes nested in it."""
    nodes: list[ast.AST] = []
    pending = list(ast.iter_child_nodes(function))
    while pending:
        node = pending.pop()
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda | ast.ClassDef):
            continue
        nodes.append(node)
        pending.extend(ast.iter_child_nodes(node))
    return nodes
