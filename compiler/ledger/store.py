"""``Ledger``: the database of every compile, local run and Vertex AI submission."""

from __future__ import annotations

import builtins
import os
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event, select, update
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from compiler import retry
from compiler.errors import ConfigError
from compiler.ledger import schema
from compiler.ledger.lite import SQLITE_BUSY_TIMEOUT_S, WRITE_RETRY_S, configure
from compiler.ledger.liveness import ABANDONED
from compiler.ledger.records import (
    HIGHER_IS_BETTER,
    KINDS,
    RUN_KINDS,
    SHOWN_STATUSES,
    STATUSES,
    DuplicateSubmission,
    Experiment,
    ExperimentNotFound,
    LedgerError,
    LedgerNotFound,
    check_sort_column,
    split_metrics,
)
from compiler.ledger.rows import artifact_map, compile_values, experiment, now, utc
from compiler.ledger.schema import experiments as T
from compiler.ledger.schema import sweeps as S
from compiler.ledger.urls import ENV_URL, check_ledger_url, default_url, resolve_url

__all__ = ["ENV_URL", "Ledger", "check_ledger_url", "default_url", "resolve_url"]


_R = TypeVar("_R")
# Execution option the SQLite "begin" hook reads to emit BEGIN IMMEDIATE for writes.
_WRITE = "recforge_write"


