"""A ledger that tells the truth: the URL preflight, provenance, abandoned runs, the leaderboard.

Bad ledger values are refused before anything is written (exit 2, one ``error:`` line, no
file, no ledger row); a run's record holds what can change its result, and ``runs compare``
lists those differences; a SIGKILLed run reads as ``abandoned``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pandas as pd
import pytest

from compiler.__main__ import main as compiler_main
from compiler.errors import ConfigError
from compiler.ledger import Ledger, LedgerError, check_ledger_url
from compiler.ledger.liveness import pid_alive
from compiler.ledger.provenance import record_fields, redact, source_digest
from compiler.runs import main as runs_main
from tests.compile_helpers import ROOT
from tests.tiny_data import tiny_transactions

NOT_A_DB = "name,value\nsomething,1\n"


def files_under(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and "Traceback" not in err
    return lines[0]


@pytest.fixture
def team_ledger(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, int]:
    """A working directory with a team ledger in $RECFORGE_LEDGER_URL holding one record."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'team.db'}"
    monkeypatch.setenv("RECFORGE_LEDGER_URL", url)
    with Ledger(url) as ledger:
        ledger.record_compile("h0", "hybrid_v1", "cherng_v3", [], {})
        count = len(ledger.list())
    return url, count


# ------------------------------------------------------------------------------ URL preflight
@pytest.mark.parametrize(
    ("value", "where", "expected"),
    [
        ("garbage", "ledger", "got 'garbage'"),
        ("::::", "env", "RECFORGE_LEDGER_URL: expected a ledger URL"),
        ("postgresql:/nobody@127.0.0.1/x", "ledger",
         "did you mean 'postgresql://nobody@127.0.0.1/x'?"),
        ("notes.db", "ledger", "which is not a database"),
        ("postgresql://nobody@127.0.0.1:port/x", "ledger", "got 'postgresql://nobody@"),
    ],
    ids=["garbage", "env-colons", "postgresql-typo", "not-a-database", "bad-port"],
)
def test_a_bad_ledger_is_one_error_before_anything_is_written(
    team_ledger: tuple[str, int], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str], value: str, where: str, expected: str,
) -> None:
    url, rows = team_ledger
    (tmp_path / "notes.db").write_text(NOT_A_DB)
    before = files_under(tmp_path)
    notes = (tmp_path / "notes.db").read_bytes()
    args = ["model=hybrid_v1", f"output_dir={tmp_path / 'out'}"]
    if where == "env":
        monkeypatch.setenv("RECFORGE_LEDGER_URL", value)
    else:
        args.append(f"ledger={value}")
    assert compiler_main(args) == 2
    captured = capsys.readouterr()
    assert expected in one_error_line(captured.err)
    assert files_under(tmp_path) == before  # no emitted module, no new SQLite file
    assert (tmp_path / "notes.db").read_bytes() == notes
    with Ledger(url) as ledger:
        assert len(ledger.list()) == rows  # and no ledger row


@pytest.mark.parametrize(
    ("env", "args", "key"),
    [
        ({"RECFORGE_LEDGER_URL": "::::"}, [], "error: RECFORGE_LEDGER_URL: expected"),
        ({}, ["ledger=postgresql:/nobody@127.0.0.1/x"],
         "did you mean 'postgresql://nobody@127.0.0.1/x'?"),
    ],
    ids=["env", "typo"],
)
@pytest.mark.slow
def test_the_real_cli_refuses_a_bad_ledger_and_leaves_no_file(
    tmp_path: Path, env: dict[str, str], args: list[str], key: str
) -> None:
    """As a user runs it: a subprocess in a scratch working directory, which stays empty."""
    from tests.preflight_helpers import assert_rejected

    work = tmp_path / "work"
    work.mkdir()
    assert_rejected(["model=hybrid_v1", f"output_dir={tmp_path / 'out'}", "run=local", *args],
                    tmp_path=tmp_path, env=env, key=key, cwd=work)
    assert list(work.iterdir()) == [] and not (tmp_path / "out").exists()


