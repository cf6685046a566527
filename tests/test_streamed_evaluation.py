"""Evaluation memory that depends on the catalogue, not on the log (issue #15).

- The ranking evaluators score the candidates in blocks (``model.evaluation_memory_mb``): the
  ranks equal those of one matmul over all candidates, ties included, for blocks of 1, a few
  and all candidates, with the new_products mask and with the purchase history scorer.
- The candidates come from the Transform's per-product table; without one, from the splits
  (streamed, with a warning). Both equal the old candidates: every split's lines concatenated
  and deduplicated with ``np.unique``.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tests.preflight_helpers import assert_rejected
from tests.test_training_techniques import compiled
from tests.tiny_data import RAW_SCHEMA, split, tiny_transactions

INT32_MAX = np.iinfo(np.int32).max
SPLITS = ("train", "eval", "test")


def load(root: Path, name: str, overrides: list[str]) -> ModuleType:
    from compiler.runner._modules import load_module_from_path

    compiled(overrides, write_to=root / name)
    return load_module_from_path(root / name / "trainer_module.py", prefix=f"streamed_{name}")


class FixedBuyers:
    """Stands in for a trained Keras model: ``buyer_tower`` returns given embeddings."""

    def __init__(self, embeddings: np.ndarray) -> None:
        self.embeddings = embeddings

    def buyer_tower(self, batch: Any, training: bool = False) -> Any:
        import tensorflow as tf

        return tf.constant(self.embeddings, tf.float32)


def reference_ranks(scores: np.ndarray, rows: np.ndarray, bought: np.ndarray | None
                    ) -> np.ndarray:
    """Each line's rank from the whole [lines, candidates] score matrix, as recforge computed
    it in one matmul: candidates scored strictly above the line's product (bought ones at
    -inf), int32 max for a product that is no candidate; lines of bought products dropped."""
    if bought is not None:
        scores = np.where(bought, -np.inf, scores)
    own = scores[np.arange(len(rows)), np.maximum(rows, 0)]
    ranks = np.where(rows >= 0, (scores > own[:, None]).sum(axis=1), INT32_MAX)
    if bought is None:
        return ranks
    repeated = (rows >= 0) & bought[np.arange(len(rows)), np.maximum(rows, 0)]
    return ranks[~repeated]


def set_block(module: ModuleType, lines: int, block: int) -> None:
    """Make ``_ranked_lines`` score ``block`` candidates at a time for ``lines`` lines."""
    module.EVALUATION_MEMORY_BYTES = module.PAIR_BYTES * lines * block


@pytest.mark.slow
def test_streamed_ranks_equal_one_matmul_ranks_with_ties(tmp_path: Path) -> None:
    module = load(tmp_path, "ties", ["model.eval_protocol=new_products",
                                     "model.evaluators=[recall_at_k,regression,ndcg,mrr]"])
    tf = module.tf
    rng = np.random.default_rng(7)
    # Small integer embeddings: every matmul shape computes the scores exactly, and many tie.
    count, lines, buyers = 11, 9, 4
    embeddings = rng.integers(-2, 3, (count, 3)).astype(np.float32)
    embeddings[5] = embeddings[2]  # two products with the same embedding: a tie in every row
    queries = rng.integers(-2, 3, (lines, 3)).astype(np.float32)
    # Candidate rows in shuffled product id order; product 150 is no candidate.
    product_ids = np.arange(100, 100 + count, dtype=np.int64)
    rng.shuffle(product_ids)
    positions = np.full(200, -1, np.int64)
    positions[product_ids] = np.arange(count)
    line_products = product_ids[rng.integers(0, count, lines)]
    line_products[3] = 150
    line_products[4] = product_ids[5]
    line_buyers = rng.integers(0, buyers + 1, lines)  # buyer 4 is unseen in train
    bought_products = [rng.choice(product_ids, 3, replace=False) for _ in range(buyers)]
    bought_products[int(line_buyers[0])] = np.append(bought_products[int(line_buyers[0])][:2],
                                                     line_products[0])  # a repeat line
    bought = np.zeros((lines, count), bool)
    for line, buyer in enumerate(line_buyers):
        if buyer < buyers:
            bought[line, positions[bought_products[buyer]]] = True

    candidates = {"embeddings": tf.constant(embeddings), "positions": tf.constant(positions),
                  "product_ids": tf.constant(product_ids), "count": count}
    purchases = {"buyer_id_key": "customer_id_id",
                 "products": tf.constant(np.concatenate(bought_products), tf.int64),
                 "row_splits": tf.constant(np.arange(buyers + 2).clip(0, buyers) * 3,
                                           tf.int64)}
    batch = {"customer_id_id": tf.constant(line_buyers[:, None], tf.int64),
             "product_id_id": tf.constant(line_products[:, None], tf.int64)}
    model = FixedBuyers(queries)
    scores = queries @ embeddings.T
    rows = positions[line_products]
    expected_all = reference_ranks(scores, rows, None)
    expected_new = reference_ranks(scores, rows, bought)
    assert INT32_MAX in expected_all and len(expected_new) < lines  # both cases are present
    assert (scores == scores[:, [2]]).sum() > lines  # ties beyond the duplicated embedding

    dataset = tf.data.Dataset.from_tensors(batch)
    for block in (1, 3, 4, count, 10 * count):
        set_block(module, lines, block)
        np.testing.assert_array_equal(
            module._ranked_lines(model, batch, candidates).numpy(), expected_all)
        np.testing.assert_array_equal(
            module._ranked_lines(model, batch, candidates, purchases).numpy(), expected_new)
        # The same inside the traced reduction over a split.
        for ranks, given in ((expected_all, None), (expected_new, purchases)):
            mrr = module._evaluate_mrr(model, dataset, candidates, given)["mrr"]
            reciprocal = np.where(ranks < INT32_MAX, 1.0 / (ranks + 1.0), 0.0)
            assert mrr == pytest.approx(reciprocal.mean(), abs=1e-12)
            recall = module._evaluate_recall(model, dataset, candidates, given)
            assert recall["recall_at_5"] == pytest.approx((ranks < 5).mean(), abs=1e-12)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[ModuleType, Path]:
    """hybrid_v2 (purchase history, NDCG, MRR) with new_products, over one tiny Transform that
    writes the per-product table."""
    from compiler.runner.product_table import product_columns
    from compiler.runner.transform import run_transform

    root = tmp_path_factory.mktemp("streamed")
    overrides = ["model=hybrid_v2", "model.eval_protocol=new_products"]
    module = load(root, "history", overrides)
    plan = compiled(overrides).plan
    run_transform(split(tiny_transactions()), RAW_SCHEMA, root / "history" / "transform_module.py",
                  str(root / "transform"),
                  product_columns=product_columns(plan, plan.config.features.product_id))
    return module, root


def split_datasets(module: ModuleType, root: Path, output: Any, batch_size: int = 128
                   ) -> list[Any]:
    return [module._input_fn(str(root / "transform" / "transformed_examples" / f"Split-{name}"
                                 / "*.gz"), output, batch_size) for name in SPLITS]


@pytest.mark.slow
def test_history_aware_streamed_ranks_equal_one_block_ranks(built) -> None:
    module, root = built
    tf = module.tf
    output = module.tft.TFTransformOutput(str(root / "transform" / "transform_graph"))
    train, _, test = split_datasets(module, root, output)
    model = module.RecommenderModel(output)
    model.compute_loss(next(iter(train)))  # builds every layer (an untrained model)
    candidates = module._unique_candidates(model, split_datasets(module, root, output), output)
    purchases = module._train_purchases(train)
    batch = next(iter(test))
    lines = int(tf.size(batch["product_id_id"]))
    count = candidates["count"]

    # One block is the old computation: the towers' matmul plus the history score over all
    # candidates at once.
    scores = module._candidate_scores(model, batch, candidates).numpy()
    rows = candidates["positions"].numpy()[batch["product_id_id"].numpy().reshape(-1)]
    set_block(module, lines, count)
    one_block = module._ranked_lines(model, batch, candidates).numpy()
    np.testing.assert_array_equal(one_block, reference_ranks(scores, rows, None))
    one_block_new = module._ranked_lines(model, batch, candidates, purchases).numpy()
    assert len(one_block_new) < lines  # the batch has repeat lines to drop
    history = model.purchase_history(batch, candidates["product_ids"]).numpy()
    assert np.count_nonzero(history) > 0  # the history scorer takes part

    for block in (1, 7, count - 1):
        set_block(module, lines, block)
        np.testing.assert_array_equal(
            module._ranked_lines(model, batch, candidates).numpy(), one_block)
        np.testing.assert_array_equal(
            module._ranked_lines(model, batch, candidates, purchases).numpy(), one_block_new)
    set_block(module, lines, 7)
    streamed = module._evaluate_ndcg(model, test, candidates, purchases)
    set_block(module, lines, 10 * count)
    assert streamed == module._evaluate_ndcg(model, test, candidates, purchases)


def old_candidates(module: ModuleType, datasets: list[Any]) -> dict[str, np.ndarray]:
    """Every split's product columns concatenated, then np.unique's first rows: how recforge
    collected candidates before the product table."""
    columns = [spec["name"] for spec in module.PRODUCT_FEATURES]
    features = {column: np.concatenate([batch[column].numpy().reshape(-1)
                                        for dataset in datasets for batch in dataset])
                for column in columns}
    _, first = np.unique(features[module.PRODUCT_ID_KEY], return_index=True)
    return {column: values[first] for column, values in features.items()}


def write_product_table(module: ModuleType, features: dict[str, np.ndarray], root: Path,
                        transform_graph: Path) -> Path:
    """A Transform output root holding ``transform_graph`` and a product table of
    ``features`` (one tf.Example per product, in shuffled order, in two files)."""
    tf = module.tf
    shutil.copytree(transform_graph, root / "transform_graph")
    (root / "product_table").mkdir()
    order = np.random.default_rng(1).permutation(len(features[module.PRODUCT_ID_KEY]))
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    for shard, rows in enumerate(np.array_split(order, 2)):
        path = root / "product_table" / f"product_table-{shard:05d}-of-00002.gz"
        with tf.io.TFRecordWriter(str(path), options) as writer:
            for row in rows:
                example = tf.train.Example()
                for column, values in features.items():
                    value = values[row]
                    if values.dtype.kind == "f":
                        example.features.feature[column].float_list.value.append(float(value))
                    else:
                        example.features.feature[column].int64_list.value.append(int(value))
                writer.write(example.SerializeToString())
    return root / "transform_graph"


@pytest.mark.slow
def test_candidates_from_the_table_and_from_the_splits_equal_the_old_ones(
        built, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    module, root = built
    tf = module.tft.TFTransformOutput
    graph = root / "transform" / "transform_graph"
    output = tf(str(graph))
    datasets = split_datasets(module, root, output, batch_size=100)
    model = module.RecommenderModel(output)
    model.compute_loss(next(iter(datasets[0])))
    old = old_candidates(module, datasets)
    old_embeddings = model.product_tower(old, training=False).numpy()
    vocabulary = [v.decode() for v in output.vocabulary_by_name(module.PRODUCT_VOCAB)]

    # The Transform's own table, and one written here: shuffled, in two files.
    assert (root / "transform" / "product_table").is_dir()
    from_transform = module._unique_candidates(model, [], output)
    with_table = tf(str(write_product_table(module, old, tmp_path / "with_table", graph)))
    (tmp_path / "bare").mkdir()
    shutil.copytree(graph, tmp_path / "bare" / "transform_graph")
    bare = tf(str(tmp_path / "bare" / "transform_graph"))
    module.CANDIDATE_BATCH_SIZE = 16  # several batches of the 90 products
    caplog.set_level(logging.INFO, logger=module.logger.name)
    from_table = module._unique_candidates(model, [], with_table)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    from_splits = module._unique_candidates(model, datasets, bare)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "No product table" in warnings[0]

    assert (from_transform["source"], from_transform["rows_read"]) == ("product_table", 90)
    assert (from_table["source"], from_table["rows_read"]) == ("product_table", 90)
    assert (from_splits["source"], from_splits["rows_read"]) == ("splits", 1500)
    for candidates in (from_transform, from_table, from_splits):
        assert candidates["count"] == len(old[module.PRODUCT_ID_KEY]) == 90
        ids = candidates["product_ids"].numpy()
        np.testing.assert_array_equal(ids, old[module.PRODUCT_ID_KEY])
        assert [v.decode() for v in candidates["identifiers"].numpy()] \
            == [vocabulary[i] for i in ids]
        positions = candidates["positions"].numpy()
        np.testing.assert_array_equal(positions[ids], np.arange(90))
        assert (positions >= 0).sum() == 90
        np.testing.assert_allclose(candidates["embeddings"].numpy(), old_embeddings,
                                   rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # two compiles
def test_evaluation_memory_budget_is_emitted() -> None:
    source = compiled(["model.evaluation_memory_mb=64", "model=hybrid_v2",
                       "model.eval_protocol=new_products"]).sources["trainer_module.py"]
    # The pair's score and count, the new_products mask and the purchase history lookup.
    assert "EVALUATION_MEMORY_BYTES = 64 * 1024 * 1024" in source
    assert "PAIR_BYTES = 44" in source
    default = compiled().sources["trainer_module.py"]
    assert "EVALUATION_MEMORY_BYTES = 256 * 1024 * 1024" in default
    assert "PAIR_BYTES = 9" in default


def test_evaluation_memory_budget_must_be_positive(tmp_path: Path, capsys) -> None:
    line = assert_rejected(["model=hybrid_v1", "features=cherng_v3",
                            "model.evaluation_memory_mb=0", f"output_dir={tmp_path / 'out'}"],
                           tmp_path=tmp_path, key="model.evaluation_memory_mb",
                           in_process=True, capsys=capsys)
    assert "expected a positive integer, got 0" in line
