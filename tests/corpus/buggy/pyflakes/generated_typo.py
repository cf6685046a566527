"""Generated code with an undefined name, an unused import and a redefinition."""

import json  # <-
import os


def _metrics_path(fn_args):
    return os.path.join(fn_args.model_run_dir, METRICS_FILE)  # <-


def _metrics_path(fn_args):  # <-
    return os.path.join(fn_args.model_run_dir, "training_metrics.json")


def run_fn(fn_args):
    return _metrics_path(fn_args)
