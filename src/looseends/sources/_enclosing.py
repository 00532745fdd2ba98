"""What encloses the line a frame is at, read from its function's source: the evidence some verdicts need.

- A loop (`while`, `for`): a `time.sleep(5)` called once is a one-shot delay, not a loop nobody stops;
  "loop never stopped" and "polls and never exits" need one.
- A `try` that handles cancellation (`except BaseException`, `except CancelledError`, a bare `except`,
  or a `finally`): a task suspended there knows how it will stop, by being cancelled, and cleans up.
  The implicit handlers of `with` and `async with` do not count: they belong to the context manager.

Each function's source is parsed once (cached by file and first line); only the function's own
statements count, not those of functions nested in it.
"""

from __future__ import annotations

import ast
import functools
import linecache
import types

# Exception names whose handler catches a cancellation: asyncio's, trio's, and everything.
_CANCELLATION = frozenset({"BaseException", "CancelledError", "Cancelled"})


def in_loop(code: types.CodeType, lineno: int) -> bool:
    """True when a `while`/`for` of the function `code` belongs to encloses line `lineno`."""
    return lineno in _facts(code.co_filename, code.co_firstlineno)[0]


def handles_cancellation(code: types.CodeType, lineno: int) -> bool:
    """True when line `lineno` is in the body of a `try` of that function that handles cancellation."""
    return lineno in _facts(code.co_filename, code.co_firstlineno)[1]


@functools.lru_cache(maxsize=512)
def _facts(filename: str, first_line: int) -> tuple[frozenset[int], frozenset[int]]:
    """(lines inside the function's own loops, lines inside its own cancellation-handling try bodies)."""
    source = "".join(linecache.getlines(filename))
    if not source:
        return frozenset(), frozenset()
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return frozenset(), frozenset()
    function = _function_at(tree, first_line)
    if function is None:
        return frozenset(), frozenset()
    looped: set[int] = set()
    guarded: set[int] = set()
    for node in _own_nodes(function):
        if isinstance(node, ast.While | ast.For | ast.AsyncFor):
            looped.update(_lines(node))
        elif isinstance(node, ast.Try | ast.TryStar) and _catches_cancellation(node) and node.body:
            last = node.body[-1]
            guarded.update(range(node.body[0].lineno, (last.end_lineno or last.lineno) + 1))
    return frozenset(looped), frozenset(guarded)


def _lines(node: ast.stmt) -> range:
    return range(node.lineno, (node.end_lineno or node.lineno) + 1)


def _catches_cancellation(node: ast.Try | ast.TryStar) -> bool:
    if node.finalbody:
        return True
    for handler in node.handlers:
        if handler.type is None:  # a bare except
            return True
        types_caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        if any(_last_name(caught) in _CANCELLATION for caught in types_caught):
            return True
    return False


def _last_name(node: ast.expr) -> str:
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


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
