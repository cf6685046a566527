"""The fix for Issue #2: the test split is found with tf.io.gfile."""

import logging


def run_fn(fn_args):
    import tensorflow as tf

    train_files_dir = fn_args.train_files[0].rsplit("/", 1)[0]
    parent_dir = train_files_dir.rsplit("/", 1)[0]
    test_split_dir = f"{parent_dir}/Split-test"
    if tf.io.gfile.exists(test_split_dir):
        test_files = tf.io.gfile.glob(f"{test_split_dir}/*.gz")
        logging.info("test files: %d", len(test_files))
    else:
        logging.error("NO TEST SPLIT at %s: test metrics will be missing", test_split_dir)
    tf.io.gfile.makedirs(fn_args.model_run_dir)
    with tf.io.gfile.GFile(f"{fn_args.model_run_dir}/training_metrics.json", "w") as handle:
        handle.write("{}")
