"""os.putenv does not change os.environ, which is what TensorFlow reads."""

import os

os.putenv("TF_USE_LEGACY_KERAS", "1")

import tensorflow_recommenders as tfrs  # noqa: E402  # <-


def task():
    return tfrs.tasks.Retrieval()
