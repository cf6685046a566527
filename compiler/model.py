"""The data the compiler stages hand each other and give to fragments: plain, frozen, no logic
beyond naming.

``validate`` makes a ``ResolvedConfig``; ``plan`` turns it into a ``Plan`` of ``FragmentUse``
records and the ``TransformedFeature`` columns the Transform writes; the build gives each
fragment a ``BuildContext`` over the plan. This module imports no other stage, so the fragment
API (``compiler.fragments``) and the compiler proper (``compiler.core``) both sit on top of it.

The transformed-feature naming rules (``<feature>_id``, ``<feature>_bucket`` …) are written
here once; the feature fragments, the encoder widths and the static passes all use them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from compiler.schema import FeaturesConfig, ModelConfig

#: Suffix of each transformed column kind. A raw feature name never ends in one of these
#: (``TRANSFORMED_SUFFIXES``); the passes use that to tell raw reads from transformed ones.
EMBEDDING_SUFFIX = "_id"
BUCKET_SUFFIX = "_bucket"
NORMALIZED_SUFFIX = "_norm"
SIN_SUFFIX = "_sin"
COS_SUFFIX = "_cos"
TARGET_SUFFIX = "_target"
CROSS_SUFFIX = "_xf"
CROSS_SEPARATOR = "_x_"
TRANSFORMED_SUFFIXES = (EMBEDDING_SUFFIX, BUCKET_SUFFIX, NORMALIZED_SUFFIX, SIN_SUFFIX,
                        COS_SUFFIX, TARGET_SUFFIX, CROSS_SUFFIX)


#: The config key that selects a fragment of each kind (for messages and docs).
SELECTING_KEYS = {
    "tower": "model.buyer_tower.type", "head": "model.rating_head.type", "loss": "model.loss",
    "retrieval_loss": "model.retrieval_loss", "optimizer": "model.optimizer",
    "retrieval_index": "model.retrieval_algorithm", "task": "model.model_type",
    "input": "model.input", "evaluator": "model.evaluators", "callback": "model.callbacks",
    "export": "model.exports", "history": "model.purchase_history",
    "distribution": "model.distribution",
}


#: The named values recforge's fragments provide and require (``Fragment.provides`` /
#: ``requires``), with the names each stands for in the emitted trainer (module level, or a
#: local of ``run_fn``). A plugin may declare values of its own beyond these.
VALUES: dict[str, tuple[str, ...]] = {
    "seed": ("SEED",),
    "logger": ("logger",),
    "input_fn": ("_input_fn",),
    "feature_tables": ("BUYER_FEATURES", "PRODUCT_FEATURES"),
    "FeatureEncoder": ("FeatureEncoder",),
    "buyer_tower": ("_build_buyer_tower",),
    "product_tower": ("_build_product_tower",),
    "rating_head": ("_build_rating_head",),
    "ranking_loss": ("_ranking_loss",),
    "retrieval_loss": ("_retrieval_loss",),
    # model.retrieval.sparse_labels: the softmax loss as the retrieval task's layer itself.
    "sparse_label_retrieval": ("SparseLabelRetrieval",),
    "optimizer": ("_make_optimizer",),
    "MeanLossModel": ("MeanLossModel",),
    "RecommenderModel": ("RecommenderModel", "MODEL_TYPE"),
    "predict_rating": (),  # a method of RecommenderModel (ranking and multitask models)
    "target_key": ("TARGET_KEY",),
    "candidates": ("PRODUCT_ID_KEY", "_unique_candidates", "candidates"),
    "top_k": ("TOP_K",),
    "index": ("_build_index", "_save_options", "index"),
    "metrics": ("metrics",),
    "datasets": ("train_dataset", "eval_dataset", "test_dataset", "tf_transform_output"),
    "trained_model": ("model",),
    "purchase_history": ("PurchaseHistory",),
    "strategy": ("_distribution_strategy", "_is_chief", "_replica_shares", "_global_batches",
                 "ReplicaShareLoss", "_all_replica_rows", "_single_device_copy"),
}

#: The named places in ``run_fn`` fragments add code to, in the order they run: ``callbacks``
#: (Keras callbacks passed to fit), ``after_fit`` (candidates, the index), ``evaluate``
#: (metrics into ``metrics["final"]``), ``export`` (saving the model).
RUN_FN_SLOTS: tuple[str, ...] = ("callbacks", "after_fit", "evaluate", "export")

#: The config lists that select fragments of a kind, in ``run_fn`` order (``model.<key>``).
FRAGMENT_LISTS: dict[str, str] = {
    "callbacks": "callback", "evaluators": "evaluator", "exports": "export",
}


def embedding_column(feature: str) -> str:
    """The vocabulary id column of an embedded feature."""
    return feature + EMBEDDING_SUFFIX


def vocabulary_file(feature: str) -> str:
    """The Transform's vocabulary file name of an embedded feature."""
    return f"{feature}_vocab"


def buyer_id_column(features: FeaturesConfig) -> str | None:
    """The transformed column that identifies a buyer (``features.buyer_id``'s vocabulary id),
    or None when the feature config has no such buyer feature with an embedding."""
    spec = next((s for s in features.buyer if s.name == features.buyer_id), None)
    return embedding_column(spec.name) if spec is not None and spec.embedding else None


