"""The run ledger against SQLite and a real, throwaway PostgreSQL server."""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from datetime import timezone
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url

from compiler.ledger import (
    LATEST_VERSION,
    METRIC_KEYS,
    DuplicateSubmission,
    ExperimentNotFound,
    Ledger,
    LedgerError,
    LedgerNotFound,
    default_url,
    schema,
)

REPO = Path(__file__).resolve().parents[1]

# A training_metrics.json as the trainer contract describes it (multitask: every key).
MULTITASK_METRICS = {
    "model_type": "multitask",
    "history": [
        {"epoch": 1, "loss": 3523.9, "val_rmse": 1.033, "val_mae": 0.808},
        {"epoch": 2, "loss": 3346.2, "val_rmse": 0.954, "val_mae": 0.735},
    ],
    "final": {
        "loss": 3346.2,
        "val_rmse": 0.954,
        "val_mae": 0.735,
        "test_rmse": 0.97,
        "test_mae": 0.74,
        "recall_at_5": 0.03,
        "recall_at_10": 0.06,
        "recall_at_50": 0.2,
        "recall_at_100": 0.3,
        "val_loss": 3400.0,
    },
    "baselines": {"popularity": {"recall_at_100": 0.12}},
    "candidates": {"unique_products": 1040, "transactions": 13252},
    "test_split": "found",
}
RESOLVED = {
    "model": {"name": "hybrid_v1", "learning_rate": 0.001, "buyer_tower": {"layers": [128, 64]}},
    "features": {"name": "cherng_v3", "buyer": [{"name": "customer_id", "embedding": {"dim": 64}}]},
}


def retrieval_metrics(recall_at_100: float | None, loss: float = 10.0) -> dict:
    final = {"loss": loss, "recall_at_5": 0.01, "recall_at_10": 0.02, "recall_at_50": 0.05}
    if recall_at_100 is not None:
        final["recall_at_100"] = recall_at_100
    return {"model_type": "retrieval", "history": [{"epoch": 1, "loss": loss}], "final": final}


