from pathlib import Path

import pytest
from click.testing import CliRunner

from plantain.cli.main import cli
from plantain.errors import ConfigurationError
from plantain.settings import load_settings


def test_settings_come_from_plantain_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PLANTAIN_DEFAULT_ENGINE", "tiny")
    monkeypatch.setenv("PLANTAIN_WEIGHTS", f'{{"qwen-image": "{tmp_path}"}}')
    settings = load_settings(data_dir=tmp_path)
    assert settings.default_engine == "tiny"
    assert settings.weights == {"qwen-image": tmp_path}
    assert settings.models_dir == tmp_path / "models"


def test_a_bad_value_names_the_variable_and_the_choices(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTAIN_DTYPE", "float8")
    with pytest.raises(
        ConfigurationError, match=r"PLANTAIN_DTYPE\): 'float8' is not allowed; input should be 'auto'"
    ):
        load_settings()


def test_a_dictionary_that_is_not_json_is_one_line_in_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTAIN_WEIGHTS", "tiny=/models")
    result = CliRunner().invoke(cli, ["engines"])
    assert result.exit_code == 1
    assert result.stderr.startswith('Error: error parsing value for field "weights"')
    assert len(result.stderr.strip().splitlines()) == 1
