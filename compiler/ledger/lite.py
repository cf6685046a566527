"""Recording a compile in a SQLite ledger through the stdlib ``sqlite3``, without SQLAlchemy.

``python -m compiler`` records every compile; importing SQLAlchemy for that one INSERT cost
about 0.2 s of a 1 s command. ``record_compile`` writes the same row ``Ledger.record_compile``
writes (the values come from the same ``rows.compile_values``; timestamps and JSON are encoded
as SQLAlchemy's SQLite dialect encodes them: naive UTC ``YYYY-MM-DD HH:MM:SS.ffffff`` text, and
``json.dumps`` text), with the same connection settings (busy timeout, WAL) and the same
``BEGIN IMMEDIATE`` write transaction, retried on a lock like ``Ledger``'s writes.

Only a ledger already at the schema version this module writes (``SCHEMA_VERSION``, equal to
``schema.LATEST_VERSION``, which a test checks) is written here. A missing file, an empty or
older database, or one from a newer recforge is handed to ``Ledger``, which creates, migrates
or refuses it as always (and then records the compile). PostgreSQL ledgers always use ``Ledger``.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from compiler import retry
from compiler.ledger.records import LedgerError
from compiler.ledger.rows import compile_values

#: The schema version whose experiments table ``record_compile`` writes.
SCHEMA_VERSION = 2
#: How long one SQLite connection waits for the write lock before "database is locked".
SQLITE_BUSY_TIMEOUT_S = 30.0
#: Total time a write keeps retrying transient lock errors.
WRITE_RETRY_S = 120.0
_JSON_COLUMNS = frozenset({"overrides", "resolved_config", "artifacts", "seeds", "effective"})


def sqlite_path(url: str) -> Path | None:
    """The file of a checked ``sqlite:///<file>`` URL (``urls.check_ledger_url``), else None."""
    scheme, sep, rest = url.partition(":///")
    return Path(rest) if sep and scheme in ("sqlite", "sqlite+pysqlite") else None


def configure(connection: sqlite3.Connection) -> None:
    """The ledger's SQLite connection settings (``Ledger`` applies them too)."""
    # Transactions are begun explicitly: the sqlite3 module's own implicit transaction
    # handling would skip BEGIN for DDL and SELECT (see SQLAlchemy's SQLite docs).
    connection.isolation_level = None
    connection.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_TIMEOUT_S * 1000)}")
    # WAL: readers never block the writer and vice versa, so parallel sweep points can record
    # while someone runs `python -m compiler.runs list`. The mode is persistent in the file;
    # switching needs a brief exclusive lock, which busy_timeout waits for.
    mode = connection.execute("PRAGMA journal_mode").fetchone()
    if mode is None or str(mode[0]).lower() != "wal":
        connection.execute("PRAGMA journal_mode = WAL")


def sqlite_timestamp(value: datetime) -> str:
    """A UTC timestamp as SQLAlchemy's SQLite ``DATETIME`` stores it (naive, microseconds)."""
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%d %H:%M:%S.") + f"{value.microsecond:06d}"


def is_transient(error: BaseException) -> bool:
    """A lock failure: the transaction did not commit, so retrying is safe."""
    if not isinstance(error, sqlite3.OperationalError):
        return False
    message = str(error).lower()
    return "locked" in message or "busy" in message


def record_compile(
    url: str,
    config_hash: str,
    model: str,
    features: str,
    overrides: Iterable[str],
    resolved_config: Mapping[str, Any],
    artifacts: Mapping[str, str] | None = None,
    sweep_id: int | None = None,
    *,
    compiler_version: str | None = None,
    source_digest: str | None = None,
    seeds: Mapping[str, Any] | None = None,
    effective: Mapping[str, Any] | None = None,
) -> int | None:
    """Record a compile in the SQLite ledger at ``url``; return its experiment number.

    Returns None, having written nothing, when the ledger is not a SQLite file at
    ``SCHEMA_VERSION`` (the caller then records through ``Ledger``). Arguments as
    ``Ledger.record_compile``; bad values raise the same ``LedgerError``.
    """
    path = sqlite_path(url)
    if path is None or not path.is_file() or path.stat().st_size == 0:
        return None
    values = compile_values(
        config_hash, model, features, overrides, resolved_config, artifacts, sweep_id,
        compiler_version=compiler_version, source_digest=source_digest, seeds=seeds,
        effective=effective,
    )
    values["created_at"] = sqlite_timestamp(datetime.now(timezone.utc))
    row = {key: json.dumps(value) if key in _JSON_COLUMNS and value is not None else value
           for key, value in values.items()}
    try:
        return retry.call(lambda: _insert(path, row, sweep_id), is_transient, initial=0.02,
                          maximum=1.0, timeout=WRITE_RETRY_S)
    except sqlite3.OperationalError as error:  # still locked after the retries, disk errors
        raise LedgerError(f"ledger {url}: {error}") from error


def _insert(path: Path, row: Mapping[str, Any], sweep_id: int | None) -> int | None:
    connection = sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S)
    try:
        configure(connection)
        connection.execute("BEGIN IMMEDIATE")
        try:
            if _schema_version(connection) != SCHEMA_VERSION:
                connection.execute("ROLLBACK")
                return None
            if sweep_id is not None and connection.execute(
                    "SELECT id FROM recforge_sweeps WHERE id = ?", (sweep_id,)).fetchone() is None:
                raise LedgerError(f"sweep {sweep_id} does not exist (use next_sweep_id())")
            columns = ", ".join(row)
            marks = ", ".join("?" for _ in row)
            cursor = connection.execute(
                f"INSERT INTO recforge_experiments ({columns}) VALUES ({marks})",
                tuple(row.values()))
            number = cursor.lastrowid
            connection.execute("COMMIT")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise
        return int(number) if number is not None else None
    finally:
        connection.close()


def _schema_version(connection: sqlite3.Connection) -> int:
    """``max(version)`` of the version table; 0 when there is none (a new or foreign file)."""
    found = connection.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'recforge_schema_version'"
    ).fetchone()
    if found is None:
        return 0
    version = connection.execute("SELECT max(version) FROM recforge_schema_version").fetchone()
    return int(version[0] or 0)
