"""No ScaNN anywhere: a plain SavedModel needs no namespace whitelist."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402


def export_index(model, candidates, serving_model_dir):
    index = tfrs.layers.factorized_top_k.BruteForce(model.buyer_tower, k=100)
    index.index_from_dataset(candidates)
    tf.saved_model.save(index, serving_model_dir)
    checkpoint = tf.train.Checkpoint(model=model)
    checkpoint.save(serving_model_dir + "/ckpt")
