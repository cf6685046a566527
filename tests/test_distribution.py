"""``model.distribution`` and ``run.workers``: the strategy fragments, their rejections, and
a 2-worker local run that must train the same model as one worker.

Seed noise of the 1-worker run (hybrid_v1, default data, ``run.epochs=2``; ``model.seed`` 1, 2,
3, measured once with ``python -m compiler ... run=local run.epochs=2 model.seed=<s>``): the
sample sd of each final metric is in ``SEED_SD``. Two single runs differ by seed noise alone
with sd ``sd * sqrt(2)``; the test allows 4 of those.
"""

from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from compiler.core.pipeline import compile_overrides
from compiler.local.workers import WorkerError, run_workers, tf_configs
from tests.compile_helpers import ROOT, run_cli
from tests.preflight_helpers import assert_rejected

#: Sample sd over model.seed 1, 2, 3 of the 1-worker run (see the module docstring).
SEED_SD = {"loss": 6.69, "test_rmse": 0.0507, "test_mae": 0.0196, "val_rmse": 0.0993,
           "val_mae": 0.0264, "recall_at_10": 0.0090, "recall_at_50": 0.0034,
           "recall_at_100": 0.0106, "val_recall_at_50": 0.0060, "val_recall_at_100": 0.0105}


def test_a_strategy_emits_a_trainer_that_compiles() -> None:
    # hybrid_v1: both losses become shares. Every fragment's EXAMPLES (mirrored too) are
    # compiled by tests/test_conformance.py.
    sources = compile_overrides(["model=hybrid_v1", "model.distribution=multi_worker"],
                                write=False).sources
    trainer = sources["trainer_module.py"]
    ast.parse(trainer)
    assert "tf.distribute.MultiWorkerMirroredStrategy()" in trainer
    assert "return ReplicaShareLoss(tf.keras.losses.MeanSquaredError())" in trainer
    assert "    with strategy.scope():\n        model = RecommenderModel(" in trainer
    assert "return ReplicaShareLoss(" in trainer and "_single_device_copy(weights" in trainer


def test_a_misspelt_distribution_is_one_line(tmp_path: Path, capsys) -> None:
    line = assert_rejected(["model.distribution=mirored", f"output_dir={tmp_path / 'out'}"],
                           tmp_path=tmp_path, key="model.distribution", in_process=True,
                           capsys=capsys)
    assert "did you mean 'mirrored'" in line


@pytest.mark.parametrize(("extra", "message"), [
    (["run.workers=2"], "expected 1 unless model.distribution=multi_worker"),
    (["run.workers=2", "model.distribution=mirrored"], "model.distribution=mirrored"),
    (["run.workers=0", "model.distribution=multi_worker"], "expected a positive integer"),
])
def test_workers_need_multi_worker(tmp_path: Path, capsys, extra: list[str],
                                   message: str) -> None:
    line = assert_rejected(["run=local", f"run.runs_root={tmp_path / 'runs'}",
                            f"output_dir={tmp_path / 'out'}", *extra],
                           tmp_path=tmp_path, key="run.workers", in_process=True, capsys=capsys)
    assert message in line
    assert not (tmp_path / "runs").exists()


def test_each_worker_gets_its_task_in_one_cluster() -> None:
    configs = tf_configs([4001, 4002])
    assert [c["task"] for c in configs] == [{"type": "worker", "index": 0},
                                             {"type": "worker", "index": 1}]
    assert configs[0]["cluster"] == configs[1]["cluster"] == {
        "worker": ["127.0.0.1:4001", "127.0.0.1:4002"]}


@pytest.mark.slow
def test_a_failed_worker_fails_the_run_with_its_log_tail(tmp_path: Path) -> None:
    missing = tmp_path / "no_such_module.py"
    with pytest.raises(WorkerError) as raised:
        run_workers(["--trainer-module", str(missing), "--transform-dir", str(tmp_path),
                     "--output-dir", str(tmp_path / "out")], 2, tmp_path)
    assert "failed (exit code" in raised.value.message
    assert f"--trainer-module {missing}: no such file" in raised.value.message
    assert sorted(p.name for p in (tmp_path / "workers").iterdir()) == [
        "worker-0.log", "worker-1.log"]


