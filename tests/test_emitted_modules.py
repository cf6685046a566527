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

from compiler.core.pipeline import compile_overrides
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
        candidates = metrics["candidates"]
        # The Transform's product table, one row per product; without one, all 1500 lines.
        assert candidates["rows_read"] == {"product_table": candidates["unique_products"],
                                           "splits": 1500}[candidates["source"]]
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
    for outputs in answers.values():
        if "product_ids" in outputs:  # retrieval: top-K raw product ids for raw buyer examples
            top_k = min(100, metrics["candidates"]["unique_products"])
            assert len(outputs["product_ids"]) == top_k
            assert all(p.startswith("P") for p in outputs["product_ids"])
            assert outputs["scores"] == sorted(outputs["scores"], reverse=True)
        else:  # ranking: predictions in sales units (the log transform inverted)
            assert outputs["predictions"] > 0


def test_emitted_calendar_arithmetic_matches_python(tmp_path) -> None:
    """The Transform's integer date ops agree with datetime on leap years and month ends."""
    from datetime import datetime, timezone

    import numpy as np

    from compiler.runner._modules import load_module_from_path

    compile_overrides(["model=hybrid_v1", "features.buyer.1.cyclical=[weekly,monthly,yearly]"],
                      output_dir=tmp_path)
    module = load_module_from_path(tmp_path / "transform_module.py", prefix="calendar_check")
    tf = module.tf
    moments = [datetime(y, m, d, 13, tzinfo=timezone.utc) for y, m, d in (
        (1970, 1, 1), (2000, 2, 29), (2023, 12, 31), (2024, 2, 29), (2024, 3, 1), (2100, 3, 1))]
    seconds = tf.constant([int(m.timestamp()) for m in moments], tf.int64)
    days = module._days_since_epoch(seconds)
    year, month, day = (t.numpy() for t in module._civil_from_days(days))
    assert list(zip(year, month, day, strict=True)) == [(m.year, m.month, m.day)
                                                        for m in moments]
    year_start = module._days_from_civil(tf.constant(year), tf.ones_like(tf.constant(year)),
                                         tf.ones_like(tf.constant(year)))
    day_of_year = (days - year_start).numpy()
    assert list(day_of_year) == [m.timetuple().tm_yday - 1 for m in moments]
    weekday = np.mod(days.numpy() + 3, 7)
    assert list(weekday) == [m.weekday() for m in moments]
