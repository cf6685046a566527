"""Candidates from a batched split, unbatched first and re-batched exactly once."""

import tensorflow as tf


def _input_fn(files, data_accessor, schema, batch_size):
    from tfx_bsl.public import tfxio

    return data_accessor.tf_dataset_factory(
        files, tfxio.TensorFlowDatasetOptions(batch_size=batch_size), schema
    )


def candidate_ids(fn_args, schema):
    ds = _input_fn(fn_args.eval_files, fn_args.data_accessor, schema, 1024)
    ids = ds.unbatch().map(lambda features: features["product_id_id"]).unique()
    return ids.batch(128).prefetch(tf.data.AUTOTUNE)
