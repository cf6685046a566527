"""``load_data``: read a configured source into cleaned, typed train / eval / test frames.

Pipeline (each step deterministic, so the same input and config give identical splits):

0. check the config (``compiler.data.checks``: the same checks as the preflight);
1. open the source: the embedded synthetic dataset, a local CSV/Parquet file, or ``gs://``
   (``compiler.data.sources``);
2. check every configured column against the file's header *before* reading the data;
3. read only the needed columns (id columns as text, so ``00123`` keeps its zeros);
4. compute derived columns, apply ``filters``, convert each feature column to its kind, and
   apply the dirty-row rules; every dropped row is counted once, under the first rule it breaks,
   in this order: filters (config order), then feature columns (``required`` order), then the
   target's positivity;
5. optionally sample, then split.

Output columns are the feature-config names in ``required`` order (plus the target), typed as the
shared conventions say: ``string`` -> Python ``str`` (pandas string dtype), ``timestamp`` ->
``int64`` Unix seconds (UTC), ``float`` -> ``float32``, ``int`` -> ``int64``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pandas.api import types as ptypes

from compiler.data.checks import (
    KINDS,
    SPLITS,
    TEXT_OPS,
    check_config,
    date_cut,
    has_eval_split,
    split_date_column,
    timestamp_formats,
)
from compiler.data.config import (
    DataConfig,
    DeriveOp,
    DirtyAction,
    FilterOp,
    RowFilter,
    SplitKind,
    as_data_config,
)
from compiler.data.errors import DataError, suggestion
from compiler.data.sources import local_copy, plan_columns, read_frame, read_header
from compiler.errors import ConfigError

logger = logging.getLogger(__name__)

#: Bad values shown per drop reason in the summary.
BAD_SAMPLES = 3


@dataclass
class LoadedData:
    """Cleaned, typed, split raw features.

    ``splits``: ``train`` / ``eval`` / ``test`` frames (never empty), rows in file order; a
    two-way split (``has_eval_split``) has no ``eval``.
    ``dropped``: rows dropped per reason (only reasons that dropped something); reasons are the
    filter names and ``missing_id:<col>``, ``bad_timestamp:<col>``, ``bad_number:<col>``,
    ``non_positive_target:<col>``. ``bad_values``: per reason, up to ``BAD_SAMPLES`` of the
    offending cells as text (``<missing>`` for an empty one). ``total_rows``: rows in the
    source, before anything was dropped or sampled.
    """

    splits: dict[str, pd.DataFrame]
    dropped: dict[str, int]
    total_rows: int
    source_description: str
    sampled_out: int = 0
    kinds: dict[str, str] = field(default_factory=dict)
    bad_values: dict[str, list[str]] = field(default_factory=dict)

    @property
    def kept_rows(self) -> int:
        return sum(len(f) for f in self.splits.values())

    def summary(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        if "eval" not in self.splits:
            sizes += ", no eval split"
        dropped = ", ".join(
            f"{k}={v}" + (f" (e.g. {', '.join(self.bad_values[k])})" if self.bad_values.get(k)
                          else "")
            for k, v in self.dropped.items()
        ) or "none"
        sampled = f", {self.sampled_out} sampled out" if self.sampled_out else ""
        return (
            f"{self.source_description}: {self.total_rows} rows, kept {self.kept_rows} "
            f"({sizes}); dropped: {dropped}{sampled}"
        )


def load_data(
    cfg: DataConfig | Any,
    required: Mapping[str, str],
    target: str | None = None,
    *,
    base_dir: str | os.PathLike[str] | None = None,
) -> LoadedData:
    """Load ``cfg``'s source as train/eval/test frames of the ``required`` feature columns.

    ``required`` maps feature-config column names to kinds (``string``, ``timestamp``, ``float``,
    ``int``); ``target`` (a feature-config name, added as ``float`` if absent) must be > 0.
    ``cfg`` is a ``DataConfig`` or a composed Hydra/OmegaConf node of that schema.
    ``base_dir`` anchors a relative ``source``; by default the original working directory, then
    the repository root, are tried. Raises ``DataError`` with one explanatory message.
    """
    cfg = as_data_config(cfg)
    kinds = _check_required(required, target)
    try:
        check_config(cfg, kinds, base_dir=base_dir)
    except ConfigError as error:  # one exception type for the loader's callers
        raise DataError(str(error)) from None
    formats = timestamp_formats(cfg)

    with local_copy(cfg, base_dir) as (path, fmt, label, description):
        header = read_header(path, fmt, label)
        plan = plan_columns(cfg, kinds, header, label)
        raw = read_frame(path, fmt, label, plan)

    total = len(raw)
    alive = np.ones(total, dtype=bool)
    dropped: dict[str, int] = {}
    bad_values: dict[str, list[str]] = {}

    def drop(reason: str, bad: np.ndarray, action: DirtyAction, what: str, key: str,
             cells: pd.Series | np.ndarray) -> None:
        nonlocal alive
        newly = bad & alive
        count = int(newly.sum())
        if count == 0:
            return
        rows = np.flatnonzero(newly)
        shown = _show_cells(cells, rows[:BAD_SAMPLES])
        if action is DirtyAction.fail:
            raise DataError(
                f"{label}: {count} row(s) {what} (first at data row {rows[0] + 1}, e.g. "
                f"{', '.join(shown)}); {key} is 'fail' - set it to 'drop' to drop and count "
                "such rows instead."
            )
        dropped[reason] = count
        bad_values[reason] = shown
        alive &= ~bad

    for name, spec in cfg.derived.items():
        raw[name] = _derive(raw, spec.inputs, spec.op)

    for name, flt in cfg.filters.items():
        keep = _filter_mask(raw[flt.column], flt)
        drop(
            name,
            ~keep,
            flt.on_violation,
            f"fail filter data.filters.{name} ({_describe_filter(flt)})",
            f"data.filters.{name}.on_violation",
            raw[flt.column],
        )

    out: dict[str, np.ndarray] = {}
    for col, kind in kinds.items():
        src = plan.sources[col]
        series = raw[src]
        where = f"column {src!r}" + (f" (feature {col!r})" if src != col else "")
        if kind == "string":
            values, bad = _to_text(series)
            drop(
                f"missing_id:{col}",
                bad,
                cfg.dirty.missing_id,
                f"have a missing {where}",
                "data.dirty.missing_id",
                series,
            )
        elif kind == "timestamp":
            values, bad = _to_unix_seconds(series, formats)
            drop(
                f"bad_timestamp:{col}",
                bad,
                cfg.dirty.bad_timestamp,
                f"have a missing or unparseable ({' or '.join(formats)}) timestamp in {where}",
                "data.dirty.bad_timestamp",
                series,
            )
        else:
            values, bad = _to_number(series, integral=kind == "int")
            drop(
                f"bad_number:{col}",
                bad,
                cfg.dirty.bad_number,
                f"have a missing or non-numeric {where}",
                "data.dirty.bad_number",
                series,
            )
        out[col] = values
    if target is not None:
        positive = np.zeros(total, dtype=bool)
        np.greater(out[target], 0, out=positive, where=~np.isnan(out[target]))
        drop(
            f"non_positive_target:{target}",
            ~positive,
            cfg.dirty.non_positive_target,
            f"have a target {target!r} <= 0",
            "data.dirty.non_positive_target",
            out[target],
        )

    keep_idx = np.flatnonzero(alive)
    if keep_idx.size == 0:
        raise DataError(
            f"{label}: no rows left after cleaning {total} rows (dropped: {dropped}); check "
            "data.columns, data.filters and data.dirty."
        )

    split_seq, sample_seq = np.random.SeedSequence(cfg.split.seed).spawn(2)
    sampled_out = 0
    if cfg.sample is not None and keep_idx.size > cfg.sample:
        chosen = np.random.Generator(np.random.PCG64(sample_seq)).choice(
            keep_idx.size, size=cfg.sample, replace=False
        )
        sampled_out = keep_idx.size - cfg.sample
        keep_idx = keep_idx[np.sort(chosen)]

    frame = pd.DataFrame({col: _finish(out[col][keep_idx], kinds[col]) for col in kinds})
    labels = _split_labels(frame, cfg, kinds, split_seq)
    splits: dict[str, pd.DataFrame] = {}
    for i, name in enumerate(SPLITS):
        if name == "eval" and not has_eval_split(cfg):
            continue  # a two-way split: train and test only
        part = frame[labels == i].reset_index(drop=True)
        if part.empty:
            raise DataError(
                f"split {name!r} is empty after loading {label} ({len(frame)} rows kept); "
                f"split settings: {_describe_split(cfg, frame, kinds)}."
            )
        splits[name] = part

    result = LoadedData(
        splits=splits,
        dropped=dropped,
        total_rows=total,
        source_description=description,
        sampled_out=sampled_out,
        kinds=dict(kinds),
        bad_values=bad_values,
    )
    logger.info("%s", result.summary())
    return result


# --------------------------------------------------------------------------- validation


def _check_required(required: Mapping[str, str], target: str | None) -> dict[str, str]:
    if not required:
        raise DataError("load_data needs at least one required feature column; got none.")
    kinds: dict[str, str] = {}
    for col, kind in required.items():
        if kind not in KINDS:
            raise DataError(
                f"feature column {col!r} has kind {kind!r}; expected one of "
                f"{', '.join(KINDS)}.{suggestion(str(kind), KINDS)}"
            )
        kinds[str(col)] = kind
    if target is not None:
        kind = kinds.setdefault(target, "float")
        if kind not in ("float", "int"):
            raise DataError(f"target {target!r} has kind {kind!r}; a target must be float or int.")
        # The target is compared with 0 in float space, so it is converted as a float first.
    return kinds


# --------------------------------------------------------------------------- conversions


def _numeric(series: pd.Series) -> np.ndarray:
    """float64 values; anything missing or non-numeric becomes NaN (and +-inf too)."""
    if ptypes.is_bool_dtype(series.dtype):
        values = series.astype("float64").to_numpy()
    elif ptypes.is_numeric_dtype(series.dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
    else:
        values = pd.to_numeric(series, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    values = values.copy()
    values[~np.isfinite(values)] = np.nan
    return values


def _derive(frame: pd.DataFrame, inputs: list[str], op: DeriveOp) -> np.ndarray:
    result = _numeric(frame[inputs[0]])
    with np.errstate(divide="ignore", invalid="ignore"):
        for col in inputs[1:]:
            other = _numeric(frame[col])
            if op is DeriveOp.multiply:
                result = result * other
            elif op is DeriveOp.add:
                result = result + other
            elif op is DeriveOp.subtract:
                result = result - other
            else:
                result = result / other
    result[~np.isfinite(result)] = np.nan  # x/0 is a bad number, not infinity
    return result


def _to_text(series: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Ids as text (object array of str, None where missing) and the missing mask.

    Float-typed ids (``17850.0``, as CSV readers and spreadsheets produce) become ``17850``;
    surrounding whitespace is stripped and an empty id counts as missing.
    """
    n = len(series)
    out = np.full(n, None, dtype=object)
    if ptypes.is_bool_dtype(series.dtype):
        present = series.notna().to_numpy()
        out[present] = series[present].astype(str).str.lower().to_numpy()
    elif ptypes.is_integer_dtype(series.dtype):
        present = series.notna().to_numpy()
        out[present] = series[present].astype("int64").astype(str).to_numpy()
    elif ptypes.is_float_dtype(series.dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        finite = np.isfinite(values)
        integral = finite & (np.floor(values) == values) & (np.abs(values) < 2**53)
        out[integral] = values[integral].astype(np.int64).astype(str).astype(object)
        other = finite & ~integral
        out[other] = [repr(float(v)) for v in values[other]]
    else:
        present = series.notna().to_numpy()
        text = series[present].astype(str).str.strip()
        dotted = text.str.contains(".", regex=False)
        if dotted.any():
            text[dotted] = text[dotted].str.replace(r"^([+-]?\d+)\.0+$", r"\1", regex=True)
        out[present] = text.to_numpy(dtype=object)
        out[out == ""] = None
    return out, pd.isna(out)


def _to_unix_seconds(series: pd.Series, formats: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """int64 Unix seconds (UTC) and the bad mask. Naive times are taken as UTC; numbers are
    taken as Unix seconds already. Text is parsed with each of ``formats`` in turn, each one
    only on the values no earlier format parsed."""
    if ptypes.is_datetime64_any_dtype(series.dtype):
        stamps = pd.to_datetime(series, utc=True)
    elif ptypes.is_numeric_dtype(series.dtype) and not ptypes.is_bool_dtype(series.dtype):
        values = _numeric(series)
        bad = np.isnan(values)
        seconds = np.zeros(len(values), dtype=np.int64)
        seconds[~bad] = np.floor(values[~bad]).astype(np.int64)
        return seconds, bad
    else:
        text = series.where(series.notna(), None).astype(object)
        stamps = pd.to_datetime(text, format=formats[0], errors="coerce", utc=True)
        for fmt in formats[1:]:
            left = stamps.isna() & text.notna()
            if not left.any():
                break
            parsed = pd.to_datetime(text[left], format=fmt, errors="coerce", utc=True)
            stamps = stamps.combine_first(parsed)
    bad = stamps.isna().to_numpy()
    naive = stamps.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    seconds = np.zeros(len(naive), dtype=np.int64)
    # Floor division so times before 1970 with sub-second parts round down, like a clock would.
    seconds[~bad] = naive[~bad].astype(np.int64) // 1_000_000_000
    return seconds, bad


def _show_cells(cells: pd.Series | np.ndarray, rows: np.ndarray) -> list[str]:
    """The cells at ``rows`` as short quoted text, ``<missing>`` for an empty one."""
    values = cells.iloc[rows] if isinstance(cells, pd.Series) else cells[rows]
    shown = []
    for value in values:
        missing = value is None or (isinstance(value, float) and np.isnan(value)) \
            or value is pd.NA or value is pd.NaT
        text = "<missing>" if missing else repr(value if isinstance(value, str) else str(value))
        shown.append(text if len(text) <= 40 else text[:37] + "...")
    return shown


def _to_number(series: pd.Series, *, integral: bool) -> tuple[np.ndarray, np.ndarray]:
    values = _numeric(series)
    bad = np.isnan(values)
    if integral:
        bad |= ~bad & (np.floor(np.nan_to_num(values)) != np.nan_to_num(values))
    return values, bad


def _finish(values: np.ndarray, kind: str) -> np.ndarray:
    if kind == "string":
        # An object array of str; pandas stores it with its default string dtype.
        return values.astype(object)
    if kind == "timestamp":
        return values.astype(np.int64)
    if kind == "int":
        return values.astype(np.int64)
    return values.astype(np.float32)


# --------------------------------------------------------------------------- filters & splits


def _filter_mask(series: pd.Series, flt: RowFilter) -> np.ndarray:
    """True where the row passes (is kept by) the filter."""
    present = series.notna().to_numpy()
    if flt.op is FilterOp.not_null:
        return present
    if flt.op in TEXT_OPS or flt.text is not None:
        text, missing = _to_text(series)
        want = str(flt.text)
        hit = np.zeros(len(text), dtype=bool)
        if flt.op in TEXT_OPS:
            hit[~missing] = [t.startswith(want) for t in text[~missing]]
        else:
            hit[~missing] = text[~missing] == want
        if flt.op in (FilterOp.startswith, FilterOp.eq):
            return hit
        return ~hit  # not_startswith / ne: a missing cell passes
    values = _numeric(series)
    ok = ~np.isnan(values)
    ref = float(flt.value)  # type: ignore[arg-type]  # checked by check_config
    compare = {
        FilterOp.gt: np.greater,
        FilterOp.ge: np.greater_equal,
        FilterOp.lt: np.less,
        FilterOp.le: np.less_equal,
        FilterOp.eq: np.equal,
        FilterOp.ne: np.not_equal,
    }[flt.op]
    result = np.zeros(len(values), dtype=bool)
    result[ok] = compare(values[ok], ref)
    return result


def _describe_filter(flt: RowFilter) -> str:
    ref = flt.text if flt.op in TEXT_OPS or flt.text is not None else flt.value
    return f"{flt.column} {flt.op.value}" + ("" if flt.op is FilterOp.not_null else f" {ref!r}")


def _split_labels(
    frame: pd.DataFrame, cfg: DataConfig, kinds: Mapping[str, str], seq: np.random.SeedSequence
) -> np.ndarray:
    """0/1/2 (train/eval/test) per row."""
    n = len(frame)
    split = cfg.split
    if split.kind is SplitKind.date:
        stamps = frame[split_date_column(cfg, kinds)].to_numpy()
        test_cut = date_cut(split.test_start, "test_start")
        # No eval_start (a two-way split): the eval interval is empty.
        eval_cut = test_cut if split.eval_start is None else date_cut(split.eval_start,
                                                                       "eval_start")
        return (stamps >= eval_cut).astype(np.int8) + (stamps >= test_cut).astype(np.int8)
    n_train = min(n, int(np.floor(n * split.ratios.train + 0.5)))
    n_eval = min(n - n_train, int(np.floor(n * split.ratios.eval + 0.5)))
    position = np.empty(n, dtype=np.int64)
    position[np.random.Generator(np.random.PCG64(seq)).permutation(n)] = np.arange(n)
    return (position >= n_train).astype(np.int8) + (position >= n_train + n_eval).astype(np.int8)


def _describe_split(cfg: DataConfig, frame: pd.DataFrame, kinds: Mapping[str, str]) -> str:
    split = cfg.split
    if split.kind is SplitKind.random:
        r = split.ratios
        return (
            f"data.split.kind=random, seed={split.seed}, ratios train={r.train} eval={r.eval} "
            f"test={r.test}"
        )
    col = split_date_column(cfg, kinds)
    stamps = pd.to_datetime(frame[col], unit="s", utc=True)
    return (
        f"data.split.kind=date on {col!r}, eval_start={split.eval_start}, "
        f"test_start={split.test_start}; the kept rows' dates run from "
        f"{stamps.min():%Y-%m-%d %H:%M:%S} to {stamps.max():%Y-%m-%d %H:%M:%S} UTC"
    )
