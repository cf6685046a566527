"""Evaluators: metrics on the eval and test splits, merged into ``training_metrics.json``."""

from __future__ import annotations

from typing import ClassVar

from compiler import hookimpl
from compiler.fragments import BuildContext, Contributions, Fragment, Section, statements
from compiler.plan import FragmentUse

RECALL = '''
TOP_K = {top_k}


def _evaluate_recall(model, dataset, candidates):
    """Recall@K: the fraction of interactions whose product is in the buyer's top K.

    Candidates are embedded once; each batch of buyers costs one matmul and one top_k
    (the same quantity as TFRS FactorizedTopK's top-K categorical accuracy).
    """
    k_max = min(max(TOP_K), candidates["count"])

    @tf.function(reduce_retracing=True)
    def batch_hits(batch):
        queries = model.buyer_tower(batch, training=False)
        scores = tf.linalg.matmul(queries, candidates["embeddings"], transpose_b=True)
        top_rows = tf.math.top_k(scores, k=k_max).indices
        true_rows = tf.gather(candidates["positions"], tf.reshape(batch[PRODUCT_ID_KEY], [-1]))
        matches = tf.equal(top_rows, tf.cast(true_rows, top_rows.dtype)[:, None])
        return tf.stack(
            [tf.reduce_sum(tf.cast(tf.reduce_any(matches[:, :k], axis=1), tf.int64))
             for k in TOP_K]
        ), tf.shape(true_rows, out_type=tf.int64)[0]

    hits = np.zeros(len(TOP_K), np.int64)
    total = 0
    for batch in dataset:
        batch_hit_counts, batch_size = batch_hits(batch)
        hits += batch_hit_counts.numpy()
        total += int(batch_size)
    return {f"recall_at_{k}": float(h) / max(total, 1) for k, h in zip(TOP_K, hits)}
'''

RECALL_STEP = '''
validation_recall = _evaluate_recall(model, eval_dataset, candidates)
metrics["final"].update({"val_" + key: value for key, value in validation_recall.items()})
if test_dataset is not None:
    metrics["final"].update(_evaluate_recall(model, test_dataset, candidates))
'''


class RecallAtK(Fragment):
    kind: ClassVar[str] = "evaluator"
    name: ClassVar[str] = "recall_at_k"
    description: ClassVar[str] = "Recall@K over deduplicated candidates (matmul + top_k)"
    EXAMPLES: ClassVar[list[list[str]]] = [[], ["model.top_k=[1,3]"]]

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        out.require_import("numpy", alias="np")
        out.add(Section.EVALUATION, statements(
            RECALL, top_k=tuple(use.params["top_k"])
        ))
        out.add_to_function("run_fn", statements(RECALL_STEP))


REGRESSION = '''
def _evaluate_regression(model, dataset):
    """RMSE and MAE of the rating head, in the transformed target's space."""
    rmse = tf.keras.metrics.RootMeanSquaredError()
    mae = tf.keras.metrics.MeanAbsoluteError()
    for batch in dataset:
        predictions = model.predict_rating(batch, training=False)
        labels = tf.reshape(batch[TARGET_KEY], [-1, 1])
        rmse.update_state(labels, predictions)
        mae.update_state(labels, predictions)
    return {"rmse": float(rmse.result()), "mae": float(mae.result())}
'''

REGRESSION_STEP = '''
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

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        out.add(Section.EVALUATION, statements(REGRESSION))
        out.add_to_function("run_fn", statements(REGRESSION_STEP))


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [RecallAtK, Regression]
