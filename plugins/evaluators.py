"""Evaluators: metrics on the eval and test splits, merged into ``training_metrics.json``.

The ranking evaluators (``recall_at_k``, ``ndcg``, ``mrr``) share one rank computation
(``_ranked_lines``: the number of candidates scored above each line's product, counted over
blocks of candidates that fit ``model.evaluation_memory_mb``, so a batch's scores against the
whole catalogue are never held at once) and one reduction over a split; each metric is a
function of the ranks. ``model.eval_protocol: new_products`` drops the
lines whose product the buyer bought in train and scores those products -inf.
"""

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
from compiler.fragments import name as identifier
from compiler.model import ResolvedConfig

#: What every ranking evaluator (Recall@K, NDCG@K, MRR) shares: each test line's rank, and a
#: mean over a split's lines of a function of those ranks, in one traced reduction.
RANKED_LINES = """
#: model.evaluation_memory_mb: what ranking a batch's lines against one block of candidates may
#: take, so the candidates are scored a block at a time, whatever the catalogue's size.
EVALUATION_MEMORY_BYTES = {memory_mb} * 1024 * 1024
#: Bytes per (line, candidate) of a block while it is ranked: 9 for the float32 score, its
#: comparison with the line's own score and the int32 count of those; 10 more for the
#: new_products mask and masked score; 25 more for the purchase history's pair lookup.
PAIR_BYTES = {pair_bytes}


def _bought_pairs(purchases, buyer_ids, candidates):
    \"\"\"[pairs, 2]: (buyer row in the batch, candidate row) of each train product of each
    buyer that is a candidate.

    ``purchases``: each buyer id's train product ids (``_train_purchases``); a buyer id
    beyond its table (unseen in train) bought nothing.
    \"\"\"
    table = tf.RaggedTensor.from_row_splits(purchases["products"], purchases["row_splits"])
    rows = tf.minimum(buyer_ids, table.nrows() - 1)  # the table's last row is empty
    bought = tf.gather(table, rows)
    columns = tf.gather(candidates["positions"], bought.flat_values)
    return tf.boolean_mask(tf.stack([bought.value_rowids(), columns], axis=1), columns >= 0)


def _bought_mask(pairs, buyers, start, size):
    \"\"\"[buyers, size]: whether each candidate of rows [start, start + size) is one of the
    buyer's train products (``pairs`` from ``_bought_pairs``).\"\"\"
    inside = tf.logical_and(pairs[:, 1] >= start, pairs[:, 1] < start + size)
    local = tf.boolean_mask(pairs, inside) - tf.stack([tf.constant(0, tf.int64), start])
    shape = tf.stack([tf.cast(buyers, tf.int64), size])
    return tf.scatter_nd(local, tf.ones(tf.shape(local)[:1], tf.int32), shape) > 0


def _over_blocks(count, block, step, state):
    \"\"\"``state`` after ``step(start, size, state)`` for each block [start, start + size) of
    ``block`` of the ``count`` candidates, one block after the other (parallel_iterations=1:
    one block's scores at a time).\"\"\"

    def body(start, state):
        return start + block, step(start, tf.minimum(block, count - start), state)

    _, state = tf.while_loop(
        lambda start, _: start < count,
        body,
        (tf.constant(0, tf.int64), state),
        parallel_iterations=1,
    )
    return state


def _ranked_lines(model, batch, candidates, purchases=None):
    \"\"\"The rank of each evaluated line of ``batch`` (model.eval_protocol): the number of
    candidates scored above its product (0: the top).

    No sort, so a tie counts in the product's favour: TFRS FactorizedTopK's top-K accuracy. A
    product that is not a candidate ranks last (int32 max): never a hit. ``purchases`` None
    (protocol all): every line, among all candidates. Given (new_products): a line whose
    product the buyer bought in train is dropped, and the buyer's train products score -inf,
    below every other candidate.

    The candidates are scored in blocks that fit EVALUATION_MEMORY_BYTES, never all at once,
    and a line's rank is summed over the blocks. Its product's own score is taken from the
    block that holds it, so it is compared with scores computed alike (a matmul of another
    shape may round differently): one block is scored once; more are scored twice, first for
    the products' scores, then to count the candidates above them.
    \"\"\"
    queries = model.buyer_tower(batch, training=False)
    true_rows = tf.gather(candidates["positions"], tf.reshape(batch[PRODUCT_ID_KEY], [-1]))
    lines = tf.size(true_rows, out_type=tf.int64)
    pairs = None
    if purchases is not None:
        buyer_ids = tf.reshape(batch[purchases["buyer_id_key"]], [-1])
        pairs = _bought_pairs(purchases, buyer_ids, candidates)
    count = tf.constant(candidates["count"], tf.int64)
    block = tf.maximum(EVALUATION_MEMORY_BYTES // (PAIR_BYTES * tf.maximum(lines, 1)), 1)

    def block_scores(start, size):
        embeddings = candidates["embeddings"]
        rows = {
            "embeddings": tf.slice(embeddings, tf.stack([start, 0]), tf.stack([size, -1])),
            "product_ids": tf.slice(candidates["product_ids"], [start], [size]),
        }
        scores = _candidate_scores(model, batch, rows, queries)
        if pairs is None:
            return scores, None
        bought = _bought_mask(pairs, lines, start, size)
        return tf.where(bought, tf.constant(-np.inf, scores.dtype), scores), bought

    def take_own(start, size, scores, bought, found):
        # The lines whose product is in this block take its score and bought flag.
        own, repeated = found
        local = true_rows - start
        inside = tf.logical_and(local >= 0, local < size)
        local = tf.clip_by_value(local, 0, size - 1)
        own = tf.where(inside, tf.gather(scores, local, batch_dims=1), own)
        if bought is not None:
            inside = tf.logical_and(inside, tf.gather(bought, local, batch_dims=1))
            repeated = tf.logical_or(repeated, inside)
        return own, repeated

    def above(scores, own):
        return tf.reduce_sum(tf.cast(scores > own[:, None], tf.int32), axis=1)

    not_found = (tf.zeros_like(true_rows, tf.float32), tf.zeros_like(true_rows, tf.bool))

    def one_block():
        scores, bought = block_scores(tf.constant(0, tf.int64), count)
        own, repeated = take_own(0, count, scores, bought, not_found)
        return above(scores, own), repeated

    def several_blocks():
        own, repeated = _over_blocks(
            count,
            block,
            lambda start, size, found: take_own(start, size, *block_scores(start, size), found),
            not_found,
        )
        ranks = _over_blocks(
            count,
            block,
            lambda start, size, ranks: ranks + above(block_scores(start, size)[0], own),
            tf.zeros_like(true_rows, tf.int32),
        )
        return ranks, repeated

    ranks, repeated = tf.cond(count <= block, one_block, several_blocks)
    ranks = tf.where(true_rows >= 0, ranks, tf.int32.max)
    if purchases is None:
        return ranks
    return tf.boolean_mask(ranks, tf.logical_not(repeated))


def _mean_over_lines(model, dataset, candidates, line_values, width, purchases=None):
    \"\"\"The mean over the evaluated lines of ``dataset`` of ``line_values(ranks)`` (a
    [lines, width] float64 tensor): ``width`` numbers.

    Candidates are embedded once; each batch of buyers is scored block by block
    (``_ranked_lines``), and the whole split is one traced reduction: no Python work per batch.
    \"\"\"

    def add_batch(sums, batch):
        totals, lines = sums
        ranks = _ranked_lines(model, batch, candidates, purchases)
        return (
            totals + tf.reduce_sum(line_values(ranks), axis=0),
            lines + tf.size(ranks, out_type=tf.int64),
        )

    totals, lines = dataset.reduce(
        (tf.zeros([width], tf.float64), tf.constant(0, tf.int64)), add_batch
    )
    return totals.numpy() / max(int(lines), 1)
"""