def test_check_ledger_url_accepts_urls_and_sqlite_paths_and_creates_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("RECFORGE_LEDGER_URL")
    deep = tmp_path / "a" / "b" / "ledger.sqlite3"
    assert check_ledger_url(str(deep)) == f"sqlite:///{deep}"
    assert check_ledger_url("rel.db") == f"sqlite:///{tmp_path / 'rel.db'}"
    assert check_ledger_url(f"sqlite:///{deep}") == f"sqlite:///{deep}"
    for url in ("postgresql://nobody@127.0.0.1/x", "postgresql+psycopg://u:pw@host:5432/db",
                "postgresql:///local_socket_db"):
        assert check_ledger_url(url) == url
    assert check_ledger_url() == f"sqlite:///{tmp_path / '.recforge' / 'ledger.db'}"
    (tmp_path / "empty.db").touch()  # an empty file is an empty SQLite database
    assert check_ledger_url("empty.db").endswith("empty.db")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.db"]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "got ''"),
        ("ledger.txt", "ending in .db, .sqlite or .sqlite3, got 'ledger.txt'"),
        ("mysql://u@h/db", "expected a sqlite or postgresql[+psycopg] URL"),
        ("postgres://u@h/db", "did you mean 'postgresql://u@h/db'?"),
        ("postgresql+psycopg2://u@h/db", "recforge uses psycopg 3"),
        ("sqlite://", "needs a SQLite file"),
        ("sqlite:///:memory:", "needs a SQLite file"),
        ("postgresql://", "expected postgresql://user@host/database"),
        ("sqlite:x.db", "did you mean 'sqlite:///x.db'?"),
        ("dir.db", "got the directory"),
        ("afile.db/ledger.db", "is a file"),
    ],
)
def test_check_ledger_url_refuses_everything_else(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "dir.db").mkdir()
    (tmp_path / "afile.db").write_text("")
    with pytest.raises(ConfigError) as info:
        check_ledger_url(value)
    assert info.value.key == "ledger"
    assert message in str(info.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile.db", "dir.db"]


def test_the_variable_is_named_when_it_is_the_bad_value(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECFORGE_LEDGER_URL", "::::")
    with pytest.raises(ConfigError) as info:
        check_ledger_url()
    assert info.value.key == "RECFORGE_LEDGER_URL"
    assert check_ledger_url("x.db").endswith("/x.db")  # an explicit value wins


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan"])
def test_heartbeat_settings_are_checked_with_the_url(
    monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("RECFORGE_LEDGER_STALE_S", value)
    with pytest.raises(ConfigError, match=f"RECFORGE_LEDGER_STALE_S: expected a positive "
                                          f"number of seconds, got '{value}'"):
        check_ledger_url("x.db")


def test_ledger_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "results.db"
    path.write_text(NOT_A_DB)
    with pytest.raises(LedgerError) as info:
        Ledger(path)
    assert "\n" not in str(info.value) and "not a database" in str(info.value)
    assert path.read_text() == NOT_A_DB
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.db"]  # no -wal, no -shm


@pytest.mark.parametrize("name", ["results.db", "results.csv"])
@pytest.mark.slow
def test_runs_cli_on_a_file_that_is_not_a_ledger(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_text(NOT_A_DB)
    for command in (["list"], ["show", "1"], ["compare", "1", "2"]):
        done = subprocess.run(
            [sys.executable, "-m", "compiler.runs", *command, "--ledger", str(path)],
            cwd=ROOT, capture_output=True, text=True, timeout=120,
        )
        assert done.returncode == 2, done
        assert done.stdout == ""
        one_error_line(done.stderr)
    assert path.read_text() == NOT_A_DB
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


# ------------------------------------------------------------------------------ provenance
def test_source_digest_covers_compiler_and_plugins_and_is_cached() -> None:
    digest = source_digest()
    assert re.fullmatch(r"[0-9a-f]{64}", digest)
    started = time.perf_counter()
    assert source_digest() == digest
    assert time.perf_counter() - started < 0.01  # cached per process


def test_secrets_are_not_stored() -> None:
    data = {"source": "postgresql://etl:hunter2@db/x", "api_key": "abc", "split": {"seed": 1},
            "custom_config": {"TOKEN": "t0k", "epochs": 2}}
    assert redact(data) == {"source": "postgresql://etl:***@db/x", "api_key": "***",
                            "split": {"seed": 1}, "custom_config": {"TOKEN": "***", "epochs": 2}}


def composed_record(*overrides: str) -> dict:
    from compiler.core.compose import compose
    from compiler.core.validate import validate

    cfg = compose(["model=hybrid_v1", *overrides])
    return record_fields(cfg, validate(cfg).data)


def test_the_record_holds_data_run_submit_seeds_and_the_effective_epochs() -> None:
    fields = composed_record("model.epochs=20", "run=local", "run.epochs=2", "data.split.seed=7")
    stored = fields["resolved_config"]
    assert {"model", "features", "data", "run", "submit", "objective"} <= set(stored)
    assert stored["run"]["epochs"] == 2 and stored["submit"] is None
    assert stored["data"]["source"] == "default"
    assert fields["seeds"] == {"model.seed": 42, "data.split.seed": 7}
    assert fields["effective"]["epochs"] == 2
    assert fields["effective"]["epochs_from"] == "run.epochs"
    assert fields["effective"]["batch_size_from"] == "model.batch_size"
    assert fields["source_digest"] == source_digest() and fields["compiler_version"]


# ------------------------------------------------------------------------------ abandoned
KILLED_RUN = textwrap.dedent(
    """
    import sys, time
    from compiler.track import tracked
    from compiler.ledger import Ledger

    ledger = Ledger(sys.argv[1])
    number = ledger.record_compile("h-killed", "hybrid_v1", "cherng_v3", [], {})

    def work():
        print(number, flush=True)
        time.sleep(600)

    tracked(ledger, number, "local", work)
    """
)


@pytest.mark.slow
def test_a_sigkilled_run_reads_as_abandoned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    env = {**os.environ, "RECFORGE_LEDGER_HEARTBEAT_S": "0.2"}
    process = subprocess.Popen([sys.executable, "-c", KILLED_RUN, url], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, text=True)
    assert process.stdout is not None
    number = int(process.stdout.readline())
    with Ledger(url) as ledger:
        first = ledger.get(number)
        assert first.status == "running" and first.pid == process.pid
        deadline = time.monotonic() + 30
        while ledger.get(number).heartbeat_at == first.heartbeat_at:  # the thread beats
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert runs_main(["list", "--ledger", url, "--status", "running"]) == 0
    assert re.search(rf"^\s+{number}\s+running", capsys.readouterr().out, re.M)

    process.send_signal(signal.SIGKILL)
    process.wait(30)
    assert not pid_alive(process.pid)
    assert runs_main(["list", "--ledger", url]) == 0
    assert re.search(rf"^\s+{number}\s+abandoned\s+local", capsys.readouterr().out, re.M)
    assert runs_main(["show", str(number), "--ledger", url]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^status\s+abandoned", out, re.M) and "running (its process is gone)" in out
    with Ledger(url) as ledger:
        assert [e.number for e in ledger.list(status="abandoned")] == [number]
        assert ledger.list(status="running") == []
        assert ledger.get(number).stored_status == "running"  # reading changed nothing
        ledger.fail(number, "killed")  # `runs fail` records the end of it
        assert ledger.get(number).status == "failed"


# ------------------------------------------------------------------------------ leaderboard
@pytest.mark.slow
def test_a_sweep_ends_with_its_leaderboard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    code = compiler_main(["-m", "model=hybrid_v1", "model.learning_rate=0.001,0.01",
                          f"ledger=sqlite:///{tmp_path}/ledger.db",
                          f"sweep_dir={tmp_path / 'sweeps'}"])
    assert code == 0
    out = capsys.readouterr().out
    assert "objective recall_at_100 (higher is better)" in out
    board = out[out.index("objective recall_at_100"):]
    # Compiled only: no objective value, so no rank; each point named by what sets it apart.
    assert re.search(r"—\s+1\s+model\.learning_rate=0\.001\s+compiled\s+—", board)
    assert re.search(r"—\s+2\s+model\.learning_rate=0\.01\s+compiled\s+—", board)


# ------------------------------------------------------------------------------ real runs
def write_csv(path: Path, seed: int) -> Path:
    frame = tiny_transactions(rows=1000, seed=seed)
    frame["date"] = pd.to_datetime(frame["date"], unit="s").dt.strftime("%Y-%m-%d")
    frame.to_csv(path, index=False)
    return path


@pytest.mark.slow
def test_compare_of_two_real_runs_lists_run_epochs_and_data_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's scenario, made tiny: a 2-epoch run on one dataset against a 1-epoch run on
    another CSV, both with model.epochs=20 -- once reported as "identical"."""
    monkeypatch.setenv("COLUMNS", "250")
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    common = ["model=retrieval_v1", "model.epochs=20", "model.batch_size=256", "run=local",
              f"run.runs_root={tmp_path / 'runs'}", f"run.cache_dir={tmp_path / 'cache'}",
              "run.baselines=false", f"ledger={ledger}", f"output_dir={tmp_path / 'out'}"]
    first = write_csv(tmp_path / "first.csv", seed=5)
    other = write_csv(tmp_path / "other.csv", seed=6)
    assert compiler_main([*common, f"data.source={first}", "run.epochs=2"]) == 0
    assert compiler_main([*common, f"data.source={other}", "run.epochs=1"]) == 0
    capsys.readouterr()
    with Ledger(ledger) as records:
        a, b = records.list()
    assert a.status == b.status == "completed"
    assert a.config_hash == b.config_hash  # the code is the same; what ran is not
    assert a.data_hash and b.data_hash and a.data_hash != b.data_hash
    assert len(a.history) == 2 and len(b.history) == 1  # the epochs that really trained
    assert runs_main(["compare", "1", "2", "--ledger", ledger]) == 0
    out = capsys.readouterr().out
    assert re.search(r"run\.epochs\s+2\s+1", out)
    assert re.search(rf"data\.source\s+{re.escape(str(first))}\s+{re.escape(str(other))}", out)
    assert re.search(r"effective epochs\s+2\s+1", out)
    assert "data hash" in out and "identical" not in out
    assert runs_main(["show", "1", "--ledger", ledger]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^epochs\s+2 \(run\.epochs\)", out, re.M)
    assert re.search(r"model\.epochs\s+2 \(from run\.epochs; model\.epochs says 20\)", out)
    assert a.data_hash in out


@pytest.mark.slow
def test_a_sigkilled_local_run_is_abandoned(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    csv = write_csv(tmp_path / "data.csv", seed=7)
    process = subprocess.Popen(
        [sys.executable, "-m", "compiler", "model=ranking_v1", "run=local", "run.epochs=1",
         f"data.source={csv}", f"run.runs_root={tmp_path / 'runs'}", "run.name=killed",
         f"run.cache_dir={tmp_path / 'cache'}", f"ledger={ledger}",
         f"output_dir={tmp_path / 'out'}"],
        cwd=ROOT, env={**os.environ, "RECFORGE_LEDGER_HEARTBEAT_S": "0.5"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    manifest = tmp_path / "runs" / "killed" / "run.json"
    deadline = time.monotonic() + 180
    while not manifest.exists():
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.2)
    with Ledger(ledger) as records:
        assert records.get(1).status == "running"
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    assert runs_main(["list", "--ledger", ledger]) == 0
    assert re.search(r"^\s+1\s+abandoned\s+local", capsys.readouterr().out, re.M)


@pytest.mark.slow
def test_a_real_local_sweep_ends_with_a_ranked_leaderboard(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    ledger = f"sqlite:///{tmp_path / 'ledger.db'}"
    csv = write_csv(tmp_path / "data.csv", seed=9)
    code = compiler_main(["-m", "model=retrieval_v1", "model.learning_rate=0.0001,0.05",
                          "run=local", "run.epochs=1", "run.batch_size=128", "run.baselines=false",
                          f"data.source={csv}", f"run.runs_root={tmp_path / 'runs'}",
                          f"run.cache_dir={tmp_path / 'cache'}", f"ledger={ledger}",
                          f"sweep_dir={tmp_path / 'sweeps'}",
                          f"hydra.sweep.dir={tmp_path / 'multirun'}"])
    assert code == 0
    out = capsys.readouterr().out
    with Ledger(ledger) as records:
        points = records.list(sweep_id=1, sort_by="recall_at_100")  # best first
    assert [p.status for p in points] == ["completed", "completed"]
    board = out[out.index("sweep #1 · objective recall_at_100 (higher is better)"):]
    rows = re.findall(r"^\s+(\d)\s+(\d)\s+(model\.learning_rate=\S+)\s+completed\s+(\S+)",
                      board, re.M)
    assert [(rank, int(number)) for rank, number, _, _ in rows] == [
        ("1", points[0].number), ("2", points[1].number)]
    for (_, _, override, value), point in zip(rows, points, strict=True):
        assert override in point.overrides
        assert float(value) == pytest.approx(point.metric("recall_at_100"), rel=1e-3)
