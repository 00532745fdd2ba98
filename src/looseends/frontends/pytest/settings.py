"""The plugin's command-line flags and ini settings, validated once: a bad value is a usage error before
the first test, naming the option."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from looseends.analysis.ignore import (
    IgnoreRule,
    ignore_any_function,
    ignore_command,
    ignore_created_at,
    ignore_name,
    ignore_top_function,
)
from looseends.analysis.leak_baseline import LeakBaseline, open_baseline
from looseends.errors import OptionError
from looseends.options import Options, build_options

__all__ = ["Settings"]


@dataclass(frozen=True)
class Settings:
    """Command line and ini, validated once."""

    enabled: bool
    options: Options
    warn_only: bool
    report_path: Path | None
    force_exit: bool
    baseline: LeakBaseline | None = None
    baseline_update: bool = False  # rewrite the baseline file from this run

    @classmethod
    def from_config(cls, config: pytest.Config) -> Settings:
        def get(name: str) -> Any:
            value = config.getoption(name)
            return value if value not in (None, [], False) else config.getini(name)

        timeout = get("looseends_timeout")
        try:
            rules = _rules(
                get("looseends_ignore_top"),
                get("looseends_ignore_function"),
                get("looseends_ignore_created_at"),
                get("looseends_ignore_name"),
                get("looseends_ignore_command"),
            )
            options = build_options(
                source="--looseends-timeout or ini looseends_timeout",
                timeout=None if timeout in (None, "") else _seconds(timeout, "looseends_timeout"),
                ignore=rules,
            )
        except OptionError as exc:
            raise pytest.UsageError(f"looseends: {exc}") from None
        report = get("looseends_report")
        update = bool(get("looseends_baseline_update"))
        return cls(
            enabled=bool(get("looseends")),
            options=options,
            warn_only=bool(get("looseends_warn_only")),
            report_path=_writable(Path(report), "report") if report else None,
            force_exit=bool(get("looseends_force_exit")),
            baseline=_baseline(get("looseends_baseline"), update),
            baseline_update=update,
        )


def _writable(path: Path, option: str) -> Path:
    """Checked before the first test, so a typo costs seconds, not a whole run's report."""
    folder, flag = path.parent, f"--looseends-{option}={path}"
    if path.is_dir():
        raise pytest.UsageError(f"looseends: {flag}: is a directory, expected a file")
    if not folder.is_dir():
        raise pytest.UsageError(f"looseends: {flag}: no such directory {str(folder)!r}")
    if not os.access(folder, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise pytest.UsageError(f"looseends: {flag}: not writable")
    return path


def _baseline(path: str | None, update: bool) -> LeakBaseline | None:
    """The known leaks; a file to be rewritten is checked writable first, like the report's."""
    if path and update:
        _writable(Path(path), "baseline")
    try:
        return open_baseline(path, update)
    except OptionError as exc:
        raise pytest.UsageError(f"looseends: {exc}") from None


def _seconds(value: object, name: str) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise OptionError(f"invalid {name}={value!r}: expected a number of seconds") from None


def _rules(
    top: Iterable[str],
    function: Iterable[str],
    created: Iterable[str],
    name: Iterable[str],
    command: Iterable[str],
) -> list[IgnoreRule]:
    rules = []
    for factory, values in (
        (ignore_top_function, top),
        (ignore_any_function, function),
        (ignore_created_at, created),
        (ignore_name, name),
        (ignore_command, command),
    ):
        values = [v for v in values or () if v]
        if values:
            rules.append(factory(*values))
    return rules
