"""What encloses the line a frame is at, read from its function's source: the evidence some verdicts need.

- A loop (`while`, `for`): a `time.sleep(5)` called once is a one-shot delay, not a loop nobody stops;
  "loop never stopped" and "polls and never exits" need one.
- A `try` that handles cancellation (`except BaseException`, `except CancelledError`, a bare `except`,
  or a `finally`): a task suspended there knows how it will stop, by being cancelled, and cleans up.
  The implicit handlers of `with` and `async with` do not count: they belong to the context manager.
  Nor does the `try` of a frame that only passes through what it was handed (`await coro`,
  `await self._coro`, `await func(*args)` with `coro` or `func` a parameter or a closure's variable):
  such a wrapper runs every task of its kind, so its handler says nothing of how this one will stop.
  Nor do the protocol methods of a context manager or an awaitable (`__aexit__`, `__await__`...):
  their handlers belong to the object, for every task that uses it.

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
# Methods that run for whoever uses their object: a task group's __aexit__ handles every cancellation.
_PROTOCOL = frozenset(
    {"__enter__", "__exit__", "__aenter__", "__aexit__", "__await__", "__aiter__", "__anext__"}
)


def in_loop(code: types.CodeType, lineno: int) -> bool:
    """True when a `while`/`for` of the function `code` belongs to encloses line `lineno`."""
    return lineno in _facts(code.co_filename, code.co_firstlineno, code.co_freevars)[0]


def handles_cancellation(code: types.CodeType, lineno: int, *, awaits_a_frame: bool = False) -> bool:
    """True when line `lineno` is in the body of a `try` of that function that handles cancellation.

    `awaits_a_frame`: the frame awaits another coroutine's frame (it is not the innermost of its
    chain); then a line that only passes through what the frame was handed does not count."""
    if code.co_name in _PROTOCOL:
        return False
    _, guarded, passing = _facts(code.co_filename, code.co_firstlineno, code.co_freevars)
    return lineno in guarded and not (awaits_a_frame and lineno in passing)


Facts = tuple[frozenset[int], frozenset[int], frozenset[int]]


@functools.lru_cache(maxsize=512)
def _facts(filename: str, first_line: int, free: tuple[str, ...] = ()) -> Facts:
    """(lines inside the function's own loops, lines inside its own cancellation-handling try bodies,
    lines of its awaits that pass through what it was handed: a parameter or one of the `free` names)."""
    nothing: Facts = (frozenset(), frozenset(), frozenset())
    source = "".join(linecache.getlines(filename))
    if not source:
        return nothing
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return nothing
    function = _function_at(tree, first_line)
    if function is None:
        return nothing
    handed = {*free, *_parameters(function)}
    looped: set[int] = set()
    guarded: set[int] = set()
    passing: set[int] = set()
    for node in _own_nodes(function):
        if isinstance(node, ast.While | ast.For | ast.AsyncFor):
            looped.update(_lines(node))
        elif isinstance(node, ast.Try | ast.TryStar) and _catches_cancellation(node) and node.body:
            last = node.body[-1]
            guarded.update(range(node.body[0].lineno, (last.end_lineno or last.lineno) + 1))
        elif isinstance(node, ast.Await) and _passes_through(node.value, handed):
            passing.update(range(node.lineno, (node.end_lineno or node.lineno) + 1))
    return frozenset(looped), frozenset(guarded), frozenset(passing)


def _parameters(function: ast.AST) -> list[str]:
    arguments = getattr(function, "args", None)
    if not isinstance(arguments, ast.arguments):
        return []
    every = [*arguments.posonlyargs, *arguments.args, *arguments.kwonlyargs]
    every += [extra for extra in (arguments.vararg, arguments.kwarg) if extra is not None]
    return [argument.arg for argument in every]


def _passes_through(awaited: ast.expr, handed: set[str]) -> bool:
    """`await coro` or `await func(...)` with a handed name, or `await obj.attribute` (not called)."""
    if isinstance(awaited, ast.Call):
        awaited = awaited.func
        return isinstance(awaited, ast.Name) and awaited.id in handed
    return isinstance(awaited, ast.Attribute) or (isinstance(awaited, ast.Name) and awaited.id in handed)


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
