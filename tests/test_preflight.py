"""Issue #11: one preflight before any side effect, one error path.

Every bad input below is rejected before anything is written or recorded: exit 2, one
``error:`` line, no traceback, nothing under ``output_dir`` or ``generated/``, no ledger row
(``tests.preflight_helpers.assert_rejected``). Dry runs of every kind write and record nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from compiler.core.compose import CONF_DIR
from tests.preflight_helpers import GENERATED, assert_rejected, ledger_rows, snapshot

BAD_CONFIGS = [
    # model: names the runtime would reject, and values that cannot train
    (["model.buyer_tower.activation=banana"], "model.buyer_tower.activation"),
    (["model.rating_head.activation=rellu"], "did you mean 'relu'"),
    (["model.top_k=[5,5,10]"], "model.top_k[1]: expected distinct values"),
    (["model.top_k=[5,0]"], "model.top_k[1]: expected a positive integer"),
    (["features.crosses.buyer.0.features=[customer_id,customer_id]"],
     "features.crosses.buyer[0].features: expected two or more different features"),
    (["model.retrieval_weight=0", "model.ranking_weight=0"], "model.ranking_weight"),
    (["model.epochs=0"], "model.epochs: expected a positive integer, got 0"),
    (["model.batch_size=-1"], "model.batch_size"),
    # command: run and submit together
    (["run=local", "submit=vertex"], "submit: expected either run=local"),
    # composition: override grammar, unknown names
    (["model.learning_rate=range(0.1"], "override 'model.learning_rate=range(0.1'"),
    (["modle=x"], "did you mean 'model'"),
    (["--help", "modle=x"], "did you mean 'model'"),
    (["hydra/sweeper/sampler=nosuch"], "hydra/sweeper/sampler"),
    (["model.epochs=${nope}"], "model.epochs: expected an interpolation of an existing key"),
    # sweeps: Hydra's sweeper and launcher settings, the objective, the points
    (["-m", "model.learning_rate=range(0.1"], "override 'model.learning_rate=range(0.1'"),
    (["-m", "hydra/launcher=nosuch", "model.epochs=1,2"], "hydra/launcher"),
    (["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobz=2", "model.epochs=1,2"],
     "did you mean 'n_jobs'"),
    (["-m", "model.learning_rate=0.1,0.2", "objective=recal_at_100"],
     "did you mean 'recall_at_100'"),
    (["-m", "model.epochs=1,0"], "sweep point #2 [model.epochs=0"),
    # early stopping watches a validation metric: a two-way split has none, found before loading
    (["run=local", "model=hybrid_v1", "model.early_stopping={}", "data.split.ratios.train=0.9",
      "data.split.ratios.eval=0"], "model.early_stopping: expected data with an eval split"),
    # a two-way split writes no val_* metric, so a sweep cannot optimise one
    (["-m", "run=local", "model.epochs=1,2", "data.split.ratios.train=0.9",
      "data.split.ratios.eval=0",
      "objective=val_recall_at_100"], "objective: expected a metric the run writes"),
    (["-m", "+experiment=tune_hybrid", "hydra/sweeper/sampler=nosuch"],
     "hydra/sweeper/sampler: expected one of cmaes"),
    (["-m", "+experiment=tune_hybrid", "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials"),
    (["-m", "+experiment=tune_hybrid", "hydra.sweeper.direction=sideways"],
     "hydra.sweeper.direction: expected one of minimize, maximize"),
    (["-m", "+experiment=tune_hybrid", "objective=recal_at_100"],
     "did you mean 'recall_at_100'"),
    (["-m", "+experiment=tune_hybrid", "objective=val_rmse"],
     "hydra.sweeper.direction: expected minimize for objective val_rmse"),
    (["-m", "+experiment=tune_hybrid", "model.learning_rate=interval(0,0.1)"],
     "hydra.sweeper.params.model.learning_rate"),
]


@pytest.mark.parametrize(("args", "expected"), BAD_CONFIGS,
                         ids=[" ".join(a) for a, _ in BAD_CONFIGS])
@pytest.mark.slow
def test_bad_input_is_one_error_line_and_leaves_nothing(args, expected, tmp_path, capsys):
    assert_rejected([*args, f"output_dir={tmp_path / 'out'}",
                     f"sweep_dir={tmp_path / 'sweeps'}"],
                    tmp_path=tmp_path, key=expected, in_process=True, capsys=capsys)
    assert not (tmp_path / "sweeps").exists()


@pytest.mark.parametrize(("make", "expected"), [
    (lambda tmp: tmp / "a-file", "output_dir: expected a directory, got a file"),
    (lambda tmp: tmp / "a-file" / "below", "got a path under the file"),
    (lambda tmp: "", "output_dir: expected a directory path, got an empty string"),
    (lambda tmp: tmp / ("x" * 300), "expected path components of at most"),
])
def test_output_dir_that_cannot_be_written(make, expected, tmp_path, capsys) -> None:
    (tmp_path / "a-file").write_text("not a directory\n")
    line = assert_rejected([f"output_dir={make(tmp_path)}"], tmp_path=tmp_path, key=expected,
                           in_process=True, capsys=capsys)
    assert line.startswith("error: output_dir: ")
    assert (tmp_path / "a-file").read_text() == "not a directory\n"


@pytest.fixture
def conf_copy(tmp_path: Path) -> Path:
    """A copy of conf/ to break (the real one is never modified)."""
    conf = tmp_path / "conf"
    shutil.copytree(CONF_DIR, conf)
    return conf


@pytest.mark.slow
def test_yaml_syntax_error_names_file_line_and_column(conf_copy, tmp_path) -> None:
    (conf_copy / "model" / "broken.yaml").write_text(
        "defaults:\n  - model_schema\n  - _self_\nname: broken\nbuyer_tower:\n  layers: [8, 4\n")
    line = assert_rejected(["-cp", str(conf_copy), "model=broken",
                            f"output_dir={tmp_path / 'out'}"], tmp_path=tmp_path)
    assert line == (f"error: {conf_copy}/model/broken.yaml:7:1: expected ',' or ']', "
                    "got '<stream end>'")


@pytest.mark.parametrize(("text", "expected"), [
    ("defaults:\n  - model_schema\n  - _self_\nname: dup\nname: dup2\n",
     "/model/odd.yaml:5:1: expected valid YAML, got duplicate key name"),
    ("- a\n- b\n", "error: model: expected a model config (a mapping that extends "
                   "model_schema, e.g. conf/model/*.yaml), got a list"),
    ("", "error: model: expected a model config"),
], ids=["duplicate-key", "a-list", "empty"])
def test_a_conf_file_that_is_not_a_config(text, expected, conf_copy, tmp_path, capsys) -> None:
    (conf_copy / "model" / "odd.yaml").write_text(text)
    assert_rejected(["-cp", str(conf_copy), "model=odd", f"output_dir={tmp_path / 'out'}"],
                    tmp_path=tmp_path, key=expected, in_process=True, capsys=capsys)


def test_non_utf8_yaml_names_file_and_byte(conf_copy, tmp_path, capsys) -> None:
    (conf_copy / "model" / "latin.yaml").write_bytes(
        b"defaults:\n  - model_schema\n  - _self_\nname: caf\xe9\n")
    line = assert_rejected(["-cp", str(conf_copy), "model=latin",
                            f"output_dir={tmp_path / 'out'}"], tmp_path=tmp_path,
                           in_process=True, capsys=capsys)
    assert line == (f"error: {conf_copy}/model/latin.yaml:4: expected UTF-8 text, got byte "
                    "0xe9 at offset 47")


@pytest.mark.slow
def test_debug_adds_the_traceback(tmp_path) -> None:
    from tests.compile_helpers import run_cli

    result = run_cli("model.top_k=[5,5]", f"output_dir={tmp_path / 'out'}", "--debug",
                     env={"RECFORGE_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}",
                          "PATH": "/usr/bin:/bin"})
    assert result.returncode == 2
    assert "Traceback" in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: model.top_k[1]: ")
    assert not (tmp_path / "out").exists()


# --------------------------------------------------------------------------- dry runs


def _run_main(args: list[str], tmp_path: Path, capsys, monkeypatch) -> tuple[int, str]:
    from compiler.__main__ import main

    monkeypatch.setenv("RECFORGE_LEDGER_URL", f"sqlite:///{tmp_path / 'ledger.db'}")
    capsys.readouterr()
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


@pytest.mark.parametrize("args", [
    ["dry_run=true"],
    ["dry_run=true", "run=local"],
    ["-m", "model.learning_rate=0.01,0.02", "dry_run=true"],
    ["-m", "+experiment=tune_hybrid", "run=local", "dry_run=true"],
    ["submit=vertex", "submit.dry_run=true", "submit.project=my-project",
     "submit.region=europe-west1", "submit.staging_bucket=gs://my-staging",
     "submit.pipeline_root=gs://my-pipeline", "submit.source_exp=gs://my-pipeline/run/Transform",
     "submit.container_uri=europe-docker.pkg.dev/my-project/jobs/recforge-job:0.1.0"],
], ids=["compile", "run", "sweep", "optuna", "submit"])
@pytest.mark.slow
def test_a_dry_run_of_any_kind_writes_and_records_nothing(args, tmp_path, capsys,
                                                          monkeypatch) -> None:
    before = snapshot(GENERATED)
    code, out = _run_main([*args, f"output_dir={tmp_path / 'out'}",
                           f"sweep_dir={tmp_path / 'sweeps'}"], tmp_path, capsys, monkeypatch)
    assert code == 0
    assert "dry run" in out.lower() or '"jobSpec"' in out
    assert not (tmp_path / "out").exists() and not (tmp_path / "sweeps").exists()
    assert ledger_rows(f"sqlite:///{tmp_path / 'ledger.db'}") == 0
    assert snapshot(GENERATED) == before


@pytest.mark.slow
def test_optuna_dry_run_prints_the_search_space(tmp_path, capsys, monkeypatch) -> None:
    code, out = _run_main(["-m", "+experiment=tune_hybrid", "dry_run=true"], tmp_path, capsys,
                          monkeypatch)
    assert code == 0
    assert "20 trial(s), maximize 'recall_at_100'" in out
    assert "model.learning_rate: tag(log, interval(0.0003, 0.03))" in out
    assert not (tmp_path / "ledger.db").exists()


# --------------------------------------------------------------------------- pure checks


def test_preflight_returns_what_the_command_will_use() -> None:
    from compiler.core.compose import compose
    from compiler.preflight import preflight

    checked = preflight(compose(["model=ranking_v1", "run=local", "run.epochs=2"]))
    assert checked.run is not None and checked.run.epochs == 2
    assert checked.data is not None and checked.submit is None
    assert checked.action == "compile, run locally" and not checked.writes_nothing
    assert checked.output_dir == "generated/ranking_v1__cherng_v3"


@pytest.mark.slow
def test_objective_metrics_follow_the_model_type() -> None:
    from compiler.core.compose import compose
    from compiler.core.validate import validate
    from compiler.preflight import objective_metrics

    ranking = objective_metrics(validate(compose(["model=ranking_v1"])))
    retrieval = objective_metrics(validate(compose(["model=retrieval_v1",
                                                    "model.top_k=[3,7]"])))
    assert "val_rmse" in ranking and not any(m.startswith("recall") for m in ranking)
    assert {"recall_at_3", "val_recall_at_7", "loss"} <= set(retrieval)
    assert "recall_at_100" not in retrieval and "val_rmse" not in retrieval


@pytest.mark.slow
def test_objective_metrics_are_what_the_emitted_trainer_writes() -> None:
    """The names ``objective_metrics`` lists appear where the emitted run_fn fills
    ``metrics["final"]``: a renamed metric in a fragment fails here."""
    from compiler.core.compose import compose
    from compiler.core.pipeline import compile_config

    trainer = compile_config(compose(["model=hybrid_v1"]), write=False
                             ).sources["trainer_module.py"]
    assert '"final": {"loss": ' in trainer
    assert 'f"recall_at_{k}"' in trainer and '"val_" + key' in trainer
    assert "TOP_K = (5, 10, 50, 100)" in trainer
    for name in ("val_rmse", "val_mae", "test_rmse", "test_mae"):
        assert f'"{name}":' in trainer, name


@pytest.mark.slow
def test_ledger_rows_sees_a_real_compile(tmp_path, capsys, monkeypatch) -> None:
    """The control for every 'no ledger row' assertion above: a good compile is counted."""
    code, _ = _run_main([f"output_dir={tmp_path / 'out'}"], tmp_path, capsys, monkeypatch)
    assert code == 0
    assert ledger_rows(f"sqlite:///{tmp_path / 'ledger.db'}") == 1
