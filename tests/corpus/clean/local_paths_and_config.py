"""Local literal paths and non-path config values are not GCS URIs."""

import glob
import os


def cached_vocab(fn_args):
    cache_dir = "/tmp/recforge_cache"
    os.makedirs(cache_dir, exist_ok=True)
    epochs = int(fn_args.custom_config.get("epochs", 1))
    name = os.environ.get("RUN_NAME", "local")
    files = glob.glob(os.path.join(cache_dir, f"{name}-*.txt"))
    return files, epochs
