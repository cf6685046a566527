"""Stage 2 — validate: a composed ``DictConfig`` -> a typed, checked ``ResolvedConfig``.

Types and unknown keys were already checked by Hydra against ``compiler.schema``. This stage
checks what a schema cannot express: cross-field rules, identifier safety, positive sizes, and
that every fragment name is registered (with the fragment's own parameter schema).
"""

from __future__ import annotations

import dataclasses
import keyword
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import MissingMandatoryValue, OmegaConfBaseException

from compiler import PROJECT_NAME
from compiler.core.compose import CONF_DIR, translate_error
from compiler.core.validate_retrieval import check_retrieval_training
from compiler.core.validate_training import check_training_techniques
from compiler.errors import ConfigError, did_you_mean
from compiler.fragments.registry import Registry, get_registry
from compiler.model import FRAGMENT_LISTS, ResolvedConfig, config_hash, encoded_widths
from compiler.schema import (
    ConfigType,
    FeaturesConfig,
    FeatureSpec,
    ModelConfig,
    Projection,
    TowerConfig,
)

SAFE_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
#: Activation names the emitted trainer passes to Keras (``tf.keras.layers.Dense(activation=)``
#: under legacy Keras, i.e. ``tf_keras.activations.get``), checked here so that a typo fails
#: the compile instead of the cloud job. ``tests/test_validate.py`` keeps the table in sync
#: with what ``tf_keras.activations`` accepts (every name here; every public one there is here
#: or in ``NOT_ACTIVATIONS``).
ACTIVATIONS = (
    "elu", "exponential", "gelu", "hard_sigmoid", "leaky_relu", "linear", "log_softmax",
    "mish", "relu", "relu6", "selu", "sigmoid", "silu", "softmax", "softplus", "softsign",
    "swish", "tanh",
)
#: Public names of ``tf_keras.activations`` that are helpers, not activations.
NOT_ACTIVATIONS = ("deserialize", "get", "serialize")
MODEL_TYPES_NEEDING_TARGET = ("ranking", "multitask")


def validate(cfg: DictConfig, registry: Registry | None = None) -> ResolvedConfig:
    """Check a composed config; raise ``ConfigError`` naming the first bad key."""
    registry = registry or get_registry()
    try:
        features = OmegaConf.to_object(cfg.features)
        model = OmegaConf.to_object(cfg.model)
        output_dir = str(cfg.output_dir)
        data = {
            "features": OmegaConf.to_container(cfg.features, resolve=True, enum_to_str=True),
            "model": OmegaConf.to_container(cfg.model, resolve=True, enum_to_str=True),
        }
    except MissingMandatoryValue as error:
        raise ConfigError(str(error.full_key), "a value is required here but none was set") \
            from None
    except OmegaConfBaseException as error:
        raise translate_error(error, (), _conf_dir()) from None
    for group, value, schema_class in (("features", features, FeaturesConfig),
                                       ("model", model, ModelConfig)):
        if not isinstance(value, schema_class):  # e.g. an empty file or a YAML list
            raise ConfigError(group, f"expected a {group} config (a mapping that extends "
                              f"{group}_schema, e.g. conf/{group}/*.yaml), got "
                              + (f"a {type(value).__name__}" if value else "an empty config"))

    _check_features(features)
    _check_model(model, features, registry)
    if data["model"].get("distribution") == "none":
        # The default emits exactly the code recforge emitted before the knob existed: its
        # configs keep their hash (the generated snapshots, ledger and caches key on it).
        del data["model"]["distribution"]
    if data["model"].get("evaluation_memory_mb") == ModelConfig.evaluation_memory_mb:
        # Scoring in blocks gives the ranks of scoring all at once: the default keeps the hash.
        del data["model"]["evaluation_memory_mb"]
    config = ResolvedConfig(features, model, output_dir, data, config_hash(data))
    check_training_techniques(model, features, evaluator_names(config), registry)
    return config


