"""Was a Transform output made by the transform this feature config describes?

A Transform output can be reused (``run.transform_from``, ``submit.source_exp``) only if it was
made by an identical transform: the same features and dtypes, vocabulary (OOV) settings, bucket
counts, cyclical periods, normalization, crosses and hash buckets, target column, clip and log.
Embedding widths, sides and the model config change only the trainer, so they are left out.

recforge's Transform runner writes :data:`DIGEST_FILE` at the root of its output (beside
``transform_graph/``): the canonical settings of the feature config's transform part and their
digest. :func:`compare` checks a feature config against that record and names the first
differing setting. A Transform output without the record (a platform TFX pipeline's) is checked
by :func:`compare_with_schema` against what its transformed schema and vocabulary assets show.

Everything here is TensorFlow-free and storage-agnostic: callers pass file *texts*.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from compiler.model import cross_column

#: Written at the root of a Transform output, beside ``transform_graph/``.
DIGEST_FILE = "recforge_transform.json"
#: Bumped when the meaning of the recorded settings changes.
SETTINGS_FORMAT = 1


@dataclass(frozen=True)
class Difference:
    """The first setting in which a Transform output differs from the feature config.

    ``key`` is the config key (``features.buyer[1].bucketize.buckets``); ``problem`` reads
    "expected a Transform made with ..., got ...".
    """

    key: str
    problem: str

    def __str__(self) -> str:
        return self.problem


@dataclass(frozen=True)
class SchemaComparison:
    """What a Transform output without a recorded digest allows one to check."""

    difference: Difference | None
    #: settings the schema and assets cannot show (``features.crosses.buyer[0].hash_buckets``)
    unverified: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- settings


def _feature_settings(spec: Any) -> dict[str, Any]:
    """Flat ``setting -> value`` of one feature; a transform that is off has no entry."""
    settings: dict[str, Any] = {"dtype": _value(spec.dtype)}
    if spec.embedding is not None:
        settings["embedding.oov_buckets"] = int(spec.embedding.oov_buckets)
    if spec.cyclical:
        settings["cyclical"] = [_value(c) for c in spec.cyclical]
    if spec.bucketize is not None:
        settings["bucketize.buckets"] = int(spec.bucketize.buckets)
    if spec.normalize:
        settings["normalize"] = True
    return settings


def _value(item: Any) -> Any:
    return getattr(item, "value", item)


def transform_settings(features: Any) -> dict[str, Any]:
    """The canonical settings of ``features`` (a ``FeaturesConfig``) that shape the Transform.

    Features and crosses are keyed by name, so moving a feature between the buyer and product
    sides or reordering the list (neither changes the Transform output) keeps the settings.
    """
    target = None
    if features.target is not None:
        target = {"column": features.target.column, "log": bool(features.target.log)}
        if features.target.clip is not None:
            target["clip.lower_percentile"] = float(features.target.clip.lower_percentile)
            target["clip.upper_percentile"] = float(features.target.clip.upper_percentile)
    return {
        "format": SETTINGS_FORMAT,
        "features": {spec.name: _feature_settings(spec)
                     for spec in [*features.buyer, *features.product]},
        "crosses": {cross_column(cross.features): {"features": list(cross.features),
                                                  "hash_buckets": int(cross.hash_buckets)}
                    for side in ("buyer", "product")
                    for cross in getattr(features.crosses, side)},
        "target": target,
    }


def settings_digest(settings: Mapping[str, Any]) -> str:
    canonical = json.dumps(settings, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def record_text(features: Any, **extra: Any) -> str:
    """The JSON text of :data:`DIGEST_FILE` for a Transform made from ``features``.

    ``extra`` adds informative fields (``data_hash``, ``transform_module_sha256``); only
    ``settings`` and ``digest`` are compared.
    """
    settings = transform_settings(features)
    payload = {**extra, "settings": settings, "digest": settings_digest(settings)}
    return json.dumps(payload, indent=2, sort_keys=True) + "\n"


def parse_record(text: str) -> dict[str, Any]:
    """The recorded settings of a :data:`DIGEST_FILE` text. Raises ValueError when malformed."""
    payload = json.loads(text)
    if not isinstance(payload, dict) or not isinstance(payload.get("settings"), dict):
        raise ValueError(f"{DIGEST_FILE} holds no 'settings' object")
    _check_shape(payload["settings"])
    return payload


def _check_shape(settings: Mapping[str, Any]) -> None:
    """The settings are the objects :func:`transform_settings` writes, else ValueError."""
    for group in ("features", "crosses"):
        entries = settings.get(group, {})
        if not isinstance(entries, dict) or not all(isinstance(v, dict)
                                                    for v in entries.values()):
            raise ValueError(f"'settings.{group}' is not an object of objects")
    if not isinstance(settings.get("target"), (dict, type(None))):
        raise ValueError("'settings.target' is neither an object nor null")


# --------------------------------------------------------------------------- compare


def _keyed_features(features: Any) -> Iterator[tuple[str, Any]]:
    for side in ("buyer", "product"):
        for index, spec in enumerate(getattr(features, side)):
            yield f"features.{side}[{index}]", spec


def _keyed_crosses(features: Any) -> Iterator[tuple[str, Any]]:
    for side in ("buyer", "product"):
        for index, cross in enumerate(getattr(features.crosses, side)):
            yield f"features.crosses.{side}[{index}]", cross


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ",".join(str(v) for v in value) + "]"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _compare_flat(prefix: str, expected: Mapping[str, Any],
                  got: Mapping[str, Any]) -> Difference | None:
    for name in sorted(set(expected) | set(got)):
        key = f"{prefix}.{name}"
        if name not in got:
            return Difference(key, f"expected a Transform made with {key}="
                                   f"{_show(expected[name])}, got a Transform without it")
        if name not in expected:
            return Difference(key, f"expected a Transform made without {key}, got "
                                   f"{key}={_show(got[name])}")
        if expected[name] != got[name]:
            return Difference(key, f"expected a Transform made with {key}="
                                   f"{_show(expected[name])}, got {_show(got[name])}")
    return None


def _compare_entries(what: str, group_key: str, keyed: Sequence[tuple[str, str]],
                     expected: Mapping[str, Any], got: Mapping[str, Any], *,
                     quote: bool) -> Difference | None:
    """Compare one group of named entries (features or crosses) in config order: each config
    entry ``(key, name)`` must be in ``got`` with equal settings, and ``got`` may hold no entry
    the config lacks. Feature names are shown quoted, cross columns as they are."""

    def show(name: str) -> str:
        return f"'{name}'" if quote else name

    for key, name in keyed:
        if name not in got:
            return Difference(key, f"expected a Transform made with {key} ({show(name)}), got "
                                   f"a Transform without that {what}")
        difference = _compare_flat(key, expected[name], got[name])
        if difference:
            return difference
    extra = sorted(set(got) - set(expected))
    if extra:
        return Difference(group_key, f"expected a Transform made without {what} "
                                     f"{show(extra[0])} (not in the feature config), got one "
                                     "that has it")
    return None


def compare(recorded: Mapping[str, Any] | str, features: Any) -> Difference | None:
    """``None`` when ``recorded`` (a :data:`DIGEST_FILE` payload or its text) was made by the
    transform ``features`` describes; else the first differing setting, in config order."""
    payload = parse_record(recorded) if isinstance(recorded, str) else recorded
    got = payload["settings"]
    _check_shape(got)
    expected = transform_settings(features)
    if payload.get("digest") == settings_digest(expected) and got == expected:
        return None
    if got.get("format") != SETTINGS_FORMAT:
        return Difference("features", f"expected a Transform settings record of format "
                                      f"{SETTINGS_FORMAT}, got format {got.get('format')} "
                                      "(made by another recforge version)")
    feature_keys = [(key, spec.name) for key, spec in _keyed_features(features)]
    cross_keys = [(key, cross_column(cross.features)) for key, cross in _keyed_crosses(features)]
    difference = (
        _compare_entries("feature", "features", feature_keys, expected["features"],
                         got.get("features") or {}, quote=True)
        or _compare_entries("cross", "features.crosses", cross_keys, expected["crosses"],
                            got.get("crosses") or {}, quote=False)
    )
    if difference:
        return difference
    want_target, got_target = expected["target"], got.get("target")
    if want_target is None and got_target is not None:
        return Difference("features.target", "expected a Transform made without a target, got "
                                             f"target column '{got_target.get('column')}'")
    if want_target is not None and got_target is None:
        return Difference("features.target", f"expected a Transform made with "
                                             f"features.target.column={want_target['column']}, "
                                             "got a Transform without a target")
    if want_target is not None:
        difference = _compare_flat("features.target", want_target, got_target)
        if difference:
            return difference
    if got != expected:  # a setting this version does not know about
        return Difference("features", "expected a Transform made with the settings digest "
                                      f"{settings_digest(expected)[:12]}, got "
                                      f"{settings_digest(got)[:12]}")
    return None


# --------------------------------------------------------------------------- no record


def parse_schema_domains(text: str) -> dict[str, tuple[str, int | None]]:
    """Feature name -> (``int64``/``float32``/``string``, the int domain's max or None) of a
    text ``tensorflow.metadata.v0.Schema``. Raises ValueError when it does not parse."""
    # lazy: Google Cloud SDK, for GCS/Vertex calls only
    from google.protobuf import text_format
    from tensorflow_metadata.proto.v0 import schema_pb2

    schema = schema_pb2.Schema()
    try:
        text_format.Parse(text, schema)
    except text_format.ParseError as error:
        raise ValueError(f"not a Schema text proto: {error}") from None
    kinds = {schema_pb2.INT: "int64", schema_pb2.FLOAT: "float32", schema_pb2.BYTES: "string"}
    domains: dict[str, tuple[str, int | None]] = {}
    for feature in schema.feature:
        has_max = feature.HasField("int_domain") and feature.int_domain.HasField("max")
        domains[feature.name] = (kinds.get(feature.type, "unknown"),
                                 int(feature.int_domain.max) if has_max else None)
    return domains


_RAW_KINDS = {"string": "string", "int": "int64", "timestamp": "int64", "float": "float32"}


def compare_with_schema(features: Any, transformed: Sequence[Any], schema_text: str, *,
                        vocabulary_sizes: Mapping[str, int | None],
                        raw_schema_text: str | None = None) -> SchemaComparison:
    """Check a Transform output that has no :data:`DIGEST_FILE` (a platform TFX output).

    Args:
        features: the ``FeaturesConfig``.
        transformed: the plan's ``TransformedFeature``s (``plan.transformed_features``).
        schema_text: ``transform_graph/transformed_metadata/schema.pbtxt``.
        vocabulary_sizes: vocabulary file name -> its number of entries, or None when the
            transform graph's assets lack it.
        raw_schema_text: ``transform_graph/metadata/schema.pbtxt`` when present (raw dtypes).

    Names and dtypes, vocabularies and OOV buckets (vocabulary size plus OOV buckets is the id
    domain's size) and bucket counts (the bucket index domain) are checked; hash buckets,
    clip percentiles and the log switch leave no trace there and are listed as unverified.
    """
    domains = parse_schema_domains(schema_text)
    keys = dict(_keyed_features(features))
    key_of = {spec.name: key for key, spec in keys.items()}
    unverified: list[str] = []

    def found(difference: Difference) -> SchemaComparison:
        return SchemaComparison(difference, unverified)

    if raw_schema_text is not None:
        raw = parse_schema_domains(raw_schema_text)
        for key, spec in keys.items():
            want = _RAW_KINDS.get(_value(spec.dtype))
            if spec.name in raw and want and raw[spec.name][0] != want:
                return found(Difference(f"{key}.dtype", f"expected a Transform made with "
                                        f"{key}.dtype={_value(spec.dtype)}, got a raw "
                                        f"{raw[spec.name][0]} column"))
    for column in transformed:
        key = key_of.get(column.source, _cross_key(features, column.name) or "features.target")
        if column.name not in domains:
            return found(Difference(key, f"expected a Transform that writes '{column.name}' "
                                         f"(from {key}), got a Transform without it"))
        kind, maximum = domains[column.name]
        if kind != column.dtype:
            return found(Difference(key, f"expected '{column.name}' as {column.dtype} "
                                         f"(from {key}), got {kind}"))
        if column.encoding == "embedding":
            size = vocabulary_sizes.get(column.vocab)
            if size is None:
                return found(Difference(f"{key}.embedding", f"expected a Transform with the "
                                        f"vocabulary '{column.vocab}' (from {key}.embedding), "
                                        "got none in transform_fn/assets"))
            if maximum is None:
                unverified.append(f"{key}.embedding.oov_buckets")
            elif maximum + 1 - size != column.extra_ids:
                return found(Difference(f"{key}.embedding.oov_buckets", f"expected a Transform "
                                        f"made with {key}.embedding.oov_buckets="
                                        f"{column.extra_ids}, got {maximum + 1 - size}"))
        elif column.encoding == "bucket":
            if maximum is None:
                unverified.append(f"{key}.bucketize.buckets")
            elif maximum + 1 != column.size:
                return found(Difference(f"{key}.bucketize.buckets", f"expected a Transform "
                                        f"made with {key}.bucketize.buckets={column.size}, "
                                        f"got {maximum + 1}"))
        elif column.encoding == "hashed":
            unverified.append(f"{key}.hash_buckets")
    wanted = {column.name for column in transformed}
    extra = sorted(set(domains) - wanted)
    if extra:
        return found(Difference("features", f"expected a Transform made without '{extra[0]}' "
                                            "(not in the feature config), got one that "
                                            "writes it"))
    if features.target is not None:
        if features.target.clip is not None:
            unverified.append("features.target.clip")
        unverified.append("features.target.log")
    return SchemaComparison(None, unverified)


def _cross_key(features: Any, column: str) -> str | None:
    for key, cross in _keyed_crosses(features):
        if cross_column(cross.features) == column:
            return key
    return None


__all__ = [
    "DIGEST_FILE",
    "Difference",
    "SchemaComparison",
    "compare",
    "compare_with_schema",
    "parse_record",
    "parse_schema_domains",
    "record_text",
    "settings_digest",
    "transform_settings",
]
