"""A hand-written TFRS multitask trainer for hybrid_v1 over cherng_v3, in the tutorials' style.

The yardstick of ``benchmarks/training_speed.py``: what an engineer would write by following the
TensorFlow Recommenders tutorials ("Multi-task recommenders", "Building deep retrieval
models"), with hybrid_v1's towers, rating head, loss weights, optimizer and batch size, over
the same transformed TFRecords the emitted trainer reads. It is deliberately plain, not slow:

- input: ``TFRecordDataset`` -> ``map(tf.io.parse_single_example)`` -> ``shuffle`` ->
  ``batch`` -> ``cache`` (the tutorials' ``cached_train``);
- model: a ``tfrs.models.Model`` with a ``tfrs.tasks.Retrieval`` whose metric is
  ``FactorizedTopK(candidates=products.batch(128).map(product_model))`` and a
  ``tfrs.tasks.Ranking`` with RMSE / MAE;
- ``model.fit``, then ``model.evaluate`` on the eval and test splits.

As in the tutorial, the retrieval task computes its top-K metric on every training batch too
(``compute_loss`` passes no ``compute_metrics``). ``custom_config["top_k_in_training"] = False``
gives the variant TFRS' own docs advise (``compute_metrics=not training``), which the
benchmark reports as well. One departure, so that the metrics can be compared at all: the
logged losses are epoch means, as the emitted trainer's are (TFRS logs the last batch's).

``run_fn(fn_args)`` takes the trainer contract's ``fn_args`` and returns the metrics under the
contract's names; it writes and exports nothing.
"""

from __future__ import annotations

import os
import time
from typing import Any

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402
import tensorflow_transform as tft  # noqa: E402

# hybrid_v1 (conf/model/hybrid_v1.yaml) over cherng_v3 (conf/features/cherng_v3.yaml).
BATCH_SIZE = 1024
EPOCHS = 20
LEARNING_RATE = 0.001
SEED = 42
TOWER_LAYERS = (128, 64, 32)
TOWER_L2 = 0.0001
RATING_LAYERS = (128, 64, 32, 1)
RETRIEVAL_WEIGHT = 1.0
RANKING_WEIGHT = 1.0
KS = (5, 10, 50, 100)

# Embedded features: name -> (vocabulary file, or number of buckets; embedding width).
# cherng_v3 (the default); ``custom_config["features"] = "online_retail"`` selects
# conf/features/online_retail.yaml's instead (FEATURES below).
BUYER_EMBEDDED = {
    "customer_id_id": ("customer_id_vocab", 64),
    "date_bucket": (100, 8),
    "cust_value_bucket": (100, 8),
    "customer_id_x_cust_value": (10000, 16),
}
BUYER_DENSE = ("date_weekly_sin", "date_weekly_cos", "date_monthly_sin", "date_monthly_cos",
               "date_norm", "cust_value_norm")
PRODUCT_EMBEDDED = {
    "product_id_id": ("product_id_vocab", 32),
    "category_id": ("category_vocab", 8),
    "sub_category_id": ("sub_category_vocab", 16),
    "category_x_sub_category": (1000, 8),
}
PRODUCT_ID = "product_id_id"
TARGET = "sales_target"
#: feature config -> (buyer embedded, buyer dense, product embedded)
FEATURES = {
    "cherng_v3": (BUYER_EMBEDDED, BUYER_DENSE, PRODUCT_EMBEDDED),
    "online_retail": (
        {"customer_id_id": ("customer_id_vocab", 64), "country_id": ("country_vocab", 8),
         "date_bucket": (50, 8), "country_x_date": (5000, 8)},
        ("date_weekly_sin", "date_weekly_cos", "date_monthly_sin", "date_monthly_cos",
         "date_yearly_sin", "date_yearly_cos", "date_norm"),
        {"product_id_id": ("product_id_vocab", 32)},
    ),
}