def bucket_column(feature: str) -> str:
    """The bucket index column of a bucketized feature."""
    return feature + BUCKET_SUFFIX


def normalized_column(feature: str) -> str:
    """The z-scored column of a normalized feature."""
    return feature + NORMALIZED_SUFFIX


def cyclical_columns(feature: str, period: str) -> tuple[str, str]:
    """The (sin, cos) columns of one cyclical period of a timestamp feature."""
    return f"{feature}_{period}{SIN_SUFFIX}", f"{feature}_{period}{COS_SUFFIX}"


def target_column(column: str) -> str:
    """The transformed training target."""
    return column + TARGET_SUFFIX


def cross_column(members: list[str] | tuple[str, ...]) -> str:
    """The hashed cross of member features (also its plan role and its source name)."""
    return CROSS_SEPARATOR.join(members)


def encoded_widths(features: FeaturesConfig, side: str) -> list[tuple[str, int]]:
    """The columns one side's feature encoder concatenates, with their widths, in order:
    embedding / bucket / cross -> its embedding dim, each dense float (cyclical sin and cos,
    normalize) -> 1. What a tower with no dense layer outputs; the plan's transformed features
    are the same list (``tests/test_semantics.py`` checks)."""
    widths: list[tuple[str, int]] = []
    for spec in getattr(features, side):
        if spec.embedding is not None:
            widths.append((embedding_column(spec.name), spec.embedding.dim))
        for cycle in spec.cyclical:
            period = cycle.value if isinstance(cycle, Enum) else str(cycle)
            sin, cos = cyclical_columns(spec.name, period)
            widths += [(sin, 1), (cos, 1)]
        if spec.bucketize is not None:
            widths.append((bucket_column(spec.name), spec.bucketize.embedding_dim))
        if spec.normalize:
            widths.append((normalized_column(spec.name), 1))
    for cross in getattr(features.crosses, side):
        widths.append((cross_column(cross.features), cross.embedding_dim))
    return widths


@dataclass(frozen=True)
class ResolvedConfig:
    """The validated config. ``data`` is the plain resolved dict that the hash covers."""

    features: FeaturesConfig
    model: ModelConfig
    output_dir: str
    data: dict[str, Any]
    config_hash: str

    @property
    def features_hash(self) -> str:
        """Hash of the feature config alone: all the Transform module depends on."""
        return config_hash(self.data, ("features",))

    @property
    def has_retrieval(self) -> bool:
        return self.model.model_type in ("retrieval", "multitask")

    @property
    def has_ranking(self) -> bool:
        return self.model.model_type in ("ranking", "multitask")


def config_hash(data: dict[str, Any], groups: tuple[str, ...] = ("features", "model")) -> str:
    """Content hash of the resolved config groups the emitted code depends on."""
    canonical = json.dumps(
        {group: data[group] for group in groups},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TransformedFeature:
    """One column the Transform writes and the trainer reads."""

    name: str
    dtype: str  # "int64" | "float32"
    side: str  # "buyer" | "product" | "target"
    encoding: str  # "embedding" | "bucket" | "hashed" | "dense" | "target"
    source: str  # the raw feature (or target) it derives from
    vocab: str | None = None  # vocabulary file name, for "embedding"
    size: int | None = None  # number of distinct values, for "bucket" / "hashed"
    extra_ids: int = 0  # OOV buckets on top of the vocabulary size
    dim: int | None = None  # embedding width

    def as_table_row(self) -> dict[str, Any]:
        row: dict[str, Any] = {"name": self.name, "encoding": self.encoding}
        for key in ("vocab", "size", "dim"):
            if getattr(self, key) is not None:
                row[key] = getattr(self, key)
        if self.extra_ids:
            row["extra_ids"] = self.extra_ids
        return row


@dataclass(frozen=True)
class FragmentUse:
    """One fragment in the plan: ``kind``/``name`` chosen at config ``key``."""

    kind: str
    name: str
    key: str
    params: dict[str, Any] = field(default_factory=dict)
    role: str | None = None  # "buyer"/"product" for towers, the feature name for transforms

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Plan:
    config: ResolvedConfig
    uses: tuple[FragmentUse, ...]
    transformed_features: tuple[TransformedFeature, ...]

    def features_for(self, side: str) -> list[TransformedFeature]:
        return [f for f in self.transformed_features if f.side == side]

    def required_features(self) -> dict[str, str]:
        """Transformed feature name -> dtype: what the trainer reads from the Transform."""
        return {f.name: f.dtype for f in self.transformed_features}

    def uses_of(self, kind: str) -> list[FragmentUse]:
        return [u for u in self.uses if u.kind == kind]


@dataclass(frozen=True)
class BuildContext:
    """Read-only facts every fragment may use. Shared by all fragments of one build."""

    plan: Plan
    compiler_version: str

    @property
    def config(self) -> ResolvedConfig:
        return self.plan.config

    @property
    def config_hash(self) -> str:
        return self.plan.config.config_hash


