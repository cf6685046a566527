"""Stage 3 — plan: which fragments build the modules, with what parameters, in what order.

The plan is plain data. It is what the manifest records and what ``--cfg``-style inspection
shows; the build stage only follows it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from compiler.registry import Registry, get_registry
from compiler.validate import ResolvedConfig, fragment_params


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


def plan(config: ResolvedConfig, registry: Registry | None = None) -> Plan:
    registry = registry or get_registry()
    features, model = config.features, config.model
    uses: list[FragmentUse] = [FragmentUse("transform", "tft", key="features")]

    for side in ("buyer", "product"):
        for index, spec in enumerate(getattr(features, side)):
            key = f"features.{side}[{index}]"
            spec_dict = dataclasses.asdict(spec)
            common = {"feature": spec.name, "side": side, "dtype": spec.dtype.value}
            if spec.embedding is not None:
                uses.append(FragmentUse("feature_transform", "embedding", f"{key}.embedding",
                                        {**common, **spec_dict["embedding"]}, spec.name))
            if spec.cyclical:
                uses.append(FragmentUse("feature_transform", "cyclical", f"{key}.cyclical",
                                        {**common, "periods": [c.value for c in spec.cyclical]},
                                        spec.name))
            if spec.bucketize is not None:
                uses.append(FragmentUse("feature_transform", "bucketize", f"{key}.bucketize",
                                        {**common, **spec_dict["bucketize"]}, spec.name))
            if spec.normalize:
                uses.append(FragmentUse("feature_transform", "normalize", f"{key}.normalize",
                                        common, spec.name))
    specs = {s.name: s for s in [*features.buyer, *features.product]}
    for side in ("buyer", "product"):
        for index, cross in enumerate(getattr(features.crosses, side)):
            members = [
                {"feature": m, "column": f"{m}_id" if specs[m].embedding else f"{m}_bucket"}
                for m in cross.features
            ]
            uses.append(FragmentUse(
                "feature_transform", "cross", f"features.crosses.{side}[{index}]",
                {"side": side, "members": members, "hash_buckets": cross.hash_buckets,
                 "embedding_dim": cross.embedding_dim},
                "_x_".join(cross.features),
            ))
    if features.target is not None:
        target = features.target
        uses.append(FragmentUse(
            "feature_transform", "target", "features.target",
            {"column": target.column, "log": target.log,
             "clip": dataclasses.asdict(target.clip) if target.clip else None},
            target.column,
        ))

    uses.append(FragmentUse("input", model.input, "model.input",
                            {"cache": model.performance.cache}))
    uses.append(FragmentUse("encoder", "concat", "features"))
    for side in ("buyer", "product"):
        tower = getattr(model, f"{side}_tower")
        params = fragment_params("tower", tower.type, tower.params, f"model.{side}_tower.params",
                                 registry)
        uses.append(FragmentUse(
            "tower", tower.type, f"model.{side}_tower",
            {"layers": list(tower.layers), "projection": tower.projection.value,
             "activation": tower.activation, "l2": tower.l2, "dropout": tower.dropout,
             "output_dim": model.output_embedding_dim, **params},
            side,
        ))
    if config.has_ranking:
        head = model.rating_head
        params = fragment_params("head", head.type, head.params, "model.rating_head.params",
                                 registry)
        uses.append(FragmentUse(
            "head", head.type, "model.rating_head",
            {"layers": list(head.layers), "activation": head.activation, "l2": head.l2, **params},
        ))
        uses.append(FragmentUse("loss", model.loss, "model.loss"))
    if config.has_retrieval:
        uses.append(FragmentUse("retrieval_loss", model.retrieval_loss, "model.retrieval_loss"))
    uses.append(FragmentUse(
        "task", model.model_type, "model.model_type",
        {"retrieval_weight": model.retrieval_weight, "ranking_weight": model.ranking_weight},
    ))
    uses.append(FragmentUse("optimizer", model.optimizer, "model.optimizer",
                            {"learning_rate": model.learning_rate}))
    if config.has_retrieval:
        uses.append(FragmentUse("candidates", "unique", "features.product_id",
                                {"product_id": features.product_id}))
        uses.append(FragmentUse(
            "retrieval_index", model.retrieval_algorithm, "model.retrieval_algorithm",
            fragment_params("retrieval_index", model.retrieval_algorithm,
                            model.retrieval_index_params, "model.retrieval_index_params",
                            registry),
        ))
        uses.append(FragmentUse("evaluator", "recall_at_k", "model.top_k",
                                {"top_k": list(model.top_k)}))
    if config.has_ranking:
        uses.append(FragmentUse("evaluator", "regression", "model.model_type"))
    uses.append(FragmentUse("export", "serving", "model.model_type"))
    uses.append(FragmentUse("trainer", "run_fn", "model", {
        "batch_size": model.batch_size, "epochs": model.epochs, "seed": model.seed,
        "steps_per_execution": model.performance.steps_per_execution,
        "jit_compile": model.performance.jit_compile,
    }))

    for use in uses:  # every fragment the plan names must exist, with a clear key if not
        registry.fragment(use.kind, use.name, key=use.key)

    transformed: list[TransformedFeature] = []
    for use in uses:
        cls = registry.fragments[(use.kind, use.name)].cls
        outputs = getattr(cls, "outputs", None)
        if outputs is not None:
            transformed.extend(outputs(use))
    return Plan(config, tuple(uses), tuple(transformed))
