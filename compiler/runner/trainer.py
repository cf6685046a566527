"""Run a Trainer module's ``run_fn`` and read back the metrics it wrote."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from compiler.runner._modules import load_module_from_path
from compiler.runner._tf import import_tf
from compiler.runner.fn_args import FnArgs

METRICS_FILE = "training_metrics.json"


def read_metrics(model_run_dir: str) -> dict[str, Any]:
    """Parse ``<model_run_dir>/training_metrics.json`` (local or a URI)."""
    tf = import_tf()
    path = f"{model_run_dir.rstrip('/')}/{METRICS_FILE}"
    if not tf.io.gfile.exists(path):
        raise FileNotFoundError(f"run_fn wrote no {METRICS_FILE}: {path} is missing")
    with tf.io.gfile.GFile(path, "r") as f:
        return json.loads(f.read())


def run_trainer(module_file: str | Path, fn_args: FnArgs) -> dict[str, Any] | None:
    """Import ``module_file`` under a unique name, call its ``run_fn(fn_args)`` and return the
    parsed ``training_metrics.json`` from ``fn_args.model_run_dir``; None from a multi-worker
    member that is not the chief (its ``run_fn`` returns None and writes nothing).

    Exceptions from ``run_fn`` propagate unchanged: a failing trainer must fail the job.
    """
    # No TF import here: the module itself must select Keras 2 before importing TensorFlow
    # (the contract), and importing TF first would hide a module that forgets to.
    module = load_module_from_path(module_file, prefix="recforge_trainer_module")
    run_fn = getattr(module, "run_fn", None)
    if not callable(run_fn):
        raise AttributeError(f"{module_file} defines no run_fn")
    if run_fn(fn_args) is None and os.environ.get("TF_CONFIG"):
        return None
    return read_metrics(fn_args.model_run_dir)


__all__ = ["METRICS_FILE", "read_metrics", "run_trainer"]
