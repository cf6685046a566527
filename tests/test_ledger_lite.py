"""A compile recorded through the stdlib sqlite3 (``compiler.ledger.lite``) is the row the
SQLAlchemy ``Ledger`` writes, and reads back identically through it."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from compiler.ledger import LATEST_VERSION, Ledger, LedgerError, check_ledger_url, lite, schema

ROOT = Path(__file__).resolve().parents[1]
RESOLVED = {"model": {"name": "hybrid_v1", "learning_rate": 0.001, "tower": [64, 32]},
            "features": {"name": "cherng_v3"}, "data": None, "objective": "val_rmse"}
ARGS = ("4eda82167788ffb1", "hybrid_v1", "cherng_v3", ["model=hybrid_v1", "ünïcode=é"],
        RESOLVED, {"emitted": "/out/x"})
PROVENANCE = {"compiler_version": "0.1.0", "source_digest": "ab" * 32,
              "seeds": {"model.seed": 42}, "effective": {"epochs": 3, "batch_size": 64}}


def _rows(path: Path) -> list[dict[str, object]]:
    connection = sqlite3.connect(path)
    connection.row_factory = sqlite3.Row
    try:
        rows = connection.execute("SELECT * FROM recforge_experiments ORDER BY number")
        return [dict(row) for row in rows]
    finally:
        connection.close()


def _version(path: Path) -> int:
    connection = sqlite3.connect(path)
    try:
        return int(connection.execute("SELECT max(version) FROM recforge_schema_version")
                   .fetchone()[0])
    finally:
        connection.close()


@pytest.fixture
def ledger_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    Ledger(url).close()  # created and migrated by the SQLAlchemy ledger
    return url


def test_the_lite_schema_version_is_the_ledgers_latest() -> None:
    assert lite.SCHEMA_VERSION == LATEST_VERSION


def test_a_lite_row_equals_the_sqlalchemy_row_and_reads_back_identically(
        ledger_url: str, tmp_path: Path) -> None:
    with Ledger(ledger_url) as ledger:
        sweep = ledger.next_sweep_id("points")
        by_sqlalchemy = ledger.record_compile(*ARGS, sweep_id=sweep, **PROVENANCE)
        by_sqlite3 = lite.record_compile(ledger_url, *ARGS, sweep_id=sweep, **PROVENANCE)
        assert by_sqlite3 == by_sqlalchemy + 1
        # Same column values, byte for byte, but the number and the time of recording.
        first, second = _rows(tmp_path / "ledger.db")
        stamps = [row.pop("created_at") for row in (first, second)]
        assert first.pop("number") == by_sqlalchemy and second.pop("number") == by_sqlite3
        assert first == second
        # The timestamp text has SQLAlchemy's format, and parses back to (about) now in UTC.
        for stamp in stamps:
            assert isinstance(stamp, str)
            parsed = datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f")
            assert abs(parsed - datetime.utcnow()) < timedelta(minutes=1)  # noqa: DTZ003
        old, new = ledger.get(by_sqlalchemy), ledger.get(by_sqlite3)
    assert new.created_at.tzinfo == timezone.utc
    different = {"number", "created_at"}
    assert {k: v for k, v in vars(old).items() if k not in different} == \
        {k: v for k, v in vars(new).items() if k not in different}
    assert (new.kind, new.status, new.sweep_id) == ("compile", "compiled", sweep)
    assert new.overrides == tuple(ARGS[3]) and new.resolved_config == RESOLVED
    assert list(new.resolved_config["model"]) == ["name", "learning_rate", "tower"]
    assert new.seeds == PROVENANCE["seeds"] and new.effective == PROVENANCE["effective"]


def test_empty_provenance_is_null_as_in_the_sqlalchemy_ledger(ledger_url: str,
                                                              tmp_path: Path) -> None:
    with Ledger(ledger_url) as ledger:
        ledger.record_compile(*ARGS)
    lite.record_compile(ledger_url, *ARGS)
    first, second = _rows(tmp_path / "ledger.db")
    for row in (first, second):
        assert row["seeds"] is None and row["effective"] is None and row["sweep_id"] is None
        del row["number"], row["created_at"]
    assert first == second


def test_bad_values_and_a_missing_sweep_are_the_ledgers_errors(ledger_url: str,
                                                               tmp_path: Path) -> None:
    with pytest.raises(LedgerError, match="sweep 7 does not exist"):
        lite.record_compile(ledger_url, *ARGS, sweep_id=7)
    with pytest.raises(LedgerError, match="overrides must be a list"):
        lite.record_compile(ledger_url, "h", "m", "f", "model=x", RESOLVED)
    with pytest.raises(LedgerError, match="plain JSON"):
        lite.record_compile(ledger_url, "h", "m", "f", [], {"x": object()})
    assert _rows(tmp_path / "ledger.db") == []


def test_a_missing_or_empty_file_is_left_to_the_ledger_which_creates_the_schema(
        tmp_path: Path) -> None:
    path = tmp_path / "new" / "ledger.db"
    url = f"sqlite:///{path}"
    assert lite.record_compile(url, *ARGS) is None
    assert not path.exists()  # nothing created: the SQLAlchemy ledger creates and migrates
    path.parent.mkdir()
    path.touch()  # an empty file is an empty SQLite database
    assert lite.record_compile(url, *ARGS) is None
    assert path.stat().st_size == 0
    with Ledger(url) as ledger:
        first = ledger.record_compile(*ARGS)
    assert lite.record_compile(url, *ARGS) == first + 1
    assert _version(path) == LATEST_VERSION


def test_an_older_schema_is_migrated_by_the_ledger_before_the_lite_path_writes(
        tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    url = f"sqlite:///{path}"
    from sqlalchemy import create_engine

    engine = create_engine(url)
    with engine.begin() as conn:
        schema.migrate(conn, schema.MIGRATIONS[:1])  # a version 1 ledger, as recforge left it
    engine.dispose()
    assert lite.record_compile(url, *ARGS, **PROVENANCE) is None  # no version 2 columns yet
    assert _version(path) == 1 and _rows(path) == []
    with Ledger(url) as ledger:  # migrates
        ledger.record_compile(*ARGS, **PROVENANCE)
    number = lite.record_compile(url, *ARGS, **PROVENANCE)
    assert _version(path) == LATEST_VERSION
    with Ledger(url) as ledger:
        assert ledger.get(number).source_digest == PROVENANCE["source_digest"]


def test_a_newer_schema_is_not_written(ledger_url: str, tmp_path: Path) -> None:
    path = tmp_path / "ledger.db"
    connection = sqlite3.connect(path)
    connection.execute("INSERT INTO recforge_schema_version VALUES (99, 'future', "
                       "'2030-01-01 00:00:00.000000')")
    connection.commit()
    connection.close()
    assert lite.record_compile(ledger_url, *ARGS) is None
    assert _rows(path) == []
    with pytest.raises(LedgerError, match="newer recforge"):
        Ledger(ledger_url)


@pytest.mark.parametrize("value", [
    "sqlite:////tmp/a b.db", "sqlite:///rel/x.db", "sqlite:////tmp/a@b:c.db",
    "sqlite+pysqlite:///q.sqlite", "sqlite:///~/x.db", "sqlite:///x%20y.db",
    "sqlite:///a.db?mode=ro",
])
def test_sqlite_urls_resolve_as_sqlalchemy_parses_them(value: str) -> None:
    database = make_url(value).database
    assert check_ledger_url(value) == f"sqlite:///{Path(database).expanduser().resolve()}"


@pytest.mark.slow
def test_the_cli_records_a_compile_without_importing_sqlalchemy_or_tensorflow(
        tmp_path: Path) -> None:
    """The first compile creates the ledger (through SQLAlchemy); the next records through
    sqlite3 and loads neither SQLAlchemy nor TensorFlow."""
    code = (
        "import sys\n"
        "from compiler.__main__ import main\n"
        "code = main(sys.argv[1:])\n"
        "heavy = ('tensorflow', 'sqlalchemy', 'apache_beam', 'pandas')\n"
        "print(sorted({m.split('.')[0] for m in sys.modules if m.split('.')[0] in heavy}))\n"
        "sys.exit(code)\n"
    )
    args = ["model=hybrid_v1", "features=cherng_v3", f"output_dir={tmp_path / 'out'}",
            f"ledger=sqlite:///{tmp_path / 'ledger.db'}"]
    outputs = [subprocess.run([sys.executable, "-c", code, *args], capture_output=True,
                              text=True, cwd=ROOT, check=True).stdout for _ in range(2)]
    assert "experiment #1 recorded" in outputs[0]
    assert outputs[0].strip().splitlines()[-1] == "['sqlalchemy']"  # creating the schema
    assert "experiment #2 recorded" in outputs[1]
    assert outputs[1].strip().splitlines()[-1] == "[]"
    with Ledger(f"sqlite:///{tmp_path / 'ledger.db'}") as ledger:
        first, second = ledger.get(1), ledger.get(2)
    assert first.artifacts == second.artifacts == {"emitted": str(tmp_path / "out")}
    assert first.source_digest == second.source_digest and first.seeds == second.seeds
    assert first.resolved_config == second.resolved_config
