"""The hand-written TFRS multitask tutorial (benchmarks/tutorial_reference.py) really trains.

``benchmarks/tutorial_parity.py`` judges the emitted ``tfrs_tutorial`` trainer against this
reference, so the reference itself must train: on tiny data the test makes itself, through
the ``features=tfrs_tutorial`` Transform, under each of the tutorial's three weightings.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from compiler.core.pipeline import compile_overrides
from tests.compile_helpers import ROOT
from tests.tiny_data import RAW_SCHEMA, split, tiny_transactions

pytestmark = pytest.mark.slow

REFERENCE = ROOT / "benchmarks" / "tutorial_reference.py"
FINAL_KEYS = {"loss", "test_rmse", "recall_at_1", "recall_at_5", "recall_at_10",
              "recall_at_50", "recall_at_100"}
#: (retrieval_weight, rating_weight): the tutorial's retrieval-only, rating-only and joint models
WEIGHTINGS = ((1.0, 0.0), (0.0, 1.0), (1.0, 1.0))
EPOCHS = 5


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[float, float], Any]:
    """The reference's metrics under each weighting, on one tiny Transform output."""
    from compiler.runner._modules import load_module_from_path
    from compiler.runner.fn_args import fn_args_from_transform
    from compiler.runner.transform import run_transform

    root = tmp_path_factory.mktemp("tutorial_reference")
    compile_overrides(["model=tfrs_tutorial", "features=tfrs_tutorial"],
                      output_dir=root / "modules")
    columns = ("customer_id", "product_id", "sales")
    run_transform(split(tiny_transactions()[list(columns)]),
                  {column: RAW_SCHEMA[column] for column in columns},
                  root / "modules" / "transform_module.py", str(root / "transform"))
    reference = load_module_from_path(REFERENCE, prefix="tutorial_reference")
    results = {}
    for retrieval_weight, rating_weight in WEIGHTINGS:
        fn_args = fn_args_from_transform(
            str(root / "transform"), str(root / f"run-{retrieval_weight}-{rating_weight}"),
            {"seed": 7, "epochs": EPOCHS, "retrieval_weight": retrieval_weight,
             "rating_weight": rating_weight})
        results[(retrieval_weight, rating_weight)] = reference.run_fn(fn_args)
    return results


@pytest.mark.parametrize("weights", WEIGHTINGS, ids=["retrieval", "rating", "joint"])
def test_reference_trains_under_each_weighting(trained: dict, weights: tuple[float, float]
                                               ) -> None:
    metrics = trained[weights]
    assert set(metrics["final"]) == FINAL_KEYS, metrics["final"]
    assert all(math.isfinite(value) for value in metrics["final"].values()), metrics["final"]
    losses = [row["loss"] for row in metrics["history"]]
    assert [row["epoch"] for row in metrics["history"]] == list(range(1, EPOCHS + 1))
    # The tiny train split (1,200 rows) is one batch of 8,192: each epoch's loss is that
    # batch's, so it falls steadily while the model trains.
    assert losses[-1] < 0.95 * losses[0], losses
    recalls = [metrics["final"][f"recall_at_{k}"] for k in (1, 5, 10, 50, 100)]
    assert 0 <= recalls[0] and recalls == sorted(recalls) and recalls[-1] <= 1, recalls
    assert 0 < metrics["candidates"]["unique_products"] <= 90


def test_weights_select_what_trains(trained: dict) -> None:
    """The loss is the weighted sum of the two task losses, and the rating head learns only
    under a rating weight."""
    retrieval_only, rating_only, _ = (trained[weights]["final"] for weights in WEIGHTINGS)
    # Same seed, so the same initial weights and first batch: the joint model's first loss
    # (computed before its first update) is the sum of the two single-task ones.
    first_loss = {weights: trained[weights]["history"][0]["loss"] for weights in WEIGHTINGS}
    assert first_loss[(1.0, 1.0)] == pytest.approx(
        first_loss[(1.0, 0.0)] + first_loss[(0.0, 1.0)], rel=1e-3)
    # Retrieval-only leaves the rating head as initialised (predictions near 0).
    assert rating_only["test_rmse"] < 0.8 * retrieval_only["test_rmse"]


def test_reference_reads_the_tutorial_features() -> None:
    """The reference's column names are the ones features=tfrs_tutorial's Transform writes."""
    text = (ROOT / "generated" / "tfrs_tutorial__tfrs_tutorial" / "transform_module.py"
            ).read_text()
    source = Path(REFERENCE).read_text()
    for name in ("customer_id_id", "product_id_id", "sales_target", "customer_id_vocab",
                 "product_id_vocab"):
        assert f'"{name}"' in text and f'"{name}"' in source, name
