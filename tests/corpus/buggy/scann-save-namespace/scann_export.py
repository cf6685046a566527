"""A ScaNN index exported without whitelisting the Scann op namespace."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402


def export_index(model, candidates, serving_model_dir):
    index = tfrs.layers.factorized_top_k.ScaNN(model.buyer_tower, k=100)
    index.index_from_dataset(candidates)
    _ = index(tf.constant(["42"]))
    options = tf.saved_model.SaveOptions(experimental_io_device="/job:localhost")
    tf.saved_model.save(index, serving_model_dir, options=options)  # <-
