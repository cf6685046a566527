"""Purchase history: what each buyer bought in the train split, as a learned score.

In B2B most orders repeat, so a model that cannot see a buyer's past purchases starts behind
the buy-again baseline. Three fragments, all selected by ``model.purchase_history`` (and
``model.retrieval.logq_correction`` for the product frequencies):

- ``feature_transform/purchase_history`` (Transform): per (buyer, product) pair, how often the
  buyer bought it and a recency-weighted count (each purchase weighs 0.5 ** (age / half-life),
  age in days before the last train day). Both are tft vocabularies with stored frequencies,
  so they are computed over the data the Transform analyzes, the train split, and never from
  the split being evaluated; they travel with the Transform output as assets.
- ``feature_transform/product_frequency`` (Transform): each product's train-split count, the
  candidate sampling probabilities of the logQ correction.
- ``history/purchase_history`` (trainer): the ``PurchaseHistory`` layer. It looks up each
  (buyer, candidate) pair and turns its counts into a score with a small MLP, which the model
  adds to the two towers' dot product: a learned mix of the two-tower score and a history
  score (the repeat-aware scoring of e.g. Ariannezhad et al., "ReCANet", SIGIR 2022, reduced
  to its count and recency signals).
"""

from __future__ import annotations

from typing import ClassVar

from compiler import hookimpl
from compiler.fragments import (
    TRANSFORM_FILE,
    BuildContext,
    Contributions,
    Fragment,
    FragmentUse,
    Section,
    TransformedFeature,
    statements,
)
from compiler.model import EMBEDDING_SUFFIX, vocabulary_file

PREPROCESSING_FN = "preprocessing_fn"
#: The Transform's vocabulary files of the history (keys "<buyer id>:<product id>").
PURCHASE_COUNT_VOCAB = "purchase_count"
PURCHASE_RECENCY_VOCAB = "purchase_recency"
PRODUCT_FREQUENCY_VOCAB = "product_frequency"
#: Each example's own recency weight: training leaves it out of its own history.
RECENCY_WEIGHT_COLUMN = "purchase_recency_weight"

HISTORY_TRANSFORM = '''
# Purchase history over the data the Transform analyzes (the train split): per (buyer,
# product) pair a count and a recency-weighted count, stored as vocabulary frequencies.
purchase_buyers = tf.strings.as_string(outputs[{buyer}])
purchase_products = tf.strings.as_string(outputs[{product}])
purchase_pairs = tf.strings.join([purchase_buyers, purchase_products], separator=":")
purchase_days = tf.cast(inputs[{date}], tf.float32) / 86400.0
purchase_age_days = tft.max(purchase_days) - purchase_days
outputs[{weight}] = tf.math.pow(0.5, purchase_age_days / {half_life})
tft.vocabulary(purchase_pairs, vocab_filename={count_vocab}, store_frequency=True)
tft.vocabulary(
    purchase_pairs,
    weights=outputs[{weight}],
    vocab_filename={recency_vocab},
    store_frequency=True,
)
'''


class PurchaseHistoryTransform(Fragment):
    kind: ClassVar[str] = "feature_transform"
    name: ClassVar[str] = "purchase_history"
    target: ClassVar[str] = TRANSFORM_FILE
    description: ClassVar[str] = "train-split (buyer, product) counts and recency, as assets"
    EXAMPLES: ClassVar[list[list[str]]] = [["+model.purchase_history={}"]]

    @classmethod
    def outputs(cls, use: FragmentUse) -> list[TransformedFeature]:
        return [TransformedFeature(name=RECENCY_WEIGHT_COLUMN, dtype="float32", side="history",
                                   encoding="dense", source=use.params["date"])]

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        out.add_to_function(PREPROCESSING_FN, statements(
            HISTORY_TRANSFORM, buyer=use.params["buyer_column"],
            product=use.params["product_column"], date=use.params["date"],
            weight=RECENCY_WEIGHT_COLUMN, half_life=float(use.params["half_life_days"]),
            count_vocab=PURCHASE_COUNT_VOCAB, recency_vocab=PURCHASE_RECENCY_VOCAB,
        ))


PRODUCT_FREQUENCY_TRANSFORM = '''
# Each product's train-split count: the candidate sampling probabilities of the logQ correction.
product_counts = tf.strings.as_string(outputs[{product}])
tft.vocabulary(product_counts, vocab_filename={vocab}, store_frequency=True)
'''


class ProductFrequencyTransform(Fragment):
    kind: ClassVar[str] = "feature_transform"
    name: ClassVar[str] = "product_frequency"
    target: ClassVar[str] = TRANSFORM_FILE
    description: ClassVar[str] = "train-split product counts, as an asset (logQ correction)"
    EXAMPLES: ClassVar[list[list[str]]] = [["model.retrieval.logq_correction=true"]]

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        out.add_to_function(PREPROCESSING_FN, statements(
            PRODUCT_FREQUENCY_TRANSFORM, product=use.params["product_column"],
            vocab=PRODUCT_FREQUENCY_VOCAB,
        ))


