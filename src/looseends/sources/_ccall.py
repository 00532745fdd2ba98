"""Which builtin a frame is calling, when a thread waits inside C (`lock.acquire()`, `time.sleep()`).

Such a wait leaves no Python frame of its own: the innermost frame is the caller, stopped on a call
instruction. Since 3.11 each instruction carries source positions, so the call expression can be cut
out of the source line and parsed; its dotted name is then resolved against the frame's namespaces
without running user code (`inspect.getattr_static`: no properties, no `__getattr__`).
"""

from __future__ import annotations

import ast
import builtins
import dis
import inspect
import linecache
import types
from dataclasses import dataclass

from looseends._cpython import MISSING, frame_variable


@dataclass(frozen=True, slots=True)
class Called:
    """The builtin a frame is calling."""

    name: str  # fully qualified: `_thread.lock.acquire`
    receiver: object  # the object it is called on: the lock itself
    has_arguments: bool  # `acquire(timeout=1)` may end by itself
    timeout: float | None = None  # seconds, when the call's timeout (or sleep) is a number we can read


# Where each timed builtin takes its timeout, in seconds: (position, keyword).
_TIMEOUT_ARGUMENT = {
    "time.sleep": (0, "secs"),
    "_thread.lock.acquire": (1, "timeout"),
    "_thread.RLock.acquire": (1, "timeout"),
    "_queue.SimpleQueue.get": (1, "timeout"),
    "select.select": (3, "timeout"),
    "select.epoll.poll": (0, "timeout"),
}


def called_name(frame: types.FrameType) -> str | None:
    """The fully qualified name of the builtin the frame is calling, e.g. `_thread.lock.acquire`."""
    called = called_object(frame)
    return called.name if called is not None else None


def called_object(frame: types.FrameType) -> Called | None:
    """The builtin being called, the object it is called on, whether it passes arguments and its timeout.

    A bound method stored elsewhere is followed to its object: `Thread(target=lock.acquire)` waits in
    `self._target(*self._args, **self._kwargs)`, a call on the lock with no arguments when both are empty.
    """
    try:
        site = _call_site(frame)
        if site is None:
            return None
        node, entering = site
        if entering:  # `with lock:` waits in the lock's C __enter__, which takes no arguments
            dotted = _dotted(node)
            manager = _value_of(frame, dotted) if dotted else MISSING
            if manager is MISSING:
                return None
            name = _qualify(inspect.getattr_static(type(manager), "__enter__", None), manager, "__enter__")
            return Called(name, manager, False) if name is not None else None
        if not isinstance(node, ast.Call):
            return None
        dotted = _dotted(node.func)
        resolved = _resolve(frame, dotted) if dotted else None
        if resolved is None:
            return None
        name, receiver = resolved
        return Called(name, receiver, _has_arguments(frame, node), _timeout(frame, node, name))
    except Exception:  # an odd frame must never break a snapshot
        return None


def _timeout(frame: types.FrameType, call: ast.Call, name: str) -> float | None:
    where = _TIMEOUT_ARGUMENT.get(name)
    if where is None:
        return None
    position, keyword = where
    node: ast.expr | None = next((k.value for k in call.keywords if k.arg == keyword), None)
    if node is None and len(call.args) > position and not isinstance(call.args[position], ast.Starred):
        node = call.args[position]
    if node is None:
        return None
    if isinstance(node, ast.Constant):
        value: object = node.value
    else:
        dotted = _dotted(node)
        value = _value_of(frame, dotted) if dotted else MISSING
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        return None
    return float(value)


def _has_arguments(frame: types.FrameType, call: ast.Call) -> bool:
    """True unless every argument is a `*name` or `**name` that holds an empty tuple or dict."""
    for node in call.args:
        if not isinstance(node, ast.Starred) or not _empty_holder(frame, node.value):
            return True
    return any(k.arg is not None or not _empty_holder(frame, k.value) for k in call.keywords)


def _empty_holder(frame: types.FrameType, node: ast.expr) -> bool:
    dotted = _dotted(node)
    held = _value_of(frame, dotted) if dotted else MISSING
    return type(held) in (tuple, dict) and not held


def _value_of(frame: types.FrameType, dotted: list[str]) -> object:
    head, *rest = dotted
    obj = _lookup(frame, head)
    for attr in rest:
        if obj is MISSING:
            break
        obj = _static(obj, attr)
    return obj


