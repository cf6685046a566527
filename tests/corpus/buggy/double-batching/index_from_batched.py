"""tensorflow/recommenders#237: an index built from an already batched candidate dataset."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402


def build_index(query_model, product_model, product_ids):
    candidates = tf.data.Dataset.from_tensor_slices(product_ids).batch(128)
    index = tfrs.layers.factorized_top_k.BruteForce(query_model)
    index.index_from_dataset(
        candidates.batch(100).map(lambda ids: (ids, product_model(ids)))  # <-
    )
    return index
