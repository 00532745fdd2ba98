"""Plugin tests run real pytest sessions in subprocesses (pytester), as users would."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def quiet_ini(pytester: pytest.Pytester) -> None:
    """Every generated project gets an ini that silences pytest-asyncio's scope warning."""
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