#: Reads a vocabulary of stored frequencies; shared by the history and the logQ correction.
FREQUENCIES = '''
def _vocabulary_frequencies(tf_transform_output, vocab_name):
    """{key: frequency} of a Transform vocabulary written with store_frequency=True."""
    frequencies = {}
    with tf.io.gfile.GFile(tf_transform_output.vocabulary_file_by_name(vocab_name), "rb") as f:
        for line in f:
            frequency, key = line.rstrip(b"\\n").split(b" ", 1)
            frequencies[key.decode("utf-8")] = float(frequency)
    return frequencies
'''

HISTORY_LAYER = '''
HISTORY_BUYER_KEY = {buyer}
HISTORY_PRODUCT_KEY = {product}
HISTORY_PRODUCT_VOCAB = {product_vocab}
HISTORY_BUYER_VOCAB = {buyer_vocab}
RECENCY_WEIGHT_KEY = {weight}
PURCHASE_COUNT_VOCAB = {count_vocab}
PURCHASE_RECENCY_VOCAB = {recency_vocab}
HISTORY_SCORER_LAYERS = {scorer_layers}


class PurchaseHistory(tf.keras.layers.Layer):
    """The buyer's train-split purchases of each candidate, turned into a learned score.

    A (buyer, product) pair's history is its purchase count and recency-weighted count (the
    Transform's vocabularies over the train split), read beside the buyer's total purchases
    (the product's share of them) and the product's. A small MLP maps them to a score, minus
    its value for the same pair never bought, so a product the buyer never bought scores 0
    here and is ranked by the towers alone.
    Only bought pairs are scored: the work grows with the history, not with the candidates.
    """

    def __init__(self, tf_transform_output, **kwargs):
        super().__init__(**kwargs)
        counts = _vocabulary_frequencies(tf_transform_output, PURCHASE_COUNT_VOCAB)
        recency = _vocabulary_frequencies(tf_transform_output, PURCHASE_RECENCY_VOCAB)
        # Product ids run up to the vocabulary size (its OOV id); a pair's key is
        # buyer * num_products + product.
        self.num_products = tf_transform_output.vocabulary_size_by_name(HISTORY_PRODUCT_VOCAB) + 1
        pairs = sorted(tuple(int(part) for part in key.split(":")) for key in counts)
        keys = np.array([buyer * self.num_products + product for buyer, product in pairs])
        values = [[counts[f"{b}:{p}"], recency.get(f"{b}:{p}", 0.0)] for b, p in pairs]
        self.rows = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(keys, tf.int64), tf.range(len(pairs), dtype=tf.int64)
            ),
            default_value=-1,
        )
        self.pair_values = tf.constant(np.array(values, np.float32).reshape(-1, 2))
        # Each buyer's purchase counts as a sparse [buyers, products] matrix (the OOV ids
        # included), and each buyer's total.
        num_buyers = tf_transform_output.vocabulary_size_by_name(HISTORY_BUYER_VOCAB) + 1
        self.bought = tf.sparse.SparseTensor(
            np.array(pairs, np.int64).reshape(-1, 2),
            np.array([counts[f"{b}:{p}"] for b, p in pairs], np.float32),
            [num_buyers, self.num_products],
        )
        self.bought_totals = tf.sparse.reduce_sum(self.bought, axis=1)
        self.product_totals = tf.sparse.reduce_sum(self.bought, axis=0)
        self.scorer = tf.keras.Sequential(
            [tf.keras.layers.Dense(width, activation="relu") for width in HISTORY_SCORER_LAYERS]
            + [tf.keras.layers.Dense(1)],
            name="history_scorer",
        )

    def call(self, features, product_ids, leave_out_own=False):
        """History scores [buyers, products] of the buyers in ``features`` for ``product_ids``.

        ``leave_out_own``: the buyers' rows are train examples, whose purchases the history
        counts; each is taken out of its own pair's counts (leave-one-out), so training never
        learns from an example predicting itself.
        """
        buyer_ids = tf.reshape(features[HISTORY_BUYER_KEY], [-1])
        product_ids = tf.reshape(product_ids, [-1])
        keys = buyer_ids[:, None] * self.num_products + product_ids[None, :]
        rows = self.rows.lookup(keys)
        bought = tf.where(rows >= 0)
        values = tf.gather(self.pair_values, tf.gather_nd(rows, bought))
        if leave_out_own:
            own_products = tf.reshape(features[HISTORY_PRODUCT_KEY], [-1])
            own_counts = tf.ones_like(own_products, tf.float32)
            own_weights = tf.reshape(features[RECENCY_WEIGHT_KEY], [-1])
            own = tf.stack([own_counts, own_weights], axis=1)
            is_own = tf.gather(product_ids, bought[:, 1]) == tf.gather(own_products, bought[:, 0])
            values -= tf.cast(is_own, tf.float32)[:, None] * tf.gather(own, bought[:, 0])
        # How much the buyer buys and how popular the product is: what a count means.
        buyer_totals = tf.gather(self.bought_totals, tf.gather(buyer_ids, bought[:, 0]))
        product_totals = tf.gather(self.product_totals, tf.gather(product_ids, bought[:, 1]))
        context = tf.stack([buyer_totals, product_totals], axis=1)
        never_bought = self._score(tf.zeros_like(values), context)
        scores = self._score(tf.maximum(values, 0.0), context) - never_bought
        return tf.scatter_nd(bought, tf.reshape(scores, [-1]), tf.shape(keys, tf.int64))

    def bought_mean(self, features, embedding, leave_out_own=False):
        """The count-weighted mean of ``embedding`` over each buyer's train purchases, [buyers,
        dim]; zeros for a buyer with none. ``leave_out_own`` as in ``call``. One sparse matmul
        gives every buyer's sum; the batch gathers its rows."""
        buyer_ids = tf.reshape(features[HISTORY_BUYER_KEY], [-1])
        sums = tf.sparse.sparse_dense_matmul(self.bought, embedding.embeddings)
        total = tf.gather(sums, buyer_ids)
        bought = tf.gather(self.bought_totals, buyer_ids)
        if leave_out_own:
            total -= embedding(tf.reshape(features[HISTORY_PRODUCT_KEY], [-1]))
            bought -= 1.0
        return total / tf.maximum(bought, 1.0)[:, None]

    def _score(self, values, context):
        """The scorer over [log1p(count), log1p(recency), bought, count / buyer's total,
        log1p(buyer's total), log1p(product's total)]."""
        bought = tf.cast(values[:, :1] > 0.5, tf.float32)
        share = values[:, :1] / tf.maximum(context[:, :1], 1.0)
        inputs = [tf.math.log1p(values), bought, share, tf.math.log1p(context)]
        return self.scorer(tf.concat(inputs, axis=1))
'''


