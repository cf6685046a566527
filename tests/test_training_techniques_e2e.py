"""The emitted trainer's training-loop knobs on tiny data: per-epoch reshuffle, early stopping
with best-weights restore, the warm-up + cosine schedule, the shared rank computation and the
new_products protocol. One Transform run feeds every test."""

from __future__ import annotations

import json
import math
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from tests.test_training_techniques import ES, compiled
from tests.tiny_data import RAW_SCHEMA, split, tiny_transactions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def transformed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from compiler.runner.transform import run_transform

    root = tmp_path_factory.mktemp("techniques")
    compiled(write_to=root / "base")
    run_transform(split(tiny_transactions()), RAW_SCHEMA, root / "base" / "transform_module.py",
                  str(root / "transform"))
    return root


def load(root: Path, name: str, overrides: list[str] = (), **settings: Any) -> ModuleType:
    from compiler.runner._modules import load_module_from_path

    compiled(overrides, write_to=root / name, **settings)
    return load_module_from_path(root / name / "trainer_module.py", prefix=f"techniques_{name}")


def fn_args(root: Path, run: str, custom_config: dict[str, Any]) -> Any:
    from compiler.runner.fn_args import fn_args_from_transform

    return fn_args_from_transform(str(root / "transform"), str(root / "runs" / run),
                                  custom_config)


def batch_rows(batch: dict[str, Any]) -> list[tuple[float, ...]]:
    """The rows of a batch as sortable tuples (buyer, product, date, ...)."""
    columns = sorted(batch)
    values = [np.asarray(batch[c]).reshape(len(np.asarray(batch[columns[0]])), -1)
              for c in columns]
    return [tuple(float(v) for v in row) for row in np.concatenate(values, axis=1)]


def epochs_of(module: ModuleType, root: Path, epochs: int = 2) -> list[list[list[tuple]]]:
    args = fn_args(root, "input", {})
    output = module.tft.TFTransformOutput(args.transform_output)
    dataset = module._input_fn(args.train_files, output, 64, shuffle=True)
    assert int(dataset.cardinality()) == math.ceil(1200 / 64)  # known: steps_per_execution
    return [[sorted(batch_rows({k: v.numpy() for k, v in batch.items()}))
             for batch in dataset] for _ in range(epochs)]


def test_reshuffle_gives_each_epoch_new_batches_and_the_same_examples(transformed: Path
                                                                     ) -> None:
    first, second = epochs_of(load(transformed, "reshuffled", ["model.reshuffle_each_epoch=true"]),
                              transformed)
    assert first != second
    assert sorted(row for batch in first for row in batch) \
        == sorted(row for batch in second for row in batch)
    assert len(first[0]) == 64 and len(first[-1]) == 1200 - 64 * (len(first) - 1)
    same_first, same_second = epochs_of(load(transformed, "once"), transformed)
    assert same_first == same_second
    assert sorted(row for batch in same_first for row in batch) \
        == sorted(row for batch in first for row in batch)


def test_schedule_warms_up_then_decays_to_its_floor(transformed: Path) -> None:
    module = load(transformed, "scheduled", lr_schedule={"warmup_epochs": 1.0,
                                                         "final_learning_rate_ratio": 0.1})
    schedule = module._learning_rate_schedule(10, 4)
    peak = module.LEARNING_RATE
    assert float(schedule(0)) == 0.0
    assert float(schedule(5)) == pytest.approx(peak / 2)
    assert float(schedule(10)) == pytest.approx(peak)
    assert float(schedule(39)) == pytest.approx(0.1 * peak)
    assert peak > float(schedule(25)) > 0.1 * peak


class FixedBuyers:
    """Stands in for a trained Keras model: ``buyer_tower`` returns given embeddings."""

    def __init__(self, embeddings: np.ndarray) -> None:
        self.embeddings = embeddings

    def buyer_tower(self, batch: Any, training: bool = False) -> Any:
        import tensorflow as tf

        return tf.constant(self.embeddings, tf.float32)


