"""``DataConfig``: the schema of the ``data`` config group.

Every type here is one OmegaConf structured configs support (str, int, float, bool, Enum,
Optional, List, Dict[str, ...], nested dataclasses), so the lead can register ``DataConfig`` in
Hydra's ConfigStore (group ``data``, name ``data_schema``) and YAML files under ``conf/data/``
start with ``defaults: [data_schema, _self_]``.

Derived columns and row filters are small typed specs rather than expressions, so a config can
never execute code (no ``eval``) and every mistake is a validation error naming its key.
"""

# OmegaConf documents structured-config support for the typing aliases (Dict, List, Optional);
# keep them here rather than PEP 585/604 spellings so every OmegaConf 2.3.x accepts the schema.
# ruff: noqa: UP006, UP007, UP035, UP045
from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from compiler.data.errors import DataError

DEFAULT_SOURCE = "default"


class SourceFormat(str, Enum):
    """File format of ``source``; ``auto`` picks from the suffix (.csv[.gz|.bz2|.zip|.xz|.zst],
    .parquet, .pq)."""

    auto = "auto"
    csv = "csv"
    parquet = "parquet"


class DirtyAction(str, Enum):
    """What to do with a row that breaks a rule: drop it (and count it), or fail the load."""

    drop = "drop"
    fail = "fail"


class DeriveOp(str, Enum):
    """Arithmetic of a derived column over its inputs, left to right."""

    multiply = "multiply"
    add = "add"
    subtract = "subtract"
    divide = "divide"


class FilterOp(str, Enum):
    """Condition a row must meet to be kept (SQL ``WHERE`` sense).

    Numeric ops (gt, ge, lt, le, and eq/ne with ``value``) compare against ``value``; a missing
    or non-numeric cell fails them. String ops (startswith, not_startswith, and eq/ne with
    ``text``) compare the cell as text against ``text``; a missing cell passes only
    ``not_startswith`` and ``ne``. ``not_null`` keeps rows whose cell is present.
    """

    gt = "gt"
    ge = "ge"
    lt = "lt"
    le = "le"
    eq = "eq"
    ne = "ne"
    startswith = "startswith"
    not_startswith = "not_startswith"
    not_null = "not_null"


class SplitKind(str, Enum):
    random = "random"
    date = "date"


@dataclass
class DerivedColumn:
    """A column computed from file columns, e.g. ``sales = Quantity * UnitPrice``.

    The key under ``data.derived`` is the new column's name; feature configs refer to it
    directly (it needs no ``data.columns`` entry). ``inputs`` are file column names (or earlier
    derived columns); non-numeric cells become missing, which the dirty-row rules then handle.
    """

    inputs: list[str] = field(default_factory=list)
    op: DeriveOp = DeriveOp.multiply


@dataclass
class RowFilter:
    """Keep only rows whose ``column`` (a file or derived column) meets ``op``.

    The key under ``data.filters`` is the reason under which dropped rows are counted.
    """

    column: str = ""
    op: FilterOp = FilterOp.not_null
    value: float | None = None
    text: str | None = None
    on_violation: DirtyAction = DirtyAction.drop


@dataclass
class DirtyRowsConfig:
    """Per rule, drop-and-count or fail. Rules run after ``filters``, column by column.

    - ``missing_id``: a ``string`` column is empty/missing;
    - ``bad_timestamp``: a ``timestamp`` column is missing or unparseable;
    - ``bad_number``: a ``float``/``int`` column is missing or not a number;
    - ``non_positive_target``: the target is <= 0.
    """

    missing_id: DirtyAction = DirtyAction.drop
    bad_timestamp: DirtyAction = DirtyAction.drop
    bad_number: DirtyAction = DirtyAction.drop
    non_positive_target: DirtyAction = DirtyAction.drop


@dataclass
class SplitRatios:
    train: float = 0.8
    eval: float = 0.1
    test: float = 0.1


@dataclass
class SplitConfig:
    """How rows are split into train / eval / test.

    ``random``: a seeded permutation cut by ``ratios`` (rows keep file order inside a split);
    ``ratios.eval: 0`` is a two-way split, with no eval split at all.
    ``date``: rows before ``eval_start`` -> train, [eval_start, test_start) -> eval, from
    ``test_start`` on -> test; dates are ISO (``2011-10-01`` or ``2011-10-01 12:00:00``), UTC.
    Without ``eval_start`` it is a two-way split: before ``test_start`` -> train.
    ``date_column`` is the feature-config name of the timestamp to cut on; it defaults to the only
    timestamp column. ``seed`` also drives ``data.sample``.
    """

    kind: SplitKind = SplitKind.random
    seed: int = 42
    ratios: SplitRatios = field(default_factory=SplitRatios)
    eval_start: str | None = None
    test_start: str | None = None
    date_column: str | None = None


@dataclass
class DataConfig:
    """Where the raw interactions come from and how they become train/eval/test frames.

    ``source``: ``default`` (the embedded synthetic B2B dataset) or a CSV/Parquet path, local or
    ``gs://bucket/path``. A relative local path is resolved against the original working
    directory (Hydra's, when running under Hydra), then the repository root.
    ``columns``: feature-config column name -> column name in the file; a feature column without
    an entry is looked up under its own name.
    ``timestamp_format``: a ``strftime`` format for text timestamps, or a list of them tried in
    order (a value no format parses is a ``bad_timestamp``); ``ISO8601`` names ISO 8601, which
    is also what unset means. Timestamps without a zone are taken as UTC.
    ``sample``: keep at most this many cleaned rows (seeded by ``split.seed``), for quick runs.
    ``cache_dir``: where the synthetic dataset is cached; unset means ``<repo>/.recforge/datasets``.
    ``scale``: the embedded dataset's size factor (``source: default`` only): ×1 is the original
    15,000 lines; ×10 and ×100 multiply its customers, products and lines.
    """

    source: str = DEFAULT_SOURCE
    format: SourceFormat = SourceFormat.auto
    columns: dict[str, str] = field(default_factory=dict)
    derived: dict[str, DerivedColumn] = field(default_factory=dict)
    filters: dict[str, RowFilter] = field(default_factory=dict)
    dirty: DirtyRowsConfig = field(default_factory=DirtyRowsConfig)
    #: A str or a list of str: OmegaConf structured configs have no Union of the two.
    timestamp_format: Any = None
    split: SplitConfig = field(default_factory=SplitConfig)
    sample: int | None = None
    cache_dir: str | None = None
    scale: int = 1


def as_data_config(cfg: DataConfig | DictConfig | dict[str, Any]) -> DataConfig:
    """Turn a composed Hydra node, a plain dict or a ``DataConfig`` into a validated ``DataConfig``.

    A plain (non-structured) node is merged onto the schema so unknown keys and bad enum values
    are reported with their key, as a ``DataError``.
    """
    if isinstance(cfg, DataConfig):
        return cfg
    try:
        node = OmegaConf.merge(OmegaConf.structured(DataConfig), cfg)
        obj = OmegaConf.to_object(node)
    except OmegaConfBaseException as exc:
        raise DataError(f"invalid data config: {exc}") from exc
    assert isinstance(obj, DataConfig)
    return obj
