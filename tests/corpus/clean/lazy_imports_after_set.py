"""The recforge convention: run_fn sets the variable, helpers import TF lazily after it."""

import os


def _model():
    import tensorflow_recommenders as tfrs

    return tfrs.tasks.Retrieval()


def _dataset(files):
    import tensorflow as tf

    return tf.data.TFRecordDataset(files)


def run_fn(fn_args):
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf

    return _model(), _dataset(fn_args.train_files), tf.__version__
