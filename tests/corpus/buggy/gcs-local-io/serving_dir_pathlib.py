"""makedirs and pathlib I/O on the serving model directory."""

import os
from pathlib import Path


def run_fn(fn_args):
    os.makedirs(fn_args.serving_model_dir, exist_ok=True)  # <-
    if not Path(fn_args.model_run_dir).exists():  # <-
        raise RuntimeError("no run dir")
    Path(fn_args.model_run_dir).write_text("done")  # <-
