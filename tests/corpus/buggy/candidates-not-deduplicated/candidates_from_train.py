"""Candidates taken from the training split: one per transaction, not one per product."""

import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import tensorflow_recommenders as tfrs  # noqa: E402
from tfx_bsl.public import tfxio  # noqa: E402


def _input_fn(files, data_accessor, schema, batch_size):
    return data_accessor.tf_dataset_factory(
        files, tfxio.TensorFlowDatasetOptions(batch_size=batch_size), schema
    )


def build_metrics(fn_args, schema, product_tower):
    train = _input_fn(fn_args.train_files, fn_args.data_accessor, schema, 1024)
    product_ids = train.map(lambda features: features["product_id_id"])
    return tfrs.metrics.FactorizedTopK(  # <-
        candidates=product_ids.map(product_tower)
    )
