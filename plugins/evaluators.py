"""Evaluators: metrics on the eval and test splits, merged into ``training_metrics.json``."""

from __future__ import annotations

from typing import ClassVar

from compiler import hookimpl
from compiler.fragments import (
    BuildContext,
    Contributions,
    Fragment,
    FragmentUse,
    Section,
    statements,
)

RECALL = '''
TOP_K = {top_k}


def _evaluate_recall(model, dataset, candidates):
    """Recall@K: the fraction of interactions whose product is in the buyer's top K.

    Candidates are embedded once; each batch of buyers costs one matmul. A product's rank is
    the number of candidates scored above it (no sort), so a tie counts as a hit: TFRS
    FactorizedTopK's top-K categorical accuracy.
    """

    def add_batch(counts, batch):
        hits, total = counts
        scores = _candidate_scores(model, batch, candidates)
        true_rows = tf.gather(candidates["positions"], tf.reshape(batch[PRODUCT_ID_KEY], [-1]))
        true_scores = tf.gather(scores, tf.maximum(true_rows, 0), batch_dims=1)
        ranks = tf.reduce_sum(tf.cast(scores > true_scores[:, None], tf.int32), axis=1)
        # A product that is not a candidate is never a hit.
        ranks = tf.where(true_rows >= 0, ranks, tf.int32.max)
        batch_hits = [tf.reduce_sum(tf.cast(ranks < k, tf.int64)) for k in TOP_K]
        return hits + tf.stack(batch_hits), total + tf.size(true_rows, out_type=tf.int64)

    # One traced reduction over the whole split: no Python work per batch.
    hits, total = dataset.reduce(
        (tf.zeros([len(TOP_K)], tf.int64), tf.constant(0, tf.int64)), add_batch
    )
    return {f"recall_at_{k}": float(h) / max(int(total), 1) for k, h in zip(TOP_K, hits.numpy())}
'''

RECALL_STEP = '''
if eval_dataset is not None:
    validation_recall = _evaluate_recall(model, eval_dataset, candidates)
    metrics["final"].update({"val_" + key: value for key, value in validation_recall.items()})
if test_dataset is not None:
    metrics["final"].update(_evaluate_recall(model, test_dataset, candidates))
'''


class RecallAtK(Fragment):
    kind: ClassVar[str] = "evaluator"
    name: ClassVar[str] = "recall_at_k"
    description: ClassVar[str] = "Recall@K over deduplicated candidates (one matmul per batch)"
    EXAMPLES: ClassVar[list[list[str]]] = [[], ["model.top_k=[1,3]"]]
    provides: ClassVar[tuple[str, ...]] = ("top_k",)
    writes: ClassVar[tuple[str, ...]] = ("recall_at_{k}", "val_recall_at_{k}")
    requires: ClassVar[tuple[str, ...]] = ("candidates", "trained_model", "datasets", "metrics")
    fills: ClassVar[tuple[str, ...]] = ("evaluate",)

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        out.add(Section.EVALUATION, statements(
            RECALL, top_k=tuple(use.params["top_k"])
        ))
        out.add_to_function("run_fn", statements(RECALL_STEP))


REGRESSION = '''
def _evaluate_regression(model, dataset):
    """RMSE and MAE of the rating head against the transformed target: clipped, and in log1p
    space when the feature config says ``log: true``."""

    def add_batch(sums, batch):
        squared, absolute, count = sums
        predictions = tf.reshape(model.predict_rating(batch, training=False), [-1])
        errors = tf.reshape(batch[TARGET_KEY], [-1]) - predictions
        return (
            squared + tf.reduce_sum(tf.square(errors)),
            absolute + tf.reduce_sum(tf.abs(errors)),
            count + tf.cast(tf.size(errors), tf.float32),
        )

    # One traced reduction over the whole split: no Python work per batch.
    zero = tf.constant(0.0)
    squared, absolute, count = dataset.reduce((zero, zero, zero), add_batch)
    count = max(float(count), 1.0)
    return {"rmse": (float(squared) / count) ** 0.5, "mae": float(absolute) / count}
'''

REGRESSION_STEP = '''
if eval_dataset is not None:
    validation = _evaluate_regression(model, eval_dataset)
    metrics["final"].update({"val_rmse": validation["rmse"], "val_mae": validation["mae"]})
if test_dataset is not None:
    test = _evaluate_regression(model, test_dataset)
    metrics["final"].update({"test_rmse": test["rmse"], "test_mae": test["mae"]})
'''


class Regression(Fragment):
    kind: ClassVar[str] = "evaluator"
    name: ClassVar[str] = "regression"
    description: ClassVar[str] = "RMSE and MAE of the rating head"
    EXAMPLES: ClassVar[list[list[str]]] = [[], ["model=ranking_v1"]]
    requires: ClassVar[tuple[str, ...]] = (
        "target_key", "predict_rating", "trained_model", "datasets", "metrics",
    )
    writes: ClassVar[tuple[str, ...]] = ("val_rmse", "val_mae", "test_rmse", "test_mae")
    fills: ClassVar[tuple[str, ...]] = ("evaluate",)

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        out.add(Section.EVALUATION, statements(REGRESSION))
        out.add_to_function("run_fn", statements(REGRESSION_STEP))


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [RecallAtK, Regression]
