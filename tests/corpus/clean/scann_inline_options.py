"""ScaNN saved with the namespace passed inline through a conditional."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402


def export(model, candidates, path, use_scann):
    index = (
        tfrs.layers.factorized_top_k.ScaNN(model.buyer_tower)
        if use_scann
        else tfrs.layers.factorized_top_k.BruteForce(model.buyer_tower)
    )
    index.index_from_dataset(candidates)
    index.save(
        path,
        options=tf.saved_model.SaveOptions(namespace_whitelist=["Scann"]) if use_scann else None,
    )
