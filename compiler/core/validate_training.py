"""Checks of the training-loop knobs: ``model.early_stopping``, ``model.lr_schedule`` and
``model.eval_protocol`` (``model.reshuffle_each_epoch`` is a bool: the schema checks it)."""

from __future__ import annotations

from compiler.errors import ConfigError, did_you_mean
from compiler.fragments.registry import Registry
from compiler.model import buyer_id_column
from compiler.schema import EarlyStoppingConfig, EvalProtocol, FeaturesConfig, ModelConfig

#: ``model.lr_schedule.kind`` values.
LR_SCHEDULES = ("warmup_cosine",)
#: The validation metrics early stopping can watch (the built-in evaluators' and an NDCG@K
#: evaluator's), as prefixes.
EARLY_STOPPING_METRICS = ("val_recall_at_", "val_ndcg_at_", "val_mrr", "val_rmse", "val_mae")
#: The callback that ``model.early_stopping`` selects (listing it in ``model.callbacks``
#: selects it with the default settings).
EARLY_STOPPING_CALLBACK = "early_stopping"


def check_training_techniques(model: ModelConfig, features: FeaturesConfig,
                              evaluators: list[str], registry: Registry) -> None:
    """``evaluators``: the evaluator names the run uses (``model.evaluators`` or the model
    type's defaults)."""
    _check_early_stopping(model, evaluators, registry)
    _check_lr_schedule(model)
    if model.eval_protocol is EvalProtocol.new_products:
        if model.model_type not in ("retrieval", "multitask"):
            raise ConfigError("model.eval_protocol",
                              f"expected all for a {model.model_type} model (new_products "
                              "filters the retrieval metrics' test lines), got new_products")
        if buyer_id_column(features) is None:
            buyers = [s.name for s in features.buyer]
            raise ConfigError("features.buyer_id",
                              f"expected a buyer feature with an embedding (eval_protocol "
                              f"new_products excludes each buyer's train products), got "
                              f"'{features.buyer_id}'",
                              suggestion=did_you_mean(features.buyer_id, buyers))


def validation_metrics(model: ModelConfig, evaluators: list[str], registry: Registry
                       ) -> list[str]:
    """The val_* metrics the selected evaluators declare they write, ``{k}`` expanded."""
    names: list[str] = []
    for index, name in enumerate(evaluators):
        cls = registry.fragment("evaluator", name, key=f"model.evaluators[{index}]").cls
        for pattern in getattr(cls, "writes", ()):
            if not pattern.startswith("val_"):
                continue
            expanded = [pattern.replace("{k}", str(k)) for k in model.top_k] \
                if "{k}" in pattern else [pattern]
            names += [metric for metric in expanded if metric not in names]
    return names


def early_stopping_settings(model: ModelConfig) -> EarlyStoppingConfig | None:
    """``model.early_stopping``; its defaults when only ``model.callbacks`` lists
    ``early_stopping``; None: no early stopping."""
    if model.early_stopping is not None:
        return model.early_stopping
    return EarlyStoppingConfig() if EARLY_STOPPING_CALLBACK in model.callbacks else None


def _check_early_stopping(model: ModelConfig, evaluators: list[str], registry: Registry
                          ) -> None:
    stopping = early_stopping_settings(model)
    if stopping is None:
        return
    written = [metric for metric in validation_metrics(model, evaluators, registry)
               if metric.startswith(EARLY_STOPPING_METRICS)]
    if stopping.metric not in written:
        raise ConfigError("model.early_stopping.metric",
                          f"expected a validation metric the run writes "
                          f"({', '.join(written) or 'none'}), got '{stopping.metric}'",
                          suggestion=did_you_mean(stopping.metric, written))
    if isinstance(stopping.patience, bool) or stopping.patience < 0:
        raise ConfigError("model.early_stopping.patience",
                          f"expected a number of epochs >= 0, got {stopping.patience}")
    if not stopping.min_delta >= 0:
        raise ConfigError("model.early_stopping.min_delta",
                          f"expected a value >= 0, got {stopping.min_delta}")


def _check_lr_schedule(model: ModelConfig) -> None:
    schedule = model.lr_schedule
    if schedule is None:
        return
    if schedule.kind not in LR_SCHEDULES:
        raise ConfigError("model.lr_schedule.kind",
                          f"expected one of {', '.join(LR_SCHEDULES)}, got '{schedule.kind}'",
                          suggestion=did_you_mean(schedule.kind, LR_SCHEDULES))
    if not 0 <= schedule.warmup_epochs < model.epochs:
        raise ConfigError("model.lr_schedule.warmup_epochs",
                          f"expected 0 <= warmup_epochs < model.epochs ({model.epochs}), got "
                          f"{schedule.warmup_epochs}")
    if not 0 <= schedule.final_learning_rate_ratio <= 1:
        raise ConfigError("model.lr_schedule.final_learning_rate_ratio",
                          f"expected a ratio in [0, 1], got "
                          f"{schedule.final_learning_rate_ratio}")
