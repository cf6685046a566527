"""Pure checks of a data config: everything knowable before a row is read.

``check_data_config`` (the preflight, in ``compiler.data.config``) and ``load_data`` both run
``check_config``; it reads nothing but the file system's answer to "does the source exist", and
raises ``ConfigError`` naming ``data.<key>``. What needs the data itself (a column missing from
the file's header, an empty split) stays in the loader.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from compiler.data.errors import did_you_mean as case_insensitive
from compiler.data.paths import base_dirs
from compiler.data.schema import (
    DEFAULT_SOURCE,
    DataConfig,
    FilterOp,
    SourceFormat,
    SplitKind,
)
from compiler.errors import ConfigError, did_you_mean

SPLITS = ("train", "eval", "test")
KINDS = ("string", "timestamp", "float", "int")
NUMERIC_OPS = frozenset({FilterOp.gt, FilterOp.ge, FilterOp.lt, FilterOp.le})
TEXT_OPS = frozenset({FilterOp.startswith, FilterOp.not_startswith})
#: ``timestamp_format`` entry that means ISO 8601 (pandas' name for it).
ISO_FORMAT = "ISO8601"
#: strptime directives pandas understands (``%%`` is a literal percent sign).
_DIRECTIVES = frozenset("aAbBcdfGHIjmMpSuUVwWxXyYzZ%")

_CSV_SUFFIXES = (".csv",)
_PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")
_COMPRESSION_SUFFIXES = (".gz", ".bz2", ".zip", ".xz", ".zst", ".tar")


def feature_kinds(features: Any) -> dict[str, str]:
    """Feature-config column -> loader kind: every buyer and product feature, and the target
    (a ``float``), as the local runner loads them."""
    kinds = {spec.name: _value(spec.dtype) for spec in [*features.buyer, *features.product]}
    if features.target is not None:
        kinds.setdefault(features.target.column, "float")
    return kinds


def check_config(
    cfg: DataConfig,
    kinds: Mapping[str, str] | None = None,
    *,
    base_dir: str | Path | None = None,
) -> None:
    """Raise ``ConfigError`` for the first thing wrong with ``cfg``.

    ``kinds`` (feature-config column -> kind, the target included) enables the checks that
    need the feature config: ``columns`` keys and ``split.date_column``.
    """
    check_source(cfg, base_dir)
    if kinds is not None:
        _check_columns(cfg, kinds)
    _check_derived_and_filters(cfg)
    timestamp_formats(cfg)
    if cfg.sample is not None and (isinstance(cfg.sample, bool) or cfg.sample < 1):
        raise ConfigError("data.sample", f"expected a positive row count or null, got {cfg.sample}")
    _check_scale(cfg)
    _check_split(cfg, kinds)


def _check_scale(cfg: DataConfig) -> None:
    """``data.scale`` multiplies the embedded dataset (``compiler.data.synthetic``) only."""
    scale = cfg.scale
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
        raise ConfigError("data.scale", f"expected a positive integer, got {scale!r}")
    if scale != 1 and str(cfg.source).strip() != DEFAULT_SOURCE:
        raise ConfigError("data.scale", f"expected 1 for a data file (scale sizes only the "
                                        f"embedded dataset, source: default), got {scale}")


# --------------------------------------------------------------------------- source


def check_source(cfg: DataConfig, base_dir: str | Path | None = None) -> tuple[Path | None,
                                                                              SourceFormat]:
    """The local path (None for the embedded dataset and ``gs://``) and the file format."""
    source = str(cfg.source).strip()
    if source == DEFAULT_SOURCE:
        return None, SourceFormat.parquet
    if source.startswith("gs://"):
        bucket, _, blob = source[len("gs://"):].partition("/")
        if not bucket or not blob or blob.endswith("/"):
            raise ConfigError("data.source",
                              f"expected one object, gs://BUCKET/PATH/FILE.csv, got {source!r}")
        return None, detect_format(source, cfg.format)
    path = resolve_local_source(source, base_dir)
    return path, detect_format(path.name, cfg.format)


def resolve_local_source(source: str, base_dir: str | Path | None = None) -> Path:
    """The existing file ``source`` names: absolute, or relative to ``base_dir`` (default: the
    original working directory, then the repository root)."""

    given = Path(source).expanduser()
    if given.is_absolute():
        candidates = [given]
    else:
        bases = [Path(base_dir).resolve()] if base_dir is not None else base_dirs()
        candidates = [base / given for base in bases]
    for candidate in candidates:
        if candidate.is_dir():
            raise ConfigError("data.source", f"expected one CSV or Parquet file, got a directory "
                                             f"({candidate})")
        if candidate.is_file():
            return candidate.resolve()
    suggestion = None
    for candidate in candidates:
        if candidate.parent.is_dir():
            siblings = sorted(p.name for p in candidate.parent.iterdir() if p.is_file())
            best = _close(candidate.name, siblings)
            if best is not None:
                suggestion = str(candidate.parent / best)
                break
    tried = ", ".join(str(c) for c in candidates)
    raise ConfigError("data.source", f"expected an existing file, got {source!r}: data file not "
                                     f"found (looked for {tried})", suggestion=suggestion)


def detect_format(name: str, fmt: SourceFormat) -> SourceFormat:
    """``fmt``, or for ``auto`` the format the file name's suffix says."""
    if fmt is not SourceFormat.auto:
        return fmt
    lower = name.lower()
    stem = lower
    for suffix in _COMPRESSION_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    if stem.endswith(_CSV_SUFFIXES):
        return SourceFormat.csv
    if lower.endswith(_PARQUET_SUFFIXES):
        return SourceFormat.parquet
    raise ConfigError(
        "data.format",
        f"expected csv or parquet: cannot tell the format of {name!r} from its name (.csv, "
        ".csv.gz, .parquet), got auto",
    )


# --------------------------------------------------------------------------- columns


def _check_columns(cfg: DataConfig, kinds: Mapping[str, str]) -> None:
    names = list(kinds)
    for key, column in cfg.columns.items():
        if key not in kinds:
            raise ConfigError(
                f"data.columns.{key}",
                f"expected a feature or target of the feature config ({', '.join(names)}), "
                f"got {key!r}",
                suggestion=_close(key, names),
            )
        if not str(column).strip():
            raise ConfigError(f"data.columns.{key}", "expected a column name of the file, got ''")


def _check_derived_and_filters(cfg: DataConfig) -> None:
    for name, spec in cfg.derived.items():
        if len(spec.inputs) < 2:
            raise ConfigError(
                f"data.derived.{name}.inputs",
                f"expected at least 2 columns to {spec.op.value}, got {list(spec.inputs)}",
            )
    for name, flt in cfg.filters.items():
        key = f"data.filters.{name}"
        if not flt.column:
            raise ConfigError(f"{key}.column", "expected the column the filter tests, got none")
        if flt.op in NUMERIC_OPS and flt.value is None:
            raise ConfigError(f"{key}.value",
                              f"expected a number to compare with (op {flt.op.value}), got none")
        if flt.op in TEXT_OPS and flt.text is None:
            raise ConfigError(f"{key}.text",
                              f"expected a text to compare with (op {flt.op.value}), got none")
        if flt.op in (FilterOp.eq, FilterOp.ne) and (flt.value is None) == (flt.text is None):
            raise ConfigError(key, f"expected exactly one of value or text (op {flt.op.value}), "
                                   f"got {'both' if flt.value is not None else 'neither'}")


# --------------------------------------------------------------------------- timestamps


def timestamp_formats(cfg: DataConfig) -> list[str]:
    """The formats text timestamps are tried with, in order (``["ISO8601"]`` when unset)."""
    value = cfg.timestamp_format
    if value is None:
        return [ISO_FORMAT]
    key = "data.timestamp_format"
    if isinstance(value, str):
        formats, keys = [value], [key]
    elif isinstance(value, Sequence):
        formats, keys = list(value), [f"{key}[{i}]" for i in range(len(value))]
        if not formats:
            raise ConfigError(key, "expected a format or a non-empty list of formats, got []")
    else:
        raise ConfigError(key, f"expected a strftime format or a list of them, got {value!r}")
    for fmt, where in zip(formats, keys, strict=True):
        _check_strftime(fmt, where)
    return [str(f) for f in formats]


def _check_strftime(fmt: Any, key: str) -> None:
    if not isinstance(fmt, str):
        raise ConfigError(key, f"expected a strftime format string, got {fmt!r}")
    if fmt == ISO_FORMAT:
        return
    directives = re.findall(r"%(.?)", fmt, flags=re.S)
    unknown = [d for d in directives if d not in _DIRECTIVES]
    if unknown:
        raise ConfigError(key, f"expected strftime directives (%Y, %m, %d, %H, ...), got "
                               f"'%{unknown[0]}' in {fmt!r}")
    if not [d for d in directives if d != "%"]:
        raise ConfigError(key, f"expected a strftime format with at least one directive "
                               f"(e.g. %Y-%m-%d) or {ISO_FORMAT!r}, got {fmt!r}")


# --------------------------------------------------------------------------- splits


def has_eval_split(cfg: DataConfig) -> bool:
    """False for a two-way split: eval ratio 0 (random) or no ``eval_start`` (date)."""
    if cfg.split.kind is SplitKind.random:
        return cfg.split.ratios.eval > 0
    return cfg.split.eval_start is not None


def date_cut(value: Any, key: str) -> int:
    """Unix seconds of an ISO date or date-time (UTC unless it names a zone)."""
    text = str(value).strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"data.split.{key}",
                          f"expected an ISO date such as 2011-10-01, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return math.floor(moment.timestamp())


def split_date_column(cfg: DataConfig, kinds: Mapping[str, str]) -> str:
    """The timestamp feature a date split cuts on."""
    stamps = [c for c, k in kinds.items() if k == "timestamp"]
    chosen = cfg.split.date_column
    if chosen is not None:
        if kinds.get(chosen) != "timestamp":
            raise ConfigError(
                "data.split.date_column",
                f"expected a timestamp feature ({', '.join(stamps) or 'none'}), got {chosen!r}",
                suggestion=_close(chosen, stamps),
            )
        return chosen
    if len(stamps) != 1:
        raise ConfigError(
            "data.split.date_column",
            f"expected the timestamp feature to split on (one of {stamps}), got none; it can "
            "be left unset only when there is exactly one",
        )
    return stamps[0]


def _check_split(cfg: DataConfig, kinds: Mapping[str, str] | None) -> None:
    split = cfg.split
    if split.kind is SplitKind.random:
        for key in ("eval_start", "test_start", "date_column"):
            if getattr(split, key) is not None:
                raise ConfigError(f"data.split.{key}",
                                  f"expected unset with kind random (it is used by kind date), "
                                  f"got {getattr(split, key)!r}")
        ratios = {name: getattr(split.ratios, name) for name in SPLITS}
        for name, ratio in ratios.items():
            if ratio < 0 or (ratio == 0 and name != "eval"):
                need = ">= 0 (0: no eval split)" if name == "eval" else "> 0"
                raise ConfigError(f"data.split.ratios.{name}", f"expected {need}, got {ratio}")
        total = sum(ratios.values())
        if abs(total - 1.0) > 1e-6:
            raise ConfigError("data.split.ratios",
                              f"expected ratios summing to 1, got {total:g} "
                              f"({' + '.join(f'{n} {r:g}' for n, r in ratios.items())})")
        return
    if split.test_start is None:
        raise ConfigError("data.split.test_start",
                          "expected an ISO date such as 2011-10-01 for kind date, got none")
    test_cut = date_cut(split.test_start, "test_start")
    if split.eval_start is not None and date_cut(split.eval_start, "eval_start") >= test_cut:
        raise ConfigError("data.split.eval_start",
                          f"expected a date before test_start ({split.test_start}), got "
                          f"{split.eval_start}")
    if kinds is not None:
        split_date_column(cfg, kinds)


def _close(word: str, choices: Sequence[str]) -> str | None:
    return case_insensitive(word, choices) or did_you_mean(word, choices)


def _value(dtype: Any) -> str:
    return str(getattr(dtype, "value", dtype))