def test_ranks_metrics_and_the_new_products_mask_on_known_scores(transformed: Path) -> None:
    module = load(transformed, "ranks", ["model.eval_protocol=new_products",
                                         "model.evaluators=[recall_at_k,regression,ndcg,mrr]"])
    tf = module.tf
    # Candidates are product ids 10..13 (rows 0..3), embedded as the unit vectors: a buyer's
    # scores are its embedding. Product 15 is no candidate.
    positions = np.full(20, -1, np.int64)
    positions[10:14] = np.arange(4)
    candidates = {"embeddings": tf.eye(4), "positions": tf.constant(positions),
                  "product_ids": tf.constant(np.arange(10, 14, dtype=np.int64)), "count": 4}
    scores = FixedBuyers(np.array([[0.9, 0.5, 0.1, 0.3], [0.2, 0.2, 0.8, 0.1],
                                   [0.4, 0.3, 0.2, 0.1]], np.float32))
    ranks = module._ranked_lines(scores, {"product_id_id": tf.constant([[11], [11], [15]],
                                                                        tf.int64)}, candidates)
    # Row 0: one candidate above; row 1: a tie counts in the product's favour; row 2: no
    # candidate at all ranks last.
    assert list(ranks.numpy()) == [1, 1, np.iinfo(np.int32).max]

    # Buyer 0 bought 10 and 12 in train, buyer 1 bought 13; buyer 2 is unseen in train.
    purchases = {"buyer_id_key": "customer_id_id",
                 "products": tf.constant([10, 12, 13], tf.int64),
                 "row_splits": tf.constant([0, 2, 3, 3], tf.int64)}
    pairs = module._bought_pairs(purchases, tf.constant([0, 1, 2, 0], tf.int64), candidates)
    mask = module._bought_mask(pairs, 4, tf.constant(0, tf.int64), tf.constant(4, tf.int64))
    assert mask.numpy().tolist() == [[True, False, True, False], [False, False, False, True],
                                     [False] * 4, [True, False, True, False]]
    # A block of rows 1..2 holds its part of the mask.
    block = module._bought_mask(pairs, 4, tf.constant(1, tf.int64), tf.constant(2, tf.int64))
    assert block.numpy().tolist() == [[False, True], [False, False], [False, False],
                                      [False, True]]
    # Lines: (buyer 0, product 12) is a repeat and is dropped; (buyer 0, product 11) ranks
    # below 13 only, since 10 (score 0.9) is excluded; (buyer 2, product 10) keeps all.
    model = FixedBuyers(np.array([[0.9, 0.5, 0.95, 0.6], [0.9, 0.5, 0.95, 0.6],
                                  [0.1, 0.2, 0.3, 0.4]], np.float32))
    batch = {"customer_id_id": tf.constant([[0], [0], [2]], tf.int64),
             "product_id_id": tf.constant([[12], [11], [10]], tf.int64)}
    lines = module._ranked_lines(model, batch, candidates, purchases).numpy()
    assert list(lines) == [1, 3]
    assert list(module._ranked_lines(model, batch, candidates).numpy()) == [0, 3, 3]

    dataset = tf.data.Dataset.from_tensors(batch)
    recall = module._evaluate_recall(model, dataset, candidates, purchases)
    assert recall["recall_at_5"] == 1.0
    module.NDCG_TOP_K = (1, 2, 4)
    ndcg = module._evaluate_ndcg(model, dataset, candidates, purchases)
    assert ndcg == pytest.approx({"ndcg_at_1": 0.0, "ndcg_at_2": 1 / math.log2(3) / 2,
                                  "ndcg_at_4": (1 / math.log2(3) + 1 / math.log2(5)) / 2})
    assert module._evaluate_mrr(model, dataset, candidates) \
        == pytest.approx({"mrr": (1 + 1 / 4 + 1 / 4) / 3})


def test_early_stopping_restores_the_best_epoch_and_new_products_drops_repeats(
        transformed: Path) -> None:
    module = load(transformed, "stopping", ["model.eval_protocol=new_products",
                                            "model.learning_rate=0.05"],
                  early_stopping={**ES, "patience": 3})
    args = fn_args(transformed, "stopping", {"epochs": 6, "batch_size": 128})
    metrics = module.run_fn(args)
    assert json.loads(Path(args.model_run_dir, "training_metrics.json").read_text()) == metrics
    history = [row["val_recall_at_10"] for row in metrics["history"]]
    best = max(range(len(history)), key=lambda epoch: (history[epoch], -epoch))
    assert metrics["best_epoch"] == best + 1 < metrics["epochs_trained"] == len(history)
    # The weights after training are the best epoch's: evaluating them again gives its value.
    assert metrics["final"]["val_recall_at_10"] == pytest.approx(history[best], abs=1e-12)
    assert metrics["early_stopping"]["best"] == pytest.approx(history[best], abs=1e-12)
    assert metrics["eval_protocol"] == "new_products"

    # new_products: exactly the test lines whose (buyer, product) is not a train pair count.
    output = module.tft.TFTransformOutput(args.transform_output)
    train = module._input_fn(args.train_files, output, 128)
    test = module._input_fn(module._test_split_files(args.train_files), output, 128)
    pairs = set(buyer_products(train))
    lines = buyer_products(test)
    purchases = module._train_purchases(train)
    candidates = module._unique_candidates(module.RecommenderModel(output), [train, test], output)
    ranked = sum(int(module.tf.size(module._ranked_lines(module.RecommenderModel(output), batch,
                                                          candidates, purchases)))
                 for batch in test)
    assert 0 < ranked == sum(1 for line in lines if line not in pairs) < len(lines)


def buyer_products(dataset: Any) -> list[tuple[int, int]]:
    """Each line's (buyer id, product id)."""
    return [(int(b), int(p)) for batch in dataset for b, p in zip(
        batch["customer_id_id"].numpy().ravel(), batch["product_id_id"].numpy().ravel(),
        strict=True)]


def test_early_stopping_without_an_eval_split_fails_at_run_start(transformed: Path) -> None:
    module = load(transformed, "no_eval", early_stopping=ES)
    with pytest.raises(ValueError, match="has no eval split"):
        module._training_callbacks(None, None, None, None, None)
