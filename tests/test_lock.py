"""The dev/CI install is locked: requirements/dev.lock pins every package exactly, the suite
runs against those versions, and a dependency edit without `scripts/dev.sh lock` is caught."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "dev.lock"
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "lockcheck.py"), "--root", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The files the lock check reads, copied so that a test can edit them."""
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "requirements", tmp_path / "requirements")
    return tmp_path


def _pins() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        match = PIN.match(line)
        if match:
            pins[match.group(1)] = match.group(2)
    return pins


def test_the_committed_lock_is_in_step_with_pyproject() -> None:
    result = _check(ROOT)
    assert result.returncode == 0, result.stderr


def test_a_dependency_edit_without_a_refresh_fails_naming_the_command(checkout: Path) -> None:
    pyproject = checkout / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace('"tqdm>=4.66"', '"tqdm>=4.67"', 1))
    result = _check(checkout)
    assert result.returncode == 1
    assert "pyproject.toml's dependencies" in result.stderr
    assert "scripts/dev.sh lock" in result.stderr


def test_a_new_dev_dependency_missing_from_the_lock_is_named(checkout: Path) -> None:
    pyproject = checkout / "pyproject.toml"
    pyproject.write_text(
        pyproject.read_text().replace('    "pytest>=8",', '    "pytest>=8",\n    "tomli-w>=1",', 1)
    )
    result = _check(checkout)
    assert result.returncode == 1
    assert "'tomli-w>=1' is not pinned" in result.stderr


def test_a_tool_setting_edit_needs_no_refresh(checkout: Path) -> None:
    pyproject = checkout / "pyproject.toml"
    pyproject.write_text(pyproject.read_text().replace("line-length = 110", "line-length = 100", 1))
    assert _check(checkout).returncode == 0


def test_the_lock_pins_exact_versions_of_a_cpu_only_set() -> None:
    pins = _pins()
    assert len(pins) > 50  # the whole transitive set, not only the direct dependencies
    assert "torch" not in pins  # installed first, at the CPU build's pin or a GPU user's CUDA build
    assert not [name for name in pins if name.startswith("nvidia-")]
    assert {"fastapi", "transformers", "diffusers", "mypy", "ruff", "schemathesis"} <= set(pins)


def test_the_suite_runs_against_the_locked_versions() -> None:
    """What scripts/dev.sh setup installed is what the lock says (setuptools aside: pip may keep
    the venv's own)."""
    differ = {}
    for name, version in _pins().items():
        if name == "setuptools":
            continue
        installed = metadata.version(name)
        if installed != version:
            differ[name] = (version, installed)
    assert differ == {}
