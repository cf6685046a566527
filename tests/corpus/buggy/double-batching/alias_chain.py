"""Batched early, then aliased and chained through shuffle/map/prefetch before a second batch."""

import tensorflow as tf


def make_dataset(files, parse_fn):
    raw = tf.data.TFRecordDataset(files, compression_type="GZIP")
    batched = raw.map(parse_fn).batch(256, drop_remainder=True)
    ds = batched
    ds = ds.shuffle(10_000).map(lambda f: f).prefetch(tf.data.AUTOTUNE)
    ds = ds.cache().repeat().filter(lambda f: True)
    return ds.batch(32)  # <-
