"""Checks of the retrieval training knobs: ``model.retrieval`` and ``model.purchase_history``."""

from __future__ import annotations

from compiler.errors import ConfigError, did_you_mean
from compiler.model import buyer_id_column
from compiler.schema import FeatureDtype, FeaturesConfig, ModelConfig

#: Retrieval indexes that can add the purchase-history score to every candidate's score.
HISTORY_INDEXES = ("brute_force",)


def check_retrieval_training(model: ModelConfig, features: FeaturesConfig) -> None:
    retrieval = model.retrieval
    if not retrieval.temperature > 0:
        raise ConfigError("model.retrieval.temperature",
                          f"expected a positive number, got {retrieval.temperature}")
    history = model.purchase_history
    if history is None:
        return
    if model.model_type not in ("retrieval", "multitask"):
        raise ConfigError("model.purchase_history",
                          f"expected a retrieval or multitask model (the history score joins "
                          f"the retrieval score), got model_type {model.model_type}")
    if buyer_id_column(features) is None:
        buyers = [s.name for s in features.buyer]
        raise ConfigError("features.buyer_id",
                          f"expected a buyer feature with an embedding (purchase history is "
                          f"counted per buyer), got '{features.buyer_id}'",
                          suggestion=did_you_mean(features.buyer_id, buyers))
    dates = [s.name for s in features.buyer if s.dtype is FeatureDtype.timestamp]
    if history.date not in dates:
        raise ConfigError("model.purchase_history.date",
                          f"expected a timestamp buyer feature ({', '.join(dates) or 'none'}), "
                          f"got '{history.date}'",
                          suggestion=did_you_mean(history.date, dates))
    if not history.recency_half_life_days > 0:
        raise ConfigError("model.purchase_history.recency_half_life_days",
                          f"expected a positive number of days, got "
                          f"{history.recency_half_life_days}")
    for index, width in enumerate(history.scorer_layers):
        if width <= 0:
            raise ConfigError(f"model.purchase_history.scorer_layers[{index}]",
                              f"expected a positive width, got {width}")
    if model.retrieval_algorithm not in HISTORY_INDEXES:
        raise ConfigError("model.retrieval_algorithm",
                          f"expected {' or '.join(HISTORY_INDEXES)} with purchase_history (the "
                          f"index must add the history score to every candidate), got "
                          f"{model.retrieval_algorithm}")
