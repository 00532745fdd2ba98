"""Whose code is a frame: the user's, or a library's (Python's standard library, installed packages,
Go's standard library, looseends itself)? Reports fold library frames and creation sites skip them, so
the user's own line shows.

Installed packages count as libraries unless named with `my_packages` (or LOOSEENDS_MY_PACKAGES=a,b):
packages a user develops but installs (not in editable mode) are theirs.
"""

from __future__ import annotations

import functools
import os
import sys

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def standard_library_paths() -> set[str]:
    """This interpreter's standard library folders: where `os` came from, and the same folder under the
    platform prefix (the two differ on some distributions). sysconfig says the same, but importing it
    and expanding its paths costs milliseconds of every start-up, and an attached process a module."""
    stdlib = os.path.dirname(os.__file__)
    return {stdlib, os.path.join(sys.base_exec_prefix, sys.platlibdir, os.path.basename(stdlib))}


@functools.cache
def _library_prefixes() -> tuple[str, ...]:
    paths = standard_library_paths()
    return tuple(os.path.join(os.path.realpath(p), "") for p in paths) + tuple(
        os.path.join(p, "") for p in paths
    )


def is_own_file(filename: str) -> bool:
    """True for looseends' own code, such as the wrappers that track creations."""
    return filename.startswith(_PACKAGE_DIR)


# Installed packages are libraries, like the standard library: their frames are folded in reports and
# skipped when looking for the line that created a unit, so the user's own line shows. Packages the user
# develops but installs (not in editable mode) are named here, or in LOOSEENDS_MY_PACKAGES (a,b,c).
_mine: set[str] = {
    name.strip() for name in os.environ.get("LOOSEENDS_MY_PACKAGES", "").split(",") if name.strip()
}


def my_packages(*names: str) -> None:
    """Treat these installed top-level packages as the user's own code: shown in full, creation sites."""
    _mine.update(names)
    is_library_file.cache_clear()
    installed_module.cache_clear()


def _in_site_packages(filename: str) -> str | None:
    """A file's path under site-packages (or dist-packages): `django/test/runner.py`; else None."""
    for marker in ("site-packages", "dist-packages"):
        index = filename.find(marker + os.sep)
        if index >= 0:
            return filename[index + len(marker) + 1 :]
    return None


def _installed_package(filename: str) -> str | None:
    """The top-level package of a file under site-packages (or dist-packages), else None."""
    rest = _in_site_packages(filename)
    return rest.split(os.sep, 1)[0].removesuffix(".py") if rest is not None else None


@functools.lru_cache(maxsize=4096)
def installed_module(name: str) -> bool:
    """A module (by name) of an installed package that is not one of `my_packages`."""
    top = name.partition(".")[0]
    if top in _mine:
        return False
    from looseends import _cpython  # here: this module is imported where asyncio is not wanted yet

    filename = _cpython.module_file(sys.modules.get(top))  # statically: a lazy module would import itself
    return filename is not None and _installed_package(filename) is not None


# Go's standard library, by the first element of its import paths (trimmed file names start with it).
_GO_STD = frozenset(
    (
        "archive",
        "bufio",
        "builtin",
        "bytes",
        "cmp",
        "compress",
        "container",
        "context",
        "crypto",
        "database",
        "debug",
        "embed",
        "encoding",
        "errors",
        "expvar",
        "flag",
        "fmt",
        "go",
        "hash",
        "html",
        "image",
        "index",
        "internal",
        "io",
        "iter",
        "log",
        "maps",
        "math",
        "mime",
        "net",
        "os",
        "path",
        "plugin",
        "reflect",
        "regexp",
        "runtime",
        "slices",
        "sort",
        "strconv",
        "strings",
        "structs",
        "sync",
        "syscall",
        "testing",
        "text",
        "time",
        "unicode",
        "unique",
        "unsafe",
        "vendor",
        "weak",
    )
)


def _is_go_std(filename: str) -> bool:
    path = filename.split("/go/src/", 1)[-1]  # a GOROOT path, or a -trimpath one such as runtime/sema.go
    return path.split("/", 1)[0] in _GO_STD


@functools.lru_cache(maxsize=4096)
def is_stdlib_file(filename: str) -> bool:
    """True for Python's own standard library (and frozen modules), and looseends itself."""
    if filename.startswith("<frozen ") or is_own_file(filename):
        return True
    return filename.startswith(_library_prefixes()) and "-packages" + os.sep not in filename


@functools.lru_cache(maxsize=4096)
def is_library_file(filename: str) -> bool:
    """True for frames users did not write: the standard library (Python's or Go's), installed packages
    (but `my_packages`), looseends itself."""
    if filename.startswith("<frozen ") or is_own_file(filename):
        return True
    if filename.endswith((".go", ".s")):
        return _is_go_std(filename)
    package = _installed_package(filename)
    if package is not None:
        return package not in _mine
    return filename.startswith(_library_prefixes())


@functools.lru_cache(maxsize=4096)
def short_path(filename: str) -> str:
    """Short and clickable: an installed package's or the standard library's file from its import root
    (`django/test/runner.py`, `concurrent/futures/thread.py`: where Python is installed says nothing the
    reader needs, and differs between machines); else relative to the working directory when inside it;
    else as given."""
    rest = _in_site_packages(filename)
    if rest:
        return rest
    for prefix in _library_prefixes():
        if filename.startswith(prefix) and len(filename) > len(prefix):
            return filename[len(prefix) :]
    try:
        rel = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if rel.startswith(os.pardir) else rel
