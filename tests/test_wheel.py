"""The built wheel, not the editable checkout: what users install must hold every module, the package data
(py.typed, the accelerator's stub, the Prometheus rules), the compiled accelerator and the entry points,
and work from there."""

from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "src" / "looseends"
DATA = ("looseends/py.typed", "looseends/sources/_speedups.pyi", "looseends/frontends/prometheus_rules.yml")

FROM_THE_WHEEL = """
import importlib, importlib.util, pkgutil, sys
from pathlib import Path
import looseends
home = Path(looseends.__file__).parent
assert str(home).startswith(sys.argv[1]), f"looseends came from {home}, not the wheel"
for module in pkgutil.walk_packages(looseends.__path__, "looseends."):
    if module.name == "looseends.__main__":  # runs the command
        continue
    if module.name != "looseends.frontends.django_runner" or importlib.util.find_spec("django"):
        importlib.import_module(module.name)
from looseends.sources import _speedups
assert Path(_speedups.__file__).parent == home / "sources", _speedups.__file__
with looseends.check(timeout=0.1):
    pass
print(len(looseends.snapshot().units) >= 1, "ok")
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Built from a copy of the tracked files, so the checkout gains no build folders."""
    work = tmp_path_factory.mktemp("wheel")
    tracked = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=60
    ).stdout.split(b"\0")
    for name in filter(None, tracked):
        source = ROOT / name.decode()
        if source.is_file():
            (work / "tree" / name.decode()).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, work / "tree" / name.decode())
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "-w",
            str(work / "dist"),
            str(work / "tree"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if built.returncode != 0:
        pytest.skip(f"could not build the wheel (pip needs setuptools from PyPI): {built.stderr[-300:]}")
    (path,) = (work / "dist").glob("looseends-*.whl")
    return path


def test_the_wheel_holds_every_module_the_package_data_and_the_accelerator(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {str(path.relative_to(PACKAGE.parent)) for path in PACKAGE.rglob("*.py")}
    assert modules - names == set()
    assert set(DATA) - names == set()
    assert any(name.startswith("looseends/sources/_speedups.") and name.endswith(".so") for name in names)


def test_the_wheel_declares_the_command_and_the_pytest_plugin(wheel: Path) -> None:
    archive = zipfile.ZipFile(wheel)
    (entry_points,) = (name for name in archive.namelist() if name.endswith(".dist-info/entry_points.txt"))
    parsed = configparser.ConfigParser()
    parsed.read_string(archive.read(entry_points).decode())
    assert parsed["console_scripts"]["looseends"] == "looseends.frontends.cli:main_exit"
    assert parsed["pytest11"]["looseends"] == "looseends.frontends.pytest.plugin"


def test_the_installed_files_import_check_and_snapshot(wheel: Path, tmp_path: Path) -> None:
    """Unpacked as pip installs it and put first on the path, ahead of the editable checkout."""
    site = tmp_path / "site"
    zipfile.ZipFile(wheel).extractall(site)
    env = {"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-c", FROM_THE_WHEEL, str(site)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "ok"]
    version = subprocess.run(
        [sys.executable, "-m", "looseends", "--version"], env=env, capture_output=True, text=True, timeout=60
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("looseends ")