RECALL = """
TOP_K = {top_k}


def _evaluate_recall(model, dataset, candidates, purchases=None):
    \"\"\"Recall@K: the fraction of evaluated lines whose product is in the buyer's top K.\"\"\"
    recalls = _mean_over_lines(
        model,
        dataset,
        candidates,
        lambda ranks: tf.cast(ranks[:, None] < TOP_K, tf.float64),
        len(TOP_K),
        purchases,
    )
    return {f"recall_at_{k}": float(recall) for k, recall in zip(TOP_K, recalls)}
"""

NDCG = """
NDCG_TOP_K = {top_k}


def _evaluate_ndcg(model, dataset, candidates, purchases=None):
    \"\"\"NDCG@K with one relevant product per line (Jarvelin & Kekalainen 2002): the ideal DCG
    is 1, so a line gains 1 / log2(rank + 2) when its product ranks in the top K, else 0.\"\"\"

    def gains(ranks):
        discounts = np.log(2.0) / tf.math.log(tf.cast(ranks, tf.float64) + 2.0)
        hits = ranks[:, None] < NDCG_TOP_K
        return tf.where(hits, discounts[:, None], tf.constant(0.0, tf.float64))

    ndcgs = _mean_over_lines(model, dataset, candidates, gains, len(NDCG_TOP_K), purchases)
    return {f"ndcg_at_{k}": float(ndcg) for k, ndcg in zip(NDCG_TOP_K, ndcgs)}
"""

MRR = """
def _evaluate_mrr(model, dataset, candidates, purchases=None):
    \"\"\"Mean reciprocal rank (Voorhees, TREC-8 QA 1999): the mean over lines of 1 / (rank + 1)
    among all candidates; a product that is not a candidate adds 0.\"\"\"

    def reciprocal_ranks(ranks):
        reciprocal = 1.0 / (tf.cast(ranks, tf.float64) + 1.0)
        return tf.where(ranks < tf.int32.max, reciprocal, tf.constant(0.0, tf.float64))[:, None]

    (mrr,) = _mean_over_lines(model, dataset, candidates, reciprocal_ranks, 1, purchases)
    return {"mrr": float(mrr)}
"""

