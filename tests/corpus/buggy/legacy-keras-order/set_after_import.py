"""The variable is set, but after TensorFlow is already imported."""

import os

import tensorflow as tf  # <-

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow_recommenders as tfrs  # noqa: E402


def task():
    return tfrs.tasks.Retrieval(), tf.__version__
