"""Reusing a Transform output: the settings record, its comparison, and the schema fallback.

All TensorFlow-free and fast: the Transform outputs here are files the tests write.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from compiler.core.compose import compose
from compiler.core.plan import plan
from compiler.core.validate import validate
from compiler.errors import ConfigError
from compiler.local.config import check_run_config
from compiler.local.transform import cached_output_matches, check_transform_source
from compiler.runner.transform_digest import (
    DIGEST_FILE,
    compare,
    compare_with_schema,
    parse_record,
    record_text,
    settings_digest,
    transform_settings,
)


def resolved(*overrides: str):
    return validate(compose(["model=hybrid_v1", "features=cherng_v3", *overrides]))


@pytest.fixture(scope="module")
def base():
    return resolved()


@pytest.fixture(scope="module")
def record(base) -> str:
    return record_text(base.features, data_hash="abc")


def test_the_same_feature_config_matches(base, record) -> None:
    assert compare(record, base.features) is None
    assert parse_record(record)["data_hash"] == "abc"
    # Deterministic: the same config gives the same text and digest.
    assert record_text(base.features, data_hash="abc") == record


@pytest.mark.parametrize(
    ("override", "key", "text"),
    [
        ("features.buyer.1.bucketize.buckets=5", "features.buyer[1].bucketize.buckets",
         "expected a Transform made with features.buyer[1].bucketize.buckets=5, got 100"),
        ("features.buyer.0.embedding.oov_buckets=3", "features.buyer[0].embedding.oov_buckets",
         "embedding.oov_buckets=3, got 1"),
        ("features.buyer.1.cyclical=[weekly]", "features.buyer[1].cyclical",
         "cyclical=[weekly], got [weekly,monthly]"),
        ("features.buyer.2.normalize=false", "features.buyer[2].normalize",
         "expected a Transform made without features.buyer[2].normalize"),
        ("features.crosses.product.0.hash_buckets=7",
         "features.crosses.product[0].hash_buckets", "hash_buckets=7, got 1000"),
        ("features.target.clip.upper_percentile=95",
         "features.target.clip.upper_percentile", "upper_percentile=95.0, got 90.0"),
        ("features.target.log=false", "features.target.log", "log=false, got true"),
        ("features.buyer.2.dtype=int", "features.buyer[2].dtype", "dtype=int, got float"),
    ],
)
def test_a_changed_transform_setting_is_named(record, override, key, text) -> None:
    difference = compare(record, resolved(override).features)
    assert difference is not None
    assert difference.key == key
    assert text in difference.problem


@pytest.mark.parametrize("override", [
    "features.buyer.0.embedding.dim=5",
    "features.buyer.1.bucketize.embedding_dim=4",
    "features.crosses.buyer.0.embedding_dim=4",
    "features.display_name=renamed",
])
def test_model_side_settings_do_not_matter(record, override) -> None:
    # Embedding widths change the trainer, not the Transform output.
    assert compare(record, resolved(override).features) is None


def test_reordering_features_keeps_the_settings(base) -> None:
    moved = resolved("features.buyer=[{name: customer_id, dtype: string, embedding: {dim: 64}}"
                     ", {name: cust_value, dtype: float, bucketize: {buckets: 100}, "
                     "normalize: true}, {name: date, dtype: timestamp, cyclical: [weekly, "
                     "monthly], bucketize: {buckets: 100}, normalize: true}]")
    assert transform_settings(moved.features) == transform_settings(base.features)


def test_a_missing_or_extra_feature_is_named(base, record) -> None:
    payload = json.loads(record)
    del payload["settings"]["features"]["category"]
    difference = compare(payload, base.features)
    assert difference.key == "features.product[1]"
    assert "('category'), got a Transform without that feature" in difference.problem

    payload = json.loads(record)
    payload["settings"]["features"]["extra"] = {"dtype": "string"}
    difference = compare(payload, base.features)
    assert difference.key == "features"
    assert "without feature 'extra'" in difference.problem


def test_a_malformed_record_is_refused() -> None:
    with pytest.raises(ValueError, match="no 'settings'"):
        parse_record("{}")
    with pytest.raises(ValueError):
        parse_record("not json")


def test_the_digest_is_over_the_canonical_settings(base) -> None:
    settings = transform_settings(base.features)
    assert json.loads(record_text(base.features))["digest"] == settings_digest(settings)
    reordered = dict(reversed(list(settings.items())))
    assert settings_digest(reordered) == settings_digest(settings)


# --------------------------------------------------------------------------- schema fallback


def schema_text(config, *, bucket_max: int | None = 99, id_max: int = 10,
                drop: str | None = None) -> str:
    """A transformed schema as tf.Transform writes it for ``config``'s plan."""
    blocks = []
    for column in plan(config).transformed_features:
        if column.name == drop:
            continue
        kind = "INT" if column.dtype == "int64" else "FLOAT"
        domain = ""
        if column.encoding == "bucket" and bucket_max is not None:
            domain = f"int_domain {{ min: 0 max: {bucket_max} is_categorical: true }}"
        elif column.encoding == "embedding":
            domain = f"int_domain {{ min: 0 max: {id_max} is_categorical: true }}"
        blocks.append(f'feature {{ name: "{column.name}" type: {kind} {domain} }}')
    return "\n".join(blocks)


