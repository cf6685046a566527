"""Config semantics that match the words (issue #11): embeddings-only towers, config_type,
an explicit target transform."""

from __future__ import annotations

import ast

import pytest
from omegaconf import OmegaConf

from compiler.core.build import build
from compiler.core.plan import plan
from compiler.core.validate import validate
from compiler.errors import ConfigError
from compiler.model import encoded_widths
from compiler.schema import TargetSpec
from tests.compile_helpers import compose_config

TUTORIAL = ("model=tfrs_tutorial", "features=tfrs_tutorial")


def check(overrides) -> ConfigError:
    with pytest.raises(ConfigError) as raised:
        validate(compose_config(list(overrides)))
    return raised.value


def trainer_for(*overrides: str) -> str:
    return build(plan(validate(compose_config(list(overrides)))))["trainer_module.py"].code


def function_source(source: str, name: str) -> str:
    tree = ast.parse(source)
    node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == name)
    return ast.get_source_segment(source, node) or ""


@pytest.mark.slow
def test_embeddings_only_towers_emit_no_dense_layer() -> None:
    trainer = trainer_for(*TUTORIAL)
    for side in ("buyer", "product"):
        tower = function_source(trainer, f"_build_{side}_tower")
        assert "Dense" not in tower and "_mlp_layers" not in tower and "Tower(" not in tower
        assert f"FeatureEncoder({side.upper()}_FEATURES, tf_transform_output" in tower
    # The rating head keeps its dense layers; the unused Tower class is not emitted.
    assert "_mlp_layers((256, 128, 1)" in trainer
    assert "class Tower(" not in trainer


def test_projection_linear_is_the_explicit_dense_projection() -> None:
    trainer = trainer_for("model=retrieval_v1", "model.buyer_tower.layers=[]",
                          "model.buyer_tower.projection=linear")
    buyer = function_source(trainer, "_build_buyer_tower")
    assert "_mlp_layers((32,)" in buyer and "projected to 32" in buyer


@pytest.mark.slow
def test_encoder_width_mismatch_names_both_numbers() -> None:
    error = check(["model=retrieval_v1", "model.buyer_tower.layers=[]"])
    assert error.key == "model.output_embedding_dim"
    assert "width 102 (customer_id_id 64 + " in error.problem and "got 32" in error.problem
    assert "model.buyer_tower.projection=linear" in error.problem
    error = check([*TUTORIAL, "features.product.0.embedding.dim=16"])
    assert "product encodings' width 16 (product_id_id 16)" in error.problem
    assert "got 32" in error.problem
    # Widths that add up: a 24-wide id embedding and an 8-wide category make 32.
    validate(compose_config([*TUTORIAL, "features.product=[{name: product_id, embedding: "
                             "{dim: 24}}, {name: category, embedding: {dim: 8}}]"]))


def test_projection_with_layers_is_an_error() -> None:
    error = check(["model.buyer_tower.projection=linear"])
    assert error.key == "model.buyer_tower.projection"
    assert error.problem.startswith("expected none when layers are set")
    assert "got 'linear'" in error.problem


@pytest.mark.parametrize("features", ["cherng_v3", "online_retail", "tfrs_tutorial"])
def test_encoded_widths_match_the_plan(features: str) -> None:
    """The width validation reads the feature config; the encoder reads the plan's
    transformed features. Both lists must be the same."""
    model = "tfrs_tutorial" if features == "tfrs_tutorial" else "hybrid_v1"
    the_plan = plan(validate(compose_config([f"model={model}", f"features={features}"])))
    for side in ("buyer", "product"):
        planned = [(f.name, f.dim or 1) for f in the_plan.features_for(side)]
        assert encoded_widths(the_plan.config.features, side) == planned


@pytest.mark.slow
def test_config_type_drives_what_it_promises() -> None:
    error = check(["features.config_type=retrieval"])
    assert error.key == "features.target"
    assert "expected no target for config_type retrieval" in error.problem
    error = check(["features.config_type=retrieval", "features.target=null"])
    assert error.key == "features.config_type"
    assert "expected 'ranking' for model_type multitask" in error.problem
    error = check(["model=retrieval_v1", "features.target=null"])
    assert error.key == "features.target"
    assert "expected a target for config_type ranking" in error.problem
    # A retrieval feature config serves a retrieval model, and its Transform has no target.
    config = validate(compose_config(["model=retrieval_v1", "features.config_type=retrieval",
                                      "features.target=null"]))
    assert not any(f.side == "target" for f in plan(config).transformed_features)


@pytest.mark.slow
def test_target_log_is_off_unless_asked_for() -> None:
    plain = build(plan(validate(compose_config(
        [*TUTORIAL, "model=ranking_v1"]))))
    assert "log1p" not in plain["transform_module.py"].code
    assert "expm1" not in plain["trainer_module.py"].code
    logged = build(plan(validate(compose_config(["model=ranking_v1"]))))  # cherng_v3: log: true
    assert "tf.math.log1p(sales_value)" in logged["transform_module.py"].code
    assert "tf.math.expm1(predictions)" in logged["trainer_module.py"].code
    # A target written as {column: sales} is used as it is.
    written = OmegaConf.merge(OmegaConf.structured(TargetSpec), {"column": "sales"})
    assert OmegaConf.to_object(written) == TargetSpec(column="sales", clip=None, log=False)
