"""The baselines a recommender engineer computes first, on the same transformed data and splits
the model saw: fitted on the Transform output's train split, scored on its test split.

Retrieval (``recall_at_K``, ``ndcg_at_K`` for every K of ``model.top_k``, and ``mrr``):

- ``most_popular``: the train split's products by interaction count, the same list for everyone
  (popularity ranking; Cremonesi, Koren and Turrin, "Performance of recommender algorithms on
  top-N recommendation tasks", RecSys 2010). Ties: the smaller product id first. Product ids
  are the Transform's vocabulary indices (``tft.compute_and_apply_vocabulary`` orders its
  vocabulary by frequency), so this order is fixed for a given Transform output.
- ``buy_again``: the buyer's own train products by how often they bought each, ties most recent
  first, backfilled with the most-popular products they have not bought; a buyer unseen in
  train gets most-popular (repeat-purchase recommendation; Bhagat et al., "Buy It Again:
  Modeling Repeat Purchase Recommendations", KDD 2018). "Recent" is the last day the buyer
  bought the product, read from the normalised (else bucketized) column of the first timestamp
  feature: day resolution, since the Transform keeps only days. Without such a column, equal
  counts fall back to the popularity order.
- ``cooccurrence``: item-to-item collaborative filtering (Linden, Smith and York, "Amazon.com
  recommendations: item-to-item collaborative filtering", IEEE Internet Computing 2003).
  cooccur(i, j) is the number of train buyers who bought both i and j, normalised to a
  cosine, cooccur(i, j) / sqrt(n_i n_j) where n_i = cooccur(i, i) counts the train buyers of
  i. A buyer's score for j sums that over the distinct products i of their train history, j
  itself included: products they bought stay candidates, as B2B reorders should, and each
  gets 1 from itself (on Online Retail this lifts Recall@100 from 0.329 to 0.356). Zero
  scores are backfilled with most-popular.

Every retrieval baseline ranks the candidates (the train split's products) in a total order:
its score, highest first, then the most-popular order. A tie therefore never counts as a hit,
however many candidates share a score (buy-again's backfill scores are all zero). A test line's
rank is the number of candidates before its product; a product never seen in train is never a
hit. Recall@K counts rank < K; NDCG@K with one relevant item is 1/log2(rank + 2) when rank < K,
else 0 (Järvelin and Kekäläinen, "Cumulated gain-based evaluation of IR techniques", TOIS
2002); MRR is the mean of 1/(rank + 1) over all candidates (Voorhees, TREC-8 QA, 1999). All are
means over the test lines.

``eval_protocol: new_products`` drops the test lines whose product the buyer bought in train
and removes the buyer's train products from their candidates; ``buy_again`` then degenerates
to most-popular among the products the buyer has not bought.

Regression (``test_rmse``, ``test_mae``, on the transformed target, over every test line
whatever the protocol): ``train_mean``, and ``per_buyer_mean`` / ``per_product_mean``, each
shrunk toward the train mean mu as (sum + lambda * mu) / (n + lambda) with lambda =
``SHRINKAGE`` = 10 (the damped means of Koren's baseline predictors, "Factor in the
neighbors", TKDD 2010); an id unseen in train gets mu.

Score blocks are dense (buyers x candidates) arrays of at most ``BLOCK_CELLS`` cells, so
memory stays bounded whatever the number of test buyers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import sparse

from compiler.model import (
    ResolvedConfig,
    bucket_column,
    buyer_id_column,
    embedding_column,
    normalized_column,
    target_column,
)
from compiler.runner._tf import import_tf
from compiler.runner.fn_args import fn_args_from_transform, split_file_pattern

#: lambda of the shrunk per-buyer and per-product means.
SHRINKAGE = 10.0
#: Cells of one dense score block: 4M float64 values, 32 MB.
BLOCK_CELLS = 1 << 22
#: Up to this many candidates the co-occurrence similarity is a dense float32 matrix (256 MB
#: at most); beyond it, sparse.
DENSE_SIMILARITY_LIMIT = 8192
#: The rank of a test line whose product is not a candidate: never a hit.
NEVER = np.iinfo(np.int64).max
#: Protocols of ``model.eval_protocol``.
ALL, NEW_PRODUCTS = "all", "new_products"
#: Metrics where lower is better; every other metric (recall, NDCG, MRR) is higher-is-better.
ERROR_METRICS = ("loss", "rmse", "mae")


@dataclass(frozen=True)
class Split:
    """One split's columns, as arrays of the same length (``None``: no such column)."""

    products: np.ndarray | None = None
    buyers: np.ndarray | None = None
    times: np.ndarray | None = None
    targets: np.ndarray | None = None


