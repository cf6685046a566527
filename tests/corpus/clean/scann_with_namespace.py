"""ScaNN index saved with the Scann namespace whitelisted (through a variable)."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402


def export_index(model, candidates, serving_model_dir, algorithm):
    if algorithm == "scann":
        index = tfrs.layers.factorized_top_k.ScaNN(model.buyer_tower, k=100)
        options = tf.saved_model.SaveOptions(namespace_whitelist=["Scann"])
    else:
        index = tfrs.layers.factorized_top_k.BruteForce(model.buyer_tower, k=100)
        options = None
    index.index_from_dataset(candidates)
    save_options = options if options is not None else tf.saved_model.SaveOptions()
    tf.saved_model.save(index, serving_model_dir, options=save_options)
