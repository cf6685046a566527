"""The ``data`` config group's preflight: ``check_data_config`` merges the node onto the schema
(``compiler.data.schema``, re-exported here) and runs every check that needs no data
(``compiler.data.checks``), raising ``ConfigError`` keyed ``data.<key>``.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from compiler.data.checks import check_config, feature_kinds
from compiler.data.schema import (
    DEFAULT_SOURCE,
    DataConfig,
    DerivedColumn,
    DeriveOp,
    DirtyAction,
    DirtyRowsConfig,
    FilterOp,
    RowFilter,
    SourceFormat,
    SplitConfig,
    SplitKind,
    SplitRatios,
    as_data_config,
)
from compiler.errors import ConfigError, did_you_mean

__all__ = [
    "DEFAULT_SOURCE",
    "DataConfig",
    "DeriveOp",
    "DerivedColumn",
    "DirtyAction",
    "DirtyRowsConfig",
    "FilterOp",
    "RowFilter",
    "SourceFormat",
    "SplitConfig",
    "SplitKind",
    "SplitRatios",
    "as_data_config",
    "check_data_config",
]


def check_data_config(node: Any, features: Any = None) -> DataConfig:
    """Preflight for the ``data`` group: everything about the data that can be checked before
    anything is loaded or written. Raises ``ConfigError`` naming ``data.<key>``.

    ``features`` is the validated ``FeaturesConfig`` (the columns the data must provide).
    """

    if node is None:
        raise ConfigError("data", "expected a data config (data=default or data=<name>), got none")
    if isinstance(node, DataConfig):
        cfg = node
    else:
        try:
            merged = OmegaConf.merge(OmegaConf.structured(DataConfig), node)
            cfg = OmegaConf.to_object(merged)  # type: ignore[assignment]
        except OmegaConfBaseException as error:
            raise _translate(error) from None
    if not isinstance(cfg, DataConfig):
        raise ConfigError("data", f"expected a data config, got {type(cfg).__name__}")
    check_config(cfg, None if features is None else feature_kinds(features))
    return cfg


def _translate(error: OmegaConfBaseException) -> Exception:
    """An OmegaConf error about the data node as a ``ConfigError`` keyed ``data.<key>``."""

    key = "data" + (f".{error.full_key}" if getattr(error, "full_key", None) else "")
    message = str(getattr(error, "msg", error)).strip().splitlines()[0]
    enum = re.search(r"Invalid value '([^']*)', expected one of \[([^\]]*)\]", message)
    if enum:
        choices = [c.strip() for c in enum[2].split(",")]
        return ConfigError(key, f"expected one of {', '.join(choices)}, got '{enum[1]}'",
                           suggestion=did_you_mean(enum[1], choices))
    unknown = re.match(r"Key '([^']*)' not in '(\w+)'", message)
    if unknown:
        owner = getattr(error, "object_type", None)
        names = [f.name for f in dataclasses.fields(owner)] \
            if owner is not None and dataclasses.is_dataclass(owner) else []
        listed = f" (expected one of: {', '.join(names)})" if names else ""
        return ConfigError(key, f"unknown key '{unknown[1]}'{listed}",
                           suggestion=did_you_mean(unknown[1], names))
    converted = re.search(r"Value '(.*)' of type '(\w+)' could not be converted to (\w+)",
                          message)
    if converted:
        return ConfigError(key, f"expected {converted[3].lower()}, got '{converted[1]}' "
                                f"({converted[2]})")
    return ConfigError(key, message)
