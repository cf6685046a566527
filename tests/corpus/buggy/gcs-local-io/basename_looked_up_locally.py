"""A remote file's name (its basename, or a listed entry) looked up on the local disk."""

import logging
import os


def run_fn(fn_args):
    import tensorflow as tf

    shard = os.path.basename(fn_args.train_files[0])
    if not os.path.exists(shard):  # <-
        logging.warning("shard %s missing", shard)
    for name in tf.io.gfile.listdir(fn_args.transform_output):
        if os.path.isdir(name):  # <-
            logging.info("transform output dir %s", name)