def _dataset(files: list[str], feature_spec: dict[str, Any],
             shuffle_buffer: int = 0) -> tf.data.Dataset:
    records = tf.data.TFRecordDataset(tf.io.gfile.glob(files[0]) if len(files) == 1 else files,
                                      compression_type="GZIP")
    examples = records.map(lambda record: tf.io.parse_single_example(record, feature_spec))
    if shuffle_buffer:
        examples = examples.shuffle(shuffle_buffer, seed=SEED, reshuffle_each_iteration=False)
    return examples.batch(BATCH_SIZE).cache()


class Features(tf.keras.Model):
    """Embeds one side's id / bucket / hashed features and appends its dense features
    (the tutorials' ``UserModel`` / ``MovieModel``)."""

    def __init__(self, embedded: dict[str, tuple[Any, int]], dense: tuple[str, ...],
                 tf_transform_output: tft.TFTransformOutput) -> None:
        super().__init__()
        self.embedding_layers = {}
        for name, (source, width) in embedded.items():
            if isinstance(source, str):  # a vocabulary, plus its one OOV bucket
                rows = tf_transform_output.vocabulary_size_by_name(source) + 1
            else:  # buckets; tft.bucketize may return index `buckets` for the top value
                rows = source + 1
            self.embedding_layers[name] = tf.keras.layers.Embedding(rows, width)
        self.dense_names = dense

    def call(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        parts = [layer(features[name]) for name, layer in self.embedding_layers.items()]
        parts += [tf.reshape(features[name], [-1, 1]) for name in self.dense_names]
        return tf.concat(parts, axis=1)


class Tower(tf.keras.Model):
    """Features, then dense layers; the last one linear (the tutorials' ``QueryModel``)."""

    def __init__(self, features: Features) -> None:
        super().__init__()
        self.features = features
        self.dense_layers = tf.keras.Sequential()
        for width in TOWER_LAYERS[:-1]:
            self.dense_layers.add(tf.keras.layers.Dense(
                width, activation="relu", kernel_regularizer=tf.keras.regularizers.l2(TOWER_L2)))
        self.dense_layers.add(tf.keras.layers.Dense(
            TOWER_LAYERS[-1], kernel_regularizer=tf.keras.regularizers.l2(TOWER_L2)))

    def call(self, features: dict[str, tf.Tensor]) -> tf.Tensor:
        return self.dense_layers(self.features(features))


class HybridModel(tfrs.models.Model):
    """Retrieval + ranking over shared towers (the "Multi-task recommenders" tutorial)."""

    def __init__(self, tf_transform_output: tft.TFTransformOutput,
                 products: tf.data.Dataset, top_k_in_training: bool = True,
                 features: str = "cherng_v3") -> None:
        super().__init__()
        self.top_k_in_training = top_k_in_training
        buyer_embedded, buyer_dense, product_embedded = FEATURES[features]
        self.buyer_model = Tower(Features(buyer_embedded, buyer_dense, tf_transform_output))
        self.product_model = Tower(Features(product_embedded, (), tf_transform_output))
        self.rating_model = tf.keras.Sequential(
            [tf.keras.layers.Dense(width, activation="relu") for width in RATING_LAYERS[:-1]]
            + [tf.keras.layers.Dense(RATING_LAYERS[-1])]
        )
        self.rating_task = tfrs.tasks.Ranking(
            loss=tf.keras.losses.MeanSquaredError(),
            metrics=[tf.keras.metrics.RootMeanSquaredError(name="rmse"),
                     tf.keras.metrics.MeanAbsoluteError(name="mae")],
        )
        self.retrieval_task = tfrs.tasks.Retrieval(
            metrics=tfrs.metrics.FactorizedTopK(
                candidates=products.batch(128).map(self.product_model), ks=KS))
        # Epoch means of the logged losses (TFRS logs the last batch's).
        self.loss_means = [tf.keras.metrics.Mean(name=name)
                           for name in ("loss", "regularization_loss", "total_loss")]

    @property
    def metrics(self) -> list[Any]:
        return [*super().metrics, *self.loss_means]

    def train_step(self, inputs: Any) -> dict[str, Any]:
        return self._mean_losses(super().train_step(inputs))

    def test_step(self, inputs: Any) -> dict[str, Any]:
        return self._mean_losses(super().test_step(inputs))

    def _mean_losses(self, logs: dict[str, Any]) -> dict[str, Any]:
        for mean in self.loss_means:
            mean.update_state(logs[mean.name])
            logs[mean.name] = mean.result()
        return logs

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        buyer_embeddings = self.buyer_model(features)
        product_embeddings = self.product_model(features)
        ratings = self.rating_model(tf.concat([buyer_embeddings, product_embeddings], axis=1))
        rating_loss = self.rating_task(labels=tf.reshape(features[TARGET], [-1, 1]),
                                       predictions=ratings)
        retrieval_loss = self.retrieval_task(
            buyer_embeddings, product_embeddings,
            compute_metrics=self.top_k_in_training or not training)
        return RANKING_WEIGHT * rating_loss + RETRIEVAL_WEIGHT * retrieval_loss


def unique_products(datasets: list[tf.data.Dataset], product_embedded: dict[str, Any]
                    ) -> dict[str, np.ndarray]:
    """The product features of each distinct product id, from every split (the candidates)."""
    columns: dict[str, list[np.ndarray]] = {name: [] for name in product_embedded}
    for dataset in datasets:
        for batch in dataset.as_numpy_iterator():
            for name in columns:
                columns[name].append(batch[name])
    joined = {name: np.concatenate(parts) for name, parts in columns.items()}
    _, first = np.unique(joined[PRODUCT_ID], return_index=True)
    return {name: values[first] for name, values in joined.items()}


def run_fn(fn_args: Any) -> dict[str, Any]:
    """Train, evaluate on the eval and test splits; return the metrics (nothing written)."""
    custom = getattr(fn_args, "custom_config", None) or {}
    epochs = int(custom.get("epochs", EPOCHS))
    seed = int(custom.get("seed", SEED))
    tf.keras.utils.set_random_seed(seed)
    started = time.perf_counter()
    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    spec = tf_transform_output.transformed_feature_spec()
    # The tutorials' buffer; ``custom_config["shuffle_buffer"]`` sets another (rows).
    train = _dataset(fn_args.train_files, spec, int(custom.get("shuffle_buffer", 100_000)))
    evaluation = _dataset(fn_args.eval_files, spec)
    test_pattern = fn_args.train_files[0].replace("Split-train", "Split-test")
    test = _dataset([test_pattern], spec)
    features = str(custom.get("features", "cherng_v3"))
    products = tf.data.Dataset.from_tensor_slices(
        unique_products([train, evaluation, test], FEATURES[features][2]))

    model = HybridModel(tf_transform_output, products,
                        top_k_in_training=bool(custom.get("top_k_in_training", True)),
                        features=features)
    model.compile(optimizer=tf.keras.optimizers.Adam(learning_rate=LEARNING_RATE))
    fit_started = time.perf_counter()
    history = model.fit(train, epochs=epochs, verbose=0)
    fit_seconds = time.perf_counter() - fit_started
    evaluated = time.perf_counter()
    validation = model.evaluate(evaluation, return_dict=True, verbose=0)
    tested = model.evaluate(test, return_dict=True, verbose=0)
    final = {
        "loss": float(history.history["loss"][-1]),
        "val_rmse": float(validation["rmse"]), "val_mae": float(validation["mae"]),
        "test_rmse": float(tested["rmse"]), "test_mae": float(tested["mae"]),
    }
    for k in KS:
        name = f"factorized_top_k/top_{k}_categorical_accuracy"
        final[f"val_recall_at_{k}"] = float(validation[name])
        final[f"recall_at_{k}"] = float(tested[name])
    return {
        "model_type": "multitask",
        "final": final,
        "timings": {"fit_seconds": fit_seconds,
                    "evaluation_seconds": time.perf_counter() - evaluated,
                    "run_fn_seconds": time.perf_counter() - started},
    }
