"""The run's baselines (compiler/local/baselines.py) on tiny hand-made arrays whose answers are
worked out by hand in the comments, and the printed table's best-baseline and below-baseline
logic on hand-built metrics."""

from __future__ import annotations

import io
import math
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console
from scipy import sparse

from compiler.core.compose import compose
from compiler.core.plan import plan
from compiler.core.validate import validate
from compiler.local import baselines
from compiler.local.baselines import (
    NEVER,
    SHRINKAGE,
    Split,
    baseline_columns,
    baseline_ranks,
    below_baseline_lines,
    best_baselines,
    cooccurrence_similarity,
    ranking_metrics,
    regression_baselines,
    retrieval_baselines,
    shrunk_means,
)
from compiler.local.run import print_metrics_table


def split(buyers: list[int] | None, products: list[int], days: list[int] | None = None,
          targets: list[float] | None = None) -> Split:
    def array(values, dtype):
        return None if values is None else np.array(values, dtype)

    return Split(products=array(products, np.int64), buyers=array(buyers, np.int64),
                 times=array(days, np.float32), targets=array(targets, np.float32))


# Buyer 0 bought 7 twice (days 1, 2), 8 twice (days 1, 5) and 9 once; buyer 1 bought 5 five
# times and 6 four times. Popularity: 5 (5 lines), 6 (4), 7 (2), 8 (2, tie with 7: the smaller
# id first), 9 (1).
REPEAT_TRAIN = split(
    buyers=[0, 0, 0, 0, 0] + [1] * 9,
    products=[7, 7, 8, 8, 9] + [5] * 5 + [6] * 4,
    days=[1, 2, 1, 5, 9] + [1] * 9,
)


def test_most_popular_ranks_by_count_with_smaller_id_first_on_a_tie() -> None:
    test = split(buyers=[0, 0, 0, 0, 0, 0], products=[5, 6, 7, 8, 9, 42])
    ranks = baseline_ranks(REPEAT_TRAIN, test)["most_popular"]
    # 42 was never bought in train: never a hit.
    assert ranks.tolist() == [0, 1, 2, 3, 4, NEVER]


def test_buy_again_orders_by_count_then_recency_and_backfills_with_popular_products() -> None:
    # Buyer 0: 8 (2 lines, last day 5) before 7 (2 lines, last day 2), then 9 (1 line), then
    # the popular products they never bought: 5, 6. Buyer 77 is unseen: most-popular.
    test = split(buyers=[0, 0, 0, 0, 0, 77, 77], products=[8, 7, 9, 5, 6, 5, 8])
    ranks = baseline_ranks(REPEAT_TRAIN, test)["buy_again"]
    assert ranks.tolist() == [0, 1, 2, 3, 4, 0, 3]


def test_buy_again_without_a_time_column_breaks_count_ties_by_popularity() -> None:
    untimed = Split(products=REPEAT_TRAIN.products, buyers=REPEAT_TRAIN.buyers)
    test = split(buyers=[0, 0], products=[7, 8])
    assert baseline_ranks(untimed, test)["buy_again"].tolist() == [0, 1]


def test_ties_never_count_as_hits() -> None:
    # Three products bought once each: every score ties, and only the first in the total
    # order is at rank 0. A tie-counting evaluator would give all three Recall@1 = 1.
    train = split(buyers=[0, 1, 2], products=[1, 2, 3])
    test = split(buyers=[5, 5, 5], products=[1, 2, 3])
    metrics = retrieval_baselines(train, test, [1])
    assert metrics["most_popular"]["recall_at_1"] == pytest.approx(1 / 3)
    assert metrics["buy_again"]["recall_at_1"] == pytest.approx(1 / 3)


