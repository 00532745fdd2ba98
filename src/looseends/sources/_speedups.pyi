"""Creation records made in C: see _speedups.c and _origins.py (the same functions in Python)."""

from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

def configure(
    *,
    state: object,
    sequence: Iterator[int],
    running_loop: Any,
    current_task: Any,
    current_tasks: dict[Any, Any] | None,
    c_task: type,
    task_name: Any,
    housekeeping: tuple[object, ...],
    judge: Any,
    active: dict[int, Any],
    thread_module: Any,
    name_judge: Any,
    task_table: object,
    thread_table: object,
    task_hops: int,
    user_callers: int,
    thread_depth: int,
) -> None: ...
def tracked_start(original: Callable[[Any], None], /) -> Callable[[Any], None]: ...
def tracked_create_task(
    original: Callable[..., Any],
    *,
    debug_hook: Callable[[Any], None] | None = None,
    thread_hook: Callable[[Any], None] | None = None,
) -> Callable[..., Any]: ...

TASK_CLOCK_RESOLUTION: float

def check_began() -> float: ...
def flush_tasks() -> bool: ...
def waiting_task_record(address: int, /) -> tuple[Any, ...] | None: ...
def forget_if_same(entries: dict[int, tuple[Any, ...]], key: int, record: tuple[Any, ...], /) -> None: ...
def tracked_instances(kind: type, /) -> list[Any]: ...
def frame_variable(frame: FrameType, name: str, default: object, /) -> object: ...
def heap_accounts(
    targets: list[object], reached: set[int], ours: set[int], limit: int, /
) -> list[tuple[tuple[int, int, int, int, int, str], ...]] | None: ...
