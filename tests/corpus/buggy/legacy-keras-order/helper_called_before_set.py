"""run_fn sets the variable only after calling a helper that imports TFRS lazily."""

import os


def _build_task():
    import tensorflow_recommenders as tfrs  # <-

    return tfrs.tasks.Retrieval()


def run_fn(fn_args):
    task = _build_task()
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf

    return task, tf.__version__, fn_args