def test_ranking_metrics_from_ranks() -> None:
    metrics = ranking_metrics(np.array([0, 1, 2, 3, NEVER]), [1, 3])
    assert metrics["recall_at_1"] == pytest.approx(1 / 5)
    assert metrics["recall_at_3"] == pytest.approx(3 / 5)
    assert metrics["ndcg_at_1"] == pytest.approx(1 / 5)
    assert metrics["ndcg_at_3"] == pytest.approx((1 + 1 / math.log2(3) + 1 / 2) / 5)
    assert metrics["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 3 + 1 / 4) / 5)


# Buyer 0 bought {1, 2}, buyer 1 {1, 2, 3}, buyer 2 {3}, buyer 3 bought 4 three times.
# Buyers per product: n1 = n2 = n3 = 2, n4 = 1; popularity 4 (3 lines), 1, 2, 3 (2 lines each).
COOCCURRENCE_TRAIN = split(buyers=[0, 0, 1, 1, 1, 2, 3, 3, 3],
                           products=[1, 2, 1, 2, 3, 3, 4, 4, 4])


def test_cooccurrence_similarity_is_the_cosine_of_buyer_counts() -> None:
    history = sparse.csr_matrix(np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 0],
                                          [0, 0, 0, 1]], np.float64))
    # cooccur(1, 2) = 2 buyers -> 2 / sqrt(2 * 2) = 1; cooccur(1, 3) = 1 -> 1/2; the diagonal
    # is n_i / n_i = 1.
    expected = [[1, 1, 0.5, 0], [1, 1, 0.5, 0], [0.5, 0.5, 1, 0], [0, 0, 0, 1]]
    assert cooccurrence_similarity(history).toarray() == pytest.approx(np.array(expected))


@pytest.mark.parametrize("dense_limit", [8192, 0], ids=["dense-similarity", "sparse-similarity"])
def test_cooccurrence_ranks_by_summed_similarity_and_backfills_with_popular_products(
        dense_limit, monkeypatch) -> None:
    monkeypatch.setattr(baselines, "DENSE_SIMILARITY_LIMIT", dense_limit)
    # Buyer 2 (history {3}): 3 scores 1, 1 and 2 score 1/2 (1 first: tied, listed first in
    # popularity order), 4 scores 0 (backfill).
    test = split(buyers=[2, 2, 2, 2], products=[3, 1, 2, 4])
    ranks = baseline_ranks(COOCCURRENCE_TRAIN, test)
    assert ranks["cooccurrence"].tolist() == [0, 1, 2, 3]
    assert ranks["most_popular"].tolist() == [3, 1, 2, 0]
    # Buyer 0 (history {1, 2}): 1 and 2 score 1 + 1 = 2, 3 scores 1/2 + 1/2 = 1, 4 scores 0.
    test = split(buyers=[0, 0, 0, 0], products=[1, 2, 3, 4])
    assert baseline_ranks(COOCCURRENCE_TRAIN, test)["cooccurrence"].tolist() == [0, 1, 2, 3]


def test_new_products_drops_bought_lines_and_excludes_bought_candidates() -> None:
    # Buyer 0 bought 7, 8, 9: the lines for 8 and 9 are dropped, and their candidates are 5
    # and 6 only, so buy-again is most-popular among the unbought. Buyer 77 (unseen) keeps
    # every candidate: 8 is fourth in the popularity order.
    test = split(buyers=[0, 0, 0, 0, 77], products=[8, 5, 6, 9, 8])
    ranks = baseline_ranks(REPEAT_TRAIN, test, protocol="new_products")
    assert ranks["buy_again"].tolist() == [0, 1, 3]
    assert ranks["most_popular"].tolist() == [0, 1, 3]
    assert baseline_ranks(REPEAT_TRAIN, test)["most_popular"].tolist() == [3, 0, 1, 4, 3]


def test_shrunk_means_pull_small_groups_toward_the_global_mean() -> None:
    # mean 6; key 1: (3 + 5 + 10 * 6) / (2 + 10) = 68 / 12; key 2: (10 + 60) / 11; key 3 unseen.
    keys, targets = np.array([1, 1, 2]), np.array([3.0, 5.0, 10.0])
    assert SHRINKAGE == 10.0
    predicted = shrunk_means(keys, targets, np.array([1, 2, 3]), 6.0)
    assert predicted == pytest.approx([68 / 12, 70 / 11, 6.0])
    assert shrunk_means(keys, targets, np.array([1]), 6.0, shrinkage=0.0) == pytest.approx([4])


