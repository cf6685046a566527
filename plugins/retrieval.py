"""Candidates and retrieval indexes.

``_unique_candidates`` embeds every distinct product exactly once, read from the Transform's
per-product table (one row per product; without one, deduplicated while streaming the splits),
so its memory grows with the catalogue, not with the log. ``_build_index`` indexes those
embeddings for top-K serving, and ``_save_options`` says how to save the index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Optional

from compiler import hookimpl
from compiler.fragments import (
    BuildContext,
    Contributions,
    Fragment,
    FragmentUse,
    Section,
    statements,
)

CANDIDATES = '''
PRODUCT_ID_KEY = {product_id_key}
PRODUCT_VOCAB = {product_vocab}
#: Where the Transform writes one row per distinct product: beside the transform graph.
PRODUCT_TABLE_DIR = "product_table"
#: Product rows read and embedded per call while the candidates are built.
CANDIDATE_BATCH_SIZE = 4096


def _product_table(tf_transform_output):
    """The per-product table of this Transform output (``<root>/product_table/*.gz``, one
    tf.Example of transformed product features per distinct product) as batches of product
    rows, or None where the Transform wrote none (a TFX Transform, an older output)."""
    # <root>/transform_graph/transform_fn -> <root>; plain string splitting, as the paths
    # may be gs:// URIs.
    root = tf_transform_output.transform_savedmodel_dir.rstrip("/").rsplit("/", 2)[0]
    table_dir = root + "/" + PRODUCT_TABLE_DIR
    files = sorted(tf.io.gfile.glob(table_dir + "/*.gz")) if tf.io.gfile.isdir(table_dir) else []
    if not files:
        return None
    feature_spec = tf_transform_output.transformed_feature_spec()
    product_spec = {spec["name"]: feature_spec[spec["name"]] for spec in PRODUCT_FEATURES}
    records = tf.data.TFRecordDataset(files, compression_type="GZIP")
    return records.batch(CANDIDATE_BATCH_SIZE).map(
        lambda batch: tf.io.parse_example(batch, product_spec)
    )


def _first_rows(batches):
    """The product features of each distinct product id in ``batches`` (its first row), in
    product id order, and the number of rows read. Only the rows of ids not seen before are
    kept: memory grows with the products, not with the rows."""
    columns = [spec["name"] for spec in PRODUCT_FEATURES]
    seen = np.zeros(0, bool)
    chunks = {column: [] for column in columns}
    rows = 0
    for batch in batches:
        values = {column: batch[column].numpy().reshape(-1) for column in columns}
        ids = values[PRODUCT_ID_KEY]
        rows += len(ids)
        if len(ids) and ids.max() >= len(seen):
            seen = np.concatenate([seen, np.zeros(int(ids.max()) + 1 - len(seen), bool)])
        _, first = np.unique(ids, return_index=True)
        new = first[~seen[ids[first]]]
        seen[ids[new]] = True
        for column in columns:
            chunks[column].append(values[column][new])
    features = {column: np.concatenate(parts) for column, parts in chunks.items()}
    order = np.argsort(features[PRODUCT_ID_KEY], kind="stable")
    return {column: values[order] for column, values in features.items()}, rows


def _unique_candidates(model, datasets, tf_transform_output):
    """The product features of each distinct product, embedded once, in product id order.

    They come from the Transform's per-product table. Where there is none, from ``datasets``
    (batched by ``_input_fn``, iterated as they are), keeping each new product's first row:
    either way, memory grows with the products, not with the interactions.
    """
    table = _product_table(tf_transform_output)
    if table is not None:
        source = "product_table"
        features, rows = _first_rows(table)
    else:
        source = "splits"
        logger.warning(
            "No product table beside the transform graph: candidates are collected from "
            "every split's lines instead (one pass; memory grows with the products)"
        )
        features, rows = _first_rows(batch for dataset in datasets for batch in dataset)
    product_ids = features[PRODUCT_ID_KEY]
    logger.info("Candidates: %d unique products from %d rows (%s)", len(product_ids), rows, source)
    embeddings = tf.concat(
        [
            model.product_tower(
                {
                    column: values[start : start + CANDIDATE_BATCH_SIZE]
                    for column, values in features.items()
                },
                training=False,
            )
            for start in range(0, len(product_ids), CANDIDATE_BATCH_SIZE)
        ],
        axis=0,
    )
    vocabulary = tf_transform_output.vocabulary_by_name(PRODUCT_VOCAB)
    identifiers = [
        vocabulary[i].decode("utf-8") if i < len(vocabulary) else "[OOV]" for i in product_ids
    ]
    # Row of each product id in the candidate matrix (-1: not a candidate).
    positions = np.full(max(int(product_ids.max()) + 1, len(vocabulary) + 1), -1, np.int64)
    positions[product_ids] = np.arange(len(product_ids))
    return {
        "embeddings": embeddings,
        "identifiers": tf.constant(identifiers),
        "positions": tf.constant(positions),
        "product_ids": tf.constant(product_ids),
        "count": len(product_ids),
        "source": source,
        "rows_read": rows,
    }

'''

CANDIDATE_SCORES = '''
def _candidate_scores(model, batch, candidates, queries=None):
    """Each candidate's score for each buyer of ``batch``, [buyers, candidates]: what the
    evaluators rank by. ``candidates``: all of them or a block of them (their embeddings);
    ``queries``: the buyers' embeddings, where already computed."""
    if queries is None:
        queries = model.buyer_tower(batch, training=False)
    return tf.linalg.matmul(queries, candidates["embeddings"], transpose_b=True)
'''

HISTORY_CANDIDATE_SCORES = '''
def _candidate_scores(model, batch, candidates, queries=None):
    """Each candidate's score for each buyer of ``batch``, [buyers, candidates]: what the
    evaluators and the index rank by. The towers' dot product plus the buyer's purchase
    history score, as in training. ``candidates``: all of them or a block of them (their
    embeddings and product ids); ``queries``: the buyers' embeddings, where already computed."""
    if queries is None:
        queries = model.buyer_tower(batch, training=False)
    scores = tf.linalg.matmul(queries, candidates["embeddings"], transpose_b=True)
    return scores + model.purchase_history(batch, candidates["product_ids"])
'''

CANDIDATE_STEP = '''
candidates = _unique_candidates(
    model,
    [train_dataset]
    + ([eval_dataset] if eval_dataset is not None else [])
    + ([test_dataset] if test_dataset is not None else []),
    tf_transform_output,
)
metrics["candidates"] = {
    "unique_products": candidates["count"],
    "source": candidates["source"],
    "rows_read": candidates["rows_read"],
}
'''


class UniqueCandidates(Fragment):
    kind: ClassVar[str] = "candidates"
    name: ClassVar[str] = "unique"
    description: ClassVar[str] = (
        "distinct products from the Transform's product table (else the splits), embedded once"
    )
    EXAMPLES: ClassVar[list[list[str]]] = [[]]
    provides: ClassVar[tuple[str, ...]] = ("candidates",)
    requires: ClassVar[tuple[str, ...]] = (
        "feature_tables", "logger", "trained_model", "datasets", "metrics",
    )
    fills: ClassVar[tuple[str, ...]] = ("after_fit",)

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        for module, alias in (("tensorflow", "tf"), ("numpy", "np")):
            out.require_import(module, alias=alias)
        product_id = use.params["product_id"]
        out.add(Section.CANDIDATES, statements(
            CANDIDATES, product_id_key=f"{product_id}_id", product_vocab=f"{product_id}_vocab",
        ))
        out.add(Section.CANDIDATES, statements(
            HISTORY_CANDIDATE_SCORES if use.params.get("purchase_history") else CANDIDATE_SCORES
        ))
        out.add_to_function("run_fn", statements(CANDIDATE_STEP))


INDEX_STEP = '''
index = _build_index(model, candidates)
'''

BRUTE_FORCE = '''
def _build_index(model, candidates):
    """Exact top-K over the deduplicated candidates' embeddings."""
    index = tfrs.layers.factorized_top_k.BruteForce(
        model.buyer_tower, k=min(max(TOP_K), candidates["count"])
    )
    index.index(candidates["embeddings"], candidates["identifiers"])
    return index


def _save_options():
    return tf.saved_model.SaveOptions()
'''


HISTORY_BRUTE_FORCE = '''
class HistoryAwareBruteForce(tf.Module):
    """Exact top-K by ``_candidate_scores``: the towers' dot product plus the purchase history
    score, which a TFRS BruteForce index (embeddings only) cannot add. Called like one:
    buyer features -> (scores, product ids)."""

    def __init__(self, model, candidates):
        super().__init__()
        self.model = model
        self.candidates = {
            key: candidates[key] for key in ("embeddings", "product_ids", "identifiers")
        }
        self.k = min(max(TOP_K), candidates["count"])

    def __call__(self, features):
        scores = _candidate_scores(self.model, features, self.candidates)
        top = tf.math.top_k(scores, k=self.k)
        return top.values, tf.gather(self.candidates["identifiers"], top.indices)


def _build_index(model, candidates):
    """Exact top-K over the deduplicated candidates, with the purchase history score."""
    return HistoryAwareBruteForce(model, candidates)


def _save_options():
    return tf.saved_model.SaveOptions()
'''


class BruteForce(Fragment):
    kind: ClassVar[str] = "retrieval_index"
    name: ClassVar[str] = "brute_force"
    description: ClassVar[str] = "exact top-K (TFRS BruteForce)"
    EXAMPLES: ClassVar[list[list[str]]] = [[]]
    provides: ClassVar[tuple[str, ...]] = ("index",)
    requires: ClassVar[tuple[str, ...]] = ("candidates", "top_k", "trained_model")
    fills: ClassVar[tuple[str, ...]] = ("after_fit",)

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        out.require_import("tensorflow_recommenders", alias="tfrs")
        out.add(Section.INDEX, statements(
            HISTORY_BRUTE_FORCE if use.params.get("purchase_history") else BRUTE_FORCE
        ))
        out.add_to_function("run_fn", statements(INDEX_STEP))


SCANN = '''
SCANN_NUM_LEAVES = {num_leaves}
SCANN_LEAVES_TO_SEARCH = {num_leaves_to_search}
SCANN_REORDERING_CANDIDATES = {num_reordering_candidates}
SCANN_DIMENSIONS_PER_BLOCK = {dimensions_per_block}
SCANN_TRAINING_ITERATIONS = {training_iterations}


def _build_index(model, candidates):
    """Approximate top-K with ScaNN over the deduplicated candidates' embeddings.

    The tree cannot have more leaves than there are candidates, so both leaf counts are capped.
    """
    num_leaves = min(SCANN_NUM_LEAVES, candidates["count"])
    index = tfrs.layers.factorized_top_k.ScaNN(
        model.buyer_tower,
        k=min(max(TOP_K), candidates["count"]),
        num_leaves=num_leaves,
        num_leaves_to_search=min(SCANN_LEAVES_TO_SEARCH, num_leaves),
        num_reordering_candidates=SCANN_REORDERING_CANDIDATES,
        dimensions_per_block=SCANN_DIMENSIONS_PER_BLOCK,
        training_iterations=SCANN_TRAINING_ITERATIONS,
    )
    index.index(candidates["embeddings"], candidates["identifiers"])
    return index


def _index_recall(index, dataset, candidates):
    """Recall@K of the ScaNN index itself: is the bought product among the ids it returns?

    Reported beside the exact Recall@K, over the same interactions, as ``index_recall_at_K``.
    """
    hits = np.zeros(len(TOP_K), np.int64)
    total = 0
    for batch in dataset:
        _, returned = index(batch)
        true_rows = tf.gather(candidates["positions"], tf.reshape(batch[PRODUCT_ID_KEY], [-1]))
        true_ids = tf.gather(candidates["identifiers"], tf.maximum(true_rows, 0))
        found = tf.logical_and(returned == true_ids[:, None], (true_rows >= 0)[:, None])
        for position, k in enumerate(TOP_K):
            hits[position] += int(tf.reduce_sum(tf.cast(tf.reduce_any(found[:, :k], axis=1),
                                                        tf.int64)))
        total += int(tf.size(true_rows))
    return {f"index_recall_at_{k}": float(h) / max(total, 1) for k, h in zip(TOP_K, hits)}


def _save_options():
    # ScaNN's ops live in the "Scann" namespace; SavedModel refuses them unless allowed.
    return tf.saved_model.SaveOptions(namespace_whitelist=["Scann"])
'''

SCANN_STEP = '''
index = _build_index(model, candidates)
if test_dataset is not None:
    metrics["final"].update(_index_recall(index, test_dataset, candidates))
'''


@dataclass
class ScaNNParams:
    """``model.retrieval_index_params`` for ``retrieval_algorithm=scann`` (TFRS ScaNN)."""

    #: Partitions of the candidate set (capped at the number of candidates).
    num_leaves: int = 100
    #: Partitions searched per query: more is slower and closer to exact.
    num_leaves_to_search: int = 10
    #: Candidates rescored exactly before the top K is taken; null: no reordering.
    num_reordering_candidates: Optional[int] = None  # noqa: UP045 - OmegaConf needs Optional
    dimensions_per_block: int = 2
    training_iterations: int = 12

    def __post_init__(self) -> None:
        for name in ("num_leaves", "num_leaves_to_search", "dimensions_per_block",
                     "training_iterations"):
            value = getattr(self, name)
            if value < 1:
                raise ValueError(f"{name}: expected a positive integer, got {value}")
        if self.num_leaves_to_search > self.num_leaves:
            raise ValueError(
                "num_leaves_to_search: expected at most num_leaves "
                f"({self.num_leaves}), got {self.num_leaves_to_search}"
            )
        if self.num_reordering_candidates is not None and self.num_reordering_candidates < 1:
            raise ValueError("num_reordering_candidates: expected a positive integer or null, "
                             f"got {self.num_reordering_candidates}")


class ScaNN(Fragment):
    kind: ClassVar[str] = "retrieval_index"
    name: ClassVar[str] = "scann"
    description: ClassVar[str] = "approximate top-K (TFRS ScaNN; needs the scann package)"
    EXAMPLES: ClassVar[list[list[str]]] = [
        ["model.retrieval_algorithm=scann"],
        ["model.retrieval_algorithm=scann", "+model.retrieval_index_params.num_leaves=20",
         "+model.retrieval_index_params.num_reordering_candidates=200"],
    ]
    provides: ClassVar[tuple[str, ...]] = ("index",)
    requires: ClassVar[tuple[str, ...]] = (
        "candidates", "top_k", "trained_model", "datasets", "metrics",
    )
    writes: ClassVar[tuple[str, ...]] = ("index_recall_at_{k}",)
    fills: ClassVar[tuple[str, ...]] = ("after_fit",)
    Params: ClassVar[type] = ScaNNParams

    def contribute(self, use: FragmentUse, ctx: BuildContext, out: Contributions) -> None:
        out.require_import("tensorflow", alias="tf")
        out.require_import("tensorflow_recommenders", alias="tfrs")
        out.require_import("numpy", alias="np")
        params = {**vars(ScaNNParams()), **use.params}
        out.add(Section.INDEX, statements(
            SCANN, **{name: params[name] for name in vars(ScaNNParams())},
        ))
        out.add_to_function("run_fn", statements(SCANN_STEP))


@hookimpl
def register_fragments() -> list[type[Fragment]]:
    return [UniqueCandidates, BruteForce, ScaNN]
