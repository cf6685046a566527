"""Both splits come back batched in a tuple; the eval split is batched again."""

import tensorflow as tf


def _splits(train_files, eval_files, batch_size):
    train = tf.data.TFRecordDataset(train_files).batch(batch_size)
    evaluation = tf.data.TFRecordDataset(eval_files).batch(batch_size)
    return train, evaluation


def run_fn(fn_args):
    train_ds, eval_ds = _splits(fn_args.train_files, fn_args.eval_files, 1024)
    eval_ds = eval_ds.prefetch(2)
    return train_ds, eval_ds.batch(64)  # <-
