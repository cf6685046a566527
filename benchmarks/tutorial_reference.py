"""The TFRS "Multi-task recommenders" tutorial, written by hand from its text, over recforge's
Transform output.

Source: https://www.tensorflow.org/recommenders/examples/multitask (TensorFlow Recommenders).
``benchmarks/tutorial_parity.py`` runs this beside the trainer that recforge emits for
``model=tfrs_tutorial features=tfrs_tutorial`` and compares the two over seeds.

What is the tutorial's, unchanged:

- ``MovielensModel(rating_weight, retrieval_weight)``, a ``tfrs.models.Model`` whose user and
  movie models are one ``Embedding(vocabulary + 1, 32)`` each (no dense layer), with a rating
  model ``Dense(256, relu) -> Dense(128, relu) -> Dense(1)`` over their concatenation;
- ``tfrs.tasks.Ranking(MeanSquaredError, [RootMeanSquaredError])`` and
  ``tfrs.tasks.Retrieval(FactorizedTopK(candidates=movies.batch(128).map(movie_model)))``
  (its default loss: softmax cross-entropy over in-batch negatives, summed over the batch);
  ``compute_loss`` returns ``rating_weight * rating_loss + retrieval_weight * retrieval_loss``
  and, as in the tutorial, computes the top-K metric on training batches too;
- ``Adagrad(0.1)``; ``cached_train = train.shuffle(100_000).batch(8192).cache()``,
  ``cached_test = test.batch(4096).cache()``; ``fit(cached_train, epochs=3)``;
  ``evaluate(cached_test)``, whose ``factorized_top_k/top_100_categorical_accuracy`` and
  ``root_mean_squared_error`` are the tutorial's two printed figures.

What differs, because the data is recforge's and not MovieLens:

- user = ``customer_id``, movie = ``product_id``, rating = the ``sales`` target, read from the
  transformed TFRecords of ``features=tfrs_tutorial``. The tutorial's ``StringLookup`` (one
  OOV index, no mask) is the Transform's vocabulary (``compute_and_apply_vocabulary`` with one
  OOV bucket): the ids arrive already looked up, and each vocabulary's size comes from
  ``tft.TFTransformOutput``. The embedding tables have the tutorial's ``len(vocabulary) + 1``
  rows.
- The candidates (the tutorial's ``movies``, the whole catalogue) are the distinct product ids
  of every split, the same deduplicated set the emitted trainer ranks against. Products absent
  from the train vocabulary share the one OOV id, so they are one candidate, as in the emitted
  trainer.

``run_fn(fn_args)`` takes the trainer contract's ``fn_args`` and returns the metrics under the
emitted trainer's names (``recall_at_K``, ``test_rmse``); it writes and exports nothing.
``fn_args.custom_config`` may set ``rating_weight``, ``retrieval_weight``, ``seed``, ``epochs``
and ``batch_size`` (the tutorial's values are the defaults).
"""

from __future__ import annotations

import os
from typing import Any

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402
import tensorflow_transform as tft  # noqa: E402

# The tutorial's settings.
EMBEDDING_DIMENSION = 32
LEARNING_RATE = 0.1
TRAIN_BATCH_SIZE = 8192
TEST_BATCH_SIZE = 4096
SHUFFLE_BUFFER = 100_000
EPOCHS = 3
SEED = 42
KS = (1, 5, 10, 50, 100)  # FactorizedTopK's default ks

# The tutorial's "user_id", "movie_title" and "user_rating" in features=tfrs_tutorial's
# transformed examples, and the vocabularies the ids index.
USER_ID = "customer_id_id"
MOVIE_ID = "product_id_id"
RATING = "sales_target"
USER_VOCABULARY = "customer_id_vocab"
MOVIE_VOCABULARY = "product_id_vocab"


