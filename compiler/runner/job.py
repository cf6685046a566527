"""Trainer job entry point: what a Vertex AI Custom Job (or a local shell) runs.

    python -m compiler.runner.job --trainer-module PATH_OR_URI --transform-dir DIR_OR_URI \\
        --output-dir DIR_OR_URI [--custom-config JSON] [--train-steps N] [--eval-steps N]

It trains on an existing Transform output (``transform_graph/`` and
``transformed_examples/Split-train|eval[|test]/``), writing ``<output-dir>/serving_model`` and
``<output-dir>/model_run/training_metrics.json``, and, where ``manifest.json`` lies beside the
trainer module (recforge stages it there), the run's TensorBoard HParams summaries under
``<output-dir>/model_run/logs`` (``compiler.runner.hparams``). Every path may be a ``gs://`` URI.

As a member of a multi-worker cluster (``TF_CONFIG`` set, a ``multi_worker`` trainer: every
Vertex AI replica runs this), only the chief writes; the other members train and exit 0.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from compiler.runner._tf import import_tf
from compiler.runner.fn_args import fn_args_from_transform
from compiler.runner.hparams import manifest_beside, write_hparams
from compiler.runner.trainer import run_trainer

_log = logging.getLogger("recforge.runner.job")


def _parse_custom_config(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--custom-config is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise SystemExit("--custom-config must be a JSON object")
    return value


def local_module_copy(module: str, workdir: Path) -> Path:
    """A local path for the trainer module: itself, or a copy of a remote (``scheme://``) one.

    The module is imported from a file, so a ``gs://`` module is first copied with
    tf.io.gfile into ``workdir``.
    """
    if "://" not in module:
        path = Path(module)
        if not path.is_file():
            raise SystemExit(f"--trainer-module {module}: no such file")
        return path
    tf = import_tf()
    if not tf.io.gfile.exists(module):
        raise SystemExit(f"--trainer-module {module}: not found")
    target = workdir / module.rstrip("/").rsplit("/", 1)[-1]
    tf.io.gfile.copy(module, str(target), overwrite=True)
    return target


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m compiler.runner.job",
        description="Train a recforge trainer module on an existing Transform output.",
    )
    parser.add_argument("--trainer-module", required=True, help="trainer_module.py, path or URI")
    parser.add_argument(
        "--transform-dir",
        required=True,
        help="Transform output root holding transform_graph/ and transformed_examples/",
    )
    parser.add_argument(
        "--output-dir", required=True, help="where serving_model/ and model_run/ go"
    )
    parser.add_argument(
        "--custom-config",
        default=None,
        help='JSON object for fn_args.custom_config, e.g. {"epochs": 2}',
    )
    parser.add_argument("--train-steps", type=int, default=None)
    parser.add_argument("--eval-steps", type=int, default=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    custom_config = _parse_custom_config(args.custom_config)

    workdir = Path(tempfile.mkdtemp(prefix="recforge_job_"))
    try:
        module_path = local_module_copy(args.trainer_module, workdir)
        fn_args = fn_args_from_transform(
            args.transform_dir,
            args.output_dir,
            custom_config,
            train_steps=args.train_steps,
            eval_steps=args.eval_steps,
        )
        _log.info("trainer module: %s", args.trainer_module)
        _log.info("train files: %s; eval files: %s", fn_args.train_files, fn_args.eval_files)
        _log.info("transform graph: %s", fn_args.transform_output)
        _log.info("serving model dir: %s", fn_args.serving_model_dir)
        metrics = run_trainer(module_path, fn_args)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if metrics is None:  # a multi-worker member: the chief writes and reports
        _log.info("not the chief: training done, nothing written")
        return 0
    manifest = manifest_beside(args.trainer_module)
    if manifest is not None:  # staged by recforge: the config values are known
        _log.info("TensorBoard HParams: %s",
                  write_hparams(fn_args.model_run_dir, manifest, metrics, custom_config))
    # One machine-readable line for whoever tails the job log.
    print(json.dumps({"final": metrics.get("final"), "test_split": metrics.get("test_split")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
