"""pathlib on an artifact directory, and os.path.isfile on the schema URI."""

import os
from pathlib import Path


def _assets_dir(fn_args):
    return Path(fn_args.serving_model_dir) / "assets"


def run_fn(fn_args):
    assets = _assets_dir(fn_args)
    assets.mkdir(parents=True, exist_ok=True)  # <-
    if os.path.isfile(fn_args.schema_path):  # <-
        with open(fn_args.schema_path, "rb") as handle:  # <-
            return handle.read()
    return None
