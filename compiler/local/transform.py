"""Reusing a Transform output locally: ``run.transform_from`` and the Transform cache.

A Transform output is reused only when the transform that made it is the one the feature config
describes (see :mod:`compiler.runner.transform_digest`). :func:`check_transform_source` reads a
local output's record (or, for a platform TFX output, its transformed schema and vocabulary
assets) without TensorFlow, so the preflight can refuse a mismatch before anything is written.
``gs://`` outputs are read through ``tf.io.gfile`` by :func:`check_remote_transform_source`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from compiler.core.plan import plan
from compiler.errors import ConfigError, RecforgeError
from compiler.runner._tf import import_tf
from compiler.runner.fn_args import fn_args_from_transform
from compiler.runner.transform_digest import DIGEST_FILE, compare, compare_with_schema

TRANSFORM_GRAPH_DIR = "transform_graph"
TRANSFORMED_SCHEMA = "transformed_metadata/schema.pbtxt"
RAW_SCHEMA = "metadata/schema.pbtxt"
ASSET_MAP = "transformed_metadata/asset_map"
ASSETS_DIR = "transform_fn/assets"

#: Reads a file's text (None when it does not exist) / lists a directory (None when absent).
ReadText = Callable[[str], "str | None"]
ListDir = Callable[[str], "list[str] | None"]


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def resolve_transform_source(source: str) -> str:
    """A recforge run directory means its ``transform/``; anything else is used as it is."""
    if "://" not in source and (Path(source) / "transform").is_dir():
        return str(Path(source) / "transform")
    return source.rstrip("/") or source


def _local_read(path: str) -> str | None:
    try:
        return Path(path).read_text()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None


def _local_list(path: str) -> list[str] | None:
    directory = Path(path)
    return sorted(p.name for p in directory.iterdir()) if directory.is_dir() else None


def _graph_dir(root: str, list_dir: ListDir) -> str | None:
    """``<root>/transform_graph``, or its only child holding ``transform_fn`` (TFX's local
    orchestrators add an execution-id level)."""
    graph = _join(root, TRANSFORM_GRAPH_DIR)
    children = list_dir(graph)
    if children is None:
        return None
    if "transform_fn" in children:
        return graph
    nested = [c.rstrip("/") for c in children
              if "transform_fn" in (list_dir(_join(graph, c.rstrip("/"))) or [])]
    return _join(graph, nested[0]) if len(nested) == 1 else None


def compatibility(root: str, config: Any, read_text: ReadText,
                  list_dir: ListDir) -> tuple[str | None, list[str]]:
    """(what differs, or None; settings that could not be verified) for the Transform output
    at ``root`` and the feature config of ``config`` (a ``ResolvedConfig``)."""
    record = read_text(_join(root, DIGEST_FILE))
    if record is not None:
        try:
            difference = compare(record, config.features)
        except (ValueError, TypeError, AttributeError, KeyError) as error:
            raise ConfigError("run.transform_from", f"expected a readable {DIGEST_FILE}, got "
                                                    f"{type(error).__name__}: {error} in "
                                                    f"{_join(root, DIGEST_FILE)}") from None
        where = f"recorded in {_join(root, DIGEST_FILE)}"
        return (f"{difference} ({where})" if difference else None), []
    graph = _graph_dir(root, list_dir)
    if graph is None:
        raise ConfigError("run.transform_from", f"expected a Transform output (transform_graph/"
                                                f"transform_fn and transformed_examples/), got "
                                                f"none under {root}")
    schema_text = read_text(_join(graph, TRANSFORMED_SCHEMA))
    if schema_text is None:
        raise ConfigError("run.transform_from", f"expected {_join(graph, TRANSFORMED_SCHEMA)}, "
                                                "got none, so the Transform cannot be checked")

    transformed = plan(config).transformed_features
    comparison = compare_with_schema(
        config.features, transformed, schema_text,
        vocabulary_sizes=_vocabulary_sizes(graph, transformed, read_text),
        raw_schema_text=read_text(_join(graph, RAW_SCHEMA)),
    )
    difference = comparison.difference
    where = f"read from {_join(graph, 'transformed_metadata')}; it has no {DIGEST_FILE}"
    return (f"{difference} ({where})" if difference else None), comparison.unverified


def _vocabulary_sizes(graph: str, transformed: Any, read_text: ReadText
                      ) -> dict[str, int | None]:
    asset_map: Mapping[str, str] = {}
    mapping_text = read_text(_join(graph, ASSET_MAP))
    if mapping_text:
        try:
            asset_map = json.loads(mapping_text)
        except json.JSONDecodeError:
            asset_map = {}
    sizes: dict[str, int | None] = {}
    for column in transformed:
        if column.vocab:
            text = read_text(_join(graph, ASSETS_DIR, asset_map.get(column.vocab, column.vocab)))
            sizes[column.vocab] = None if text is None else len(text.splitlines())
    return sizes


def check_transform_source(source: str, config: Any) -> list[str]:
    """Preflight of a local ``run.transform_from``: raises ``ConfigError`` when it is missing or
    was made by another transform; returns the settings that could not be verified."""
    root = resolve_transform_source(source)
    if not Path(root).exists():
        raise ConfigError("run.transform_from", f"expected a run directory or a Transform "
                                                f"output, got {source}, which does not exist")
    difference, unverified = compatibility(root, config, _local_read, _local_list)
    if difference:
        raise ConfigError("run.transform_from", difference)
    return unverified


def check_remote_transform_source(source: str, config: Any) -> list[str]:
    """:func:`check_transform_source` for a ``gs://`` (any tf.io.gfile) Transform output."""

    gfile = import_tf().io.gfile

    def read_text(path: str) -> str | None:
        if not gfile.exists(path) or gfile.isdir(path):
            return None
        with gfile.GFile(path, "r") as handle:
            return handle.read()

    def list_dir(path: str) -> list[str] | None:
        return [c.rstrip("/") for c in gfile.listdir(path)] if gfile.isdir(path) else None

    if not gfile.exists(source):
        raise ConfigError("run.transform_from", f"expected a Transform output, got {source}, "
                                                "which does not exist")
    difference, unverified = compatibility(source, config, read_text, list_dir)
    if difference:
        raise ConfigError("run.transform_from", difference)
    return unverified