def _local_run(tmp_path: Path, name: str, *extra: str) -> dict:
    result = run_cli("model=hybrid_v1", "run=local", "run.epochs=2", "run.baselines=false",
                     f"run.runs_root={tmp_path / 'runs'}", f"run.cache_dir={tmp_path / 'cache'}",
                     f"output_dir={tmp_path / name}", f"run.name={name}", *extra,
                     env={**os.environ,
                          "RECFORGE_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((tmp_path / "runs" / name / "model_run" / "training_metrics.json")
                      .read_text())


@pytest.mark.slow
def test_two_local_workers_train_the_one_worker_model(tmp_path: Path) -> None:
    one = _local_run(tmp_path, "one")
    two = _local_run(tmp_path, "two", "model.distribution=multi_worker", "run.workers=2")
    run_dir = tmp_path / "runs" / "two"
    # The chief alone wrote: one metrics file, one SavedModel (the Transform's graph aside).
    assert len(list(run_dir.rglob("training_metrics.json"))) == 1
    saved = [p for p in run_dir.rglob("saved_model.pb") if "transform" not in p.parts]
    assert saved == [run_dir / "serving_model" / "saved_model.pb"]
    assert sorted(p.name for p in (run_dir / "workers").iterdir()) == [
        "worker-0.log", "worker-1.log"]
    # One TensorBoard writer (the chief's) per log directory; a second worker's would add its
    # own events file beside it.
    for split in ("train", "validation"):
        assert len(list((run_dir / "model_run" / "logs" / split).glob("events.out.*"))) == 1
    for key, sd in SEED_SD.items():
        bound = 4 * sd * math.sqrt(2)
        assert abs(two["final"][key] - one["final"][key]) <= bound, (
            key, one["final"][key], two["final"][key], bound)


#: Run in a fresh process: the two logical CPU devices must be set before TensorFlow starts.
GRADIENT_CHECK = '''
import os, sys
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from compiler.runner._modules import load_module_from_path
from compiler.runner.transform import run_transform
from tests.tiny_data import RAW_SCHEMA, split, tiny_transactions
import tensorflow_transform as tft

root = sys.argv[1]
run_transform(split(tiny_transactions()), RAW_SCHEMA, root + "/emitted/transform_module.py",
              root + "/transform")
module = load_module_from_path(root + "/emitted/trainer_module.py", prefix="gradient_check")
output = tft.TFTransformOutput(root + "/transform/transform_graph")
dataset = module._input_fn(root + "/transform/transformed_examples/Split-train/*.gz", output, 256)
batch = next(iter(dataset))

def dense(gradients):
    return [tf.convert_to_tensor(gradient) for gradient in gradients]

one_device = module.RecommenderModel(output)
one_device.compute_loss(batch)
with tf.GradientTape() as tape:
    loss = one_device.compute_loss(batch, training=True) + tf.reduce_sum(
        [tf.reduce_sum(term) for term in one_device.losses])
expected = dense(tape.gradient(loss, one_device.trainable_variables))

strategy = module._distribution_strategy()
assert strategy.num_replicas_in_sync == 2, strategy.num_replicas_in_sync
with strategy.scope():
    replicated = module.RecommenderModel(output)
    strategy.run(replicated.compute_loss, args=(batch,))
replicated.set_weights(one_device.get_weights())

def replica_gradients(inputs):
    with tf.GradientTape() as tape:
        total = replicated._replica_losses(inputs, training=True)[-1]
    return dense(tape.gradient(total, replicated.trainable_variables))

shares = next(iter(module._replica_shares(strategy, dataset)))
per_replica = strategy.run(replica_gradients, args=(shares,))
summed = [strategy.reduce(tf.distribute.ReduceOp.SUM, g, axis=None) for g in per_replica]
# Relative to the largest gradient entry: a variable whose gradient is ~0 by symmetry (the
# last product-tower bias under a softmax) carries float noise only.
scale = max(float(tf.reduce_max(tf.abs(b))) for b in expected)
worst = max(float(tf.reduce_max(tf.abs(a - b))) for a, b in zip(summed, expected)) / scale
print("relative gradient error", worst, "over", len(expected), "variables")
assert worst < 1e-4, worst
'''


@pytest.mark.slow
@pytest.mark.parametrize("model", ["hybrid_v1"])
def test_replica_gradients_sum_to_the_one_device_gradient(tmp_path: Path, model: str) -> None:
    """MirroredStrategy over 2 logical CPUs: the replicas' gradients of their shares of a
    batch, summed (as the optimizer all-reduces them), equal the one-device gradient of that
    batch. hybrid_v1: a mean-reduced ranking loss, a SUM-reduced in-batch softmax whose
    negatives are the whole batch's products, and L2 regularization (retrieval_v1's task is
    the same retrieval fragment; it left the suite to keep it under 20 minutes)."""
    compile_overrides([f"model={model}", "model.distribution=mirrored"],
                      output_dir=tmp_path / "emitted")
    result = subprocess.run([sys.executable, "-c", GRADIENT_CHECK, str(tmp_path)],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "relative gradient error" in result.stdout
