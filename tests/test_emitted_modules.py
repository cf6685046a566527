"""The emitted modules really work: Transform on Beam's DirectRunner, run_fn, signatures.

One Transform run (the three shipped models share the cherng_v3 Transform module) feeds a
training run of each model type on tiny data the test makes itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from compiler.pipeline import compile_overrides
from tests.compile_helpers import ROOT
from tests.tiny_data import RAW_SCHEMA, split, tiny_transactions

pytestmark = pytest.mark.slow

CONTRACT_KEYS = {
    "retrieval": {"loss", "recall_at_5", "recall_at_10", "recall_at_50", "recall_at_100"},
    "ranking": {"loss", "val_rmse", "val_mae", "test_rmse", "test_mae"},
}
CONTRACT_KEYS["multitask"] = CONTRACT_KEYS["retrieval"] | CONTRACT_KEYS["ranking"]
MODELS = {"retrieval_v1": "retrieval", "ranking_v1": "ranking", "hybrid_v1": "multitask"}


@pytest.fixture(scope="module")
def transformed(tmp_path_factory) -> Path:
    from compiler.runner.transform import run_transform

    root = tmp_path_factory.mktemp("emitted")
    transform_modules = set()
    for model in MODELS:
        out = root / "modules" / model
        compile_overrides([f"model={model}"], output_dir=out)
        transform_modules.add((out / "transform_module.py").read_text())
    assert len(transform_modules) == 1  # the Transform depends on the feature config only
    run_transform(split(tiny_transactions()), RAW_SCHEMA,
                  root / "modules" / "hybrid_v1" / "transform_module.py", str(root / "transform"))
    return root


@pytest.mark.parametrize("model", list(MODELS))
def test_run_fn_trains_evaluates_and_exports(model: str, transformed: Path) -> None:
    from compiler.runner.fn_args import fn_args_from_transform
    from compiler.runner.trainer import run_trainer

    run_dir = transformed / "runs" / model
    fn_args = fn_args_from_transform(str(transformed / "transform"), str(run_dir),
                                     {"epochs": 2, "batch_size": 128})
    metrics = run_trainer(transformed / "modules" / model / "trainer_module.py", fn_args)

    model_type = MODELS[model]
    assert metrics["model_type"] == model_type
    assert CONTRACT_KEYS[model_type] <= set(metrics["final"]), metrics["final"]
    assert metrics["test_split"] == "found"
    assert [row["epoch"] for row in metrics["history"]] == [1, 2]
    if model_type != "ranking":
        assert metrics["candidates"]["transactions"] == 1500
        assert 0 < metrics["candidates"]["unique_products"] <= 90
        assert 0 <= metrics["final"]["recall_at_5"] <= metrics["final"]["recall_at_100"] <= 1
    written = json.loads((run_dir / "model_run" / "training_metrics.json").read_text())
    assert written == metrics

    # Load the SavedModel in a fresh process, as a server would, and call its signatures.
    probe = subprocess.run(
        [sys.executable, str(Path(__file__).parent / "serving_probe.py"),
         str(run_dir / "serving_model")],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    answers = json.loads(probe.stdout.strip().splitlines()[-1])
    if model_type == "multitask":
        assert set(answers) == {"serving_default", "serve_ranking"}
    else:
        assert set(answers) == {"serving_default"}
    for name, outputs in answers.items():
        if "product_ids" in outputs:  # retrieval: top-K raw product ids for raw buyer examples
            top_k = min(100, metrics["candidates"]["unique_products"])
            assert len(outputs["product_ids"]) == top_k
            assert all(p.startswith("P") for p in outputs["product_ids"])
            assert outputs["scores"] == sorted(outputs["scores"], reverse=True)
        else:  # ranking: predictions in sales units (the log transform inverted)
            assert outputs["predictions"] > 0