def _conf_dir():  # late import keeps compose's Hydra import out of this module's import cost

    return CONF_DIR


# --------------------------------------------------------------------------- features


def _check_identifier(value: str, key: str) -> None:
    if not SAFE_IDENTIFIER.match(value) or keyword.iskeyword(value):
        raise ConfigError(
            key,
            f"'{value}' is not a safe feature name (expected lower-case letters, digits and "
            "underscores, starting with a letter, at most 63 characters)",
        )


def _check_positive(value: int | float, key: str, what: str = "a positive integer") -> None:
    if isinstance(value, bool) or value <= 0:
        raise ConfigError(key, f"expected {what}, got {value!r}")


def _check_features(features: FeaturesConfig) -> None:
    _check_identifier(features.name, "features.name")
    seen: dict[str, str] = {}
    for side in ("buyer", "product"):
        specs: list[FeatureSpec] = getattr(features, side)
        if not specs:
            raise ConfigError(f"features.{side}", f"expected at least one {side} feature")
        for index, spec in enumerate(specs):
            key = f"features.{side}[{index}]"
            _check_identifier(spec.name, f"{key}.name")
            if spec.name in seen:
                raise ConfigError(
                    f"{key}.name", f"feature '{spec.name}' is already defined at {seen[spec.name]}"
                )
            seen[spec.name] = f"{key}.name"
            _check_feature(spec, key)

    if features.config_type is ConfigType.ranking and features.target is None:
        raise ConfigError(
            "features.target",
            "expected a target for config_type ranking (or config_type: retrieval), got none",
        )
    if features.config_type is ConfigType.retrieval and features.target is not None:
        raise ConfigError(
            "features.target",
            "expected no target for config_type retrieval (or config_type: ranking), got "
            f"column '{features.target.column}'",
        )
    if features.target is not None:
        _check_identifier(features.target.column, "features.target.column")
        if features.target.column in seen:
            raise ConfigError(
                "features.target.column",
                f"'{features.target.column}' is also a feature ({seen[features.target.column]})",
            )
        clip = features.target.clip
        if clip is not None and not 0 <= clip.lower_percentile < clip.upper_percentile <= 100:
            raise ConfigError(
                "features.target.clip",
                "expected 0 <= lower_percentile < upper_percentile <= 100, got "
                f"{clip.lower_percentile} and {clip.upper_percentile}",
            )

    product_names = [s.name for s in features.product]
    id_spec = next((s for s in features.product if s.name == features.product_id), None)
    if id_spec is None:
        raise ConfigError(
            "features.product_id",
            f"'{features.product_id}' is not a product feature "
            f"(product features: {', '.join(product_names)})",
            suggestion=did_you_mean(features.product_id, product_names),
        )
    if id_spec.embedding is None:
        raise ConfigError(
            f"features.product[{product_names.index(id_spec.name)}].embedding",
            f"the product id feature '{id_spec.name}' needs an embedding (its vocabulary "
            "identifies retrieval candidates)",
        )

    for side in ("buyer", "product"):
        side_specs = {s.name: s for s in getattr(features, side)}
        for index, cross in enumerate(getattr(features.crosses, side)):
            key = f"features.crosses.{side}[{index}]"
            if len(cross.features) < 2:
                raise ConfigError(f"{key}.features", "a cross needs at least two features")
            repeated = next((f for f in cross.features if cross.features.count(f) > 1), None)
            if repeated is not None:
                raise ConfigError(f"{key}.features",
                                  f"expected two or more different features, got '{repeated}' "
                                  f"crossed with itself ({list(cross.features)})")
            for member_index, member in enumerate(cross.features):
                spec = side_specs.get(member)
                if spec is None:
                    raise ConfigError(
                        f"{key}.features[{member_index}]",
                        f"no {side} feature named '{member}' "
                        f"({side} features: {', '.join(side_specs)})",
                        suggestion=did_you_mean(member, side_specs),
                    )
                if spec.embedding is None and spec.bucketize is None:
                    raise ConfigError(
                        f"{key}.features[{member_index}]",
                        f"'{member}' can only be crossed if it has an embedding or bucketize",
                    )
            _check_positive(cross.hash_buckets, f"{key}.hash_buckets")
            _check_positive(cross.embedding_dim, f"{key}.embedding_dim")


