"""Walking a URI with tf.io.gfile, caching file names in a local directory."""

import os
import tempfile


def list_split(fn_args):
    import tensorflow as tf

    split_dir = os.path.dirname(fn_args.eval_files[0])
    found = []
    for root, _dirs, names in tf.io.gfile.walk(split_dir):
        found.extend(f"{root}/{name}" for name in names if name.endswith(".gz"))
    cache = os.path.join(tempfile.gettempdir(), os.path.basename(split_dir) + ".txt")
    if not os.path.isfile(cache):
        with open(cache, "w", encoding="utf-8") as handle:
            handle.write("\n".join(found))
    return found
