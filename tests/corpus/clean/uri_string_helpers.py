"""Pure string helpers on URIs, and URIs handed to TF APIs, are not local-disk calls."""

import logging
import os


def describe(fn_args):
    import tensorflow as tf
    import tensorflow_transform as tft

    base = os.path.basename(fn_args.serving_model_dir)
    stem, ext = os.path.splitext(os.path.basename(fn_args.train_files[0]))
    parent = os.path.dirname(fn_args.train_files[0])
    logging.info("model %s, split %s%s under %s", base, stem, ext, parent)
    output = tft.TFTransformOutput(fn_args.transform_output)
    dataset = tf.data.TFRecordDataset(fn_args.train_files, compression_type="GZIP")
    return output, dataset, os.path.join(fn_args.model_run_dir, "logs")
