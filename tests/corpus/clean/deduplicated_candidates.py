"""Candidates deduplicated before FactorizedTopK and before indexing."""

import logging
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tensorflow_recommenders as tfrs  # noqa: E402


def _input_fn(files, data_accessor, schema, batch_size):
    from tfx_bsl.public import tfxio

    return data_accessor.tf_dataset_factory(
        files, tfxio.TensorFlowDatasetOptions(batch_size=batch_size), schema
    )


def build(fn_args, schema, product_tower, buyer_tower):
    train = _input_fn(fn_args.train_files, fn_args.data_accessor, schema, 1024)
    ids = train.unbatch().map(lambda features: features["product_id_id"]).unique()
    metric = tfrs.metrics.FactorizedTopK(candidates=ids.batch(128).map(product_tower))
    seen = np.unique(np.concatenate([b["product_id_id"].numpy() for b in train]))
    logging.info("%d unique products", len(seen))
    unique_ids = tf.data.Dataset.from_tensor_slices(seen).batch(128)
    index = tfrs.layers.factorized_top_k.BruteForce(buyer_tower)
    index.index_from_dataset(unique_ids.map(lambda p: (p, product_tower(p))))
    return metric, index
