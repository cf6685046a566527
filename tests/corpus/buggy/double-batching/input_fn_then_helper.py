"""Issue #1 of the platform write-up: _input_fn batches, a helper batches again."""

import tensorflow as tf
from tfx_bsl.public import tfxio

BATCH_SIZE = 1024


def _input_fn(file_pattern, data_accessor, tf_transform_output, batch_size=BATCH_SIZE):
    return data_accessor.tf_dataset_factory(
        file_pattern,
        tfxio.TensorFlowDatasetOptions(batch_size=batch_size),
        tf_transform_output.transformed_metadata.schema,
    )


def _precompute_candidate_embeddings(model, candidates_dataset, batch_size=128):
    embeddings = []
    for batch in candidates_dataset.batch(batch_size):  # <-
        embeddings.append(model.product_tower(batch))
    return tf.concat(embeddings, axis=0)


def run_fn(fn_args):
    tf_transform_output = None
    candidates = _input_fn(fn_args.eval_files, fn_args.data_accessor, tf_transform_output)
    return _precompute_candidate_embeddings(None, candidates)
