"""The ledger's tables and its schema migrations.

Migrations are ordered Python steps over SQLAlchemy Core (no Alembic: one table family, one
linear history, and the steps must run inside the ledger's own locked transaction). Step ``i``
(1-based) brings the schema from version ``i - 1`` to ``i``; every applied step adds a row to
``recforge_schema_version``, so the version is ``max(version)``.

Each step defines the tables as they were *at that version*, in its own ``MetaData``: the
module-level ``experiments`` / ``sweeps`` tables below describe the *current* schema for
queries, and must not be reused by old steps, or a later column change would silently rewrite
history. ``tests/test_ledger.py`` checks that running every step yields exactly the current
tables.

Adding a migration: append a function to ``MIGRATIONS`` (never edit or reorder old ones),
update the current table definitions, and keep the steps portable between SQLite and
PostgreSQL (SQLite's ALTER TABLE can add columns but not change them; rebuild the table
for anything else).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from datetime import datetime, timezone

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    DateTime,
    Double,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    func,
    inspect,
    select,
    text,
)

from compiler.ledger.records import METRIC_KEYS, LedgerError

VERSION_TABLE = "recforge_schema_version"
EXPERIMENTS_TABLE = "recforge_experiments"
SWEEPS_TABLE = "recforge_sweeps"

# Plain JSON, not JSONB, on PostgreSQL: JSON keeps the text as given, so a resolved config
# reads back with its keys in their original order (JSONB reorders them); the ledger never
# queries inside these documents. ``none_as_null``: a missing document is SQL NULL, not 'null'.
_Json = JSON(none_as_null=True)
# Timestamps are UTC. SQLite has no time zone type: the ledger stores naive UTC there and
# re-attaches UTC when reading (see ``rows.utc``).
_Timestamp = DateTime(timezone=True)

Migration = Callable[[Connection], None]
_ACTIVE_VERTEX = "kind = 'vertex' AND status = 'running'"


def _version_table(metadata: MetaData) -> Table:
    return Table(
        VERSION_TABLE,
        metadata,
        Column("version", Integer, primary_key=True, autoincrement=False),
        Column("description", Text, nullable=False),
        Column("applied_at", _Timestamp, nullable=False),
    )


# --------------------------------------------------------------------------------------------
# Current schema (what queries use). Keep in sync with the last migration step.
# --------------------------------------------------------------------------------------------
metadata = MetaData()
version_table = _version_table(metadata)

sweeps = Table(
    SWEEPS_TABLE,
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("label", Text, nullable=True),
    Column("created_at", _Timestamp, nullable=False),
    sqlite_autoincrement=True,
)

experiments = Table(
    EXPERIMENTS_TABLE,
    metadata,
    # AUTOINCREMENT on SQLite (a plain rowid would hand out a deleted top number again);
    # SERIAL's sequence on PostgreSQL. Either way the database assigns the number and never
    # reuses it.
    Column("number", Integer, primary_key=True, autoincrement=True),
    Column("config_hash", String(128), nullable=False),
    Column("model", Text, nullable=False),
    Column("features", Text, nullable=False),
    Column("overrides", _Json, nullable=False),
    Column("resolved_config", _Json, nullable=False),
    Column("kind", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", _Timestamp, nullable=False),
    Column("started_at", _Timestamp, nullable=True),
    Column("finished_at", _Timestamp, nullable=True),
    Column("error", Text, nullable=True),
    Column("job_id", Text, nullable=True),
    Column("sweep_id", Integer, nullable=True),
    *(Column(key, Double, nullable=True) for key in METRIC_KEYS),
    Column("metrics_extra", _Json, nullable=True),
    Column("artifacts", _Json, nullable=False),
    # Version 2: what else can change a run's result, and whether its process is alive.
    Column("compiler_version", Text, nullable=True),
    Column("source_digest", String(64), nullable=True),
    Column("seeds", _Json, nullable=True),
    Column("effective", _Json, nullable=True),
    Column("data_hash", String(64), nullable=True),
    Column("host", Text, nullable=True),
    Column("pid", Integer, nullable=True),
    Column("heartbeat_at", _Timestamp, nullable=True),
    Index("ix_recforge_experiments_config_hash", "config_hash"),
    Index("ix_recforge_experiments_sweep_id", "sweep_id"),
    Index("ix_recforge_experiments_status", "status"),
    Index(
        "ux_recforge_experiments_active_vertex",
        "config_hash",
        unique=True,
        sqlite_where=text(_ACTIVE_VERTEX),
        postgresql_where=text(_ACTIVE_VERTEX),
    ),
    sqlite_autoincrement=True,
)


# --------------------------------------------------------------------------------------------
# Migrations
# --------------------------------------------------------------------------------------------
def _v1_initial(conn: Connection) -> None:
    """Version 1: experiments and sweeps."""
    md = MetaData()
    Table(
        SWEEPS_TABLE,
        md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("label", Text, nullable=True),
        Column("created_at", _Timestamp, nullable=False),
        sqlite_autoincrement=True,
    )
    table = Table(
        EXPERIMENTS_TABLE,
        md,
        Column("number", Integer, primary_key=True, autoincrement=True),
        Column("config_hash", String(128), nullable=False),
        Column("model", Text, nullable=False),
        Column("features", Text, nullable=False),
        Column("overrides", _Json, nullable=False),
        Column("resolved_config", _Json, nullable=False),
        Column("kind", String(16), nullable=False),
        Column("status", String(16), nullable=False),
        Column("created_at", _Timestamp, nullable=False),
        Column("started_at", _Timestamp, nullable=True),
        Column("finished_at", _Timestamp, nullable=True),
        Column("error", Text, nullable=True),
        Column("job_id", Text, nullable=True),
        Column("sweep_id", Integer, nullable=True),
        Column("loss", Double, nullable=True),
        Column("val_rmse", Double, nullable=True),
        Column("val_mae", Double, nullable=True),
        Column("test_rmse", Double, nullable=True),
        Column("test_mae", Double, nullable=True),
        Column("recall_at_5", Double, nullable=True),
        Column("recall_at_10", Double, nullable=True),
        Column("recall_at_50", Double, nullable=True),
        Column("recall_at_100", Double, nullable=True),
        Column("metrics_extra", _Json, nullable=True),
        Column("artifacts", _Json, nullable=False),
        sqlite_autoincrement=True,
    )
    Index("ix_recforge_experiments_config_hash", table.c.config_hash)
    Index("ix_recforge_experiments_sweep_id", table.c.sweep_id)
    Index("ix_recforge_experiments_status", table.c.status)
    # At most one active Vertex AI submission per config hash, enforced by the database so
    # that two processes racing to submit the same config cannot both win. Partial unique
    # indexes exist in SQLite (3.8+) and PostgreSQL alike.
    active = text("kind = 'vertex' AND status = 'running'")  # literal: steps are frozen
    Index(
        "ux_recforge_experiments_active_vertex",
        table.c.config_hash,
        unique=True,
        sqlite_where=active,
        postgresql_where=active,
    )
    md.create_all(conn)


def _v2_provenance_and_liveness(conn: Connection) -> None:
    """Version 2: provenance (compiler version, source digest, seeds, effective run settings,
    data hash) and liveness (host, pid, heartbeat) of experiments."""
    added = (
        Column("compiler_version", Text, nullable=True),
        Column("source_digest", String(64), nullable=True),
        Column("seeds", _Json, nullable=True),
        Column("effective", _Json, nullable=True),
        Column("data_hash", String(64), nullable=True),
        Column("host", Text, nullable=True),
        Column("pid", Integer, nullable=True),
        Column("heartbeat_at", _Timestamp, nullable=True),
    )
    for column in added:
        # Nullable columns without defaults: an ADD COLUMN both databases do in place, and
        # rows recorded before version 2 read back with "not recorded" (NULL) for each.
        column_type = column.type.compile(dialect=conn.dialect)
        conn.execute(
            text(f"ALTER TABLE {EXPERIMENTS_TABLE} ADD COLUMN {column.name} {column_type}")
        )


#: Ordered migration steps; step i (1-based) produces schema version i.
MIGRATIONS: tuple[Migration, ...] = (_v1_initial, _v2_provenance_and_liveness)
LATEST_VERSION = len(MIGRATIONS)

# Key of the PostgreSQL advisory lock that serialises migrations between processes.
_PG_MIGRATION_LOCK = zlib.crc32(b"recforge-ledger-migrations")


def schema_version(conn: Connection) -> int:
    """The schema version of the database behind ``conn`` (0: no ledger there yet)."""
    insp = inspect(conn)
    # Outside the migration lock another process may commit the schema between two catalog
    # queries. Both tables appear in one transaction, so ask for the experiments table first:
    # if it is there, a later query sees the version table too, unless it really is missing.
    has_experiments = insp.has_table(EXPERIMENTS_TABLE)
    if not inspect(conn).has_table(VERSION_TABLE):
        if has_experiments:
            raise LedgerError(
                f"the database has a {EXPERIMENTS_TABLE} table but no {VERSION_TABLE} "
                "table; it was not made by recforge's ledger and is left alone"
            )
        return 0
    return int(conn.execute(select(func.max(version_table.c.version))).scalar() or 0)


def newer_schema_message(found: int, known: int, where: str) -> str:
    return (
        f"the ledger at {where} has schema version {found}, but this recforge knows versions "
        f"up to {known}; it was written by a newer recforge. Upgrade recforge to use it "
        "(the ledger was not modified)."
    )


def migrate(
    conn: Connection, steps: Sequence[Migration] = MIGRATIONS, *, where: str = "<ledger>"
) -> int:
    """Apply the pending ``steps`` inside the caller's write transaction; return the version.

    The caller holds the database's write lock (SQLite: ``BEGIN IMMEDIATE``); on PostgreSQL
    an advisory transaction lock serialises concurrent openers. Either way the version is
    re-read under the lock, so two processes opening a fresh ledger at once migrate it once.
    DDL is transactional on both databases: a failing step leaves the previous version intact.
    """
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(_PG_MIGRATION_LOCK)))
    current = schema_version(conn)
    if current > len(steps):
        raise LedgerError(newer_schema_message(current, len(steps), where))
    if current == 0:
        _version_table(MetaData()).create(conn)
    for version in range(current + 1, len(steps) + 1):
        step = steps[version - 1]
        step(conn)
        conn.execute(
            version_table.insert().values(
                version=version,
                description=(step.__doc__ or step.__name__).strip().splitlines()[0],
                applied_at=datetime.now(timezone.utc),
            )
        )
    return len(steps)
