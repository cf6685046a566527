"""Issue #11's semantics, run for real: the TFRS tutorial's embeddings-only towers train, and a
two-way split trains without an eval split and reports no val_* metrics."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from compiler.core.pipeline import compile_overrides
from tests.tiny_data import split, tiny_transactions

pytestmark = pytest.mark.slow

TUTORIAL_RAW_SCHEMA = {"customer_id": "string", "product_id": "string", "sales": "float"}


def test_tfrs_tutorial_towers_have_no_dense_layer_and_train(tmp_path: Path) -> None:
    from compiler.runner._modules import load_module_from_path
    from compiler.runner.fn_args import fn_args_from_transform
    from compiler.runner.trainer import run_trainer
    from compiler.runner.transform import run_transform

    modules = tmp_path / "modules"
    compile_overrides(["model=tfrs_tutorial", "features=tfrs_tutorial"], output_dir=modules)
    trainer = (modules / "trainer_module.py").read_text()
    tree = ast.parse(trainer)
    for side in ("buyer", "product"):
        function = next(n for n in tree.body
                        if isinstance(n, ast.FunctionDef) and n.name == f"_build_{side}_tower")
        called = {ast.unparse(n.func) for n in ast.walk(function) if isinstance(n, ast.Call)}
        assert called == {"FeatureEncoder"}, called

    frame = tiny_transactions()[list(TUTORIAL_RAW_SCHEMA)]
    run_transform(split(frame), TUTORIAL_RAW_SCHEMA, modules / "transform_module.py",
                  str(tmp_path / "transform"))
    fn_args = fn_args_from_transform(str(tmp_path / "transform"), str(tmp_path / "run"),
                                     {"epochs": 2, "batch_size": 256})
    metrics = run_trainer(modules / "trainer_module.py", fn_args)
    assert {"loss", "val_rmse", "test_rmse", "recall_at_100"} <= set(metrics["final"])
    assert 0 <= metrics["final"]["recall_at_10"] <= metrics["final"]["recall_at_100"] <= 1
    assert [row["epoch"] for row in metrics["history"]] == [1, 2]

    # The built towers hold an embedding and nothing else: no Dense anywhere inside them.
    module = load_module_from_path(modules / "trainer_module.py", prefix="tutorial_check")
    tf, tft = module.tf, module.tft
    transform_output = tft.TFTransformOutput(fn_args.transform_output)
    model = module.RecommenderModel(transform_output)
    batch = next(iter(module._input_fn(fn_args.train_files, transform_output, 64)))
    for tower in (model.buyer_tower, model.product_tower):
        assert tower(batch).shape == (64, 32)
        kinds = {type(layer).__name__ for layer in tower.submodules}
        assert kinds == {"Embedding"}, kinds
        assert not any(isinstance(layer, tf.keras.layers.Dense) for layer in tower.submodules)


def test_two_way_split_runs_end_to_end_without_val_metrics(tmp_path: Path, capsys) -> None:
    from compiler.__main__ import main

    csv = tmp_path / "transactions.csv"
    tiny_transactions(rows=1500, seed=5).to_csv(csv, index=False)
    runs = tmp_path / "runs"
    code = main([
        "model=hybrid_v1", "features=cherng_v3", "run=local", f"output_dir={tmp_path / 'out'}",
        f"data.source={csv}", "data.split.ratios.train=0.8", "data.split.ratios.eval=0.0",
        "data.split.ratios.test=0.2", f"run.runs_root={runs}", f"run.cache_dir={tmp_path / 'c'}",
        "run.epochs=1", "model.batch_size=256", "run.name=two-way",
        f"ledger=sqlite:///{tmp_path / 'ledger.db'}",
    ])
    out = capsys.readouterr().out
    assert code == 0, out
    run_dir = runs / "two-way"
    examples = run_dir / "transform" / "transformed_examples"
    assert sorted(p.name for p in examples.iterdir()) == ["Split-test", "Split-train"]
    metrics = json.loads((run_dir / "model_run" / "training_metrics.json").read_text())
    assert metrics["eval_split"] == "absent" and metrics["test_split"] == "found"
    assert not [key for key in metrics["final"] if key.startswith("val_")], metrics["final"]
    assert not [key for row in metrics["history"] for key in row if key.startswith("val_")]
    assert {"loss", "test_rmse", "test_mae", "recall_at_100"} <= set(metrics["final"])
    assert "no eval split" in out  # the load line
    assert "No eval split (two-way split): val_* metrics were not computed." in out
    assert "test_rmse" in out and "val_rmse" not in out
