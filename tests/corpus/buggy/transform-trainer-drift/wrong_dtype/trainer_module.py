"""Trainer parsing the bucket index as a float and the z-score as an int."""

import tensorflow as tf

FEATURE_SPEC = {
    "cust_value_bucket": tf.io.FixedLenFeature([], tf.float32),  # <-
    "cust_value_norm": tf.io.FixedLenFeature([], tf.int64),  # <-
}


def run_fn(fn_args):
    return tf.data.TFRecordDataset(fn_args.train_files).map(
        lambda record: tf.io.parse_single_example(record, FEATURE_SPEC)
    )