# ------------------------------------------------------------------------------ PostgreSQL
def _initdb() -> Path | None:
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if found:
        return Path(max(found, key=lambda p: int(Path(p).parts[-3].split(".")[0])))
    on_path = shutil.which("initdb")
    return Path(on_path) if on_path else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """A superuser URL of a PostgreSQL server: $RECFORGE_TEST_POSTGRES_URL, or a throwaway one.

    The throwaway cluster lives in a temporary directory, listens on 127.0.0.1 only, trusts
    local connections and runs without fsync; it is stopped and deleted after the session.
    PostgreSQL refuses to run as root, so as root it runs as the ``postgres`` (or ``nobody``)
    user through ``runuser``.
    """
    if os.environ.get("RECFORGE_TEST_POSTGRES_URL"):
        yield os.environ["RECFORGE_TEST_POSTGRES_URL"]
        return
    initdb = _initdb()
    if initdb is None:
        pytest.skip(
            "no PostgreSQL server binary (apt-get install postgresql, or set "
            "RECFORGE_TEST_POSTGRES_URL to a server where the user may CREATE DATABASE)"
        )
    bindir = initdb.parent
    run_as: list[str] = []
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        for name in ("postgres", "nobody"):
            try:
                owner = pwd.getpwnam(name)
                break
            except KeyError:
                continue
        runuser = shutil.which("runuser")
        if owner is None or runuser is None:
            pytest.skip("running as root without a postgres/nobody user and runuser")
        run_as = [runuser, "-u", owner.pw_name, "--"]
    root = Path(tempfile.mkdtemp(prefix="recforge-pg-"))
    data = root / "data"
    if owner is not None:
        os.chown(root, owner.pw_uid, owner.pw_gid)
    try:
        subprocess.run(
            [*run_as, str(initdb), "-D", str(data), "-U", "postgres", "--auth=trust"]
            + ["-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            timeout=120,
        )
        port = _free_port()
        with open(data / "postgresql.conf", "a") as conf:
            conf.write(
                f"\nport = {port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{data}'\nmax_connections = 100\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )
        started = subprocess.run(
            [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log")]
            + ["-w", "-t", "60", "start"],
            capture_output=True,
            text=True,
            timeout=90,
        )
        if started.returncode != 0:
            log = (root / "log").read_text() if (root / "log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {started.stderr}\n{log}")
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
    finally:
        if data.exists():
            subprocess.run(
                [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                capture_output=True,
                timeout=60,
            )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_admin(postgres_admin_url: str) -> Iterator[Engine]:
    url = make_url(postgres_admin_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")  # as the ledger itself does
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
def postgres_url(postgres_admin: Engine) -> Iterator[str]:
    """A fresh, empty database on the test server for one test."""
    name = f"recforge_test_{uuid.uuid4().hex[:12]}"
    with postgres_admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield postgres_admin.url.set(database=name).render_as_string(hide_password=False)
    with postgres_admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def ledger(ledger_url: str) -> Iterator[Ledger]:
    with Ledger(ledger_url) as opened:
        yield opened


def compile_one(ledger: Ledger, config_hash: str = "h1", **kw: object) -> int:
    return ledger.record_compile(
        config_hash,
        kw.pop("model", "hybrid_v1"),  # type: ignore[arg-type]
        kw.pop("features", "cherng_v3"),  # type: ignore[arg-type]
        kw.pop("overrides", ["model.learning_rate=0.001"]),  # type: ignore[arg-type]
        kw.pop("resolved_config", RESOLVED),  # type: ignore[arg-type]
        kw.pop("artifacts", {"trainer_module": "/out/trainer_module.py"}),  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )


# ------------------------------------------------------------------------------ records
@pytest.mark.slow
def test_record_compile_reads_back_every_field(ledger: Ledger) -> None:
    sweep = ledger.next_sweep_id("lr sweep")
    number = compile_one(ledger, "abc123", sweep_id=sweep)
    exp = ledger.get(number)
    assert exp.number == number
    assert (exp.config_hash, exp.model, exp.features) == ("abc123", "hybrid_v1", "cherng_v3")
    assert (exp.kind, exp.status) == ("compile", "compiled")
    assert exp.overrides == ("model.learning_rate=0.001",)
    assert exp.resolved_config == RESOLVED
    # Key order of the resolved config survives (PostgreSQL: json, not jsonb).
    assert list(exp.resolved_config["model"]) == ["name", "learning_rate", "buyer_tower"]
    assert exp.artifacts == {"trainer_module": "/out/trainer_module.py"}
    assert exp.sweep_id == sweep
    assert exp.created_at.tzinfo == timezone.utc
    assert exp.started_at is exp.finished_at is exp.error is exp.job_id is None
    assert exp.metrics == dict.fromkeys(METRIC_KEYS)
    assert ledger.sweeps()[0][:2] == (sweep, "lr sweep")


def test_local_run_lifecycle_stores_contract_metrics_as_columns(ledger: Ledger) -> None:
    number = compile_one(ledger)
    ledger.start(number)
    running = ledger.get(number)
    assert (running.kind, running.status) == ("local", "running")
    ledger.complete(number, MULTITASK_METRICS, artifacts={"serving_model": "/out/model"})
    exp = ledger.get(number)
    assert exp.status == "completed"
    assert exp.started_at is not None and exp.finished_at is not None
    assert exp.created_at <= exp.started_at <= exp.finished_at
    assert exp.metrics == {k: MULTITASK_METRICS["final"][k] for k in METRIC_KEYS}
    assert exp.history == MULTITASK_METRICS["history"]
    assert exp.extra["baselines"] == {"popularity": {"recall_at_100": 0.12}}
    assert exp.extra["candidates"]["unique_products"] == 1040
    assert exp.extra["final"] == {"val_loss": 3400.0}  # non-contract keys of final are kept
    assert exp.artifacts == {
        "trainer_module": "/out/trainer_module.py",
        "serving_model": "/out/model",
    }


def test_failures_are_recorded_with_their_error(ledger: Ledger) -> None:
    before_start = compile_one(ledger, "h-a")
    ledger.fail(before_start, "compile passed, data loader crashed")
    during = compile_one(ledger, "h-b")
    ledger.start(during)
    ledger.fail(during, "Traceback ...\nInvalidArgumentError: Cannot batch tensors")
    assert ledger.get(before_start).status == "failed"
    assert ledger.get(before_start).kind == "compile"  # it failed before any run started
    exp = ledger.get(during)
    assert exp.status == "failed" and exp.kind == "local"
    assert exp.error is not None and "Cannot batch tensors" in exp.error
    assert exp.finished_at is not None


def test_vertex_submission_refuses_a_duplicate_active_config(ledger: Ledger) -> None:
    first = compile_one(ledger, "same-hash")
    assert ledger.find_active("same-hash", "vertex") is None
    ledger.start(first, kind="vertex")
    ledger.set_job(first, "4062408492097470464")
    active = ledger.find_active("same-hash", "vertex")
    assert active is not None and active.number == first
    assert active.job_id == "4062408492097470464"

    second = compile_one(ledger, "same-hash")
    with pytest.raises(DuplicateSubmission, match=f"experiment {first} .*4062408492097470464"):
        ledger.start(second, kind="vertex")
    assert ledger.get(second).status == "compiled"  # the refused start changed nothing
    # Local runs of the same config and Vertex runs of other configs are not restricted.
    ledger.start(second, kind="local")
    other = compile_one(ledger, "other-hash")
    ledger.start(other, kind="vertex")

    ledger.fail(first, "job failed: batch shape mismatch")
    third = compile_one(ledger, "same-hash")
    ledger.start(third, kind="vertex")  # allowed again once the first is no longer active
    assert ledger.find_active("same-hash", "vertex").number == third  # type: ignore[union-attr]


def test_invalid_transitions_and_missing_numbers_are_clear_errors(ledger: Ledger) -> None:
    with pytest.raises(ExperimentNotFound, match="experiment 7 not found .*it is empty"):
        ledger.get(7)
    number = compile_one(ledger)
    with pytest.raises(LedgerError, match="cannot complete experiment 1: it is compiled"):
        ledger.complete(number, MULTITASK_METRICS)
    with pytest.raises(LedgerError, match="cannot set the job of experiment 1"):
        ledger.set_job(number, "123")
    ledger.start(number)
    with pytest.raises(LedgerError, match="cannot start experiment 1: it is running"):
        ledger.start(number)
    ledger.complete(number, MULTITASK_METRICS)
    with pytest.raises(LedgerError, match="it is completed"):
        ledger.fail(number, "late")
    with pytest.raises(ExperimentNotFound, match=r"1 experiment, #1\.\.#1"):
        ledger.start(2)
    with pytest.raises(LedgerError, match="kind must be one of local, vertex"):
        ledger.start(number, kind="compile")


def test_numbers_are_assigned_by_the_database_and_never_reused(
    ledger: Ledger, ledger_url: str
) -> None:
    numbers = [compile_one(ledger, f"h{i}") for i in range(3)]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    engine = create_engine(ledger_url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.begin() as conn:  # someone deletes the newest record by hand
        conn.execute(text("DELETE FROM recforge_experiments WHERE number = :n"), {"n": numbers[-1]})
    engine.dispose()
    assert compile_one(ledger, "h-next") > numbers[-1]


def test_list_sorts_best_first_with_missing_values_last(ledger: Ledger) -> None:
    recalls = [0.2, None, 0.5, 0.1]
    sweep = ledger.next_sweep_id()
    for i, recall in enumerate(recalls):
        number = compile_one(ledger, f"h{i}", sweep_id=sweep if i < 3 else None)
        ledger.start(number)
        ledger.complete(number, retrieval_metrics(recall, loss=float(10 - i)))
    compile_one(ledger, "compiled-only")

    def numbers(**kw: object) -> list[int]:
        return [e.number for e in ledger.list(**kw)]  # type: ignore[arg-type]

    assert numbers() == [1, 2, 3, 4, 5]
    assert numbers(sort_by="recall_at_100") == [3, 1, 4, 2, 5]  # higher recall is better
    assert numbers(sort_by="recall_at_100", descending=False) == [4, 1, 3, 2, 5]  # None last
    assert numbers(sort_by="loss") == [4, 3, 2, 1, 5]  # lower loss is better
    assert numbers(sort_by="Recall@100", limit=2) == [3, 1]
    assert numbers(sweep_id=sweep) == [1, 2, 3]
    assert numbers(status="compiled") == [5]
    assert numbers(sort_by="number", descending=True) == [5, 4, 3, 2, 1]
    with pytest.raises(LedgerError) as info:
        ledger.list(sort_by="recal_at_100")
    message = str(info.value)
    assert "Did you mean 'recall_at_100'?" in message
    assert "Valid columns: number, created_at" in message and "val_rmse" in message
    with pytest.raises(LedgerError, match="status must be one of"):
        ledger.list(status="done")


def test_metrics_documents_are_validated_and_nan_is_kept_visible(ledger: Ledger) -> None:
    number = compile_one(ledger)
    ledger.start(number)
    with pytest.raises(LedgerError, match="a dict"):
        ledger.complete(number, [1, 2])  # type: ignore[arg-type]
    with pytest.raises(LedgerError, match="final.loss must be a number"):
        ledger.complete(number, {"final": {"loss": "3.2"}})
    with pytest.raises(LedgerError, match="none of the contract keys"):
        ledger.complete(number, {"history": []})
    diverged = {
        "model_type": "ranking",
        "history": [{"epoch": 1, "loss": float("nan"), "val_rmse": float("inf")}],
        "final": {"loss": float("nan"), "val_rmse": 1.5, "val_mae": 1.1},
    }
    ledger.complete(number, diverged)  # PostgreSQL's json would reject a raw NaN
    exp = ledger.get(number)
    assert exp.metrics["loss"] is None and exp.metrics["val_rmse"] == 1.5
    assert exp.extra["nonfinite"] == ["final.loss", "history[0].loss", "history[0].val_rmse"]
    assert exp.history == [{"epoch": 1, "loss": None, "val_rmse": None}]
    # A flat document (no "final" block) is read the same way.
    flat = compile_one(ledger, "flat")
    ledger.start(flat)
    ledger.complete(flat, {"loss": 2.0, "recall_at_10": 0.4, "history": []})
    assert ledger.get(flat).metrics["recall_at_10"] == 0.4
    assert ledger.get(flat).extra == {"history": []}


def test_record_compile_validates_its_inputs(ledger: Ledger) -> None:
    from omegaconf import OmegaConf

    with pytest.raises(LedgerError, match="not one string"):
        compile_one(ledger, overrides="model.learning_rate=0.1")
    with pytest.raises(LedgerError, match="resolved_config must be plain JSON data"):
        compile_one(ledger, resolved_config={"when": object()})
    with pytest.raises(LedgerError, match="sweep 41 does not exist"):
        compile_one(ledger, sweep_id=41)
    with pytest.raises(LedgerError, match="config_hash must be a non-empty string"):
        compile_one(ledger, "")
    # A Hydra/OmegaConf config is stored as its resolved plain data.
    cfg = OmegaConf.create({"model": {"lr": 0.1, "lr2": "${model.lr}"}})
    number = compile_one(ledger, resolved_config=cfg)
    assert ledger.get(number).resolved_config == {"model": {"lr": 0.1, "lr2": 0.1}}


# ------------------------------------------------------------------------------ URL, schema
def test_url_resolution_default_env_and_explicit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECFORGE_LEDGER_URL", raising=False)
    with pytest.raises(LedgerNotFound, match="nothing has been recorded yet"):
        Ledger(create=False)
    assert not (tmp_path / ".recforge").exists()  # a read-only open creates nothing
    with Ledger() as default:
        assert default.url == default_url() == f"sqlite:///{tmp_path}/.recforge/ledger.db"
        compile_one(default)
    assert (tmp_path / ".recforge" / "ledger.db").is_file()

    monkeypatch.setenv("RECFORGE_LEDGER_URL", f"sqlite:///{tmp_path / 'env.db'}")
    with Ledger() as from_env:
        assert from_env.list() == []
    with Ledger(tmp_path / "explicit.db") as explicit:  # a bare path is a SQLite file
        assert explicit.url == f"sqlite:///{tmp_path / 'explicit.db'}"
    assert (tmp_path / "env.db").is_file() and (tmp_path / "explicit.db").is_file()
    with pytest.raises(LedgerError, match="needs a SQLite file"):
        Ledger("sqlite://")


def test_plain_postgresql_urls_use_psycopg(postgres_url: str) -> None:
    plain = make_url(postgres_url).set(drivername="postgresql").render_as_string(False)
    assert plain.startswith("postgresql://")
    with Ledger(plain) as ledger:
        assert ledger.display_url.startswith("postgresql+psycopg://")
        assert compile_one(ledger) == 1


def test_connection_errors_are_ledger_errors_without_the_password() -> None:
    with pytest.raises(LedgerError) as info:
        Ledger(f"postgresql://recforge:s3cret@127.0.0.1:{_free_port()}/ledger")
    assert "postgresql+psycopg://recforge:***@127.0.0.1" in str(info.value)
    assert "s3cret" not in str(info.value)


@pytest.mark.slow
def test_a_write_waits_out_a_lock_held_longer_than_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3
    import threading

    from compiler.ledger import store

    monkeypatch.setattr(store, "SQLITE_BUSY_TIMEOUT_S", 0.05)
    path = tmp_path / "locked.db"
    ledger = Ledger(path)
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("BEGIN IMMEDIATE")  # another process holding the write lock for 0.5 s
    release = threading.Timer(0.5, blocker.rollback)
    release.start()
    started = time.monotonic()
    number = compile_one(ledger)  # "database is locked" after 0.05 s, retried until free
    assert time.monotonic() - started >= 0.4
    assert ledger.get(number).status == "compiled"
    release.join()
    blocker.close()
    ledger.close()


def test_a_ledger_opened_before_fork_works_in_the_children(tmp_path: Path) -> None:
    import multiprocessing

    ledger = Ledger(tmp_path / "fork.db")
    compile_one(ledger, "parent")  # the parent's pool now holds a connection

    def child(index: int) -> None:
        for i in range(5):
            compile_one(ledger, f"child-{index}-{i}")

    context = multiprocessing.get_context("fork")
    children = [context.Process(target=child, args=(i,)) for i in range(2)]
    for process in children:
        process.start()
    for process in children:
        process.join(60)
        assert process.exitcode == 0
    compile_one(ledger, "parent-again")  # the parent's own connection still works
    assert len(ledger.list()) == 12
    ledger.close()


def test_schema_version_is_recorded_and_matches_the_current_tables(
    ledger: Ledger, ledger_url: str
) -> None:
    engine = create_engine(ledger_url)
    with engine.connect() as conn:
        assert schema.schema_version(conn) == LATEST_VERSION
        insp = inspect(conn)
        for table in (schema.experiments, schema.sweeps, schema.version_table):
            live = [c["name"] for c in insp.get_columns(table.name)]
            assert live == [c.name for c in table.columns], table.name
        live_indexes = {i["name"] for i in insp.get_indexes(schema.EXPERIMENTS_TABLE)}
        assert live_indexes == {i.name for i in schema.experiments.indexes}
    engine.dispose()


def test_a_version_1_ledger_is_upgraded_in_place(ledger_url: str) -> None:
    from datetime import datetime

    from sqlalchemy import MetaData, Table

    engine = create_engine(ledger_url)
    with engine.begin() as conn:
        assert schema.migrate(conn, schema.MIGRATIONS[:1]) == 1
        old = Table(schema.EXPERIMENTS_TABLE, MetaData(), autoload_with=conn)
        conn.execute(old.insert().values(
            config_hash="v1-hash", model="hybrid_v1", features="cherng_v3", overrides=["a=1"],
            resolved_config=RESOLVED, kind="compile", status="compiled",
            created_at=datetime.now(timezone.utc), artifacts={},
        ))
    engine.dispose()
    with Ledger(ledger_url) as ledger:
        (old_record,) = ledger.list()
        assert old_record.config_hash == "v1-hash" and old_record.resolved_config == RESOLVED
        assert old_record.compiler_version is None and old_record.seeds == {}
        assert old_record.data_hash is None and old_record.pid is None
        ledger.start(old_record.number, host="h", pid=1)  # old rows take part in new features
        ledger.complete(old_record.number, MULTITASK_METRICS, data_hash="d" * 64)
        new = compile_one(ledger, compiler_version="0.1.0", source_digest="s" * 64,
                          seeds={"model.seed": 1}, effective={"epochs": 2})
        record = ledger.get(new)
        assert (record.compiler_version, record.source_digest) == ("0.1.0", "s" * 64)
        assert record.seeds == {"model.seed": 1} and record.effective == {"epochs": 2}
        assert ledger.get(old_record.number).data_hash == "d" * 64
    engine = create_engine(ledger_url)
    with engine.connect() as conn:
        assert schema.schema_version(conn) == LATEST_VERSION == 2
        rows = conn.execute(text("SELECT version, description FROM recforge_schema_version"))
        assert [r.version for r in rows] == [1, 2]
    engine.dispose()


def test_heartbeat_refreshes_a_running_record(ledger: Ledger) -> None:
    from compiler.ledger.liveness import Heartbeat, this_host

    number = compile_one(ledger)
    ledger.start(number, host=this_host(), pid=os.getpid())
    started = ledger.get(number).heartbeat_at
    with Heartbeat(ledger, number, interval=0.05) as beat:
        deadline = time.monotonic() + 20
        while beat.beats < 2:
            assert time.monotonic() < deadline
            time.sleep(0.02)
    assert ledger.get(number).heartbeat_at > started
    assert ledger.get(number).status == "running"  # this process is alive
    ledger.complete(number, MULTITASK_METRICS)
    assert ledger.heartbeat(number) is False  # a finished record is left alone


@pytest.mark.slow
def test_a_stale_heartbeat_reads_as_abandoned(
    ledger: Ledger, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RECFORGE_LEDGER_STALE_S", "0.5")
    elsewhere = compile_one(ledger, "other-host")
    ledger.start(elsewhere, host="another-machine", pid=os.getpid())  # pid means nothing here
    vertex = compile_one(ledger, "vertex")
    ledger.start(vertex, kind="vertex")  # no pid: the job, not a process here, is the run
    assert ledger.get(elsewhere).status == "running"
    time.sleep(0.7)
    assert ledger.get(elsewhere).status == "abandoned"
    assert ledger.get(vertex).status == "running"
    assert [e.number for e in ledger.list(status="abandoned")] == [elsewhere]
    assert [e.number for e in ledger.list(status="running")] == [vertex]
    assert ledger.heartbeat(elsewhere) is True  # a late beat brings it back
    assert ledger.get(elsewhere).status == "running"


def _snapshot(url: str) -> object:
    """What a 'not touched' check compares: file bytes (SQLite) or version rows (PostgreSQL)."""
    if url.startswith("sqlite"):
        return hashlib.sha256(Path(make_url(url).database or "").read_bytes()).hexdigest()
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT version, description FROM recforge_schema_version"))
        state = (sorted(map(tuple, rows)), sorted(inspect(conn).get_table_names()))
    engine.dispose()
    return state


def test_newer_schema_is_refused_and_left_untouched(ledger_url: str) -> None:
    with Ledger(ledger_url) as ledger:
        compile_one(ledger)

    def future_step(conn: object) -> None:
        """A version from the future: a new column."""
        from sqlalchemy import Connection

        assert isinstance(conn, Connection)
        column = Column("priority", Integer)
        conn.execute(
            text(
                f"ALTER TABLE recforge_experiments ADD COLUMN {column.name} "
                f"{column.type.compile(conn.dialect)}"
            )
        )

    engine = create_engine(ledger_url)
    calls = []
    steps = (*schema.MIGRATIONS, lambda c: (calls.append(1), future_step(c))[1])
    with engine.begin() as conn:
        assert schema.migrate(conn, steps) == LATEST_VERSION + 1
    with engine.begin() as conn:
        assert schema.migrate(conn, steps) == LATEST_VERSION + 1  # already there: a no-op
    assert calls == [1]
    engine.dispose()

    before = _snapshot(ledger_url)
    with pytest.raises(LedgerError, match=f"schema version {LATEST_VERSION + 1}.*newer recforge"):
        Ledger(ledger_url)
    assert _snapshot(ledger_url) == before


def test_a_foreign_table_of_the_same_name_is_not_adopted(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    engine = create_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE recforge_experiments (id INTEGER)"))
    engine.dispose()
    with pytest.raises(LedgerError, match="not made by recforge"):
        Ledger(path)


# ------------------------------------------------------------------------------ concurrency
WORKER = textwrap.dedent(
    """
    import os, sys, time
    from compiler.ledger import Ledger

    url, proc, count, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    print("ready", flush=True)
    while not os.path.exists(go):  # start together, for real contention
        time.sleep(0.002)
    ledger = Ledger(url)  # on a fresh database this races the schema migration, too
    sweep = ledger.next_sweep_id(f"proc {proc}")
    for i in range(count):
        n = ledger.record_compile(
            f"hash-{proc}-{i}", "m", "f", [f"proc={proc}", f"i={i}"], {"i": i}, sweep_id=sweep
        )
        ledger.start(n)
        ledger.complete(n, {"final": {"loss": float(i), "recall_at_100": proc / 10}})
    print("sweep", sweep, flush=True)
    """
)


@pytest.mark.parametrize("procs,per_proc", [(8, 25)])
@pytest.mark.slow
def test_concurrent_writers_lose_no_records(ledger_url: str, procs: int, per_proc: int) -> None:
    go = Path(tempfile.mkdtemp()) / "go"
    env = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, ledger_url, str(p), str(per_proc), str(go)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for p in range(procs)
    ]
    for worker in workers:
        assert worker.stdout is not None and worker.stdout.readline().strip() == "ready"
    started = time.monotonic()
    go.touch()
    outputs = [worker.communicate(timeout=300) for worker in workers]
    elapsed = time.monotonic() - started
    for worker, (_out, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err
    shutil.rmtree(go.parent)

    with Ledger(ledger_url) as ledger:
        rows = ledger.list()
    total = procs * per_proc
    assert len(rows) == total
    assert len({e.number for e in rows}) == total
    assert {e.config_hash for e in rows} == {
        f"hash-{p}-{i}" for p in range(procs) for i in range(per_proc)
    }
    assert {e.status for e in rows} == {"completed"}
    if ledger_url.startswith("sqlite"):
        assert {e.number for e in rows} == set(range(1, total + 1))
    sweeps = {int(out.split()[-1]) for out, _ in outputs}
    assert len(sweeps) == procs
    print(f"{ledger_url.split(':')[0]}: {procs}x{per_proc} records x 3 writes in {elapsed:.1f}s")