HISTORY_QUERY = '''
HISTORY_QUERY_DIM = {dim}


class HistoryQuery(tf.keras.Model):
    """The buyer tower plus the mean of learned product vectors over the buyer's train
    purchases: a factored item-to-item similarity (FISM, Kabbur et al., KDD 2013), so the
    model can recommend what goes with what the buyer bought. Training leaves each example
    out of its own purchases, as ``PurchaseHistory`` does."""

    def __init__(self, tower, purchase_history, **kwargs):
        super().__init__(**kwargs)
        self.tower = tower
        self.purchase_history = purchase_history
        self.bought_vectors = tf.keras.layers.Embedding(
            purchase_history.num_products, HISTORY_QUERY_DIM, name="bought_product_embedding"
        )
        # Built now: bought_mean reads its table before any lookup would build it.
        self.bought_vectors.build((None,))

    def call(self, features, training=False):
        bought = self.purchase_history.bought_mean(
            features, self.bought_vectors, leave_out_own=training
        )
        return self.tower(features, training=training) + bought
'''


class PurchaseHistoryScore(Fragment):
    kind: ClassVar[str] = "history"
    name: ClassVar[str] = "purchase_history"
    description: ClassVar[str] = "a learned score of the buyer's train purchases of a candidate"
    EXAMPLES: ClassVar[list[list[str]]] = [["+model.purchase_history={}"]]
    provides: ClassVar[tuple[str, ...]] = ("purchase_history",)

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        for module, alias in (("tensorflow", "tf"), ("numpy", "np")):
            out.require_import(module, alias=alias)
        add_frequency_reader(out)
        product_column = use.params["product_column"]
        out.add(Section.FEATURES, statements(
            HISTORY_LAYER, buyer=use.params["buyer_column"], product=product_column,
            product_vocab=product_vocabulary(product_column), weight=RECENCY_WEIGHT_COLUMN,
            count_vocab=PURCHASE_COUNT_VOCAB, recency_vocab=PURCHASE_RECENCY_VOCAB,
            scorer_layers=tuple(use.params["scorer_layers"]),
            buyer_vocab=vocabulary_file(use.params["buyer_column"].removesuffix(EMBEDDING_SUFFIX)),
        ))
        if use.params.get("bought_products_in_query"):
            out.add(Section.FEATURES, statements(HISTORY_QUERY, dim=use.params["output_dim"]))


def product_vocabulary(product_column: str) -> str:
    """The product id vocabulary of a product id column (``product_id_id`` ->
    ``product_id_vocab``)."""
    return vocabulary_file(product_column.removesuffix(EMBEDDING_SUFFIX))


def add_frequency_reader(out: Contributions) -> None:
    """Emit ``_vocabulary_frequencies`` once (the history and the logQ correction share it)."""
    out.require_import("tensorflow", alias="tf")
    out.add_once("vocabulary-frequencies", Section.HELPERS, statements(FREQUENCIES))


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [PurchaseHistoryTransform, ProductFrequencyTransform, PurchaseHistoryScore]
