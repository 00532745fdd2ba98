"""The public API is typed for its users: mypy flags a misspelt option or a wrong type in their code."""

from __future__ import annotations

from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api", reason="mypy (the dev extra) is not installed")

USER_CODE = """\
import looseends

looseends.find(timeout=0.1, kinds=["thread"])
looseends.find(timout=1)
with looseends.check(max_groups="many"):
    pass
"""


def test_mypy_flags_a_misspelt_option_and_a_wrong_type_in_user_code(tmp_path: Path) -> None:
    (tmp_path / "user.py").write_text(USER_CODE)
    out, err, status = mypy_api.run(
        ["--strict", "--cache-dir", str(tmp_path / "cache"), str(tmp_path / "user.py")]
    )
    assert status == 1, err
    assert 'user.py:4: error: Unexpected keyword argument "timout"' in out
    assert 'did you mean "timeout"?' in out
    assert 'user.py:5: error: Argument "max_groups" to "check" has incompatible type "str"' in out
    assert "user.py:3:" not in out  # correct use is clean