def cached_output_matches(cached: Path, config: Any) -> bool:
    """A cache entry is reused only with a record that matches the feature config."""
    record = _local_read(str(cached / DIGEST_FILE))
    if record is None:
        return False
    try:
        return compare(record, config.features) is None
    except (ValueError, TypeError, AttributeError, KeyError):
        return False


def recorded_data_hash(root: str, read_text: ReadText = _local_read) -> str | None:
    """The content hash of the data a recforge Transform output was made from, if recorded."""
    record = read_text(_join(root, DIGEST_FILE))
    if record is None:
        return None
    try:
        value = json.loads(record).get("data_hash")
    except (json.JSONDecodeError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def check_transform_output(transform_dir: str, required: Mapping[str, str]) -> None:
    """Refuse a Transform output that TensorFlow cannot open, lacks a feature the trainer
    reads, or has another dtype (run with library output already going to run.log)."""

    import_tf()
    # lazy: tf.Transform (TensorFlow): running a Transform only
    import tensorflow_transform as tft

    try:
        graph = fn_args_from_transform(transform_dir, "/unused").transform_output
        spec = tft.TFTransformOutput(graph).transformed_feature_spec()
    except (FileNotFoundError, OSError, ValueError) as error:
        raise RecforgeError(
            f"run.transform_from: no usable Transform output under {transform_dir} ({error}); "
            "expected transform_graph/ and transformed_examples/Split-train|eval|test/"
        ) from None
    problems = []
    for name, dtype in required.items():
        if name not in spec:
            problems.append(f"'{name}' is missing")
        elif spec[name].dtype.name != dtype:
            problems.append(f"'{name}' is {spec[name].dtype.name}, the trainer expects {dtype}")
    if problems:
        raise RecforgeError(
            f"run.transform_from: the Transform output at {transform_dir} does not match the "
            f"feature config: {'; '.join(problems)}"
        )
