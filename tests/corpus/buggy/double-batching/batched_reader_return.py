"""make_batched_features_dataset is already batched; the caller pads it into batches again."""

import tensorflow as tf


def _read(file_pattern, feature_spec, batch_size):
    return tf.data.experimental.make_batched_features_dataset(
        file_pattern, batch_size, feature_spec, reader=tf.data.TFRecordDataset
    )


def products(file_pattern, feature_spec):
    dataset = _read(file_pattern, feature_spec, 512)
    ids = dataset.map(lambda features: features["product_id_id"])
    return ids.padded_batch(128)  # <-