def vocabularies(config, size: int = 10) -> dict[str, int | None]:
    return {c.vocab: size for c in plan(config).transformed_features if c.vocab}


def test_schema_fallback_accepts_a_matching_output_and_lists_what_it_cannot_see(base) -> None:
    comparison = compare_with_schema(base.features, plan(base).transformed_features,
                                     schema_text(base), vocabulary_sizes=vocabularies(base))
    assert comparison.difference is None
    assert "features.crosses.buyer[0].hash_buckets" in comparison.unverified
    assert "features.target.log" in comparison.unverified


def test_schema_fallback_names_a_bucket_count_from_the_domain(base) -> None:
    config = resolved("features.buyer.1.bucketize.buckets=5")
    comparison = compare_with_schema(config.features, plan(config).transformed_features,
                                     schema_text(base), vocabulary_sizes=vocabularies(base))
    assert comparison.difference.key == "features.buyer[1].bucketize.buckets"
    assert "buckets=5, got 100" in comparison.difference.problem


def test_schema_fallback_checks_oov_buckets_vocabularies_and_columns(base) -> None:
    transformed = plan(base).transformed_features
    # ids 0..10 with a 9-entry vocabulary: 2 OOV buckets, the config says 1
    oov = compare_with_schema(base.features, transformed, schema_text(base),
                              vocabulary_sizes=vocabularies(base, size=9))
    assert oov.difference.key == "features.buyer[0].embedding.oov_buckets"
    missing_vocab = compare_with_schema(base.features, transformed, schema_text(base),
                                        vocabulary_sizes={})
    assert missing_vocab.difference.key == "features.buyer[0].embedding"
    missing_column = compare_with_schema(base.features, transformed,
                                         schema_text(base, drop="date_monthly_sin"),
                                         vocabulary_sizes=vocabularies(base))
    assert missing_column.difference.key == "features.buyer[1]"
    assert "'date_monthly_sin'" in missing_column.difference.problem
    no_domain = compare_with_schema(base.features, transformed,
                                    schema_text(base, bucket_max=None),
                                    vocabulary_sizes=vocabularies(base))
    assert no_domain.difference is None
    assert "features.buyer[1].bucketize.buckets" in no_domain.unverified


# --------------------------------------------------------------------------- local outputs


def write_output(root: Path, record: str | None) -> Path:
    (root / "transform_graph" / "transform_fn").mkdir(parents=True)
    (root / "transformed_examples" / "Split-train").mkdir(parents=True)
    if record is not None:
        (root / DIGEST_FILE).write_text(record)
    return root