@dataclass(frozen=True)
class BaselineColumns:
    """The transformed columns the baselines read (``None``: not in the Transform output)."""

    product: str | None
    buyer: str | None
    time: str | None
    target: str | None


def baseline_columns(config: ResolvedConfig, required: Mapping[str, str]) -> BaselineColumns:
    """Product id: ``features.product_id``'s vocabulary ids. Buyer id: ``features.buyer_id``'s
    (``compiler.model.buyer_id_column``; without an embedding, no per-buyer baselines). Time:
    the normalised column, else the bucket column (both increase with the day), of the first
    timestamp feature that has one. Target: the transformed target."""
    features = config.features
    buyer = buyer_id_column(features)
    time = None
    for spec in (f for f in [*features.buyer, *features.product]
                 if getattr(f.dtype, "value", f.dtype) == "timestamp"):
        candidates = [normalized_column(spec.name)] if spec.normalize else []
        candidates += [bucket_column(spec.name)] if spec.bucketize else []
        time = next((c for c in candidates if c in required), None)
        if time:
            break
    target = target_column(features.target.column) if features.target else None
    return BaselineColumns(product=_present(embedding_column(features.product_id), required),
                           buyer=_present(buyer, required), time=time,
                           target=_present(target, required))


def _present(column: str | None, required: Mapping[str, str]) -> str | None:
    return column if column is not None and column in required else None


# --------------------------------------------------------------------------- reading


def compute_baselines(transform_dir: str, required: Mapping[str, str], columns: BaselineColumns,
                      top_k: Iterable[int], *, retrieval: bool, regression: bool,
                      protocol: str = ALL) -> dict[str, dict[str, float]]:
    """Every baseline the columns allow, name -> metrics, read from the Transform output's
    train and test splits (retrieval ones only with ``retrieval``, regression with
    ``regression``)."""
    names = {"products": columns.product, "buyers": columns.buyer, "times": columns.time,
             "targets": columns.target if regression else None}
    wanted = {field: column for field, column in names.items() if column}
    train, test = (_read_split(transform_dir, split, wanted, required)
                   for split in ("train", "test"))
    baselines: dict[str, dict[str, float]] = {}
    if retrieval and columns.product:
        baselines.update(retrieval_baselines(train, test, top_k, protocol=protocol))
    if regression and columns.target:
        baselines.update(regression_baselines(train, test))
    return baselines


def _read_split(transform_dir: str, split: str, wanted: Mapping[str, str],
                required: Mapping[str, str]) -> Split:
    tf = import_tf()
    examples = fn_args_from_transform(transform_dir, "/unused").train_files[0].rsplit("/", 2)[0]
    spec = {column: tf.io.FixedLenFeature([], tf.int64 if required[column] == "int64"
                                          else tf.float32) for column in wanted.values()}
    files = tf.io.gfile.glob(split_file_pattern(examples, split))
    dataset = tf.data.TFRecordDataset(files, compression_type="GZIP")
    dataset = dataset.batch(4096).map(lambda batch: tf.io.parse_example(batch, spec))
    parts = list(dataset.as_numpy_iterator())
    return Split(**{field: np.concatenate([p[column] for p in parts]) if parts
                    else np.zeros(0) for field, column in wanted.items()})


