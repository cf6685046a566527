"""Stage 2 — validate: every bad-input case gives one ConfigError naming its key."""

from __future__ import annotations

import pytest

from compiler.core.validate import validate
from compiler.errors import ConfigError
from tests.compile_helpers import compose_config


def check(overrides: list[str]) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        validate(compose_config(overrides))
    return raised.value


@pytest.mark.slow
def test_shipped_configs_validate() -> None:
    for model in ("hybrid_v1", "retrieval_v1", "ranking_v1"):
        config = validate(compose_config([f"model={model}"]))
        assert config.model.name == model
        assert len(config.config_hash) == 16


def test_zero_layer_width() -> None:
    error = check(["model.buyer_tower.layers=[128,0,32]"])
    assert error.key == "model.buyer_tower.layers[1]"
    assert "positive integer" in error.problem


def test_negative_layer_width() -> None:
    error = check(["model.rating_head.layers=[64,-3,1]"])
    assert error.key == "model.rating_head.layers[1]"


def test_unknown_fragment_lists_registered_names() -> None:
    error = check(["model.optimizer=adamw"])
    assert error.key == "model.optimizer"
    assert "adam" in error.problem and "sgd" in error.problem
    assert error.suggestion == "adam"


def test_unknown_tower_type() -> None:
    error = check(["model.buyer_tower.type=mpl"])
    assert error.key == "model.buyer_tower.type"
    assert error.suggestion == "mlp"


def test_cross_naming_a_missing_feature() -> None:
    error = check(["features.crosses.buyer.0.features=[customer_id,cust_valeu]"])
    assert error.key == "features.crosses.buyer[0].features[1]"
    assert error.suggestion == "cust_value"


def test_output_embedding_dim_must_be_last_tower_width() -> None:
    error = check(["model.output_embedding_dim=16"])
    assert error.key == "model.output_embedding_dim"
    assert "32" in error.problem


@pytest.mark.parametrize("bad_name", ["Customer-ID", "x;import os", "class", "9lives"])
def test_feature_name_must_be_a_safe_identifier(bad_name: str) -> None:
    error = check([f"features.buyer.0.name='{bad_name}'"])
    assert error.key == "features.buyer[0].name"
    assert "safe feature name" in error.problem


def test_towers_without_hidden_layers_are_allowed() -> None:
    config = validate(compose_config([
        "model=retrieval_v1", "model.buyer_tower.layers=[]", "model.product_tower.layers=[]",
        "model.buyer_tower.projection=linear", "model.product_tower.projection=linear",
    ]))
    assert config.model.buyer_tower.layers == []


@pytest.mark.slow
def test_scann_and_other_optimizers_validate() -> None:
    for optimizer in ("adam", "adagrad", "sgd"):
        validate(compose_config([f"model.optimizer={optimizer}",
                                 "model.retrieval_algorithm=scann"]))


def test_fragment_params_are_validated_against_the_fragment_schema() -> None:
    error = check(["model.retrieval_algorithm=scann", "+model.buyer_tower.params.depth=2"])
    assert error.key == "model.buyer_tower.params.depth"
    assert "takes no parameters" in error.problem


def test_ranking_needs_a_target() -> None:
    error = check(["model=ranking_v1", "features.target=null"])
    assert error.key == "features.target"


@pytest.mark.parametrize(("overrides", "key", "text"), [
    (["model.buyer_tower.activation=banana"], "model.buyer_tower.activation",
     "expected a Keras activation"),
    (["model.product_tower.activation=Relu"], "model.product_tower.activation",
     "did you mean 'relu'"),
    (["model.rating_head.activation=tahn"], "model.rating_head.activation",
     "did you mean 'tanh'"),
    (["model.top_k=[5,5,10]"], "model.top_k[1]", "expected distinct values, got 5 twice"),
    (["features.crosses.buyer.0.features=[cust_value,cust_value]"],
     "features.crosses.buyer[0].features", "crossed with itself"),
    (["model.retrieval_weight=0", "model.ranking_weight=0"], "model.ranking_weight",
     "got both 0"),
])
def test_what_the_runtime_would_reject_fails_the_compile(overrides, key, text) -> None:
    error = check(overrides)
    assert error.key == key
    assert text in str(error)


def test_one_zero_loss_weight_is_allowed() -> None:
    assert validate(compose_config(["model.retrieval_weight=0"])).model.ranking_weight == 1.0


@pytest.mark.slow
def test_every_activation_in_the_table_validates() -> None:
    from compiler.core.validate import ACTIVATIONS

    for name in ACTIVATIONS:
        config = validate(compose_config([f"model.buyer_tower.activation={name}"]))
        assert config.model.buyer_tower.activation == name


@pytest.mark.slow
def test_activation_table_matches_what_keras_accepts() -> None:
    """The table holds only names Keras accepts, and every public activation Keras has (bar
    the helpers in NOT_ACTIVATIONS): a Keras upgrade that adds or removes one fails here."""
    import os

    os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    import tf_keras

    from compiler.core.validate import ACTIVATIONS, NOT_ACTIVATIONS

    for name in ACTIVATIONS:
        assert callable(tf_keras.activations.get(name)), name
    public = {n for n in dir(tf_keras.activations) if not n.startswith("_")}
    assert public - set(NOT_ACTIVATIONS) <= set(ACTIVATIONS), public - set(ACTIVATIONS)
    with pytest.raises(ValueError):
        tf_keras.activations.get("banana")
