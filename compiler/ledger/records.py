"""What the ledger stores: the typed ``Experiment`` record, its vocabularies and its errors.

This module imports nothing heavy (no SQLAlchemy, no TensorFlow), so the CLI and the report can
use the record types and the metric vocabulary cheaply.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

#: The nine keys of ``training_metrics.json``'s ``final`` block (trainer-contract.md, step 6).
#: They are real, sortable columns; everything else in the file is kept as JSON.
METRIC_KEYS: tuple[str, ...] = (
    "loss",
    "val_rmse",
    "val_mae",
    "test_rmse",
    "test_mae",
    "recall_at_5",
    "recall_at_10",
    "recall_at_50",
    "recall_at_100",
)

#: Which way is better, per metric: errors and losses go down, recalls go up. Used for the
#: default "best first" sort, for highlighting, and for colouring deltas.
HIGHER_IS_BETTER: Mapping[str, bool] = {k: k.startswith("recall_at_") for k in METRIC_KEYS}

Kind = Literal["compile", "local", "vertex"]
Status = Literal["compiled", "running", "completed", "failed", "unknown"]
KINDS: tuple[str, ...] = ("compile", "local", "vertex")
RUN_KINDS: tuple[str, ...] = ("local", "vertex")
#: What the database stores.
#: ``unknown``: a job create whose outcome nobody saw (Ctrl-C or a timeout while creating):
#: the job may exist, and its error text names the label to look it up by.
STATUSES: tuple[str, ...] = ("compiled", "running", "completed", "failed", "unknown")
#: What a reader may also see: a ``running`` record whose process is gone (``ledger.liveness``).
SHOWN_STATUSES: tuple[str, ...] = (*STATUSES, "abandoned")

#: Columns ``Ledger.list(sort_by=...)`` and ``python -m compiler.runs list --sort`` accept.
SORTABLE_COLUMNS: tuple[str, ...] = (
    "number",
    "created_at",
    "started_at",
    "finished_at",
    "status",
    "kind",
    "model",
    "features",
    "config_hash",
    "sweep_id",
    *METRIC_KEYS,
)


class LedgerError(Exception):
    """Any ledger problem a user can act on; the CLI prints it without a traceback."""


class ExperimentNotFound(LedgerError, LookupError):
    """No experiment with that number."""


class LedgerNotFound(LedgerError):
    """``Ledger(..., create=False)`` found no ledger at the URL."""


class DuplicateSubmission(LedgerError):
    """A run of the same config hash is already active on Vertex AI."""

    def __init__(self, message: str, active: Experiment | None = None) -> None:
        super().__init__(message)
        self.active = active


@dataclass(frozen=True)
class Experiment:
    """One row of the ledger: a compile, and the run or submission that followed it, if any."""

    number: int
    config_hash: str
    model: str
    features: str
    kind: str
    status: str
    overrides: tuple[str, ...]
    resolved_config: dict[str, Any]
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None
    job_id: str | None = None
    sweep_id: int | None = None
    #: The nine contract metrics, every key present, ``None`` where the run reported none.
    metrics: dict[str, float | None] = field(default_factory=dict)
    #: The rest of ``training_metrics.json``: ``history``, ``baselines``, ``candidates``,
    #: ``test_split``, ``model_type``, extra ``final`` keys, ...
    extra: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    #: Provenance (schema version 2; ``None`` / empty for records written before it).
    compiler_version: str | None = None
    source_digest: str | None = None
    #: ``{"model.seed": 42, "data.split.seed": 42}``
    seeds: dict[str, Any] = field(default_factory=dict)
    #: The epochs and batch size the trainer got, and where each came from:
    #: ``{"epochs": 2, "epochs_from": "run.epochs", "batch_size": 256, ...}``
    effective: dict[str, Any] = field(default_factory=dict)
    #: Content hash of the data the run loaded (``None``: not loaded, or not yet).
    data_hash: str | None = None
    #: Liveness of a local run: where it ran, and its last heartbeat.
    host: str | None = None
    pid: int | None = None
    heartbeat_at: datetime | None = None
    #: The status in the database; ``status`` says ``abandoned`` where this says ``running``
    #: and the run's process is gone.
    stored_status: str = ""

    @property
    def history(self) -> list[dict[str, Any]]:
        """Per-epoch records of the run (``[]`` when none were reported)."""
        history = self.extra.get("history")
        return [h for h in history if isinstance(h, dict)] if isinstance(history, list) else []

    @property
    def duration_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()

    def metric(self, name: str) -> float | None:
        return self.metrics.get(name)


def check_metric_name(name: str) -> str:
    """Return the canonical metric name for ``name`` (``recall@100`` is ``recall_at_100``)."""
    canonical = _canonical(name)
    if canonical not in METRIC_KEYS:
        raise LedgerError(unknown_name_message("metric", name, METRIC_KEYS))
    return canonical


def check_sort_column(name: str) -> str:
    canonical = _canonical(name)
    if canonical not in SORTABLE_COLUMNS:
        raise LedgerError(unknown_name_message("column", name, SORTABLE_COLUMNS))
    return canonical


def unknown_name_message(what: str, name: str, valid: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(_canonical(name), valid, n=1, cutoff=0.6)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown {what} {name!r}.{hint} Valid {what}s: {', '.join(valid)}."


def _canonical(name: str) -> str:
    # People type what the reports print ("Recall@100", "val-rmse"); accept those spellings.
    return name.strip().lower().replace("@", "_at_").replace("-", "_")


def split_metrics(document: Mapping[str, Any]) -> tuple[dict[str, float | None], dict[str, Any]]:
    """Split a ``training_metrics.json`` document into the nine columns and the JSON rest.

    ``final`` holds the contract keys; a flat document (no ``final``) is read the same way.
    Non-finite numbers (a diverged loss is NaN) become ``None`` -- PostgreSQL's JSON type and
    SQL comparisons cannot hold NaN -- and their paths are listed under ``extra["nonfinite"]``
    so the fact is not lost.
    """
    if not isinstance(document, Mapping):
        raise LedgerError(
            f"metrics must be the training_metrics.json object (a dict), got "
            f"{type(document).__name__}"
        )
    rest = dict(document)
    if "final" in rest:
        final = rest.pop("final")
        if not isinstance(final, Mapping):
            raise LedgerError(f"metrics['final'] must be an object, got {type(final).__name__}")
        final = dict(final)
        prefix = "final."
    else:
        final, rest, prefix = rest, {}, ""
    nonfinite: list[str] = []
    columns: dict[str, float | None] = {}
    for key in METRIC_KEYS:
        value = final.pop(key, None)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise LedgerError(f"metric {prefix}{key} must be a number, got {value!r}")
        if value is not None and not math.isfinite(value):
            nonfinite.append(f"{prefix}{key}")
            value = None
        columns[key] = None if value is None else float(value)
    if all(v is None for v in columns.values()) and not nonfinite:
        raise LedgerError(
            "metrics carry none of the contract keys "
            f"({', '.join(METRIC_KEYS)}); is this the training_metrics.json content?"
        )
    if not prefix:
        rest = final  # a flat document: what is left is top-level data
    elif final:
        rest["final"] = final  # extra keys of ``final`` ("More keys are welcome")
    extra = _finite_json(rest, "", nonfinite)
    if nonfinite:
        extra["nonfinite"] = nonfinite
    return columns, extra


def _finite_json(value: Any, path: str, nonfinite: list[str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        nonfinite.append(path or "<root>")
        return None
    if isinstance(value, Mapping):
        return {
            str(k): _finite_json(v, f"{path}.{k}" if path else str(k), nonfinite)
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_finite_json(v, f"{path}[{i}]", nonfinite) for i, v in enumerate(value)]
    return value