def test_regression_baselines_errors() -> None:
    train = split(buyers=[0, 0, 1], products=[1, 1, 2], targets=[3.0, 5.0, 10.0])
    test = split(buyers=[0, 9], products=[2, 1], targets=[4.0, 8.0])
    baselines = regression_baselines(train, test)
    # train mean 6: residuals -2, 2.
    assert baselines["train_mean"] == pytest.approx({"test_rmse": 2.0, "test_mae": 2.0})
    # buyer 0 -> 68/12, buyer 9 unseen -> 6; product 2 -> 70/11, product 1 -> 68/12.
    for name, predicted in (("per_buyer_mean", [68 / 12, 6.0]),
                            ("per_product_mean", [70 / 11, 68 / 12])):
        residuals = np.array([4.0, 8.0]) - np.array(predicted)
        assert baselines[name] == pytest.approx({
            "test_rmse": float(np.sqrt(np.mean(residuals ** 2))),
            "test_mae": float(np.mean(np.abs(residuals)))})


# --------------------------------------------------------------------------- the table

BASELINES = {
    "most_popular": {"recall_at_10": 0.05, "mrr": 0.02},
    "buy_again": {"recall_at_10": 0.112, "mrr": 0.04},
    "cooccurrence": {"recall_at_10": 0.112, "mrr": 0.03},
    "train_mean": {"test_rmse": 0.9, "test_mae": 0.7},
    "per_product_mean": {"test_rmse": 0.75, "test_mae": 0.72},
}


def test_best_baseline_is_highest_for_recall_and_lowest_for_errors() -> None:
    best = best_baselines(BASELINES)
    # buy_again and cooccurrence tie on recall_at_10: the one listed first wins.
    assert best["recall_at_10"] == {"name": "buy_again", "value": 0.112}
    assert best["mrr"] == {"name": "buy_again", "value": 0.04}
    assert best["test_rmse"] == {"name": "per_product_mean", "value": 0.75}
    assert best["test_mae"] == {"name": "train_mean", "value": 0.7}


def test_below_baseline_lines_name_each_metric_the_model_loses() -> None:
    best = best_baselines(BASELINES)
    below = {"loss": 3.0, "recall_at_10": 0.081, "mrr": 0.05, "test_rmse": 0.8,
             "test_mae": 0.7}
    assert below_baseline_lines(below, best) == [
        "below baseline: recall_at_10 0.081 < buy_again 0.112",
        "below baseline: test_rmse 0.800 > per_product_mean 0.750",
    ]
    above = {"recall_at_10": 0.2, "mrr": 0.05, "test_rmse": 0.5, "test_mae": 0.6}
    assert below_baseline_lines(above, best) == []


def test_the_printed_table_shows_the_best_baseline_and_the_below_lines() -> None:
    metrics = {"model_type": "multitask", "test_split": "found", "baselines": BASELINES,
               "final": {"loss": 3.0, "recall_at_10": 0.081, "mrr": 0.05, "test_rmse": 0.5}}
    output = io.StringIO()
    print_metrics_table(Console(file=output, width=200), metrics, Path("/runs/x"))
    text = output.getvalue()
    row = next(line for line in text.splitlines() if "recall_at_10" in line and "│" in line)
    assert "0.0810" in row and "0.1120" in row and "buy_again" in row
    row = next(line for line in text.splitlines() if "test_rmse" in line and "│" in line)
    assert "0.7500" in row and "per_product_mean" in row
    assert "best baseline" in text and "loss" in text
    assert "below baseline: recall_at_10 0.081 < buy_again 0.112" in text
    assert "below baseline: test_rmse" not in text and "below baseline: mrr" not in text


def test_baseline_columns_of_a_shipped_config() -> None:
    config = validate(compose(["model=hybrid_v1", "features=cherng_v3"]))
    columns = baseline_columns(config, plan(config).required_features())
    assert (columns.product, columns.buyer, columns.time, columns.target) == (
        "product_id_id", "customer_id_id", "date_norm", "sales_target")