def _call_site(frame: types.FrameType) -> tuple[ast.expr, bool] | None:
    """The expression of the call the frame is making, and whether it is a `with` entering its manager.

    3.11-3.13 enter a `with` block with BEFORE_WITH, placed on the whole `with` item: the expression is
    the one the previous instruction evaluated. 3.14+ call `__enter__` with a CALL placed on the manager's
    own expression, which is then a name or attribute rather than a call.
    """
    code = frame.f_code
    lasti = frame.f_lasti
    if not 0 <= lasti < len(code.co_code):
        return None
    opname = dis.opname[code.co_code[lasti]]
    before_with = opname == "BEFORE_WITH"
    node = _expression_at(code, lasti // 2 - 1 if before_with else lasti // 2)
    if node is None:
        return None
    return node, before_with or (opname.startswith("CALL") and not isinstance(node, ast.Call))


def _expression_at(code: types.CodeType, index: int) -> ast.expr | None:
    positions = list(code.co_positions())
    if not 0 <= index < len(positions):
        return None
    start_line, end_line, start_col, end_col = positions[index]
    if start_line is None or end_line is None or start_col is None or end_col is None:
        return None
    lines = [linecache.getline(code.co_filename, n) for n in range(start_line, end_line + 1)]
    if not lines or not lines[0]:
        return None
    # Columns are UTF-8 byte offsets.
    raw = [line.encode() for line in lines]
    if len(raw) == 1:
        text = raw[0][start_col:end_col]
    else:
        text = raw[0][start_col:] + b"".join(raw[1:-1]) + raw[-1][:end_col]
    try:
        return ast.parse(text.decode().strip(), mode="eval").body
    except (SyntaxError, UnicodeDecodeError, ValueError):
        return None


def _dotted(node: ast.expr) -> list[str] | None:
    parts: list[str] = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    parts.append(node.id)
    parts.reverse()
    return parts


def _resolve(frame: types.FrameType, dotted: list[str]) -> tuple[str, object] | None:
    head, *rest = dotted
    obj = _lookup(frame, head)
    if obj is MISSING:
        return None
    receiver: object = None
    for attr in rest:
        receiver = obj
        obj = _static(obj, attr)
        if obj is MISSING:
            return None
    bound_to = getattr(obj, "__self__", None) if isinstance(obj, types.BuiltinMethodType) else None
    if bound_to is not None and not isinstance(bound_to, types.ModuleType):
        receiver = bound_to  # a bound builtin method (lock.acquire) kept in a variable or attribute
    name = _qualify(obj, receiver, dotted[-1])
    return (name, receiver) if name is not None else None


def _static(obj: object, attr: str) -> object:
    """An attribute read without running code: C slots and getsets are read, Python descriptors are not."""
    value = inspect.getattr_static(obj, attr, MISSING)
    if isinstance(value, types.MemberDescriptorType | types.GetSetDescriptorType) and not isinstance(
        obj, type
    ):
        try:
            return value.__get__(obj, type(obj))
        except Exception:
            return MISSING
    return value


def _lookup(frame: types.FrameType, name: str) -> object:
    found = frame_variable(frame, name)
    if found is not MISSING:
        return found
    if name in frame.f_globals:
        return frame.f_globals[name]
    return getattr(builtins, name, MISSING)


def _qualify(obj: object, receiver: object, attr: str) -> str | None:
    objclass = getattr(obj, "__objclass__", None)
    if isinstance(objclass, type):  # a C method found on the class: lock.acquire, socket.recv
        return f"{objclass.__module__}.{objclass.__qualname__}.{attr}"
    if isinstance(obj, types.BuiltinFunctionType):
        owner = obj.__self__
        if isinstance(owner, types.ModuleType) or owner is None:
            return f"{obj.__module__}.{obj.__qualname__}"
        return f"{type(owner).__module__}.{type(owner).__qualname__}.{obj.__name__}"
    if isinstance(obj, (types.FunctionType, types.MethodType)):
        func = obj.__func__ if isinstance(obj, types.MethodType) else obj
        return f"{func.__module__}.{func.__qualname__}"
    if receiver is not None and not isinstance(receiver, types.ModuleType):
        return f"{type(receiver).__module__}.{type(receiver).__qualname__}.{attr}"
    return None
