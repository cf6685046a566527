"""Rows <-> values: JSON-normalising inputs, UTC timestamps, and reading a row as an
``Experiment`` (with the reader's ``abandoned`` verdict, see ``ledger.liveness``)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import Any

from omegaconf import OmegaConf

from compiler.ledger.liveness import ABANDONED, is_abandoned
from compiler.ledger.records import METRIC_KEYS, Experiment, LedgerError


def now() -> datetime:
    return datetime.now(timezone.utc)


def utc(value: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes (everything the ledger writes is UTC); PostgreSQL hands
    # back the session's time zone, which on a team server may be anything.
    if value is None:
        return None
    if value.tzinfo is None:
        return value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc)


def json_data(value: Any, what: str) -> Any:
    """A JSON-normalised copy of ``value`` (tuples become lists ...), or a clear error."""
    if type(value).__module__.startswith("omegaconf"):
        value = OmegaConf.to_container(value, resolve=True)  # a Hydra config: its plain form
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise LedgerError(f"{what} must be plain JSON data: {exc}") from None


def artifact_map(artifacts: Mapping[str, str] | None) -> dict[str, str]:
    if artifacts is None:
        return {}
    if not isinstance(artifacts, Mapping):
        raise LedgerError("artifacts must be a mapping of name -> path")
    return {str(k): os.fspath(v) for k, v in artifacts.items()}


def compile_values(
    config_hash: str,
    model: str,
    features: str,
    overrides: Iterable[str],
    resolved_config: Mapping[str, Any],
    artifacts: Mapping[str, str] | None,
    sweep_id: int | None,
    *,
    compiler_version: str | None,
    source_digest: str | None,
    seeds: Mapping[str, Any] | None,
    effective: Mapping[str, Any] | None,
) -> dict[str, Any]:
    """The checked column values of a compile record, written alike by ``Ledger`` (SQLAlchemy)
    and by ``ledger.lite`` (stdlib sqlite3); ``created_at`` is the caller's."""
    if not isinstance(config_hash, str) or not config_hash:
        raise LedgerError("config_hash must be a non-empty string")
    if isinstance(overrides, str):
        # A bare string would be stored as a list of characters.
        raise LedgerError("overrides must be a list of strings, not one string")
    override_list = list(overrides)
    if not all(isinstance(o, str) for o in override_list):
        raise LedgerError(f"overrides must be strings, got {override_list!r}")
    config = json_data(resolved_config, "resolved_config")
    if not isinstance(config, dict):
        raise LedgerError("resolved_config must be a mapping")
    return {
        "config_hash": config_hash,
        "model": str(model),
        "features": str(features),
        "overrides": override_list,
        "resolved_config": config,
        "kind": "compile",
        "status": "compiled",
        "sweep_id": sweep_id,
        "artifacts": artifact_map(artifacts),
        "compiler_version": compiler_version,
        "source_digest": source_digest,
        "seeds": json_data(dict(seeds or {}), "seeds") or None,
        "effective": json_data(dict(effective or {}), "effective") or None,
    }


def experiment(row: Any) -> Experiment:
    heartbeat_at = utc(row.heartbeat_at)
    abandoned = is_abandoned(row.status, row.host, row.pid, heartbeat_at)
    return Experiment(
        number=row.number,
        config_hash=row.config_hash,
        model=row.model,
        features=row.features,
        kind=row.kind,
        status=ABANDONED if abandoned else row.status,
        overrides=tuple(row.overrides or ()),
        resolved_config=row.resolved_config or {},
        created_at=utc(row.created_at),  # type: ignore[arg-type]
        started_at=utc(row.started_at),
        finished_at=utc(row.finished_at),
        error=row.error,
        job_id=row.job_id,
        sweep_id=row.sweep_id,
        metrics={key: getattr(row, key) for key in METRIC_KEYS},
        extra=row.metrics_extra or {},
        artifacts=row.artifacts or {},
        compiler_version=row.compiler_version,
        source_digest=row.source_digest,
        seeds=row.seeds or {},
        effective=row.effective or {},
        data_hash=row.data_hash,
        host=row.host,
        pid=row.pid,
        heartbeat_at=heartbeat_at,
        stored_status=row.status,
    )
