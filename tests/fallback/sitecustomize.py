"""Blocks the C accelerator in every Python process that has this folder on PYTHONPATH (the test run and
each subprocess it starts), so that `.ci/run` can run the whole suite on the pure-Python fallback that
installs without a compiler use."""

from __future__ import annotations

import sys
from typing import Any

ACCELERATOR = "looseends.sources._speedups"


class _WithoutTheAccelerator:  # a meta path finder that refuses one module
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == ACCELERATOR:
            raise ImportError(f"{ACCELERATOR} is blocked: the pure-Python fallback is under test")


sys.meta_path.insert(0, _WithoutTheAccelerator())
