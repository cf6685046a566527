"""TensorBoard HParams summaries (``compiler.runner.hparams``): read back the way
``tensorboard --logdir <runs_root>``'s HParams dashboard reads them, through
``tensorboard.backend.event_processing`` and the hparams plugin's own handlers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from compiler.runner.hparams import hparam_values
from tests.compile_helpers import ROOT
from tests.tiny_data import tiny_transactions

MANIFEST = ROOT / "generated" / "hybrid_v1__cherng_v3" / "manifest.json"


def test_hparam_values_are_the_composed_configs_leaves_as_scalars() -> None:
    manifest = json.loads(MANIFEST.read_text())
    values = hparam_values(manifest, {"epochs": 1, "batch_size": None})
    assert values["model"] == "hybrid_v1" and values["features"] == "cherng_v3"
    assert values["config_hash"] == manifest["config_hash"]
    assert values["model.learning_rate"] == 0.001 and values["model.batch_size"] == 1024
    assert values["model.optimizer"] == "adam"
    assert values["model.buyer_tower.layers"] == "[128, 64, 32]"  # lists as JSON text
    assert values["model.early_stopping"] == "null"
    assert values["features.buyer[customer_id].embedding.dim"] == 64  # keyed by feature name
    assert values["features.crosses.buyer[0].hash_buckets"] == 10000
    assert values["run.epochs"] == 1 and "run.batch_size" not in values  # unset: not written
    assert all(isinstance(v, (bool, int, float, str)) for v in values.values())
    resolved = manifest["resolved_config"]
    assert len([k for k in values if k.startswith("model.")]) > len(resolved["model"])


# ------------------------------------------------------------------------------ read back
def dashboard(logdir: Path, metric_tags: list[str]) -> tuple[Any, dict[str, Any]]:
    """What the HParams dashboard gets for ``logdir``: the experiment (hparam and metric
    columns) and, per session group (trial), its hparams, metric values and sessions."""
    from google.protobuf import json_format
    from tensorboard import context
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import (
        api_pb2,
        backend_context,
        get_experiment,
        list_session_groups,
    )

    multiplexer = plugin_event_multiplexer.EventMultiplexer()
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    tb_context = base_plugin.TBContext(
        logdir=str(logdir), multiplexer=multiplexer,
        data_provider=data_provider.MultiplexerDataProvider(multiplexer, str(logdir)))
    backend = backend_context.Context(tb_context)
    request_context = context.RequestContext()
    experiment = get_experiment.Handler(
        request_context, backend, "", api_pb2.GetExperimentRequest()).run()
    request = json_format.ParseDict({
        "startIndex": 0, "sliceSize": 100, "allowedStatuses": ["STATUS_UNKNOWN"],
        "colParams": [{"metric": {"tag": tag}} for tag in metric_tags],
    }, api_pb2.ListSessionGroupsRequest())
    groups = list_session_groups.Handler(request_context, backend, "", request).run()
    return experiment, {
        group.name: {
            "hparams": {k: json_format.MessageToDict(v) for k, v in group.hparams.items()},
            "metrics": {(m.name.group, m.name.tag): m.value for m in group.metric_values},
            "sessions": [session.name for session in group.sessions],
        }
        for group in groups.session_groups
    }


@pytest.mark.slow  # TensorFlow's summary writer
def test_a_sweeps_runs_show_in_the_hparams_dashboard(tmp_path: Path) -> None:
    from compiler.core.pipeline import compile_overrides
    from compiler.runner.hparams import manifest_beside, write_hparams

    runs_root = tmp_path / "runs"
    finals = {0.001: {"loss": 5253.7, "test_rmse": 0.4838, "recall_at_10": 0.19},
              0.01: {"loss": 4100.2, "test_rmse": 0.4512, "recall_at_10": 0.23}}
    hashes = {}
    for learning_rate, final in finals.items():
        overrides = ["features=cherng_v3", f"model.learning_rate={learning_rate}"]
        manifest = compile_overrides(overrides, write=False).manifest
        hashes[learning_rate] = manifest["config_hash"]
        metrics = {"final": {**final, "test_split": "found"}, "history": [{"epoch": 1}],
                   "model_type": "multitask"}
        logs = write_hparams(str(runs_root / f"lr-{learning_rate}" / "model_run"), manifest,
                             metrics, {"epochs": 1})
        assert logs == f"{runs_root}/lr-{learning_rate}/model_run/logs"
    assert hashes[0.001] != hashes[0.01]

    experiment, groups = dashboard(runs_root, ["test_rmse", "recall_at_10", "loss"])
    # The plugin lists the hparams that differ between the runs first: what the sweep varied.
    differing = [info.name for info in experiment.hparam_infos if info.differs]
    assert differing == ["config_hash", "model.learning_rate"]
    assert [info.name for info in experiment.hparam_infos][:2] == differing
    assert {(m.name.group, m.name.tag) for m in experiment.metric_infos} == {
        ("", "loss"), ("", "recall_at_10"), ("", "test_rmse")}  # numbers only
    assert set(groups) == {"lr-0.001", "lr-0.01"}  # one row per run, named by its directory
    for learning_rate, final in finals.items():
        group = groups[f"lr-{learning_rate}"]
        assert group["sessions"] == [f"lr-{learning_rate}/model_run/logs"]
        assert group["hparams"]["model.learning_rate"] == learning_rate
        assert group["hparams"]["config_hash"] == hashes[learning_rate]
        assert group["hparams"]["model.buyer_tower.layers"] == "[128, 64, 32]"
        assert group["hparams"]["run.epochs"] == 1
        assert group["metrics"] == pytest.approx(
            {("", tag): value for tag, value in final.items()}, rel=1e-6)

    # The job finds the config beside a staged trainer module, and nothing beside another.
    staged = tmp_path / "staged"
    staged.mkdir()
    (staged / "manifest.json").write_text(MANIFEST.read_text())
    assert manifest_beside(str(staged / "trainer_module.py")) == json.loads(MANIFEST.read_text())
    assert manifest_beside(str(tmp_path / "trainer_module.py")) is None


@pytest.mark.slow  # a whole run=local (Transform, one epoch), then one more epoch as a job
def test_local_runs_and_jobs_write_hparams_beside_their_training_curves(tmp_path: Path) -> None:
    from compiler.__main__ import main
    from compiler.runner import job

    frame = tiny_transactions(rows=1500, seed=5)
    frame["date"] = pd.to_datetime(frame["date"], unit="s").dt.strftime("%Y-%m-%d")
    frame.to_csv(tmp_path / "transactions.csv", index=False)
    runs_root = tmp_path / "runs"
    assert main([
        "model=hybrid_v1", "features=cherng_v3", "run=local", "run.name=tiny",
        f"output_dir={tmp_path / 'emitted'}", f"data.source={tmp_path / 'transactions.csv'}",
        f"run.runs_root={runs_root}", f"run.cache_dir={tmp_path / 'cache'}",
        "run.epochs=1", "model.batch_size=256", "run.baselines=false",
    ]) == 0
    local = runs_root / "tiny"
    # What a Vertex AI job runs, on the staged modules (manifest.json beside the trainer).
    assert job.main(["--trainer-module", str(local / "modules" / "trainer_module.py"),
                     "--transform-dir", str(local / "transform"),
                     "--output-dir", str(runs_root / "job"),
                     "--custom-config", '{"epochs": 1, "batch_size": 128}']) == 0
    manifest = json.loads((local / "modules" / "manifest.json").read_text())

    experiment, groups = dashboard(runs_root, ["test_rmse", "recall_at_100"])
    assert set(groups) == {"tiny", "job"}
    for name, batch_size in (("tiny", None), ("job", 128)):
        final = json.loads((runs_root / name / "model_run" / "training_metrics.json")
                           .read_text())["final"]
        run = groups[name]
        assert run["sessions"] == [f"{name}/model_run/logs"]
        hparams = run["hparams"]
        assert hparams["model"] == "hybrid_v1" and hparams["features"] == "cherng_v3"
        assert hparams["config_hash"] == manifest["config_hash"]
        assert hparams["model.batch_size"] == 256 and hparams["run.epochs"] == 1
        assert hparams.get("run.batch_size") == batch_size
        written = {metric: value for metric, value in run["metrics"].items() if metric[0] == ""}
        assert written == pytest.approx({("", tag): value for tag, value in final.items()},
                                        rel=1e-6)
        # The Keras callback's curves are the same session's train and validation metrics.
        assert {("train", "epoch_loss"), ("validation", "epoch_loss")} <= set(run["metrics"])
    assert {("train", "epoch_loss"), ("", "test_rmse")} <= {
        (m.name.group, m.name.tag) for m in experiment.metric_infos}
