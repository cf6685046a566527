"""``run=local``: the whole pipeline on one machine, on tiny data the tests write as CSV."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from compiler.__main__ import main
from compiler.ledger import Ledger
from tests.compile_helpers import ROOT
from tests.preflight_helpers import assert_rejected
from tests.tiny_data import tiny_transactions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("local")
    frame = tiny_transactions(rows=1500, seed=5)
    frame["date"] = pd.to_datetime(frame["date"], unit="s").dt.strftime("%Y-%m-%d")
    csv = root / "transactions.csv"
    frame.to_csv(csv, index=False)
    return {"root": root, "csv": csv, "runs": root / "runs", "cache": root / "cache"}


def common(ws: dict[str, Path], *extra: str) -> list[str]:
    return [
        "features=cherng_v3", "run=local", f"output_dir={ws['root'] / 'emitted'}",
        f"data.source={ws['csv']}", f"run.runs_root={ws['runs']}",
        f"run.cache_dir={ws['cache']}", "run.epochs=1", "model.batch_size=256", *extra,
    ]


def run_dirs(ws: dict[str, Path]) -> set[Path]:
    return set(ws["runs"].iterdir()) if ws["runs"].exists() else set()


def status_of(run_dir: Path) -> str:
    return json.loads((run_dir / "run.json").read_text())["status"]


def test_date_split_run_completes_with_metrics_and_baselines(workspace, capsys) -> None:
    before = run_dirs(workspace)
    ledger_url = f"sqlite:///{workspace['root'] / 'ledger.db'}"
    code = main(common(workspace, "model=hybrid_v1", "data.split.kind=date",
                       "data.split.eval_start=2024-07-01", "data.split.test_start=2024-10-01",
                       "run.name=date-split", f"ledger={ledger_url}"))
    assert code == 0
    (run_dir,) = run_dirs(workspace) - before
    assert status_of(run_dir) == "completed"
    for part in ("transform/transform_graph", "transform/transformed_examples/Split-test",
                 "serving_model/saved_model.pb", "modules/trainer_module.py",
                 "modules/manifest.json", "model_run/training_metrics.json", "model_run/logs"):
        assert (run_dir / part).exists(), part
    metrics = json.loads((run_dir / "model_run" / "training_metrics.json").read_text())
    assert {"recall_at_100", "test_rmse"} <= set(metrics["final"])
    assert set(metrics["baselines"]) == {"most_popular", "buy_again", "cooccurrence",
                                         "train_mean", "per_buyer_mean", "per_product_mean"}
    assert {"recall_at_100", "ndcg_at_10", "mrr"} <= set(metrics["baselines"]["buy_again"])
    best = metrics["best_baseline"]["recall_at_100"]
    assert best["value"] == max(values["recall_at_100"] for values in
                                metrics["baselines"].values() if "recall_at_100" in values)
    out = capsys.readouterr().out
    assert "best baseline" in out and "recall_at_100" in out
    row = next(line for line in out.splitlines() if line.startswith("│ recall_at_100 "))
    assert best["name"] in row and f"{best['value']:.4f}" in row
    lower = metrics["final"]["recall_at_100"] < best["value"]
    assert ("below baseline: recall_at_100" in out) == lower
    # The ledger row keeps every baseline beside the model's metrics.
    with Ledger(ledger_url) as ledger:
        record = max(ledger.list(), key=lambda experiment: experiment.number)
    assert record.extra["baselines"] == metrics["baselines"]
    assert record.extra["best_baseline"] == metrics["best_baseline"]


def test_transform_from_reuses_a_finished_run(workspace, capsys) -> None:
    source = workspace["runs"] / "date-split"
    code = main(common(workspace, "model=ranking_v1", f"run.transform_from={source}",
                       "run.name=reuse"))
    assert code == 0
    assert status_of(workspace["runs"] / "reuse") == "completed"
    assert "Transform skipped" in capsys.readouterr().out


def test_model_change_alone_hits_the_transform_cache(workspace, capsys) -> None:
    assert main(common(workspace, "model=retrieval_v1", "run.name=first")) == 0
    capsys.readouterr()
    assert main(common(workspace, "model=ranking_v1", "run.name=second")) == 0
    assert "Transform cache hit" in capsys.readouterr().out
    metrics = json.loads((workspace["runs"] / "second" / "model_run" /
                          "training_metrics.json").read_text())
    assert metrics["model_type"] == "ranking"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["data.source=/nonexistent/transactions.csv"], "data file not found"),
        (["+data.columns.cust_value=CustomerValue"], "CustomerValue"),
        (["data.split.kind=date", "data.split.eval_start=2024-07-01",
          "data.split.test_start=2030-01-01"], "empty"),
    ],
    ids=["missing-file", "missing-column", "empty-split"],
)
def test_bad_data_input_is_one_clear_error(workspace, capsys, extra, message) -> None:
    before = run_dirs(workspace)
    code = main(common(workspace, "model=ranking_v1", *extra))
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert all(status_of(d) != "completed" for d in run_dirs(workspace) - before)


def test_transform_from_without_a_transform_output(workspace, capsys, tmp_path) -> None:
    before = run_dirs(workspace)
    code = main(common(workspace, "model=ranking_v1", f"run.transform_from={tmp_path}"))
    assert code == 2
    assert "run.transform_from: expected a Transform output" in capsys.readouterr().err
    assert run_dirs(workspace) == before


def test_transform_from_that_does_not_match_the_features(workspace, capsys) -> None:
    source = workspace["runs"] / "date-split"
    code = main(common(workspace, "model=ranking_v1", f"run.transform_from={source}",
                       "features.buyer.1.cyclical=[weekly,yearly]"))
    assert code == 2
    assert ("expected a Transform made with features.buyer[1].cyclical=[weekly,yearly], got "
            "[weekly,monthly]") in capsys.readouterr().err


def test_transform_from_with_other_bucket_counts_stops_before_training(workspace, capsys,
                                                                       tmp_path) -> None:
    # The run that made it used 100 buckets; training on it with 5 once died inside Keras
    # with "indices[0] = 71 is not in [0, 5)".
    source = workspace["runs"] / "date-split"
    before = run_dirs(workspace)
    line = assert_rejected(
        common(workspace, "model=hybrid_v1", f"run.transform_from={source}",
               "features.buyer.2.bucketize.buckets=5"),
        tmp_path=tmp_path, key="run.transform_from", in_process=True, capsys=capsys)
    assert "features.buyer[2].bucketize.buckets=5, got 100" in line
    assert run_dirs(workspace) == before


#: What only libraries print: TensorFlow/absl (the C++ prefixes too), Beam, Keras.
LIBRARY_NOISE = ("WARNING", "E0000", "I0000", "W0000", "Unparseable", "non-serializable")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "compiler", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)


def test_the_main_job_prints_only_recforge_lines(workspace) -> None:
    # The README's main job (python -m compiler model=hybrid_v1 features=cherng_v3 run=local)
    # on tiny data, Transform included.
    completed = cli("model=hybrid_v1",
                    *common(workspace, "run.name=quiet", "run.transform_cache=false"))
    assert completed.returncode == 0, completed.stderr
    noisy = [line for line in (completed.stdout + completed.stderr).splitlines()
             if any(token in line for token in LIBRARY_NOISE)]
    assert noisy == []
    assert completed.stderr == ""
    run_dir = workspace["runs"] / "quiet"
    assert f"{run_dir / 'run.log'}" in completed.stdout
    for label in ("load data", "Transform (", "train and evaluate", "baselines"):
        assert re.search(rf"^  {re.escape(label)}.* … \d+\.\d s$", completed.stdout,
                         re.MULTILINE), label
    assert "recall_at_100" in completed.stdout
    log = (run_dir / "run.log").read_text()
    assert "non-serializable" in log and ("I0000" in log or "E0000" in log)
    manifest = json.loads((run_dir / "run.json").read_text())
    assert len(manifest["data_hash"]) == 64
    record = json.loads((run_dir / "transform" / "recforge_transform.json").read_text())
    assert record["data_hash"] == manifest["data_hash"]


def test_verbose_shows_library_output(workspace) -> None:
    completed = cli("--verbose", "model=hybrid_v1",
                    *common(workspace, "run.name=verbose",
                            f"run.transform_from={workspace['runs'] / 'quiet'}"))
    assert completed.returncode == 0, completed.stderr
    assert "non-serializable" in completed.stderr
    assert not (workspace["runs"] / "verbose" / "run.log").exists()


def test_ctrl_c_leaves_no_run_marked_complete(workspace) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "compiler", *common(workspace, "model=hybrid_v1",
                                                   "run.name=interrupted",
                                                   "run.transform_cache=false")],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    manifest = workspace["runs"] / "interrupted" / "run.json"
    deadline = time.monotonic() + 120
    while not manifest.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(1.0)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode != 0, output
    assert status_of(workspace["runs"] / "interrupted") == "interrupted"


def test_a_transform_output_without_its_record_is_checked_through_its_schema(workspace,
                                                                             tmp_path) -> None:
    # What a platform TFX Transform output looks like to recforge: no recforge_transform.json.
    from compiler.core.compose import compose
    from compiler.core.validate import validate
    from compiler.errors import ConfigError
    from compiler.local.transform import check_transform_source
    from compiler.runner.transform_digest import DIGEST_FILE

    copy = Path(shutil.copytree(workspace["runs"] / "date-split" / "transform",
                                tmp_path / "platform"))
    (copy / DIGEST_FILE).unlink()
    same = validate(compose(["model=hybrid_v1", "features=cherng_v3"]))
    assert "features.crosses.buyer[0].hash_buckets" in check_transform_source(str(copy), same)
    other = validate(compose(["model=hybrid_v1", "features=cherng_v3",
                              "features.buyer.2.bucketize.buckets=5"]))
    with pytest.raises(ConfigError, match=r"buckets=5, got 100 \(read from"):
        check_transform_source(str(copy), other)
