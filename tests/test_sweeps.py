"""``-m`` sweeps: preflight, dry run, dedupe, a failing point, the ledger."""

from __future__ import annotations

import json
import os
import time

import pandas as pd
import pytest

from compiler.__main__ import main
from compiler.ledger import Ledger
from compiler.sweeps.sweep import expand, preflight
from tests.tiny_data import tiny_transactions


def test_expand_is_the_cartesian_product() -> None:
    points = expand(["model=hybrid_v1,retrieval_v1",
                     "model.learning_rate=0.1,0.2", "features=cherng_v3"])
    assert len(points) == 4
    assert ["model=retrieval_v1", "model.learning_rate=0.2", "features=cherng_v3"] in points


@pytest.mark.slow
def test_identical_points_compile_once() -> None:
    report = preflight(["model=hybrid_v1", "model.epochs=20,5,20", "dry_run=true"])
    assert [p.same_as for p in report.points] == [None, None, 1]
    assert len(report.unique) == 2


def test_an_invalid_point_fails_the_sweep_before_anything_runs(tmp_path, capsys) -> None:
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    code = main(["-m", "model=hybrid_v1", "model.buyer_tower.layers=[128,64,32],[128,0,32]",
                 f"ledger={ledger}", f"sweep_dir={tmp_path / 'sweeps'}"])
    assert code == 2
    err = capsys.readouterr().err
    assert "point #2 [model=hybrid_v1 model.buyer_tower.layers=[128,0,32]" in err
    assert "model.buyer_tower.layers[1]" in err
    assert not (tmp_path / "sweeps").exists()
    assert not (tmp_path / "ledger.db").exists()


@pytest.mark.slow
def test_a_missing_data_file_fails_the_sweep_before_anything_runs(tmp_path, capsys) -> None:
    from tests.preflight_helpers import assert_rejected

    line = assert_rejected(["-m", "model.learning_rate=0.001,0.01", "run=local",
                            f"data.source={tmp_path / 'missing.csv'}",
                            f"sweep_dir={tmp_path / 'sweeps'}",
                            f"run.runs_root={tmp_path / 'runs'}"],
                           tmp_path=tmp_path, key="data.source", in_process=True, capsys=capsys)
    assert line.startswith("error: sweep point #1 [")
    assert not (tmp_path / "sweeps").exists() and not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_dry_run_of_a_100_point_sweep_runs_nothing(tmp_path, capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    started = time.perf_counter()
    code = main(["-m", "model=hybrid_v1,retrieval_v1,ranking_v1,hybrid_v1",
                 "model.learning_rate=0.001,0.002,0.005,0.01,0.02",
                 "model.batch_size=256,512,1024,2048,4096", "run=local", "dry_run=true",
                 f"ledger=sqlite:///{tmp_path}/ledger.db", f"sweep_dir={tmp_path / 'sweeps'}",
                 f"run.runs_root={tmp_path / 'runs'}"])
    elapsed = time.perf_counter() - started
    assert code == 0
    out = capsys.readouterr().out
    assert "100 point(s), 75 distinct" in out
    assert "same as #" in out and "compile, run locally" in out
    assert not (tmp_path / "sweeps").exists() and not (tmp_path / "runs").exists()
    assert not (tmp_path / "ledger.db").exists()
    assert elapsed < 60  # the benchmark reports the real figure; this only guards regressions


@pytest.mark.slow
def test_sweep_compiles_each_point_into_its_own_directory(tmp_path, capsys) -> None:
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    code = main(["-m", "model=hybrid_v1,retrieval_v1", "model.learning_rate=0.001,0.01",
                 f"ledger={ledger}", f"sweep_dir={tmp_path / 'sweeps'}"])
    assert code == 0
    directories = sorted(p.name for p in (tmp_path / "sweeps").iterdir())
    assert len(directories) == 4
    for directory in directories:
        manifest = json.loads((tmp_path / "sweeps" / directory / "manifest.json").read_text())
        assert directory.endswith(manifest["config_hash"])
    with Ledger(ledger) as records:
        experiments = records.list()
    assert len(experiments) == 4
    assert {e.status for e in experiments} == {"compiled"}
    assert len({e.sweep_id for e in experiments}) == 1


@pytest.mark.slow
def test_local_sweep_records_runs_and_a_failing_point_does_not_stop_the_others(
        tmp_path, capsys) -> None:
    frame = tiny_transactions(rows=1200, seed=11)
    frame["date"] = pd.to_datetime(frame["date"], unit="s").dt.strftime("%Y-%m-%d")
    csv = tmp_path / "data.csv"
    frame.to_csv(csv, index=False)
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    # A CSV without the feature columns passes the preflight (it reads no data) but breaks
    # its runs when they load it.
    broken = tmp_path / "broken.csv"
    broken.write_text("something_else\n1\n2\n")
    code = main(["-m", "model=hybrid_v1", "model.learning_rate=0.001,0.01",
                 "run=local", "run.epochs=1", "run.batch_size=128",
                 f"data.source={csv},{broken}",
                 f"run.runs_root={tmp_path / 'runs'}", f"run.cache_dir={tmp_path / 'cache'}",
                 f"ledger={ledger}", f"sweep_dir={tmp_path / 'sweeps'}"])
    assert code == 1  # some points failed, and the sweep says so
    with Ledger(ledger) as records:
        completed = records.list(status="completed", sort_by="recall_at_100")
        failed = records.list(status="failed")
    assert len(completed) == 2 and len(failed) == 2
    assert all(e.metrics["recall_at_100"] is not None for e in completed)
    assert all(e.error for e in failed)


@pytest.mark.slow
def test_optuna_study_of_two_trials_on_tiny_data(tmp_path, capsys) -> None:
    frame = tiny_transactions(rows=1000, seed=13)
    frame["date"] = pd.to_datetime(frame["date"], unit="s").dt.strftime("%Y-%m-%d")
    csv = tmp_path / "data.csv"
    frame.to_csv(csv, index=False)
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    code = main(["-m", "+experiment=tune_hybrid", "hydra.sweeper.n_trials=2", "run=local",
                 "run.epochs=1", "run.batch_size=128", f"data.source={csv}",
                 f"run.runs_root={tmp_path / 'runs'}", f"run.cache_dir={tmp_path / 'cache'}",
                 f"ledger={ledger}", f"sweep_dir={tmp_path / 'sweeps'}",
                 f"hydra.sweep.dir={tmp_path / 'multirun'}"])
    assert code == 0
    with Ledger(ledger) as records:
        runs = records.list(status="completed")
    assert len(runs) == 2
    learning_rates = {e.resolved_config["model"]["learning_rate"] for e in runs}
    assert len(learning_rates) == 2 and all(3e-4 <= lr <= 3e-2 for lr in learning_rates)
    best = (tmp_path / "multirun" / "optimization_results.yaml").read_text()
    assert "best_value" in best


@pytest.mark.slow
def test_joblib_workers_record_their_points_under_the_sweep(tmp_path, capsys) -> None:
    # The sweep id reaches the launcher's worker processes as an argument (the pickled task's
    # closure), not through the environment.
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    with Ledger(ledger) as records:
        earlier = records.next_sweep_id("an earlier sweep")
    code = main(["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                 "model.learning_rate=0.001,0.01", f"ledger={ledger}",
                 f"sweep_dir={tmp_path / 'sweeps'}"])
    assert code == 0
    assert "RECFORGE_SWEEP_ID" not in os.environ
    with Ledger(ledger) as records:
        experiments = records.list()
    assert len(experiments) == 2
    assert {e.sweep_id for e in experiments} == {earlier + 1}
