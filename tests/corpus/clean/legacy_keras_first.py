"""TF_USE_LEGACY_KERAS is set before the first TensorFlow import."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402


def task():
    return tfrs.tasks.Retrieval(), tf.__version__