RANKING_STEP = """
if eval_dataset is not None:
    {validation} = {evaluate}(model, eval_dataset, candidates)
    metrics["final"].update({"val_" + key: value for key, value in {validation}.items()})
if test_dataset is not None:
    metrics["final"].update({evaluate}(model, test_dataset, candidates))
"""

#: model.eval_protocol new_products: the run_fn's ``purchases`` (the trainer's) go along.
RANKING_STEP_NEW_PRODUCTS = """
if eval_dataset is not None:
    {validation} = {evaluate}(model, eval_dataset, candidates, purchases)
    metrics["final"].update({"val_" + key: value for key, value in {validation}.items()})
if test_dataset is not None:
    metrics["final"].update({evaluate}(model, test_dataset, candidates, purchases))
"""


def _pair_bytes(use: FragmentUse) -> int:
    """What ranking one (line, candidate) pair of a block holds at once, in bytes, by what
    applies to this model: counted from the tensors ``_ranked_lines`` makes per pair (9 is
    what a run on a 200k-product fake catalogue peaked at per pair)."""
    return (9 + (10 if use.params.get("eval_protocol") == "new_products" else 0)
            + (25 if use.params.get("purchase_history") else 0))


class _RankingEvaluator(Fragment):
    """A metric of each evaluated line's rank among the deduplicated candidates."""

    kind: ClassVar[str] = "evaluator"
    fills: ClassVar[tuple[str, ...]] = ("evaluate",)
    template: ClassVar[str]
    function: ClassVar[str]
    validation: ClassVar[str]

    @classmethod
    def declare(cls, use: FragmentUse, config: ResolvedConfig) -> dict[str, tuple[str, ...]]:
        # new_products ranks without the buyer's train products: the trainer's purchases.
        purchases = ("purchases",) if use.params.get("eval_protocol") == "new_products" else ()
        return {"provides": cls.provides, "fills": cls.fills,
                "requires": ("candidates", "trained_model", "datasets", "metrics", *purchases)}

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        out.require_import("numpy", alias="np")
        out.add_once("ranked-lines", Section.EVALUATION, statements(
            RANKED_LINES, memory_mb=use.params["evaluation_memory_mb"],
            pair_bytes=_pair_bytes(use)))
        out.add(Section.EVALUATION, statements(self.template, top_k=tuple(use.params["top_k"])))
        step = RANKING_STEP_NEW_PRODUCTS if use.params.get("eval_protocol") == "new_products" \
            else RANKING_STEP
        out.add_to_function("run_fn", statements(
            step, evaluate=identifier(self.function), validation=identifier(self.validation)))


class RecallAtK(_RankingEvaluator):
    name: ClassVar[str] = "recall_at_k"
    description: ClassVar[str] = "Recall@K over deduplicated candidates (scored in blocks)"
    EXAMPLES: ClassVar[list[list[str]]] = [
        [], ["model.top_k=[1,3]"], ["model.eval_protocol=new_products"],
    ]
    provides: ClassVar[tuple[str, ...]] = ("top_k",)
    writes: ClassVar[tuple[str, ...]] = ("recall_at_{k}", "val_recall_at_{k}")
    template: ClassVar[str] = RECALL
    function: ClassVar[str] = "_evaluate_recall"
    validation: ClassVar[str] = "validation_recall"


class NDCGAtK(_RankingEvaluator):
    name: ClassVar[str] = "ndcg"
    description: ClassVar[str] = "NDCG@K (one relevant product per line) over the candidates"
    EXAMPLES: ClassVar[list[list[str]]] = [
        ["model.evaluators=[recall_at_k,regression,ndcg]"],
        ["model=retrieval_v1", "model.evaluators=[recall_at_k,ndcg]", "model.top_k=[3]"],
    ]
    writes: ClassVar[tuple[str, ...]] = ("ndcg_at_{k}", "val_ndcg_at_{k}")
    template: ClassVar[str] = NDCG
    function: ClassVar[str] = "_evaluate_ndcg"
    validation: ClassVar[str] = "validation_ndcg"


class MRR(_RankingEvaluator):
    name: ClassVar[str] = "mrr"
    description: ClassVar[str] = "mean reciprocal rank over all candidates"
    EXAMPLES: ClassVar[list[list[str]]] = [
        ["model.evaluators=[recall_at_k,regression,mrr]"],
        ["model=retrieval_v1", "model.evaluators=[recall_at_k,mrr]",
         "model.eval_protocol=new_products"],
    ]
    writes: ClassVar[tuple[str, ...]] = ("mrr", "val_mrr")
    template: ClassVar[str] = MRR
    function: ClassVar[str] = "_evaluate_mrr"
    validation: ClassVar[str] = "validation_mrr"


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
    return [RecallAtK, NDCGAtK, MRR, Regression]
