"""Opening a data source and reading the columns a config needs from it.

``local_copy`` yields a local file for the embedded dataset, a local path or a ``gs://``
object (downloaded with google-cloud-storage to a temporary file; honours
``STORAGE_EMULATOR_HOST``); ``plan_columns`` checks every configured column against the file's
header before the data is read; ``read_frame`` reads only those columns, ids as text.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from compiler.data import synthetic
from compiler.data.checks import TEXT_OPS, check_source
from compiler.data.config import DEFAULT_SOURCE, DataConfig, SourceFormat
from compiler.data.errors import DataError, did_you_mean, suggestion
from compiler.errors import ConfigError

# --------------------------------------------------------------------------- sources


@contextlib.contextmanager
def local_copy(
    cfg: DataConfig, base_dir: str | os.PathLike[str] | None
) -> Iterator[tuple[Path, SourceFormat, str, str]]:
    """Yield (local path, format, label for messages, description) for ``cfg.source``."""
    source = str(cfg.source).strip()
    try:
        local, fmt = check_source(cfg, base_dir)
    except ConfigError as error:
        raise DataError(str(error)) from None
    if source == DEFAULT_SOURCE:
        path = synthetic.ensure_cached(cfg.cache_dir, scale=cfg.scale)
        yield (
            path,
            SourceFormat.parquet,
            f"embedded dataset ({path})",
            (f"{synthetic.describe(cfg.scale)} from {path}"),
        )
        return
    if local is None:  # gs://
        with tempfile.TemporaryDirectory(prefix="recforge-data-") as tmp:
            path = _download_gcs(source, Path(tmp))
            yield path, fmt, source, f"{source} ({fmt.value})"
        return
    yield local, fmt, str(local), f"{local} ({fmt.value})"


def _download_gcs(uri: str, tmp: Path) -> Path:
    bucket_name, _, blob_name = uri[len("gs://") :].partition("/")
    if not bucket_name or not blob_name or blob_name.endswith("/"):
        raise DataError(f"data.source {uri!r} must name one object: gs://BUCKET/PATH/FILE.csv")
    try:
        # lazy: Google Cloud SDK, for GCS/Vertex calls only
        from google.api_core import exceptions as gexc
        from google.auth import exceptions as auth_exc
        from google.cloud import storage
    except ImportError as exc:
        raise DataError(
            f"data.source {uri!r} is on GCS, which needs google-cloud-storage "
            "(pip install 'recforge[cloud]')."
        ) from exc
    try:
        client = storage.Client()
    except (auth_exc.GoogleAuthError, OSError) as exc:
        raise DataError(
            f"cannot open {uri}: no Google Cloud credentials ({exc}); run "
            "`gcloud auth application-default login` or set STORAGE_EMULATOR_HOST."
        ) from exc
    dest = tmp / Path(blob_name).name
    try:
        client.bucket(bucket_name).blob(blob_name).download_to_filename(str(dest))
    except gexc.NotFound as exc:
        raise DataError(
            f"data file not found: {uri} (data.source){_gcs_hint(client, bucket_name, blob_name)}"
        ) from exc
    except gexc.GoogleAPIError as exc:
        raise DataError(f"cannot download {uri} (data.source): {exc}") from exc
    return dest


def _gcs_hint(client: Any, bucket_name: str, blob_name: str) -> str:
    """A did-you-mean among the objects next to the missing one, or a missing-bucket note."""
    # lazy: Google Cloud SDK, for GCS/Vertex calls only
    from google.api_core import exceptions as gexc

    parent = blob_name.rsplit("/", 1)[0] + "/" if "/" in blob_name else ""
    try:
        names = [b.name for b in client.list_blobs(bucket_name, prefix=parent, max_results=1000)]
    except gexc.NotFound:
        return f"; bucket {bucket_name!r} does not exist."
    except gexc.GoogleAPIError:
        return "."
    best = did_you_mean(blob_name, names)
    return f". Did you mean gs://{bucket_name}/{best}?" if best else "."


# --------------------------------------------------------------------------- reading


@dataclass
class ColumnPlan:
    sources: dict[str, str]  # feature column -> file or derived column
    file_columns: list[str]  # file columns to read, in header order
    text_columns: set[str]  # file columns read as text


def read_header(path: Path, fmt: SourceFormat, label: str) -> list[str]:
    if fmt is SourceFormat.csv:
        with open(path, "rb") as fh:
            if fh.read(4) == b"PAR1":
                raise DataError(
                    f"{label} is a Parquet file but is being read as CSV; set data.format: parquet."
                )
    try:
        if fmt is SourceFormat.csv:
            return [str(c) for c in pd.read_csv(path, nrows=0).columns]
        names = pq.read_schema(path).names
        return [n for n in names if not n.startswith("__index_level_")]
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read {label} as CSV (data.format={fmt.value}): {exc}") from exc
    except (pa.ArrowException, OSError, ValueError) as exc:
        kind = "CSV" if fmt is SourceFormat.csv else "Parquet"
        raise DataError(f"cannot read {label} as {kind} (data.format={fmt.value}): {exc}") from exc


def _missing_column(label: str, key: str, column: str, header: list[str], extra: str = "") -> str:
    return (
        f"{key} refers to column {column!r}, which {label} does not have.{extra} Available "
        f"columns: {', '.join(header)}.{suggestion(column, header)}"
    )


def plan_columns(
    cfg: DataConfig, kinds: Mapping[str, str], header: list[str], label: str
) -> ColumnPlan:
    have = set(header)
    available = set(header)
    for name, spec in cfg.derived.items():
        for i, col in enumerate(spec.inputs):
            if col not in available:
                raise DataError(
                    _missing_column(label, f"data.derived.{name}.inputs[{i}]", col, header)
                )
        available.add(name)
    for name, flt in cfg.filters.items():
        if flt.column not in available:
            raise DataError(
                _missing_column(label, f"data.filters.{name}.column", flt.column, header)
            )

    sources: dict[str, str] = {}
    unused_keys = [k for k in cfg.columns if k not in kinds]
    for col in kinds:
        if col in cfg.derived:
            sources[col] = col
        elif col in cfg.columns:
            mapped = str(cfg.columns[col])
            if mapped not in available:
                raise DataError(_missing_column(label, f"data.columns.{col}", mapped, header))
            sources[col] = mapped
        elif col in available:
            sources[col] = col
        else:
            typo = did_you_mean(col, unused_keys)
            extra = (
                f" data.columns has an entry {typo!r}: did you mean to name it {col!r}?"
                if typo
                else f" Map it with data.columns.{col}: <file column>."
            )
            raise DataError(
                f"feature column {col!r} is not a column of {label} and data.columns has no "
                f"entry for it.{extra} Available columns: {', '.join(header)}."
                f"{suggestion(col, header)}"
            )

    needed: set[str] = {s for s in sources.values() if s in have}
    for spec in cfg.derived.values():
        needed.update(c for c in spec.inputs if c in have)
    needed.update(f.column for f in cfg.filters.values() if f.column in have)
    text = {s for c, s in sources.items() if kinds[c] == "string" and s in have}
    text.update(
        f.column
        for f in cfg.filters.values()
        if f.column in have and (f.op in TEXT_OPS or f.text is not None)
    )
    return ColumnPlan(sources, [c for c in header if c in needed], text)


def read_frame(path: Path, fmt: SourceFormat, label: str, plan: ColumnPlan) -> pd.DataFrame:
    try:
        if fmt is SourceFormat.csv:
            return pd.read_csv(
                path,
                usecols=plan.file_columns,
                dtype={c: str for c in plan.text_columns},
                low_memory=False,  # whole-column type inference, no mixed-type chunks
            )
        return pd.read_parquet(path, columns=plan.file_columns)
    except (
        pd.errors.ParserError,
        UnicodeDecodeError,
        pa.ArrowException,
        OSError,
        ValueError,
    ) as exc:
        raise DataError(f"cannot read {label} as {fmt.value}: {exc}") from exc