def _check_feature(spec: FeatureSpec, key: str) -> None:
    dtype = spec.dtype.value
    if spec.embedding is not None:
        _check_positive(spec.embedding.dim, f"{key}.embedding.dim")
        if spec.embedding.oov_buckets < 1:
            raise ConfigError(f"{key}.embedding.oov_buckets", "expected at least 1")
    if spec.cyclical and dtype != "timestamp":
        raise ConfigError(f"{key}.cyclical",
                          f"cyclical encodings need dtype timestamp, not {dtype}")
    if spec.bucketize is not None:
        if dtype == "string":
            raise ConfigError(f"{key}.bucketize", "bucketize needs a numeric or timestamp feature")
        _check_positive(spec.bucketize.buckets, f"{key}.bucketize.buckets")
        _check_positive(spec.bucketize.embedding_dim, f"{key}.bucketize.embedding_dim")
    if spec.normalize and dtype == "string":
        raise ConfigError(f"{key}.normalize", "normalize needs a numeric or timestamp feature")
    if not (spec.embedding or spec.cyclical or spec.bucketize or spec.normalize):
        raise ConfigError(
            key,
            f"feature '{spec.name}' has no encoding (expected at least one of embedding, "
            "cyclical, bucketize, normalize)",
        )


# --------------------------------------------------------------------------- model


def _check_model(model: ModelConfig, features: FeaturesConfig, registry: Registry) -> None:
    _check_identifier(model.name, "model.name")
    registry.fragment("task", model.model_type, key="model.model_type")
    if features.config_type is ConfigType.retrieval and model.model_type != "retrieval":
        raise ConfigError(
            "features.config_type",
            f"expected 'ranking' for model_type {model.model_type} (a retrieval feature config "
            "has no target), got 'retrieval'",
        )
    if model.model_type in MODEL_TYPES_NEEDING_TARGET and features.target is None:
        raise ConfigError(
            "features.target",
            f"model_type {model.model_type} needs a target column in the feature config",
        )
    _check_positive(model.output_embedding_dim, "model.output_embedding_dim")
    for side in ("buyer", "product"):
        _check_tower(getattr(model, f"{side}_tower"), side, model, features, registry)

    needs_ranking = model.model_type in MODEL_TYPES_NEEDING_TARGET
    if needs_ranking:
        head = model.rating_head
        registry.fragment("head", head.type, key="model.rating_head.type")
        for index, width in enumerate(head.layers):
            _check_positive(width, f"model.rating_head.layers[{index}]")
        check_activation(head.activation, "model.rating_head.activation")
        if not head.layers or head.layers[-1] != 1:
            raise ConfigError(
                "model.rating_head.layers",
                f"expected the last rating head layer to be 1 (one predicted value), got "
                f"{head.layers}",
            )
        _check_params("head", head.type, head.params, "model.rating_head.params", registry)
        registry.fragment("loss", model.loss, key="model.loss")
    if model.model_type in ("retrieval", "multitask"):
        registry.fragment("retrieval_index", model.retrieval_algorithm,
                          key="model.retrieval_algorithm")
        _check_params("retrieval_index", model.retrieval_algorithm,
                      model.retrieval_index_params, "model.retrieval_index_params", registry)
        registry.fragment("retrieval_loss", model.retrieval_loss, key="model.retrieval_loss")
    check_retrieval_training(model, features)
    registry.fragment("optimizer", model.optimizer, key="model.optimizer")
    registry.fragment("input", model.input, key="model.input")
    _check_fragment_lists(model, registry)

    _check_positive(model.learning_rate, "model.learning_rate", "a positive number")
    _check_positive(model.batch_size, "model.batch_size")
    _check_positive(model.epochs, "model.epochs")
    for name in ("retrieval_weight", "ranking_weight"):
        if getattr(model, name) < 0:
            raise ConfigError(f"model.{name}",
                              f"expected a weight >= 0, got {getattr(model, name)}")
    if model.model_type == "multitask" and model.retrieval_weight == model.ranking_weight == 0:
        raise ConfigError("model.ranking_weight",
                          "expected at least one of retrieval_weight and ranking_weight to be "
                          "above 0 (the loss would be zero), got both 0")
    if not model.top_k:
        raise ConfigError("model.top_k", "expected at least one K")
    for index, k in enumerate(model.top_k):
        _check_positive(k, f"model.top_k[{index}]")
        if k in model.top_k[:index]:
            raise ConfigError(f"model.top_k[{index}]",
                              f"expected distinct values, got {k} twice in {list(model.top_k)}")
    _check_positive(model.evaluation_memory_mb, "model.evaluation_memory_mb")
    performance = model.performance
    _check_positive(performance.steps_per_execution, "model.performance.steps_per_execution")
    if performance.steps_per_execution > 1 and not performance.cache:
        raise ConfigError(
            "model.performance.steps_per_execution",
            f"{performance.steps_per_execution} batches per step needs "
            "model.performance.cache=true (Keras must know the number of batches); set it to 1",
        )


