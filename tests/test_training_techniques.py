"""Training-loop knobs: model.reshuffle_each_epoch, model.early_stopping, model.lr_schedule and
model.eval_protocol — validation, what they emit, and (slow, tiny data) what the emitted
trainer does with them."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from omegaconf import DictConfig, OmegaConf

from compiler.core.compose import compose
from compiler.core.pipeline import CompileResult, compile_config
from compiler.core.validate import validate
from compiler.errors import ConfigError
from compiler.schema import EarlyStoppingConfig, LRScheduleConfig

#: Optional settings groups (null by default) are set on the composed config: a Hydra
#: command-line override cannot merge a mapping into a null structured node.
ES = {"metric": "val_recall_at_10", "patience": 1}
SETTINGS = {"early_stopping": EarlyStoppingConfig, "lr_schedule": LRScheduleConfig}


def compiled(overrides: Sequence[str] = (), write_to: Path | None = None,
             **settings: Any) -> CompileResult:
    """The compiled ``configured(overrides, **settings)``."""
    return compile_config(configured(overrides, **settings), output_dir=write_to,
                          write=write_to is not None)


def trainer(result: CompileResult) -> str:
    return result.sources["trainer_module.py"]


def configured(overrides: Sequence[str] = (), **settings: Any) -> DictConfig:
    """``model=hybrid_v1 features=cherng_v3`` + ``overrides``, with ``settings`` set on
    ``model`` (``early_stopping={...}``)."""
    cfg = compose(["model=hybrid_v1", "features=cherng_v3", *overrides])
    for key, value in settings.items():
        cfg.model[key] = OmegaConf.merge(OmegaConf.structured(SETTINGS[key]), value)
    return cfg


def rejected(overrides: Sequence[str] = (), **settings: Any) -> str:
    with pytest.raises(ConfigError) as raised:
        validate(configured(overrides, **settings))
    return str(raised.value)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize(("settings", "overrides", "expected"), [
    ({"early_stopping": {"metric": "val_recal_at_10"}}, [],
     "model.early_stopping.metric: expected a validation metric the run writes "
     "(val_recall_at_5, val_recall_at_10, val_recall_at_50, val_recall_at_100, val_rmse, "
     "val_mae), got 'val_recal_at_10'; did you mean 'val_recall_at_10'?"),
    ({"early_stopping": {"metric": "val_ndcg_at_10"}}, [],
     "model.early_stopping.metric: expected a validation metric the run writes"),
    ({"early_stopping": {"patience": -1}}, [],
     "model.early_stopping.patience: expected a number of epochs >= 0, got -1"),
    ({"early_stopping": {"min_delta": -0.1}}, [],
     "model.early_stopping.min_delta: expected a value >= 0, got -0.1"),
    ({}, ["model=ranking_v1", "model.callbacks=[early_stopping]"],
     "model.early_stopping.metric: expected a validation metric the run writes (val_rmse, "
     "val_mae), got 'val_recall_at_100'"),
    ({"lr_schedule": {"kind": "warmup_cosin"}}, [],
     "model.lr_schedule.kind: expected one of warmup_cosine, got 'warmup_cosin'; "
     "did you mean 'warmup_cosine'?"),
    ({"lr_schedule": {"warmup_epochs": 20.0}}, [],
     "model.lr_schedule.warmup_epochs: expected 0 <= warmup_epochs < model.epochs (20), "
     "got 20.0"),
    ({"lr_schedule": {"final_learning_rate_ratio": 1.5}}, [],
     "model.lr_schedule.final_learning_rate_ratio: expected a ratio in [0, 1], got 1.5"),
    ({}, ["model=ranking_v1", "model.eval_protocol=new_products"],
     "model.eval_protocol: expected all for a ranking model"),
    ({}, ["model.eval_protocol=new_products", "features.buyer_id=cust_value"],
     "features.buyer_id: expected a buyer feature with an embedding"),
])
def test_bad_settings_name_the_key(settings: dict[str, Any], overrides: list[str],
                                   expected: str) -> None:
    assert rejected(overrides, **settings).startswith(expected)


def test_ndcg_metrics_are_watchable_when_the_evaluator_is_on() -> None:
    source = trainer(compiled(["model.evaluators=[recall_at_k,regression,ndcg,mrr]"],
                              early_stopping={"metric": "val_ndcg_at_10"}))
    assert '_evaluate_ndcg(model, eval_dataset, candidates)["ndcg_at_10"]' in source
    assert 'EARLY_STOPPING_MODE = "max"' in source


# --------------------------------------------------------------------------- emitted code


def test_defaults_emit_the_reading_and_optimizer_of_before() -> None:
    source = trainer(compiled())
    assert "reshuffle_each_iteration=False" in source and "_shuffled_each_epoch" not in source
    assert "def _make_optimizer():" in source and "CosineDecay" not in source
    assert "EarlyStopping(" not in source and "_train_purchases(" not in source
    assert "callbacks=callbacks," in source


def test_reshuffle_shuffles_row_numbers_after_the_cache() -> None:
    source = trainer(compiled(["model.reshuffle_each_epoch=true"]))
    assert "return _shuffled_each_epoch(dataset, batch_size)" in source
    assert "shuffle(rows, seed=SEED, reshuffle_each_iteration=True)" in source
    uncached = trainer(compiled(["model.reshuffle_each_epoch=true",
                                 "model.performance.cache=false",
                                 "model.performance.steps_per_execution=1"]))
    assert "shuffle(10 * batch_size, seed=SEED, reshuffle_each_iteration=True)" in uncached


def test_schedule_and_early_stopping_change_run_fn() -> None:
    source = trainer(compiled(lr_schedule={"warmup_epochs": 2.0},
                              early_stopping={"metric": "val_rmse", "patience": 2}))
    assert "optimizer=_make_optimizer(_steps_per_epoch(train_dataset), epochs)," in source
    assert "WARMUP_EPOCHS = 2.0" in source
    assert 'EARLY_STOPPING_MODE = "min"' in source and "EARLY_STOPPING_PATIENCE = 2" in source
    assert '_evaluate_regression(model, eval_dataset)["rmse"]' in source
    # Early stopping comes first among the callbacks: TensorBoard logs its metric too.
    assert source.index("callbacks.extend(_early_stopping(") \
        < source.index("callbacks.append(tf.keras.callbacks.TensorBoard(")


def test_new_products_passes_the_train_purchases_to_every_ranking_evaluator() -> None:
    source = trainer(compiled(["model.eval_protocol=new_products",
                               "model.evaluators=[recall_at_k,regression,ndcg,mrr]"],
                              early_stopping=ES))
    assert 'BUYER_ID_KEY = "customer_id_id"' in source
    assert "purchases = _train_purchases(train_dataset)" in source
    for function in ("_evaluate_recall", "_evaluate_ndcg", "_evaluate_mrr"):
        assert f"{function}(model, test_dataset, candidates, purchases)" in source
    assert "model, splits, eval_dataset, tf_transform_output, purchases" in source
    assert 'EVAL_PROTOCOL = "new_products"' in source


def test_the_knobs_reach_the_plan() -> None:
    result = compiled(["model.reshuffle_each_epoch=true", "model.eval_protocol=new_products"],
                      lr_schedule={"warmup_epochs": 0.5}, early_stopping=ES)
    params = {(use.kind, use.name): use.params for use in result.plan.uses}
    assert params[("input", "tfrecord")]["reshuffle_each_epoch"] is True
    assert params[("optimizer", "adam")]["lr_schedule"]["warmup_epochs"] == 0.5
    assert params[("callback", "early_stopping")]["metric"] == "val_recall_at_10"
    assert params[("evaluator", "recall_at_k")]["eval_protocol"] == "new_products"


def test_listing_early_stopping_in_callbacks_selects_it_with_the_defaults() -> None:
    result = compiled(["model.callbacks=[tensorboard,early_stopping]"])
    callbacks = [use for use in result.plan.uses if use.kind == "callback"]
    assert [use.name for use in callbacks] == ["early_stopping", "tensorboard"]
    assert callbacks[0].params["metric"] == "val_recall_at_100"
    assert callbacks[0].params["patience"] == 3
