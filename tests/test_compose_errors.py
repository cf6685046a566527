"""Composition errors read from the exceptions' attributes (full_key, value, node types)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from compiler.core.compose import CONF_DIR, compose
from compiler.errors import ConfigError


def error_of(overrides: list[str], config_dir: Path | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        compose(overrides, config_dir=config_dir)
    return raised.value


@pytest.mark.parametrize(("override", "key", "problem"), [
    ("model.learning_rate=fast", "model.learning_rate", "expected float, got 'fast' (str)"),
    ("model.top_k=[1,x]", "model.top_k[1]", "expected integer, got 'x' (str)"),
    ("data.format=xls", "data.format", "expected one of auto, csv, parquet, got 'xls'"),
])
def test_value_errors_say_what_was_expected(override: str, key: str, problem: str) -> None:
    error = error_of([override])
    assert (error.key, error.problem) == (key, problem)


@pytest.mark.slow
def test_the_most_specific_override_is_named() -> None:
    error = error_of(["run=local", "run.epochs=abc"])
    assert error.key == "run.epochs"
    assert error.location == "override 'run.epochs=abc'"


def test_keys_of_a_group_nothing_selected() -> None:
    error = error_of(["run.epochs=2"])
    assert error.key == "run"
    assert error.problem.startswith("expected an option of group 'run' selected (run=<local>)")


def test_a_bad_enum_value_in_a_file_names_the_line_and_suggests(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    text = (conf / "features" / "cherng_v3.yaml").read_text()
    assert "dtype: string" in text
    (conf / "features" / "typo.yaml").write_text(text.replace("dtype: string", "dtype: strng", 1))
    error = error_of(["features=typo"], conf)
    assert error.problem.startswith("expected one of string, int, float, timestamp, got 'strng'")
    assert error.suggestion == "string"
    assert (error.location or "").startswith(f"{conf}/features/typo.yaml:")