def evaluator_names(config: ResolvedConfig) -> list[str]:
    """``model.evaluators``, or when it is null the model type's own: ``recall_at_k`` with
    retrieval, ``regression`` with ranking (what recforge's trainers always ran)."""
    if config.model.evaluators is not None:
        return list(config.model.evaluators)
    return (["recall_at_k"] if config.has_retrieval else []) \
        + (["regression"] if config.has_ranking else [])


def _check_fragment_lists(model: ModelConfig, registry: Registry) -> None:
    """``model.evaluators`` / ``callbacks`` / ``exports``: registered names, each once, and
    no evaluator that needs what the selected task does not provide (``predict_rating`` on a
    retrieval model)."""
    task = registry.fragment("task", model.model_type, key="model.model_type").cls
    task_values = set(getattr(task, "provides", ()))
    other_tasks = {name: set(getattr(registered.cls, "provides", ()))
                   for kind, name, registered in registry.entries() if kind == "task"}
    if not model.exports:  # the trained model would be lost, and the index's save options
        raise ConfigError("model.exports", "expected at least one export (e.g. [serving]), "
                          "got none")
    for attribute, kind in FRAGMENT_LISTS.items():
        names = getattr(model, attribute)
        if names is None:
            continue
        for index, name in enumerate(names):
            key = f"model.{attribute}[{index}]"
            registered = registry.fragment(kind, name, key=key)
            if name in names[:index]:
                raise ConfigError(key, f"expected each {kind} once, got '{name}' twice in "
                                  f"{list(names)}")
            for value in getattr(registered.cls, "requires", ()):
                only_tasks = [task for task, values in sorted(other_tasks.items())
                              if value in values]
                if only_tasks and value not in task_values:
                    raise ConfigError(
                        key, f"expected {attribute} that a {model.model_type} model supports, "
                        f"got '{name}', which requires {value!r} (provided by model_type "
                        f"{', '.join(only_tasks)})")


