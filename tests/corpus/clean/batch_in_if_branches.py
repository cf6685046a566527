"""Batched once on each branch of an if: not a double batching."""

import tensorflow as tf


def make_dataset(files, training, batch_size):
    ds = tf.data.TFRecordDataset(files, compression_type="GZIP")
    if training:
        ds = ds.shuffle(10_000).batch(batch_size, drop_remainder=True)
    else:
        ds = ds.batch(batch_size * 4)
    return ds.prefetch(tf.data.AUTOTUNE)


def make_eval(files):
    ds = make_dataset(files, training=False, batch_size=256)
    return ds.take(10)
