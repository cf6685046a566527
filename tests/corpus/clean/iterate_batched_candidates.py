"""The fix for Issue #1: the already batched dataset is iterated, not batched again."""

import logging

import tensorflow as tf


def _input_fn(file_pattern, data_accessor, schema, batch_size):
    from tfx_bsl.public import tfxio

    return data_accessor.tf_dataset_factory(
        file_pattern, tfxio.TensorFlowDatasetOptions(batch_size=batch_size), schema
    )


def _precompute_candidate_embeddings(model, candidates_dataset):
    """candidates_dataset is already batched by _input_fn: iterate it directly."""
    embeddings = [model.product_tower(batch) for batch in candidates_dataset]
    return tf.concat(embeddings, axis=0)


def run_fn(fn_args):
    candidates = _input_fn(fn_args.eval_files, fn_args.data_accessor, None, 1024)
    embeddings = _precompute_candidate_embeddings(None, candidates)
    logging.info("embeddings: %s", embeddings.shape)
