"""The ``ndcg_at_k`` evaluator (kind ``evaluator``): NDCG@K over the deduplicated candidates.

Selected by config alone, beside or instead of the built-ins::

    model.evaluators: [recall_at_k, regression, ndcg_at_k]

It adds ``ndcg_at_K`` (test split) and ``val_ndcg_at_K`` (eval split) to the ``final`` metrics
of ``training_metrics.json``, one per K of ``model.top_k``. With one bought product per
interaction, NDCG@K is ``1 / log2(rank + 2)`` when the product ranks in the buyer's top K
(rank 0 is the top), else 0, averaged over the interactions; the ideal DCG is 1.
"""

from __future__ import annotations

from typing import ClassVar

from compiler.fragments import (
    BuildContext,
    Contributions,
    Fragment,
    FragmentUse,
    Section,
    statements,
)

NDCG = '''
NDCG_TOP_K = {top_k}


def _evaluate_ndcg(model, dataset, candidates):
    """NDCG@K of the bought product among all candidates, per K of NDCG_TOP_K.

    A product's rank is the number of candidates scored above it (ties count in its favour,
    as Recall@K's do); a product that is not a candidate gains nothing.
    """

    def add_batch(sums, batch):
        gains, total = sums
        queries = model.buyer_tower(batch, training=False)
        scores = tf.linalg.matmul(queries, candidates["embeddings"], transpose_b=True)
        true_rows = tf.gather(candidates["positions"], tf.reshape(batch[PRODUCT_ID_KEY], [-1]))
        true_scores = tf.gather(scores, tf.maximum(true_rows, 0), batch_dims=1)
        ranks = tf.reduce_sum(tf.cast(scores > true_scores[:, None], tf.int32), axis=1)
        ranks = tf.where(true_rows >= 0, ranks, tf.int32.max)
        positions = tf.cast(ranks, tf.float64)
        discounts = tf.math.log(2.0 * tf.ones_like(positions)) / tf.math.log(positions + 2.0)
        batch_gains = [
            tf.reduce_sum(tf.where(ranks < k, discounts, tf.zeros_like(discounts)))
            for k in NDCG_TOP_K
        ]
        return gains + tf.stack(batch_gains), total + tf.size(true_rows, out_type=tf.int64)

    # One traced reduction over the whole split, like the built-in Recall@K.
    gains, total = dataset.reduce(
        (tf.zeros([len(NDCG_TOP_K)], tf.float64), tf.constant(0, tf.int64)), add_batch
    )
    return {
        f"ndcg_at_{k}": float(gain) / max(int(total), 1)
        for k, gain in zip(NDCG_TOP_K, gains.numpy())
    }
'''

NDCG_STEP = '''
if eval_dataset is not None:
    validation_ndcg = _evaluate_ndcg(model, eval_dataset, candidates)
    metrics["final"].update({"val_" + key: value for key, value in validation_ndcg.items()})
if test_dataset is not None:
    metrics["final"].update(_evaluate_ndcg(model, test_dataset, candidates))
'''


class NDCGAtK(Fragment):
    kind: ClassVar[str] = "evaluator"
    name: ClassVar[str] = "ndcg_at_k"
    description: ClassVar[str] = "NDCG@K of the bought product over deduplicated candidates"
    EXAMPLES: ClassVar[list[list[str]]] = [
        ["model.evaluators=[recall_at_k,regression,ndcg_at_k]"],
        ["model=retrieval_v1", "model.evaluators=[recall_at_k,ndcg_at_k]", "model.top_k=[3]"],
    ]
    # It scores the trained model's buyer tower against the candidates' embeddings and writes
    # into run_fn's metrics, in the evaluate slot.
    requires: ClassVar[tuple[str, ...]] = ("candidates", "trained_model", "datasets", "metrics")
    fills: ClassVar[tuple[str, ...]] = ("evaluate",)
    # What a sweep's objective may name (``{k}``: each of model.top_k).
    writes: ClassVar[tuple[str, ...]] = ("ndcg_at_{k}", "val_ndcg_at_{k}")

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        # model.top_k arrives as a literal node, never as text.
        out.add(Section.EVALUATION, statements(NDCG, top_k=tuple(use.params["top_k"])))
        out.add_to_function("run_fn", statements(NDCG_STEP))
