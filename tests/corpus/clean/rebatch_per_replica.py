"""rebatch() re-splits existing batches across replicas: not a second batching."""

import tensorflow as tf


def distributed(files, strategy, global_batch):
    ds = tf.data.TFRecordDataset(files).batch(global_batch)
    ds = ds.rebatch(global_batch // strategy.num_replicas_in_sync)
    return strategy.experimental_distribute_dataset(ds)


def windows(values):
    ds = tf.data.Dataset.from_tensor_slices(values)
    pairs = tf.data.Dataset.zip((ds, ds.skip(1)))
    return pairs.batch(32)
