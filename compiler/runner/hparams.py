"""TensorBoard HParams summaries for a run: its config values as hparams, its final metrics as
metrics, so that ``tensorboard --logdir <runs_root>`` lists a sweep's runs side by side in the
HParams dashboard.

Source: TensorBoard's HParams API (``tensorboard.plugins.hparams.api.hparams``, the guide
"Hyperparameter Tuning with the HParams Dashboard") and ``tf.summary.scalar``.

Everything goes to ``<model_run_dir>/logs``, the directory under which the emitted TensorBoard
callback writes ``train/`` and ``validation/`` (plugins/trainer.py). The HParams plugin takes a
directory holding a session-start summary as one session, and every scalar tag in it or below
it as one of that session's metrics, grouped by subdirectory: the final metrics are written
there as scalars (group ""), and the callback's ``epoch_*`` curves show as the ``train`` and
``validation`` groups. No experiment summary (``hparams_config``) is written: each run would
write its own, and the plugin infers the columns from the sessions instead, listing first the
hparams whose values differ between runs, which are the ones a sweep varied.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from compiler.runner._tf import import_tf

#: Where the emitted TensorBoard callback writes, under ``fn_args.model_run_dir``.
LOGS_DIR = "logs"
#: The emitted modules' manifest, written beside ``trainer_module.py`` (local runs and staging).
MANIFEST_FILE = "manifest.json"

HParamValue = bool | int | float | str


def hparam_values(manifest: Mapping[str, Any],
                  run_settings: Mapping[str, Any] | None = None) -> dict[str, HParamValue]:
    """The run's identifying config values, flattened to dotted keys with scalar values.

    ``model`` / ``features`` (the composed config names), ``config_hash``, every leaf of the
    resolved ``model`` and ``features`` config, and ``run.<key>`` for each run setting given
    (``run.epochs=1`` trains fewer epochs than ``model.epochs`` says). Keys follow
    ``compiler.runs.diff.flatten`` (feature lists keyed by feature name,
    ``features.buyer[customer_id].embedding.dim``), so they read as in ``runs compare``; that
    function is not imported because its package loads the ledger (SQLAlchemy). Lists of
    scalars and empty mappings become JSON text, ``None`` the text ``null``: HParams values are
    bools, numbers or strings only.
    """
    values: dict[str, HParamValue] = {
        "model": str(manifest["model"]),
        "features": str(manifest["features"]),
        "config_hash": str(manifest["config_hash"]),
    }
    resolved = manifest.get("resolved_config", {})
    for group in ("model", "features"):
        for key, value in _flatten(resolved.get(group, {}), group).items():
            values.setdefault(key, _scalar(value))
    for key, value in (run_settings or {}).items():
        if value is not None:
            values[f"run.{key}"] = _scalar(value)
    return values


def _flatten(config: Any, prefix: str) -> dict[str, Any]:
    if isinstance(config, Mapping) and config:
        out: dict[str, Any] = {}
        for key, value in config.items():
            out.update(_flatten(value, f"{prefix}.{key}"))
        return out
    if isinstance(config, Sequence) and not isinstance(config, str) \
            and any(isinstance(item, (Mapping, list)) for item in config):
        names = [item.get("name") if isinstance(item, Mapping) else None for item in config]
        by_name = all(isinstance(n, str) for n in names) and len(set(names)) == len(names)
        out = {}
        for index, item in enumerate(config):
            if by_name:  # the name is in the key; repeating it as a leaf adds nothing
                rest = {k: v for k, v in item.items() if k != "name"}
                out.update(_flatten(rest, f"{prefix}[{names[index]}]"))
            else:
                out.update(_flatten(item, f"{prefix}[{index}]"))
        return out
    return {prefix: config}


def _scalar(value: Any) -> HParamValue:
    if isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


def final_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of ``training_metrics.json``'s ``final`` (flags and text left out)."""
    return {key: float(value) for key, value in metrics.get("final", {}).items()
            if isinstance(value, (int, float)) and not isinstance(value, bool)}


def write_hparams(model_run_dir: str, manifest: Mapping[str, Any], metrics: Mapping[str, Any],
                  run_settings: Mapping[str, Any] | None = None) -> str:
    """Write the HParams session summary and the final metrics as scalars into
    ``<model_run_dir>/logs`` (a local path or a ``gs://`` URI); returns that directory.

    The trial id is the run directory's name (the parent of ``model_run_dir``), so the
    dashboard's rows name the runs as ``runs_root`` does. The scalars' step is the number of
    epochs trained (``history``'s length).
    """
    tf = import_tf()
    # lazy: TensorBoard's HParams API: writing a run's summaries only
    from tensorboard.plugins.hparams import api as hparams_api

    model_run_dir = model_run_dir.rstrip("/")
    logs_dir = f"{model_run_dir}/{LOGS_DIR}"
    parts = model_run_dir.split("/")
    run_name = parts[-2] if len(parts) > 1 else ""
    step = len(metrics.get("history") or [])
    writer = tf.summary.create_file_writer(logs_dir)
    try:
        with writer.as_default():
            hparams_api.hparams(hparam_values(manifest, run_settings),
                                trial_id=run_name or None)
            for name, value in final_metrics(metrics).items():
                tf.summary.scalar(name, value, step=step)
    finally:
        writer.close()
    return logs_dir


def manifest_beside(trainer_module: str) -> dict[str, Any] | None:
    """``manifest.json`` from the directory of ``trainer_module`` (a path or URI), or None
    where there is none (a module not staged by recforge)."""
    tf = import_tf()
    path = f"{trainer_module.rstrip('/').rsplit('/', 1)[0]}/{MANIFEST_FILE}" \
        if "/" in trainer_module else MANIFEST_FILE
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path, "r") as f:
        return json.loads(f.read())
