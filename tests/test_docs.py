"""Docs that cannot drift: README commands, settings, CLI reference and engines."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from plantain.engines.registry import BUILTIN_ENGINES
from plantain.settings import Settings

ROOT = Path(__file__).resolve().parent.parent


def readme_commands() -> list[str]:
    first_block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S)
    assert first_block is not None
    return [line.split("#")[0].strip() for line in first_block.group(1).splitlines() if line.strip()]


def test_readme_starts_with_a_main_job_and_a_test_command() -> None:
    assert readme_commands() == ["./scripts/dev.sh serve", "./scripts/dev.sh test"]


def test_ci_runs_the_readme_test_command() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert readme_commands()[1] in ci


def test_every_setting_is_documented() -> None:
    documented = (ROOT / "docs" / "settings.md").read_text()
    for name in Settings.model_fields:
        assert f"| `{name}` | `PLANTAIN_{name.upper()}` |" in documented, name


def test_cli_reference_is_current() -> None:
    spec = importlib.util.spec_from_file_location("cli_docs", ROOT / "scripts" / "cli_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert (ROOT / "docs" / "cli.md").read_text() == module.render(), "run: python scripts/cli_docs.py"


def test_every_engine_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    engines = (ROOT / "docs" / "engines.md").read_text()
    for name in BUILTIN_ENGINES:
        assert f"`{name}`" in readme and f"`{name}`" in engines, name


def test_changelog_has_an_unreleased_section() -> None:
    assert "## [Unreleased]" in (ROOT / "CHANGELOG.md").read_text()


def test_the_architecture_map_names_every_package_and_top_level_module() -> None:
    """docs/architecture.md is the map of src/plantain: a new package or module must appear on it."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    source = ROOT / "src" / "plantain"
    packages = [f"`{path.name}/`" for path in source.iterdir() if (path / "__init__.py").exists()]
    modules = [f"`{path.name}`" for path in source.glob("*.py") if not path.name.startswith("_")]
    missing = [name for name in packages + modules if name not in text]
    assert not missing, f"docs/architecture.md does not name {', '.join(sorted(missing))}"