class MovielensModel(tfrs.models.Model):
    """The tutorial's joint model: embedding-only towers, a rating model and two tasks."""

    def __init__(self, rating_weight: float, retrieval_weight: float, user_vocabulary_size: int,
                 movie_vocabulary_size: int, movies: tf.data.Dataset) -> None:
        # The loss weights are taken in the constructor, as in the tutorial: one model object
        # per weighting.
        super().__init__()
        # User and movie models: the tutorial's StringLookup is the Transform's vocabulary, so
        # only the Embedding remains (its rows: the vocabulary plus the one OOV id).
        self.movie_model: tf.keras.layers.Layer = tf.keras.Sequential([
            tf.keras.layers.Embedding(movie_vocabulary_size + 1, EMBEDDING_DIMENSION)
        ])
        self.user_model: tf.keras.layers.Layer = tf.keras.Sequential([
            tf.keras.layers.Embedding(user_vocabulary_size + 1, EMBEDDING_DIMENSION)
        ])
        # A small model over the user and movie embeddings that predicts the rating.
        self.rating_model = tf.keras.Sequential([
            tf.keras.layers.Dense(256, activation="relu"),
            tf.keras.layers.Dense(128, activation="relu"),
            tf.keras.layers.Dense(1),
        ])
        self.rating_task: tf.keras.layers.Layer = tfrs.tasks.Ranking(
            loss=tf.keras.losses.MeanSquaredError(),
            metrics=[tf.keras.metrics.RootMeanSquaredError()],
        )
        self.retrieval_task: tf.keras.layers.Layer = tfrs.tasks.Retrieval(
            metrics=tfrs.metrics.FactorizedTopK(
                candidates=movies.batch(128).map(self.movie_model)
            )
        )
        self.rating_weight = rating_weight
        self.retrieval_weight = retrieval_weight

    def call(self, features: dict[str, tf.Tensor]) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
        user_embeddings = self.user_model(features[USER_ID])
        movie_embeddings = self.movie_model(features[MOVIE_ID])
        return (
            user_embeddings,
            movie_embeddings,
            self.rating_model(tf.concat([user_embeddings, movie_embeddings], axis=1)),
        )

    def compute_loss(self, features: dict[str, tf.Tensor], training: bool = False) -> tf.Tensor:
        # The tutorial pops the rating out of the features; reading it leaves the batch intact
        # and changes nothing else (call reads only the two ids).
        ratings = features[RATING]
        user_embeddings, movie_embeddings, rating_predictions = self(features)
        rating_loss = self.rating_task(labels=ratings, predictions=rating_predictions)
        retrieval_loss = self.retrieval_task(user_embeddings, movie_embeddings)
        return self.rating_weight * rating_loss + self.retrieval_weight * retrieval_loss


def _examples(files: list[str], feature_spec: dict[str, Any]) -> tf.data.Dataset:
    """The parsed transformed examples of one split (the tutorial's ``ratings`` rows)."""
    paths = sorted(path for pattern in files for path in tf.io.gfile.glob(pattern))
    records = tf.data.TFRecordDataset(paths, compression_type="GZIP")
    return records.map(lambda record: tf.io.parse_single_example(record, feature_spec))


def _test_files(train_files: list[str]) -> list[str]:
    """The ``Split-test`` sibling of the train split's file pattern."""
    return [pattern.replace("Split-train", "Split-test") for pattern in train_files]


def distinct_movies(splits: list[tf.data.Dataset]) -> np.ndarray:
    """The distinct movie (product) ids of every split: the candidates."""
    chunks = [
        batch for split in splits
        for batch in split.map(lambda example: example[MOVIE_ID]).batch(65_536)
        .as_numpy_iterator()
    ]
    return np.unique(np.concatenate(chunks))


def run_fn(fn_args: Any) -> dict[str, Any]:
    """Train as the tutorial does, evaluate on the test split; the metrics (nothing written)."""
    custom = getattr(fn_args, "custom_config", None) or {}
    seed = int(custom.get("seed", SEED))
    epochs = int(custom.get("epochs", EPOCHS))
    batch_size = int(custom.get("batch_size", TRAIN_BATCH_SIZE))
    # The tutorial seeds TensorFlow once (tf.random.set_seed(42)); this also seeds Python and
    # NumPy, so that a seed fixes the whole run.
    tf.keras.utils.set_random_seed(seed)

    tf_transform_output = tft.TFTransformOutput(fn_args.transform_output)
    spec = tf_transform_output.transformed_feature_spec()
    train = _examples(fn_args.train_files, spec)
    test = _examples(_test_files(fn_args.train_files), spec)
    evaluation = [_examples(fn_args.eval_files, spec)] if fn_args.eval_files else []
    movies = tf.data.Dataset.from_tensor_slices(distinct_movies([train, *evaluation, test]))

    model = MovielensModel(
        rating_weight=float(custom.get("rating_weight", 1.0)),
        retrieval_weight=float(custom.get("retrieval_weight", 1.0)),
        user_vocabulary_size=tf_transform_output.vocabulary_size_by_name(USER_VOCABULARY),
        movie_vocabulary_size=tf_transform_output.vocabulary_size_by_name(MOVIE_VOCABULARY),
        movies=movies,
    )
    model.compile(optimizer=tf.keras.optimizers.Adagrad(LEARNING_RATE))

    cached_train = train.shuffle(SHUFFLE_BUFFER).batch(batch_size).cache()
    cached_test = test.batch(TEST_BATCH_SIZE).cache()
    history = model.fit(cached_train, epochs=epochs, verbose=0)
    metrics = model.evaluate(cached_test, return_dict=True, verbose=0)

    final = {
        "loss": float(history.history["loss"][-1]),
        "test_rmse": float(metrics["root_mean_squared_error"]),
    }
    for k in KS:
        final[f"recall_at_{k}"] = float(metrics[f"factorized_top_k/top_{k}_categorical_accuracy"])
    rows = [
        {"epoch": epoch + 1, **{key: float(values[epoch])
                                for key, values in history.history.items()}}
        for epoch in range(len(history.history["loss"]))
    ]
    return {"model_type": "multitask", "history": rows, "final": final,
            "candidates": {"unique_products": int(movies.cardinality())}}