def test_transform_from_a_run_directory_is_checked_in_the_preflight(tmp_path, base) -> None:
    other = resolved("features.buyer.1.bucketize.buckets=5")
    write_output(tmp_path / "run" / "transform", record_text(other.features))
    node = {"transform_from": str(tmp_path / "run")}
    with pytest.raises(ConfigError) as raised:
        check_run_config(node, base)
    message = str(raised.value)
    assert message.startswith("run.transform_from: expected a Transform made with "
                              "features.buyer[1].bucketize.buckets=100, got 5")
    assert DIGEST_FILE in message
    assert check_run_config(node, other).transform_from == str(tmp_path / "run")


def test_transform_from_without_record_or_schema_is_refused(tmp_path, base) -> None:
    write_output(tmp_path / "out", None)
    with pytest.raises(ConfigError, match="transformed_metadata/schema.pbtxt, got none"):
        check_transform_source(str(tmp_path / "out"), base)
    with pytest.raises(ConfigError, match="expected a Transform output"):
        check_transform_source(str(tmp_path), base)


def test_a_platform_output_is_checked_through_its_schema_and_assets(tmp_path, base) -> None:
    root = write_output(tmp_path / "platform", None)
    graph = root / "transform_graph"
    (graph / "transformed_metadata").mkdir()
    (graph / "transformed_metadata" / "schema.pbtxt").write_text(schema_text(base))
    (graph / "transform_fn" / "assets").mkdir()
    for name in vocabularies(base):
        (graph / "transform_fn" / "assets" / name).write_text("".join(f"v{i}\n"
                                                                      for i in range(10)))
    unverified = check_transform_source(str(root), base)
    assert "features.target.log" in unverified
    with pytest.raises(ConfigError, match=r"bucketize.buckets=5, got 100 \(read from"):
        check_transform_source(str(root), resolved("features.buyer.1.bucketize.buckets=5"))


def test_a_cache_entry_is_reused_only_with_a_matching_record(tmp_path, base) -> None:
    assert not cached_output_matches(write_output(tmp_path / "none", None), base)
    assert cached_output_matches(write_output(tmp_path / "same", record_text(base.features)),
                                 base)
    other = resolved("features.crosses.buyer.0.hash_buckets=10")
    assert not cached_output_matches(
        write_output(tmp_path / "other", record_text(other.features)), base)


@pytest.mark.slow
def test_a_remote_transform_output_is_read_through_gfile(base) -> None:
    # ram:// stands in for gs://: both go through tf.io.gfile, which is all the check uses.
    from compiler.local.transform import check_remote_transform_source
    from compiler.runner._tf import import_tf

    gfile = import_tf().io.gfile
    root = "ram://recforge-test/remote-transform"
    gfile.makedirs(f"{root}/transform_graph/transform_fn")
    other = resolved("features.buyer.1.bucketize.buckets=5")
    with gfile.GFile(f"{root}/{DIGEST_FILE}", "w") as handle:
        handle.write(record_text(other.features))
    assert check_remote_transform_source(root, other) == []
    with pytest.raises(ConfigError, match=r"buckets=100, got 5 \(recorded in ram://"):
        check_remote_transform_source(root, base)
    with pytest.raises(ConfigError, match="which does not exist"):
        check_remote_transform_source("ram://recforge-test/nothing", base)


def test_an_unreadable_record_is_one_clear_error(tmp_path, base) -> None:
    write_output(tmp_path / "out", '{"settings": {"format": 1, "features": {"customer_id": 3}}}')
    with pytest.raises(ConfigError, match="run.transform_from: expected a readable "
                                          "recforge_transform.json, got"):
        check_transform_source(str(tmp_path / "out"), base)
    assert not cached_output_matches(tmp_path / "out", base)
