"""The retrieval training techniques, each checked for its effect on a tiny example.

One tiny Transform (``tests/tiny_data.py``) of a hybrid model with every ``model.retrieval``
knob and purchase history on; the emitted trainer module is loaded as a module and its
pieces are called directly on hand-made inputs:

- logQ shifts each candidate's logit by -log p, p the product's train-split frequency
  (counted here with pandas, independently of the Transform);
- accidental hits (the row's own product elsewhere in the batch) get the lowest float, so
  their softmax probability is 0, and nothing else moves;
- the purchase history holds the train split's counts only, and leave-one-out takes a train
  line out of its own pair's count;
- the trained model exports, and its recommend signature ranks with the history score.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from compiler.core.pipeline import compile_overrides
from tests.tiny_data import RAW_SCHEMA, split, tiny_transactions

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
OVERRIDES = [
    "model=hybrid_v2", "features=cherng_v3", "model.retrieval.temperature=0.5",
    "model.retrieval.logq_correction=true", "model.retrieval.remove_accidental_hits=true",
    "model.retrieval.normalize_embeddings=true",
]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    from compiler.runner.transform import run_transform

    root = tmp_path_factory.mktemp("techniques")
    compile_overrides(OVERRIDES, output_dir=root / "modules")
    splits = split(tiny_transactions())
    run_transform(splits, RAW_SCHEMA, root / "modules" / "transform_module.py",
                  str(root / "transform"))
    spec = importlib.util.spec_from_file_location("tuned_trainer",
                                                  root / "modules" / "trainer_module.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    import tensorflow_transform as tft

    return module, tft.TFTransformOutput(str(root / "transform" / "transform_graph")), splits, root


def _product_ids(output, names: list[str]) -> np.ndarray:
    vocabulary = [v.decode() for v in output.vocabulary_by_name("product_id_vocab")]
    return np.array([vocabulary.index(name) for name in names], np.int64)


def test_logq_shifts_logits_by_minus_log_train_frequency(built) -> None:
    module, output, splits, _ = built
    counts = splits["train"]["product_id"].value_counts()
    names = list(counts.index[[0, 5, 20]])  # a popular, a middling and a rare product
    loss = module.InBatchSoftmax(output)
    scores = np.zeros((3, 3), np.float32)
    logits = loss.logits(scores, _product_ids(output, names)).numpy()
    probability = counts[names].to_numpy() / (counts.sum() + 1)  # + the OOV id, counted once
    expected = -np.log(probability)  # zero scores: the temperature leaves them at zero
    np.testing.assert_allclose(logits, np.tile(expected, (3, 1)), rtol=1e-5)
    # The popular product's logit is lowered the most.
    assert logits[0, 0] < logits[0, 1] < logits[0, 2]


def test_accidental_hits_get_the_lowest_float(built) -> None:
    import tensorflow as tf

    module, output, splits, _ = built
    name = splits["train"]["product_id"].iloc[0]
    other = next(p for p in splits["train"]["product_id"] if p != name)
    ids = _product_ids(output, [name, name, other])
    loss = module.InBatchSoftmax(output)
    scores = np.full((3, 3), 2.0, np.float32)
    logits = loss.logits(scores, ids).numpy()
    # Without the hits, a logit is the score / temperature, shifted by logQ.
    untouched = scores / 0.5 - np.log(loss.sampling_probability.numpy()[ids])[None, :]
    # Rows 0 and 1 share a product: each is the other's accidental hit.
    assert logits[0, 1] < -1e30 and logits[1, 0] < -1e30
    probabilities = tf.nn.softmax(logits).numpy()
    assert probabilities[0, 1] == 0.0 and probabilities[1, 0] == 0.0
    # Diagonals and true negatives keep their logits.
    rows, columns = zip(*[(0, 0), (1, 1), (2, 2), (0, 2), (2, 0), (2, 1), (1, 2)], strict=True)
    np.testing.assert_allclose(logits[rows, columns], untouched[rows, columns], rtol=1e-6)
    assert np.all(logits[rows, columns] > -1e30)


def test_history_counts_the_train_split_only_and_leaves_one_out(built) -> None:
    import tensorflow as tf

    module, output, splits, _ = built
    history = module.PurchaseHistory(output)
    train, test = splits["train"], splits["test"]
    pair_counts = train.groupby(["customer_id", "product_id"]).size()
    buyers = [v.decode() for v in output.vocabulary_by_name("customer_id_vocab")]
    products = [v.decode() for v in output.vocabulary_by_name("product_id_vocab")]

    def stored(buyer: str, product: str) -> float:
        key = buyers.index(buyer) * history.num_products + products.index(product)
        row = int(history.rows.lookup(tf.constant([key], tf.int64)).numpy()[0])
        return -1.0 if row < 0 else float(history.pair_values.numpy()[row, 0])

    for (buyer, product), count in list(pair_counts.items())[:20]:
        assert stored(buyer, product) == count
    test_only = test.merge(train[["customer_id", "product_id"]], how="left", indicator=True)
    line = test_only[test_only["_merge"] == "left_only"].iloc[0]
    assert stored(line["customer_id"], line["product_id"]) == -1.0  # no test line leaks in

    # A pair bought once in train: its history score is 0 once the line is left out.
    (buyer, product) = next(pair for pair, count in pair_counts.items() if count == 1)
    features = {
        "customer_id_id": np.array([buyers.index(buyer)], np.int64),
        "product_id_id": np.array([products.index(product)], np.int64),
        "purchase_recency_weight": np.array([0.5], np.float32),
    }
    candidate = np.array([products.index(product)], np.int64)
    kept = history(features, candidate, leave_out_own=False).numpy()
    left_out = history(features, candidate, leave_out_own=True).numpy()
    assert left_out[0, 0] == 0.0
    assert kept[0, 0] != 0.0  # the (untrained) scorer gives a bought pair some score

    # The mean vector of the buyer's purchases: the count-weighted mean of their products'
    # vectors, and without this line's product when it is left out.
    vectors = tf.keras.layers.Embedding(history.num_products, 4)
    bought = pair_counts.loc[buyer]
    table = vectors(np.array([products.index(p) for p in bought.index])).numpy()
    expected = (table * bought.to_numpy()[:, None]).sum(axis=0) / bought.sum()
    mean = history.bought_mean(features, vectors).numpy()[0]
    np.testing.assert_allclose(mean, expected, rtol=1e-5)
    own = vectors(features["product_id_id"]).numpy()[0]
    expected_left_out = (expected * bought.sum() - own) / max(bought.sum() - 1, 1)
    np.testing.assert_allclose(history.bought_mean(features, vectors, leave_out_own=True)
                               .numpy()[0], expected_left_out, rtol=1e-4, atol=1e-6)


def test_the_tuned_model_trains_exports_and_recommends(built) -> None:
    from compiler.runner.fn_args import fn_args_from_transform
    from compiler.runner.trainer import run_trainer

    _, _, _, root = built
    fn_args = fn_args_from_transform(str(root / "transform"), str(root / "run"),
                                     {"epochs": 2, "batch_size": 128})
    metrics = run_trainer(root / "modules" / "trainer_module.py", fn_args)
    losses = [row["loss"] for row in metrics["history"]]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0]
    assert 0.0 < metrics["final"]["recall_at_100"] <= 1.0
    probe = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "serving_probe.py"), fn_args.serving_model_dir],
        capture_output=True, text=True, check=True,
    )
    answers = json.loads(probe.stdout.strip().splitlines()[-1])
    recommended = answers["serving_default"]["product_ids"]
    candidates = metrics["candidates"]["unique_products"]  # 90: fewer than K = 100
    assert len(recommended) == len(set(recommended)) == min(100, candidates)
    scores = answers["serving_default"]["scores"]
    assert scores == sorted(scores, reverse=True)