def _check_tower(tower: TowerConfig, side: str, model: ModelConfig, features: FeaturesConfig,
                 registry: Registry) -> None:
    key = f"model.{side}_tower"
    registry.fragment("tower", tower.type, key=f"{key}.type")
    for index, width in enumerate(tower.layers):
        _check_positive(width, f"{key}.layers[{index}]")
    if tower.layers and tower.layers[-1] != model.output_embedding_dim:
        raise ConfigError(
            "model.output_embedding_dim",
            f"expected it to equal the last {key} width ({tower.layers[-1]}), "
            f"got {model.output_embedding_dim}",
        )
    if tower.layers and tower.projection is not Projection.none:
        raise ConfigError(
            f"{key}.projection",
            f"expected none when layers are set (the last layer is the projection), "
            f"got '{tower.projection.value}'",
        )
    if not tower.layers and tower.projection is Projection.none:
        widths = encoded_widths(features, side)
        width = sum(w for _, w in widths)
        if width != model.output_embedding_dim:
            parts = " + ".join(f"{name} {w}" for name, w in widths)
            raise ConfigError(
                "model.output_embedding_dim",
                f"expected it to equal the {side} encodings' width {width} ({parts}) for an "
                f"embeddings-only {key} (layers: [], projection: none), got "
                f"{model.output_embedding_dim}; or set {key}.projection=linear to project "
                f"{width} -> {model.output_embedding_dim}",
            )
    check_activation(tower.activation, f"{key}.activation")
    if tower.l2 < 0:
        raise ConfigError(f"{key}.l2", f"expected a value >= 0, got {tower.l2}")
    if not 0 <= tower.dropout < 1:
        raise ConfigError(f"{key}.dropout", f"expected 0 <= dropout < 1, got {tower.dropout}")
    _check_params("tower", tower.type, tower.params, f"{key}.params", registry)


def check_activation(name: str, key: str) -> None:
    """``name`` is an activation Keras accepts (``ACTIVATIONS``)."""
    if name not in ACTIVATIONS:
        raise ConfigError(key, f"expected a Keras activation ({', '.join(ACTIVATIONS)}), "
                          f"got '{name}'", suggestion=did_you_mean(name, ACTIVATIONS))


def _check_params(kind: str, name: str, params: dict[str, Any], key: str,
                  registry: Registry) -> dict[str, Any]:
    """Validate a fragment's own parameters against its ``Params`` dataclass.

    Types and unknown keys are checked by OmegaConf; value rules by the dataclass's
    ``__post_init__``, which raises ``ValueError("<field>: <problem>")``. Errors about a
    third-party fragment's parameters name its distribution.
    """
    registered = registry.fragment(kind, name, key=key.rsplit(".", 1)[0] + ".type")
    cls, provider = registered.cls, registered.provider
    hint = None if provider.distribution == PROJECT_NAME else (
        f"parameters of {kind} '{cls.name}' from {provider.distribution} {provider.version}"
    )
    schema = getattr(cls, "Params", None)
    if schema is None:
        if params:
            first = next(iter(params))
            raise ConfigError(f"{key}.{first}", f"{kind} '{name}' takes no parameters",
                              hint=hint)
        return {}
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), params)
        OmegaConf.to_object(merged)  # runs the schema's own __post_init__ checks
        values = OmegaConf.to_container(merged, resolve=True, enum_to_str=True)
        if isinstance(values.get("activation"), str):  # type: ignore[union-attr]
            check_activation(values["activation"], f"{key}.activation")  # type: ignore[index]
        return values  # type: ignore[return-value]
    except MissingMandatoryValue as error:
        raise ConfigError(f"{key}.{error.key}", "a value is required here but none was set",
                          hint=hint) from None
    except OmegaConfBaseException as error:
        translated = translate_error(error, (), _conf_dir())
        leaf = translated.key.split(".", 1)[-1] if "." in translated.key else translated.key
        raise ConfigError(f"{key}.{leaf}", translated.problem,
                          suggestion=translated.suggestion, hint=hint) from None
    except ValueError as error:
        field, _, problem = str(error).partition(": ")
        names = [f.name for f in dataclasses.fields(schema)]
        if field in names and problem:
            raise ConfigError(f"{key}.{field}", problem, hint=hint) from None
        raise ConfigError(key, str(error), hint=hint) from None


def fragment_params(kind: str, name: str, params: dict[str, Any], key: str,
                    registry: Registry) -> dict[str, Any]:
    """Public for the plan stage: a fragment's validated parameters with defaults."""
    return _check_params(kind, name, params, key, registry)