# --------------------------------------------------------------------------- retrieval


def retrieval_baselines(train: Split, test: Split, top_k: Iterable[int], *,
                        protocol: str = ALL) -> dict[str, dict[str, float]]:
    """``most_popular``, and with buyer ids ``buy_again`` and ``cooccurrence``: name ->
    ``recall_at_K``/``ndcg_at_K`` for each K, and ``mrr`` (see the module docstring)."""
    top_k = sorted(set(top_k))
    return {name: ranking_metrics(found, top_k)
            for name, found in baseline_ranks(train, test, protocol=protocol).items()}


def baseline_ranks(train: Split, test: Split, *, protocol: str = ALL) -> dict[str, np.ndarray]:
    """name -> each counted test line's 0-based rank (``NEVER``: not a candidate). Under
    ``new_products`` the test lines whose product the buyer bought in train are left out."""
    assert train.products is not None and test.products is not None
    # Candidates are the train products, numbered by popularity: column 0 is the most bought.
    ids, counts = np.unique(train.products, return_counts=True)
    by_popularity = np.lexsort((ids, -counts))
    column_of_id = np.empty(len(ids), np.int64)
    column_of_id[by_popularity] = np.arange(len(ids))
    n_candidates = len(ids)
    train_cols = column_of_id[np.searchsorted(ids, train.products)]
    test_cols = _lookup(ids, test.products, column_of_id)
    if train.buyers is None or test.buyers is None:  # no buyer ids: no buyer has a history
        buyer_ids = np.zeros(0, np.int64)
        test_rows = np.zeros_like(test_cols)
        pairs = counts_per_pair = np.zeros(0, np.int64)
    else:
        buyer_ids = np.unique(train.buyers)
        train_rows = np.searchsorted(buyer_ids, train.buyers)
        # Every buyer unseen in train shares the last row, which has no history.
        test_rows = _lookup(buyer_ids, test.buyers, np.arange(len(buyer_ids)),
                            missing=len(buyer_ids))
        # One key per (buyer, product) pair of train, with its number of lines.
        pairs, counts_per_pair = np.unique(train_rows * n_candidates + train_cols,
                                           return_counts=True)
    shape = (len(buyer_ids) + 1, n_candidates)
    history = sparse.csr_matrix((np.ones(len(pairs)), divmod(pairs, n_candidates)), shape=shape)

    excluded = None
    if protocol == NEW_PRODUCTS:
        bought = np.isin(test_rows * n_candidates + test_cols, pairs) & (test_cols >= 0)
        test_rows, test_cols = test_rows[~bought], test_cols[~bought]
        excluded = history

    def ranks(scores: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
        return _ranks(scores, test_rows, test_cols, n_candidates, excluded)

    # Every score ties: the rank is the popularity position, less the excluded before it.
    results = {"most_popular": test_cols.copy() if excluded is None else
               ranks(lambda rows: np.zeros((len(rows), n_candidates)))}
    results["most_popular"][test_cols < 0] = NEVER
    if len(buyer_ids):
        again = _buy_again_scores(train.times, train_rows, train_cols, pairs, counts_per_pair,
                                  shape)
        results["buy_again"] = ranks(lambda rows: again[rows].toarray())
        similarity: Any = cooccurrence_similarity(history)
        if n_candidates <= DENSE_SIMILARITY_LIMIT:
            # sparse x dense is one pass over the history; sparse x sparse costs 4x more here
            similarity = similarity.astype(np.float32).toarray()
        results["cooccurrence"] = ranks(lambda rows: _dense(history[rows] @ similarity))
    return results


def _dense(block: Any) -> np.ndarray:
    return block.toarray() if sparse.issparse(block) else np.asarray(block)


def _lookup(keys: np.ndarray, values: np.ndarray, mapped: np.ndarray,
            missing: int = -1) -> np.ndarray:
    """``mapped[i]`` where ``values`` equals ``keys[i]`` (``keys`` sorted), else ``missing``."""
    if len(keys) == 0:
        return np.full(len(values), missing, np.int64)
    positions = np.minimum(np.searchsorted(keys, values), len(keys) - 1)
    return np.where(keys[positions] == values, mapped[positions], missing).astype(np.int64)


def _buy_again_scores(times: np.ndarray | None, rows: np.ndarray, cols: np.ndarray,
                      pairs: np.ndarray, counts: np.ndarray,
                      shape: tuple[int, int]) -> sparse.csr_matrix:
    """count * T + the dense rank of the buyer's last day with the product (1..T-1): the count
    first, the last day on a tie, exactly, as float64 integers."""
    scores = counts.astype(np.float64)
    if times is not None:
        days, day_rank = np.unique(times, return_inverse=True)
        last = np.zeros(len(pairs), np.int64)
        np.maximum.at(last, np.searchsorted(pairs, rows * shape[1] + cols),
                      day_rank.reshape(-1) + 1)
        scores = scores * (len(days) + 1) + last
    return sparse.csr_matrix((scores, divmod(pairs, shape[1])), shape=shape)


def cooccurrence_similarity(history: sparse.csr_matrix) -> sparse.csr_matrix:
    """Cosine item-item similarity from a binary buyers x products history: the number of
    buyers of both, over sqrt(n_i n_j); 1 on the diagonal of a bought product."""
    together = (history.T @ history).tocsr()
    buyers_of = together.diagonal()
    scale = sparse.diags(1.0 / np.sqrt(np.maximum(buyers_of, 1)))
    return (scale @ together @ scale).tocsr()


def _ranks(scores: Callable[[np.ndarray], np.ndarray], rows: np.ndarray, cols: np.ndarray,
           n_candidates: int, excluded: sparse.csr_matrix | None) -> np.ndarray:
    """Each test line's rank under its buyer's scores in the total order (score descending,
    then candidate column ascending, i.e. most-popular). ``scores(rows)`` is the dense block
    of those buyers; ``excluded`` (buyers x candidates) marks candidates removed per buyer."""
    found = np.full(len(rows), NEVER, np.int64)
    lines = np.flatnonzero(cols >= 0)
    lines = lines[np.argsort(rows[lines], kind="stable")]
    buyers, starts = np.unique(rows[lines], return_index=True)
    starts = np.append(starts, len(lines))
    per_block = max(1, BLOCK_CELLS // max(n_candidates, 1))
    positions = np.arange(n_candidates)
    for first in range(0, len(buyers), per_block):
        block_buyers = buyers[first:first + per_block]
        block = scores(block_buyers)
        if excluded is not None:
            block[excluded[block_buyers].nonzero()] = -np.inf
        block_lines = lines[starts[first]:starts[first + len(block_buyers)]]
        local = np.searchsorted(block_buyers, rows[block_lines])
        for part in range(0, len(block_lines), per_block):
            chosen = block_lines[part:part + per_block]
            rows_scores = block[local[part:part + per_block]]
            true_cols = cols[chosen]
            true_scores = rows_scores[np.arange(len(chosen)), true_cols][:, None]
            above = np.count_nonzero(rows_scores > true_scores, axis=1)
            tied_before = np.count_nonzero((rows_scores == true_scores)
                                           & (positions < true_cols[:, None]), axis=1)
            found[chosen] = above + tied_before
    return found


def ranking_metrics(ranks: np.ndarray, top_k: Iterable[int]) -> dict[str, float]:
    """Recall@K and NDCG@K for each K, and MRR, from 0-based ranks (``NEVER``: no hit)."""
    total = max(len(ranks), 1)
    hit = ranks != NEVER
    gains = np.zeros(len(ranks))
    gains[hit] = 1.0 / np.log2(ranks[hit] + 2.0)
    reciprocal = np.zeros(len(ranks))
    reciprocal[hit] = 1.0 / (ranks[hit] + 1.0)
    metrics: dict[str, float] = {}
    for k in top_k:
        metrics[f"recall_at_{k}"] = float(np.count_nonzero(ranks < k) / total)
    for k in top_k:
        metrics[f"ndcg_at_{k}"] = float(gains[ranks < k].sum() / total)
    metrics["mrr"] = float(reciprocal.sum() / total)
    return metrics


# --------------------------------------------------------------------------- regression


def regression_baselines(train: Split, test: Split,
                         shrinkage: float = SHRINKAGE) -> dict[str, dict[str, float]]:
    """``train_mean``, and where the ids are there ``per_buyer_mean`` and
    ``per_product_mean`` shrunk toward it: name -> ``test_rmse``, ``test_mae``."""
    assert train.targets is not None and test.targets is not None
    targets = train.targets.astype(np.float64)
    mean = float(targets.mean()) if len(targets) else 0.0
    truth = test.targets.astype(np.float64)
    baselines = {"train_mean": _errors(truth - mean)}
    for name, train_keys, test_keys in (("per_buyer_mean", train.buyers, test.buyers),
                                        ("per_product_mean", train.products, test.products)):
        if train_keys is not None and test_keys is not None:
            predicted = shrunk_means(train_keys, targets, test_keys, mean, shrinkage)
            baselines[name] = _errors(truth - predicted)
    return baselines


def shrunk_means(keys: np.ndarray, targets: np.ndarray, queries: np.ndarray, mean: float,
                 shrinkage: float = SHRINKAGE) -> np.ndarray:
    """(sum + shrinkage * mean) / (n + shrinkage) of each query's key in train; ``mean`` for
    a key not in train."""
    unique, inverse = np.unique(keys, return_inverse=True)
    sums = np.bincount(inverse.reshape(-1), weights=targets, minlength=len(unique))
    counts = np.bincount(inverse.reshape(-1), minlength=len(unique))
    means = (sums + shrinkage * mean) / (counts + shrinkage)
    found = _lookup(unique, queries, np.arange(len(unique)))
    return np.where(found >= 0, means[np.maximum(found, 0)], mean)


def _errors(residuals: np.ndarray) -> dict[str, float]:
    if len(residuals) == 0:
        return {"test_rmse": 0.0, "test_mae": 0.0}
    return {"test_rmse": float(np.sqrt(np.mean(residuals ** 2))),
            "test_mae": float(np.mean(np.abs(residuals)))}


# --------------------------------------------------------------------------- the table


def lower_is_better(metric: str) -> bool:
    """Errors and losses (``test_rmse``, ``val_mae``, ``loss``) go down; the rest go up."""
    return metric.removeprefix("val_").removeprefix("test_") in ERROR_METRICS


def best_baselines(baselines: Mapping[str, Mapping[str, float]]) -> dict[str, dict[str, Any]]:
    """metric -> {"name", "value"} of the best baseline for it (highest, or lowest for an
    error). On a tie the baseline listed first wins (simpler baselines are listed first)."""
    best: dict[str, dict[str, Any]] = {}
    for name, values in baselines.items():
        for metric, value in values.items():
            current = best.get(metric)
            better = current is None or (value < current["value"] if lower_is_better(metric)
                                         else value > current["value"])
            if better:
                best[metric] = {"name": name, "value": value}
    return best


def below_baseline_lines(final: Mapping[str, float],
                         best: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """One line per metric where the model is worse than the best baseline, e.g.
    ``below baseline: recall_at_10 0.081 < buy_again 0.112`` (``>`` for an error metric)."""
    lines = []
    for metric, value in final.items():
        if metric not in best or not isinstance(value, (int, float)):
            continue
        name, baseline = best[metric]["name"], best[metric]["value"]
        lower = lower_is_better(metric)
        if (value > baseline) if lower else (value < baseline):
            lines.append(f"below baseline: {metric} {value:.3f} {'>' if lower else '<'} "
                         f"{name} {baseline:.3f}")
    return lines