class Ledger:
    """The run ledger. Open it with a SQLAlchemy URL; the default is the project's SQLite file.

    ``url``: explicit URL (or SQLite file path) > ``$RECFORGE_LEDGER_URL`` > ``default_url()``,
    checked by ``check_ledger_url`` (a bad URL, or a file that is not a SQLite database, is a
    ``LedgerError`` and nothing is created). ``postgresql://...`` URLs use the psycopg (v3)
    driver. ``create=False`` raises ``LedgerNotFound`` instead of creating a missing ledger
    (read-only tools use it).

    Every method is one short transaction; instances are cheap, thread-compatible through the
    engine's pool, and safe across ``fork`` (a child re-opens its own connections).
    """

    def __init__(self, url: str | os.PathLike[str] | None = None, *, create: bool = True) -> None:
        try:
            self.url = check_ledger_url(url)
        except ConfigError as error:
            raise LedgerError(str(error)) from None
        sa_url = make_url(self.url)
        if sa_url.drivername == "postgresql":
            # SQLAlchemy's default PostgreSQL driver is psycopg2; recforge ships psycopg 3.
            sa_url = sa_url.set(drivername="postgresql+psycopg")
        self.display_url = sa_url.render_as_string(hide_password=True)
        self._engine = self._make_engine(sa_url, create)
        self._write_engine = self._engine.execution_options(**{_WRITE: True})
        self._pid = os.getpid()
        try:
            self._open(create)
        except BaseException:
            self.close()
            raise

    # ---------------------------------------------------------------- connection management
    def _make_engine(self, sa_url: URL, create: bool) -> Engine:
        if sa_url.get_backend_name() != "sqlite":
            try:
                # pre_ping: a team server drops idle connections; check before handing one out.
                return create_engine(sa_url, pool_pre_ping=True)
            except ImportError as exc:
                hint = " (pip install 'psycopg[binary]')" if "psycopg" in str(exc) else ""
                raise LedgerError(f"{self.display_url}: driver missing: {exc}{hint}") from None
        path = Path(sa_url.database or "")  # check_ledger_url: a file path, or no file yet
        if not path.exists():
            if not create:
                raise LedgerNotFound(f"no ledger at {path} (nothing has been recorded yet)")
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(sa_url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        return engine

    def _open(self, create: bool) -> None:
        version = self._read(schema.schema_version)
        if version > schema.LATEST_VERSION:
            raise LedgerError(
                schema.newer_schema_message(version, schema.LATEST_VERSION, self.display_url)
            )
        if version == 0 and not create:
            raise LedgerNotFound(f"no recforge ledger in {self.display_url}")
        if version < schema.LATEST_VERSION:
            self._write(lambda c: schema.migrate(c, where=self.display_url))

    def close(self) -> None:
        self._engine.dispose()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Ledger({self.display_url!r})"

    def _after_fork(self) -> None:
        # Pooled connections inherited from the parent must not be used (or closed) here.
        if os.getpid() != self._pid:
            self._engine.dispose(close=False)
            self._pid = os.getpid()

    def _read(self, fn: Callable[[Connection], _R]) -> _R:
        return self._run(fn, self._engine)

    def _write(self, fn: Callable[[Connection], _R]) -> _R:
        return self._run(fn, self._write_engine)

    def _run(self, fn: Callable[[Connection], _R], engine: Engine) -> _R:
        """Run ``fn`` in one transaction, retrying transient lock / serialisation failures.

        Retrying is safe: those errors mean the transaction did not commit.
        """
        self._after_fork()

        def transaction() -> _R:
            with engine.begin() as conn:
                return fn(conn)

        try:
            return retry.call(transaction, _is_transient, initial=0.02, maximum=1.0,
                              timeout=WRITE_RETRY_S)
        except OperationalError as exc:  # unreachable server, still locked after the retries
            reason = exc.orig if exc.orig is not None else exc
            raise LedgerError(f"ledger {self.display_url}: {reason}") from exc
        # Integrity errors are handled by the caller; anything else is a bug and propagates.

    # ---------------------------------------------------------------- recording
    def record_compile(
        self,
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
    ) -> int:
        """Record a compile; return its experiment number (assigned by the database).

        ``resolved_config`` is everything that can change the result (``compiler.ledger.
        provenance.record_config``); ``compiler_version``, ``source_digest``, ``seeds`` and
        ``effective`` (the epochs and batch size the trainer gets) are provenance.
        """
        values = compile_values(
            config_hash, model, features, overrides, resolved_config, artifacts, sweep_id,
            compiler_version=compiler_version, source_digest=source_digest, seeds=seeds,
            effective=effective,
        )

        def insert(conn: Connection) -> int:
            if (
                sweep_id is not None
                and conn.execute(select(S.c.id).where(S.c.id == sweep_id)).first() is None
            ):
                raise LedgerError(f"sweep {sweep_id} does not exist (use next_sweep_id())")
            result = conn.execute(T.insert().values(created_at=now(), **values))
            return int(result.inserted_primary_key[0])

        return self._write(insert)

    def next_sweep_id(self, label: str | None = None) -> int:
        """Allocate a new sweep id (database-assigned, never reused) for a group of runs."""
        return self._write(
            lambda c: int(
                c.execute(S.insert().values(label=label, created_at=now())).inserted_primary_key[0]
            )
        )

    def start(
        self, number: int, kind: str = "local", *, host: str | None = None, pid: int | None = None
    ) -> None:
        """Mark a compiled experiment as running locally (``kind="local"``) or on Vertex AI.

        ``host`` and ``pid``: the process doing the run, which then keeps ``heartbeat(number)``
        going (``ledger.liveness.Heartbeat``); readers show the run ``abandoned`` once that
        process is gone. A second active Vertex AI run of the same config hash is refused with
        ``DuplicateSubmission`` -- by a unique index, so racing submitters cannot both pass.
        """
        if kind not in RUN_KINDS:
            raise LedgerError(f"kind must be one of {', '.join(RUN_KINDS)}, got {kind!r}")
        started = now()
        liveness = {"host": host, "pid": pid, "heartbeat_at": started} if pid is not None else {}
        try:
            self._transition(
                number,
                "start",
                ("compiled",),
                {"status": "running", "kind": kind, "started_at": started, **liveness},
            )
        except IntegrityError:
            exp = self.get(number)
            active = self.find_active(exp.config_hash, kind)
            which = f"experiment {active.number}" if active else "another experiment"
            raise DuplicateSubmission(
                f"{which} with config hash {exp.config_hash} is already running on Vertex AI"
                + (f" (job {active.job_id})" if active and active.job_id else "")
                + "; wait for it, or mark it failed, before submitting the same config again",
                active,
            ) from None

    def complete(
        self,
        number: int,
        metrics: Mapping[str, Any],
        artifacts: Mapping[str, str] | None = None,
        *,
        data_hash: str | None = None,
    ) -> None:
        """Mark a running experiment completed with its ``training_metrics.json`` content.

        ``artifacts`` (name -> path) are merged into those recorded at compile time;
        ``data_hash`` is the content hash of the data the run loaded.
        """
        columns, extra = split_metrics(metrics)
        values = {"status": "completed", "finished_at": now(), **columns, "metrics_extra": extra}
        if data_hash is not None:
            values["data_hash"] = str(data_hash)
        self._transition(number, "complete", ("running",), values, artifacts)

    def heartbeat(self, number: int) -> bool:
        """Refresh a running experiment's heartbeat; False when it is no longer running."""
        statement = (
            update(T)
            .where(T.c.number == number, T.c.status == "running")
            .values(heartbeat_at=now())
        )
        return bool(self._write(lambda c: c.execute(statement).rowcount))

    def fail(self, number: int, error: str) -> None:
        """Mark an experiment failed (from compiled: it failed before any run started)."""
        self._transition(
            number,
            "fail",
            ("compiled", "running"),
            {"status": "failed", "finished_at": now(), "error": str(error)},
        )

    def mark_unknown(self, number: int, note: str) -> None:
        """Mark an experiment whose job may or may not exist (a create nobody saw finish);
        ``note`` says how to find out, e.g. the label to list jobs by."""
        self._transition(
            number,
            "mark unknown",
            ("compiled", "running"),
            {"status": "unknown", "finished_at": now(), "error": str(note)},
        )

    def set_job(self, number: int, job_id: str) -> None:
        """Record the Vertex AI job id of a running submission."""
        self._transition(number, "set the job of", ("running",), {"job_id": str(job_id)})

    def add_artifacts(self, number: int, artifacts: Mapping[str, str]) -> None:
        """Merge artifact paths (name -> path) into an experiment's record."""
        self._transition(number, "add artifacts to", STATUSES, {}, artifacts)

    def _transition(
        self,
        number: int,
        verb: str,
        allowed: tuple[str, ...],
        values: dict[str, Any],
        artifacts: Mapping[str, str] | None = None,
    ) -> None:
        new_artifacts = artifact_map(artifacts)

        def apply(conn: Connection) -> None:
            # FOR UPDATE: on PostgreSQL, concurrent artifact merges must not lose each other
            # (SQLite ignores it; BEGIN IMMEDIATE already serialises writers there).
            row = conn.execute(
                select(T.c.status, T.c.artifacts).where(T.c.number == number).with_for_update()
            ).first()
            if row is None:
                raise ExperimentNotFound(self._missing_message(conn, number))
            if row.status not in allowed:
                raise LedgerError(
                    f"cannot {verb} experiment {number}: it is {row.status} "
                    f"(allowed from: {', '.join(allowed)})"
                )
            update_values = dict(values)
            if new_artifacts:
                update_values["artifacts"] = {**(row.artifacts or {}), **new_artifacts}
            if update_values:
                conn.execute(update(T).where(T.c.number == number).values(**update_values))

        self._write(apply)

    # ---------------------------------------------------------------- reading
    def get(self, number: int) -> Experiment:
        def fetch(conn: Connection) -> Experiment:
            row = conn.execute(select(T).where(T.c.number == number)).first()
            if row is None:
                raise ExperimentNotFound(self._missing_message(conn, number))
            return experiment(row)

        return self._read(fetch)

    def list(
        self,
        sort_by: str = "number",
        descending: bool | None = None,
        sweep_id: int | None = None,
        limit: int | None = None,
        status: str | None = None,
        kind: str | None = None,
    ) -> builtins.list[Experiment]:
        """Experiments, sorted by any column of ``SORTABLE_COLUMNS``; missing values last.

        ``descending=None`` means best first for a metric (recalls high to low, losses and
        errors low to high) and ascending for every other column. ``status`` filters by the
        status a reader sees: ``running`` excludes, ``abandoned`` selects, abandoned runs.
        """
        column = check_sort_column(sort_by)
        if descending is None:
            descending = HIGHER_IS_BETTER.get(column, False)
        if status is not None and status not in SHOWN_STATUSES:
            raise LedgerError(
                f"status must be one of {', '.join(SHOWN_STATUSES)}, got {status!r}"
            )
        if kind is not None and kind not in KINDS:
            raise LedgerError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
        order = T.c[column].desc() if descending else T.c[column].asc()
        query = select(T).order_by(order.nulls_last(), T.c.number.asc())
        if sweep_id is not None:
            query = query.where(T.c.sweep_id == sweep_id)
        if status is not None:
            query = query.where(T.c.status == ("running" if status == ABANDONED else status))
        if kind is not None:
            query = query.where(T.c.kind == kind)
        if status in ("running", ABANDONED):  # decided per row, after the query
            rows = self._read(lambda c: [experiment(r) for r in c.execute(query)])
            return [e for e in rows if e.status == status][:limit]
        if limit is not None:
            query = query.limit(limit)
        return self._read(lambda c: [experiment(r) for r in c.execute(query)])

    def find_active(self, config_hash: str, source: str) -> Experiment | None:
        """The newest running experiment of ``config_hash`` of kind ``source`` (e.g. vertex)."""
        query = (
            select(T)
            .where(T.c.config_hash == config_hash, T.c.kind == source, T.c.status == "running")
            .order_by(T.c.number.desc())
            .limit(1)
        )

        def fetch(conn: Connection) -> Experiment | None:
            row = conn.execute(query).first()
            return None if row is None else experiment(row)

        return self._read(fetch)

    def sweeps(self) -> builtins.list[tuple[int, str | None, datetime]]:
        """All sweeps: (id, label, created_at), oldest first."""
        query = select(S.c.id, S.c.label, S.c.created_at).order_by(S.c.id)
        return self._read(lambda c: [(r.id, r.label, utc(r.created_at)) for r in c.execute(query)])

    def _missing_message(self, conn: Connection, number: int) -> str:
        # lazy: SQLAlchemy: the ledger's database only
        from sqlalchemy import func

        low, high, count = conn.execute(
            select(func.min(T.c.number), func.max(T.c.number), func.count())
        ).one()
        plural = "experiment" if count == 1 else "experiments"
        known = f"it has {count} {plural}, #{low}..#{high}" if count else "it is empty"
        return f"experiment {number} not found in ledger {self.display_url} ({known})"


def _is_transient(exc: BaseException) -> bool:
    """A lock or serialisation failure: the transaction did not commit, so retrying is safe."""
    if not isinstance(exc, DBAPIError):
        return False
    orig = exc.orig
    if isinstance(orig, sqlite3.OperationalError):
        message = str(orig).lower()
        return "locked" in message or "busy" in message
    # PostgreSQL: serialization_failure, deadlock_detected (the transaction was rolled back).
    return getattr(orig, "sqlstate", None) in ("40001", "40P01")


# ------------------------------------------------------------------------------ SQLite hooks
def _sqlite_on_connect(dbapi_conn: sqlite3.Connection, _record: object) -> None:
    # The same settings as the sqlite3 path (``lite``); SQLAlchemy's "begin" hook emits BEGIN.
    configure(dbapi_conn)


def _sqlite_on_begin(conn: Connection) -> None:
    # Writers take the write lock up front (BEGIN IMMEDIATE). A deferred transaction that reads
    # first and then writes can fail with "database is locked" at once, without waiting for
    # busy_timeout, when another writer got in between.
    immediate = conn.get_execution_options().get(_WRITE, False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")
