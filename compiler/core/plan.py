"""Stage 3 — plan: which fragments build the modules, with what parameters, in what order.

The plan is plain data. It is what the manifest records and what ``--cfg``-style inspection
shows; the build stage only follows it.
"""

from __future__ import annotations

import dataclasses

from compiler.core.validate import evaluator_names, fragment_params
from compiler.core.validate_training import EARLY_STOPPING_CALLBACK, early_stopping_settings
from compiler.fragments.registry import Registry, get_registry
from compiler.model import (
    FragmentUse,
    Plan,
    ResolvedConfig,
    TransformedFeature,
    bucket_column,
    buyer_id_column,
    cross_column,
    embedding_column,
)
from compiler.schema import Distribution


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
                {"feature": m,
                 "column": embedding_column(m) if specs[m].embedding else bucket_column(m)}
                for m in cross.features
            ]
            uses.append(FragmentUse(
                "feature_transform", "cross", f"features.crosses.{side}[{index}]",
                {"side": side, "members": members, "hash_buckets": cross.hash_buckets,
                 "embedding_dim": cross.embedding_dim},
                cross_column(cross.features),
            ))
    if features.target is not None:
        target = features.target
        uses.append(FragmentUse(
            "feature_transform", "target", "features.target",
            {"column": target.column, "log": target.log,
             "clip": dataclasses.asdict(target.clip) if target.clip else None},
            target.column,
        ))
    history = model.purchase_history
    if history is not None:  # train-split statistics the trainer reads as Transform assets
        uses.append(FragmentUse(
            "feature_transform", "purchase_history", "model.purchase_history",
            {"buyer_column": buyer_id_column(features),
             "product_column": embedding_column(features.product_id),
             "date": history.date, "half_life_days": history.recency_half_life_days},
        ))
    if config.has_retrieval and model.retrieval.logq_correction:
        uses.append(FragmentUse("feature_transform", "product_frequency",
                                "model.retrieval.logq_correction",
                                {"product_column": embedding_column(features.product_id)}))

    # model.distribution: the losses become each replica's share and run_fn uses a strategy.
    distributed = ({"distribution": model.distribution.value}
                   if model.distribution is not Distribution.none else {})
    uses.append(FragmentUse("input", model.input, "model.input",
                            {"cache": model.performance.cache,
                             "reshuffle_each_epoch": model.reshuffle_each_epoch}))
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
        uses.append(FragmentUse("loss", model.loss, "model.loss", distributed))
    retrieval_params = {**dataclasses.asdict(model.retrieval),
                        "loss_reduction": model.retrieval.loss_reduction.value,
                        "purchase_history": history is not None,
                        "bought_products_in_query": history is not None
                        and history.bought_products_in_query,
                        "product_id": features.product_id, **distributed}
    if history is not None:
        uses.append(FragmentUse("history", "purchase_history", "model.purchase_history", {
            "buyer_column": buyer_id_column(features),
            "product_column": embedding_column(features.product_id),
            "half_life_days": history.recency_half_life_days,
            "scorer_layers": list(history.scorer_layers),
            "bought_products_in_query": history.bought_products_in_query,
            "output_dim": model.output_embedding_dim,
        }))
    if config.has_retrieval:
        uses.append(FragmentUse("retrieval_loss", model.retrieval_loss, "model.retrieval_loss",
                                retrieval_params))
    uses.append(FragmentUse(
        "task", model.model_type, "model.model_type",
        {"retrieval_weight": model.retrieval_weight, "ranking_weight": model.ranking_weight,
         **(retrieval_params if config.has_retrieval else {})},
    ))
    schedule = model.lr_schedule
    uses.append(FragmentUse("optimizer", model.optimizer, "model.optimizer",
                            {"learning_rate": model.learning_rate,
                             "lr_schedule": dataclasses.asdict(schedule) if schedule else None}))
    stopping = early_stopping_settings(model)
    if stopping is not None:  # the first of the callbacks: the others see its metric in logs
        uses.append(FragmentUse("callback", EARLY_STOPPING_CALLBACK, "model.early_stopping",
                                {**dataclasses.asdict(stopping),
                                 "eval_protocol": model.eval_protocol.value}))
    if config.has_retrieval:
        uses.append(FragmentUse("candidates", "unique", "features.product_id",
                                {"product_id": features.product_id,
                                 "purchase_history": history is not None}))
        uses.append(FragmentUse(
            "retrieval_index", model.retrieval_algorithm, "model.retrieval_algorithm",
            {**fragment_params("retrieval_index", model.retrieval_algorithm,
                               model.retrieval_index_params, "model.retrieval_index_params",
                               registry),
             **({"purchase_history": True} if history is not None else {})},
        ))
    # The config lists, in run_fn order: evaluators (every one sees model.top_k), exports,
    # then the callbacks of fit. A plugin adds one of each by name, through config alone.
    for index, name in enumerate(evaluator_names(config)):
        uses.append(FragmentUse("evaluator", name, f"model.evaluators[{index}]",
                                {"top_k": list(model.top_k),
                                 "eval_protocol": model.eval_protocol.value,
                                 "evaluation_memory_mb": model.evaluation_memory_mb,
                                 "purchase_history": history is not None}))
    for index, name in enumerate(model.exports):
        uses.append(FragmentUse("export", name, f"model.exports[{index}]"))
    for index, name in enumerate(model.callbacks):
        if name != EARLY_STOPPING_CALLBACK:  # planned above, with its settings
            uses.append(FragmentUse("callback", name, f"model.callbacks[{index}]"))
    uses.append(FragmentUse("trainer", "run_fn", "model", {
        "batch_size": model.batch_size, "epochs": model.epochs, "seed": model.seed,
        "steps_per_execution": model.performance.steps_per_execution,
        "jit_compile": model.performance.jit_compile,
        "lr_schedule": schedule is not None,
        "eval_protocol": model.eval_protocol.value if config.has_retrieval else None,
        **distributed,
    }))
    if distributed:  # the strategy; none plans nothing and emits what recforge always did
        uses.append(FragmentUse("distribution", model.distribution.value, "model.distribution"))

    for use in uses:  # every fragment the plan names must exist, with a clear key if not
        registry.fragment(use.kind, use.name, key=use.key)

    transformed: list[TransformedFeature] = []
    for use in uses:
        cls = registry.fragments[(use.kind, use.name)].cls
        outputs = getattr(cls, "outputs", None)
        if outputs is not None:
            transformed.extend(outputs(use))
    return Plan(config, tuple(uses), tuple(transformed))
