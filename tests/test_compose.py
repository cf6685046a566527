"""Stage 1 — compose: Hydra groups and overrides, and composition errors."""

from __future__ import annotations

import pytest

from compiler.core.compose import compose
from compiler.errors import ConfigError
from tests.compile_helpers import compose_config


def test_shipped_configs_compose_with_schemas() -> None:
    cfg = compose_config(["model=hybrid_v1", "features=cherng_v3"])
    assert cfg.model.model_type == "multitask"
    assert list(cfg.model.buyer_tower.layers) == [128, 64, 32]
    assert cfg.features.target.clip.upper_percentile == 90
    assert cfg.output_dir == "generated/hybrid_v1__cherng_v3"


def test_overrides_apply() -> None:
    cfg = compose(["model=retrieval_v1", "model.learning_rate=0.5", "model.optimizer=sgd"])
    assert cfg.model.learning_rate == 0.5 and cfg.model.optimizer == "sgd"


@pytest.mark.parametrize(
    ("overrides", "key", "fragment"),
    [
        (["model.buyer_tower.layer=[1]"], "model.buyer_tower.layer", "did you mean 'layers'"),
        (["model.batch_size=abc"], "model.batch_size", "expected integer"),
        (["model=hybird_v1"], "model", "did you mean 'hybrid_v1'"),
        (["features.buyer.0.dtype=strng"], "features.buyer[0].dtype", "did you mean 'string'"),
    ],
)
def test_compose_errors_name_the_key(overrides: list[str], key: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as raised:
        compose(overrides)
    assert raised.value.key == key
    assert fragment in str(raised.value)


def test_unknown_key_in_a_yaml_file_names_file_and_line(tmp_path) -> None:
    import shutil

    from compiler.core.compose import CONF_DIR

    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    (conf / "model" / "broken.yaml").write_text(
        "defaults:\n  - model_schema\n  - _self_\nname: broken\nbuyer_tower:\n  layres: [8]\n"
    )
    with pytest.raises(ConfigError) as raised:
        compose(["model=broken"], config_dir=conf)
    message = str(raised.value)
    assert raised.value.key == "model.buyer_tower.layres"
    assert "did you mean 'layers'" in message
    assert "broken.yaml:6" in message


@pytest.mark.parametrize("overrides", [
    ["model=ranking_v1", "model.learning_rate=0.5", "+model.buyer_tower.params.x=1"],
    ["model.buyer_tower.layers=[64,32]", "features.target.clip.lower_percentile=5"],
    ["features.crosses.buyer=[]", "output_dir=/tmp/x", "dry_run=true"],
    ["features=online_retail", "model.top_k=[1,2]", "run=local", "run.epochs=2"],
])
@pytest.mark.slow
def test_fast_compose_equals_hydra_compose(overrides: list[str]) -> None:
    from omegaconf import OmegaConf

    expected = compose_config(overrides)
    actual = compose(overrides)
    assert OmegaConf.to_yaml(actual) == OmegaConf.to_yaml(expected)


def test_yaml_syntax_error_is_file_line_column(tmp_path) -> None:
    import shutil

    from compiler.core.compose import CONF_DIR

    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    (conf / "features" / "tabs.yaml").write_text("name: tabs\nbuyer:\n\t- name: x\n")
    with pytest.raises(ConfigError) as raised:
        compose(["features=tabs"], config_dir=conf)
    assert raised.value.key == f"{conf}/features/tabs.yaml:3:1"
    assert raised.value.problem.startswith("expected valid YAML, got character '\\t'")


def test_override_grammar_error_names_the_override() -> None:
    with pytest.raises(ConfigError) as raised:
        compose(["model=hybrid_v1", "model.top_k=[5,10"])
    assert raised.value.key == "override 'model.top_k=[5,10'"
    assert "expected Hydra override syntax" in raised.value.problem


def test_unknown_hydra_option_suggests_one() -> None:
    with pytest.raises(ConfigError) as raised:
        compose(["hydra/launcher=joblibb"], with_hydra=True)
    assert raised.value.key == "hydra/launcher"
    assert raised.value.suggestion == "joblib"
