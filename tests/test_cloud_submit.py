"""Vertex AI submission end to end, offline: real google-cloud-storage and aiplatform_v1 clients
against the GCS emulator and a fake Vertex AI that runs each job as a local process.

Jobs here run small test modules instead of ``compiler.runner.job`` (``submit.python_module``),
each from the staged recforge sdist's environment; ``test_tensorflow_job_through_gs`` uses
TensorFlow's own ``gs://`` filesystem through the TLS proxy.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pytest
from cloud.fixtures import (
    CONFIG_HASH,
    CloudStack,
    cloud,
    fake_service_account_key,
    gcs_tls_proxy,
    write_emit_dir,
)
from rich.console import Console

from compiler.cloud import SubmitError, main_submit, submit

__all__ = ["cloud", "fake_service_account_key", "gcs_tls_proxy"]  # fixtures used by name

ROOT = Path(__file__).resolve().parent.parent
RUN = "qt-97-20260109-174616"
FEATURES = {"customer_id_id": "int64", "cust_value_norm": "float32", "sales_target": "float32"}
METRICS = {
    "model_type": "ranking",
    "history": [{"epoch": 1, "loss": 0.9, "val_rmse": 1.1, "val_mae": 0.8}],
    "final": {"loss": 0.5, "val_rmse": 1.0, "val_mae": 0.7, "test_rmse": 1.05, "test_mae": 0.72},
    "test_split": "found",
}

# A job entry point that writes training_metrics.json with google-cloud-storage (fast: no TF).
GCS_JOB = '''
import argparse, json, os, sys
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

parser = argparse.ArgumentParser()
for flag in ("--trainer-module", "--transform-dir", "--output-dir", "--custom-config"):
    parser.add_argument(flag)
args = parser.parse_args()
import compiler  # from the staged sdist, not from a checkout
metrics = dict(json.loads(os.environ.get("X_METRICS", "null")) or {METRICS})
metrics["compiler_file"] = compiler.__file__
metrics["custom_config"] = json.loads(args.custom_config or "{}")
metrics["aip_model_dir"] = os.environ["AIP_MODEL_DIR"]
uri = args.output_dir + "/model_run/training_metrics.json"
bucket, _, name = uri[len("gs://"):].partition("/")
client = storage.Client(project="job", credentials=AnonymousCredentials())
client.bucket(bucket).blob(name).upload_from_string(json.dumps(metrics))
print("wrote", uri)
'''.replace("{METRICS}", repr(METRICS))

FAILING_JOB = '''
import sys
print("loading the transform graph ...", flush=True)
raise RuntimeError("boom: the trainer exploded")
'''
SILENT_JOB = "print('trained, but forgot the metrics')\n"
SLEEPING_JOB = "import time\nprint('training forever', flush=True)\ntime.sleep(120)\n"


def emitted(tmp_path: Path) -> Path:
    return write_emit_dir(tmp_path / "emit")


def quiet() -> Console:
    return Console(file=io.StringIO(), width=200)


def output(console: Console) -> str:
    return console.file.getvalue()  # type: ignore[attr-defined]


@pytest.fixture
def source(cloud: CloudStack) -> str:
    return cloud.make_source_run(RUN, FEATURES)


# -------------------------------------------------------------------------- happy paths


@pytest.mark.slow
def test_submit_waits_and_returns_metrics(cloud: CloudStack, source: str, tmp_path: Path
                                          ) -> None:
    module = cloud.write_job_module("gcs_job", GCS_JOB)
    cfg = cloud.submit_config(source_exp=RUN, python_module=module,
                              custom_config={"epochs": 2})
    cloud.vertex.inject("get", 503)  # one failed poll is retried, not fatal
    console = quiet()
    result = submit(emitted(tmp_path), cfg, FEATURES, console=console)

    assert result.state == "JOB_STATE_SUCCEEDED", output(console)
    assert result.metrics is not None and result.metrics["final"] == METRICS["final"]
    assert result.transform_dir == source
    [job] = cloud.vertex.jobs.values()
    assert job.id == result.job_id
    # The job imported recforge from the staged sdist that the fake "installed" ...
    assert result.metrics["compiler_file"].startswith(str(cloud.vertex.workdir))
    assert "/pkgs/recforge-0.1.0/compiler/" in result.metrics["compiler_file"]
    # ... next to the requirements archive built from submit.packages.
    assert "tensorflow-recommenders>=0.7.3" in job.requirements
    assert result.metrics["custom_config"] == {"epochs": 2}
    assert result.metrics["aip_model_dir"] == result.output_dir + "/model/"
    # Every staged file lives under the SHA-256 of its content.
    objects = f"gs://{cloud.staging_bucket}/recforge/objects"
    for staged in result.plan.files:
        data = cloud.read(staged.uri)
        assert staged.uri == f"{objects}/{hashlib.sha256(data).hexdigest()}/{staged.name}"
    assert {f.name for f in result.plan.files} == {
        "trainer_module.py", "transform_module.py", "manifest.json", "recforge-0.1.0.tar.gz",
        "recforge_job_requirements-1.0.tar.gz"}
    assert cloud.read(result.plan.uri_of("trainer_module.py")) == (
        (tmp_path / "emit" / "trainer_module.py").read_bytes())
    assert result.output_dir.startswith(
        f"gs://{cloud.staging_bucket}/recforge/tests/{CONFIG_HASH}/jobs/")
    body = job.body
    assert body["labels"]["recforge_config_hash"] == CONFIG_HASH
    assert body["labels"]["recforge_source"] == RUN
    spec = body["jobSpec"]["workerPoolSpecs"][0]["pythonPackageSpec"]
    assert spec["args"][spec["args"].index("--transform-dir") + 1] == source
    text = output(console)
    assert "JOB_STATE_RUNNING" in text and "JOB_STATE_SUCCEEDED" in text
    assert "val_rmse" in text  # the metrics table
    assert not any(f.op == "get" and f.times for f in cloud.vertex.faults)  # the 503 was sent


@pytest.mark.slow
def test_no_wait_returns_at_once(cloud: CloudStack, source: str, tmp_path: Path) -> None:
    module = cloud.write_job_module("sleeper", SLEEPING_JOB)
    cfg = cloud.submit_config(source_exp=RUN, python_module=module, wait=False)
    result = submit(emitted(tmp_path), cfg, FEATURES, console=quiet())
    assert result.state in ("JOB_STATE_PENDING", "JOB_STATE_QUEUED")
    assert result.metrics is None and len(cloud.vertex.jobs) == 1


@pytest.mark.slow
def test_tensorflow_job_through_gs(cloud: CloudStack, source: str, tmp_path: Path) -> None:
    """TensorFlow's own gs:// filesystem (proxy -> emulator): reads the staged trainer and the
    Transform splits, writes the metrics the submitter then reads with google-cloud-storage."""
    module = cloud.write_job_module("tf_job", '''
import argparse, json, os
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow as tf

parser = argparse.ArgumentParser()
for flag in ("--trainer-module", "--transform-dir", "--output-dir", "--custom-config"):
    parser.add_argument(flag)
args = parser.parse_args()
trainer = tf.io.gfile.GFile(args.trainer_module).read()
train = tf.io.gfile.glob(args.transform_dir + "/transformed_examples/Split-train/*.gz")
test_split = tf.io.gfile.exists(args.transform_dir + "/transformed_examples/Split-test")
run_dir = args.output_dir + "/model_run"
tf.io.gfile.makedirs(run_dir)
with tf.io.gfile.GFile(run_dir + "/training_metrics.json", "w") as f:
    json.dump({"final": {"loss": 0.25}, "trainer_bytes": len(trainer), "train_files": train,
               "test_split": "found" if test_split else "missing"}, f)
''')
    cfg = cloud.submit_config(source_exp=RUN, python_module=module)
    console = quiet()
    result = submit(emitted(tmp_path), cfg, FEATURES, console=console)
    job = cloud.vertex.jobs[result.job_id or ""]
    assert result.state == "JOB_STATE_SUCCEEDED", job.log
    assert result.metrics is not None
    assert result.metrics["final"] == {"loss": 0.25}
    assert result.metrics["trainer_bytes"] == (tmp_path / "emit/trainer_module.py").stat().st_size
    assert result.metrics["train_files"] == [
        f"{source}/transformed_examples/Split-train/transformed_examples-00000-of-00001.gz"]
    assert result.metrics["test_split"] == "found"


@pytest.mark.slow
def test_ledger_records_the_submission(cloud: CloudStack, source: str, tmp_path: Path) -> None:
    from compiler.ledger import Ledger

    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    module = cloud.write_job_module("gcs_job", GCS_JOB)
    result = submit(emitted(tmp_path), cloud.submit_config(source_exp=RUN, python_module=module),
                    FEATURES, ledger, console=quiet())
    assert result.experiment_number is not None
    exp = ledger.get(result.experiment_number)
    assert (exp.status, exp.kind, exp.job_id) == ("completed", "vertex", result.job_id)
    assert exp.metrics["val_rmse"] == 1.0 and exp.config_hash == CONFIG_HASH
    assert exp.artifacts["metrics"].endswith("/model_run/training_metrics.json")
    job = cloud.vertex.jobs[result.job_id or ""]
    assert job.body["labels"]["recforge_exp_number"] == str(result.experiment_number)
    assert f"exp{result.experiment_number}-" in job.body["displayName"]

    # An experiment the caller recorded at compile time is the one that gets submitted.
    number = ledger.record_compile(CONFIG_HASH, "hybrid_v1", "cherng_v3", ["model=x"], {"a": 1})
    again = submit(emitted(tmp_path), cloud.submit_config(source_exp=RUN, python_module=module),
                   FEATURES, ledger, console=quiet(), experiment_number=number)
    assert again.experiment_number == number
    assert ledger.get(number).status == "completed"
    assert ledger.get(number).artifacts["transform_dir"] == result.transform_dir

    failing = cloud.write_job_module("failing", FAILING_JOB)
    with pytest.raises(SubmitError) as info:
        submit(emitted(tmp_path), cloud.submit_config(source_exp=RUN, python_module=failing),
               FEATURES, ledger, console=quiet())
    [failed] = ledger.list(status="failed")
    assert failed.job_id == info.value.job_id
    assert "non-zero status of 1" in (failed.error or "")


# ----------------------------------------------------------------------------- faults


@pytest.mark.parametrize("after", [True, False], ids=["lost-response", "refused"])
@pytest.mark.slow
def test_503_on_create_gives_exactly_one_job(cloud: CloudStack, source: str, tmp_path: Path,
                                             after: bool) -> None:
    cloud.vertex.inject("create", 503, after=after)
    module = cloud.write_job_module("gcs_job", GCS_JOB)
    console = quiet()
    result = submit(emitted(tmp_path), cloud.submit_config(source_exp=RUN, python_module=module),
                    FEATURES, console=console)
    assert len(cloud.vertex.jobs) == 1, output(console)
    assert result.state == "JOB_STATE_SUCCEEDED"
    creates = [r for r in cloud.vertex.requests if r[0] == "POST" and r[1].split("?")[0]
               .endswith("/customJobs")]
    assert len(creates) == (1 if after else 2)
    assert "create attempt 1 of 4 failed (503" in output(console)
    if after:
        assert "the earlier create did reach Vertex AI" in output(console)


@pytest.mark.slow
def test_failed_job_exits_nonzero_with_its_error_and_log_command(
        cloud: CloudStack, source: str, tmp_path: Path) -> None:
    module = cloud.write_job_module("failing", FAILING_JOB)
    console = quiet()
    code = main_submit(emitted(tmp_path), cloud.submit_config(source_exp=RUN, python_module=module),
                       FEATURES, console=console)
    text = output(console)
    [job] = cloud.vertex.jobs.values()
    assert code == 1
    assert "boom: the trainer exploded" in job.log  # what the logs command would show
    assert "JOB_STATE_FAILED" in text and "non-zero status of 1" in text
    assert (f'gcloud logging read "resource.type=ml_job AND resource.labels.job_id={job.id}" '
            f'--project=recforge-test-project --limit=100 --format="value(textPayload)"') in text
    assert "Traceback" not in text


@pytest.mark.slow
def test_success_without_metrics_is_a_clear_error(cloud: CloudStack, source: str,
                                                  tmp_path: Path) -> None:
    module = cloud.write_job_module("silent", SILENT_JOB)
    with pytest.raises(SubmitError) as info:
        submit(emitted(tmp_path), cloud.submit_config(source_exp=RUN, python_module=module),
               FEATURES, console=quiet())
    assert info.value.exit_code == 1
    assert "succeeded but wrote no metrics file" in info.value.message
    assert "model_run/training_metrics.json does not exist" in info.value.message


@pytest.mark.slow
def test_wait_timeout(cloud: CloudStack, source: str, tmp_path: Path) -> None:
    module = cloud.write_job_module("sleeper", SLEEPING_JOB)
    cfg = cloud.submit_config(source_exp=RUN, python_module=module, timeout_minutes=0.02)
    started = time.monotonic()
    with pytest.raises(SubmitError) as info:
        submit(emitted(tmp_path), cfg, FEATURES, console=quiet())
    assert time.monotonic() - started < 30
    assert info.value.exit_code == 3
    assert "still JOB_STATE_" in info.value.message and "keeps running" in info.value.message
    job = cloud.vertex.jobs[info.value.job_id or ""]
    assert job.state == "JOB_STATE_RUNNING"  # a timeout does not cancel


@pytest.mark.slow
def test_duplicate_refused_unless_forced(cloud: CloudStack, source: str, tmp_path: Path) -> None:
    module = cloud.write_job_module("sleeper", SLEEPING_JOB)
    cfg = cloud.submit_config(source_exp=RUN, python_module=module, wait=False)
    first = submit(emitted(tmp_path), cfg, FEATURES, console=quiet())
    with pytest.raises(SubmitError) as info:
        submit(emitted(tmp_path), cfg, FEATURES, console=quiet())
    assert f"already active: {first.job_id}" in info.value.message
    assert "submit.force=true" in (info.value.hint or "")
    assert len(cloud.vertex.jobs) == 1
    # Another source, or force, is not a duplicate.
    cloud.make_source_run("other-run", FEATURES)
    submit(emitted(tmp_path), cloud.submit_config(source_exp="other-run", python_module=module,
                                                  wait=False), FEATURES, console=quiet())
    forced = submit(emitted(tmp_path), replace(cfg, force=True), FEATURES, console=quiet())
    assert len(cloud.vertex.jobs) == 3
    # Both active jobs are found, over several pages of the list call.
    cloud.vertex.page_size = 1
    with pytest.raises(SubmitError) as info:
        submit(emitted(tmp_path), cfg, FEATURES, console=quiet())
    assert first.job_id in info.value.message and forced.job_id in info.value.message
    assert len(cloud.vertex.jobs) == 3


@pytest.mark.slow
def test_ledger_settles_an_unwatched_run_before_the_next(cloud: CloudStack, source: str,
                                                         tmp_path: Path) -> None:
    from compiler.ledger import Ledger

    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    module = cloud.write_job_module("gcs_job", GCS_JOB)
    cfg = cloud.submit_config(source_exp=RUN, python_module=module)
    first = submit(emitted(tmp_path), replace(cfg, wait=False), FEATURES, ledger,
                   console=quiet())
    assert ledger.get(first.experiment_number or 0).status == "running"
    cloud.vertex.wait_until(first.job_id or "", "JOB_STATE_SUCCEEDED")
    console = quiet()
    second = submit(emitted(tmp_path), cfg, FEATURES, ledger, console=console)
    settled = ledger.get(first.experiment_number or 0)
    assert settled.status == "completed" and settled.metrics["val_rmse"] == 1.0
    assert f"experiment {first.experiment_number} (job {first.job_id}) had finished" in (
        output(console))
    assert ledger.get(second.experiment_number or 0).status == "completed"


@pytest.mark.slow
def test_ledger_and_force_while_running(cloud: CloudStack, source: str, tmp_path: Path) -> None:
    from compiler.ledger import Ledger

    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    module = cloud.write_job_module("sleeper", SLEEPING_JOB)
    cfg = cloud.submit_config(source_exp=RUN, python_module=module, wait=False)
    first = submit(emitted(tmp_path), cfg, FEATURES, ledger, console=quiet())
    console = quiet()
    second = submit(emitted(tmp_path), replace(cfg, force=True), FEATURES, ledger,
                    console=console)
    assert len(cloud.vertex.jobs) == 2
    assert f"experiment {first.experiment_number} is still running this config" in (
        output(console))
    assert ledger.get(first.experiment_number or 0).job_id == first.job_id
    # The ledger holds one running Vertex row per config hash: the forced one waits its turn.
    assert ledger.get(second.experiment_number or 0).status == "compiled"


def _interrupt_when_polled(cloud: CloudStack) -> threading.Thread:
    """Send SIGINT to the main thread (as Ctrl-C does) once the submitter is polling a job."""
    main = threading.main_thread().ident

    def fire() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if any(job.gets >= 1 and job.state == "JOB_STATE_RUNNING"
                   for job in list(cloud.vertex.jobs.values())):
                signal.pthread_kill(main, signal.SIGINT)  # type: ignore[arg-type]
                return
            time.sleep(0.02)

    thread = threading.Thread(target=fire, daemon=True)
    thread.start()
    return thread


@pytest.mark.parametrize("cancel", [True, False], ids=["cancel", "keep-running"])
@pytest.mark.slow
def test_ctrl_c(cloud: CloudStack, source: str, tmp_path: Path, cancel: bool) -> None:
    module = cloud.write_job_module("sleeper", SLEEPING_JOB)
    cfg = cloud.submit_config(source_exp=RUN, python_module=module, cancel_on_interrupt=cancel)
    thread = _interrupt_when_polled(cloud)
    with pytest.raises(SubmitError) as info:
        submit(emitted(tmp_path), cfg, FEATURES, console=quiet())
    thread.join()
    assert info.value.exit_code == 130
    job_id = info.value.job_id or ""
    if cancel:
        assert "cancelled job" in info.value.message
        assert cloud.vertex.wait_until(job_id, "JOB_STATE_CANCELLED", 20).returncode != 0
    else:  # not interactive and not configured to cancel: leave the job alone
        assert "keeps running" in info.value.message
        assert cloud.vertex.jobs[job_id].state == "JOB_STATE_RUNNING"


# ------------------------------------------------------------------------------ bad input


def _refused(cloud: CloudStack, tmp_path: Path, required: dict[str, str] = FEATURES,
             **cfg: Any) -> str:
    console = quiet()
    code = main_submit(emitted(tmp_path), cloud.submit_config(**cfg), required,
                       console=console)
    text = output(console)
    assert code == 2, text
    assert "Traceback" not in text
    assert cloud.vertex.jobs == {}  # nothing created
    assert not cloud.list(f"gs://{cloud.staging_bucket}/")  # nothing staged
    return text


def test_unknown_source_lists_closest_runs(cloud: CloudStack, source: str, tmp_path: Path
                                           ) -> None:
    cloud.make_source_run("qt-98-20260110-090000", FEATURES)
    cloud.make_source_run("something-else", FEATURES, nest="")
    text = _refused(cloud, tmp_path, source_exp="qt-97-20260109-174617")
    assert "source experiment 'qt-97-20260109-174617' not found" in text
    assert "closest run names: qt-97-20260109-174616, qt-98-20260110-090000" in text


def test_incompatible_transform_is_refused(cloud: CloudStack, source: str, tmp_path: Path
                                           ) -> None:
    required = {**FEATURES, "cust_value_norm": "int64", "product_id_id": "int64"}
    text = _refused(cloud, tmp_path, required, source_exp=RUN)
    assert "2 mismatches" in text
    assert "cust_value_norm: the trainer expects int64, the Transform produced float32" in text
    assert "product_id_id: the trainer needs it (int64); the Transform never produced it" in text


def test_source_without_transform_is_refused(cloud: CloudStack, tmp_path: Path) -> None:
    cloud.write(f"{cloud.pipeline_root}/empty-run/SchemaGen_1/schema/schema.pbtxt", "")
    text = _refused(cloud, tmp_path, source_exp="empty-run")
    assert "has no Transform output" in text


def test_missing_credentials(cloud: CloudStack, source: str, tmp_path: Path) -> None:
    """In a fresh process: google-auth reads NO_GCE_CHECK when first imported."""
    cfg = cloud.submit_config(source_exp=RUN)
    env = {k: v for k, v in os.environ.items() if k != "GOOGLE_APPLICATION_CREDENTIALS"}
    env.update(CLOUDSDK_CONFIG=str(tmp_path / "no-gcloud"), NO_GCE_CHECK="true")
    code = (
        "import json, sys\n"
        "from compiler.cloud import VertexSubmitConfig, main_submit\n"
        "cfg = VertexSubmitConfig(**json.loads(sys.argv[2]))\n"
        "sys.exit(main_submit(sys.argv[1], cfg))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(emitted(tmp_path)), json.dumps(asdict(cfg))],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2, text
    assert "no Google Cloud credentials found" in text
    assert "gcloud auth application-default login" in text
    assert "Traceback" not in text
    assert cloud.vertex.requests == [] and cloud.vertex.jobs == {}


def test_missing_project_names_the_key(cloud: CloudStack, source: str, tmp_path: Path) -> None:
    text = _refused(cloud, tmp_path, source_exp=RUN, project=None, staging_bucket=None)
    assert "submit.project, submit.staging_bucket are not set" in text


# ------------------------------------------------------------------- the real job entry point


@pytest.mark.slow
def test_real_job_entry_point_on_a_real_transform_output(cloud: CloudStack, tmp_path: Path
                                                         ) -> None:
    """``python -m compiler.runner.job`` from the staged sdist, on a real tf.Transform output
    in the emulator, every artifact a gs:// URI read and written by TensorFlow (via the proxy).
    The trainer is test_runner's tiny one; the compiled trainer is the lead's end-to-end."""
    from test_runner import RAW_SCHEMA, TRAINER_MODULE, TRANSFORM_MODULE, _write, tiny_splits

    from compiler.runner.transform import run_transform

    splits = tiny_splits()
    module = _write(tmp_path / "transform_module.py", TRANSFORM_MODULE)
    artifacts = run_transform(splits, RAW_SCHEMA, module, str(tmp_path / "transform"))
    transform_uri = f"{cloud.pipeline_root}/run-e2e/Transform_3"
    cloud.upload_dir(artifacts.root, transform_uri)
    emit = write_emit_dir(tmp_path / "emit")
    _write(emit / "trainer_module.py", TRAINER_MODULE)

    required = {"user_id": "int64", "amount_norm": "float32", "day": "int64",
                "amount_target": "float32"}
    cfg = cloud.submit_config(source_exp="run-e2e", custom_config={"epochs": 1},
                              timeout_minutes=5.0)
    result = submit(emit, cfg, required, console=quiet())
    job = cloud.vertex.jobs[result.job_id or ""]
    assert result.state == "JOB_STATE_SUCCEEDED", job.log[-4000:]
    assert result.transform_dir == transform_uri
    assert result.metrics is not None
    assert result.metrics["train_rows"] == len(splits["train"])
    assert result.metrics["eval_rows"] == len(splits["eval"])
    assert result.metrics["user_vocab"] == 12
    assert result.metrics["custom_config"] == {"epochs": 1}
    assert cloud.exists(f"{result.output_dir}/serving_model/saved_model.pb")


def test_a_two_way_split_source_is_found_and_one_without_train_is_refused(
        cloud: CloudStack) -> None:
    """A two-way split's Transform output has no Split-eval; the trainer skips validation, so
    the source is usable. Without Split-train there is nothing to train on."""
    from compiler.cloud.gcs import find_source

    transform = cloud.make_source_run("two-way", FEATURES, splits=("train", "test"))
    found = find_source(cloud.storage, cloud.pipeline_root, "two-way")
    assert transform.rstrip("/") in str(found)
    cloud.make_source_run("no-train", FEATURES, splits=("eval", "test"))
    with pytest.raises(SubmitError, match="no transformed_examples/Split-train"):
        find_source(cloud.storage, cloud.pipeline_root, "no-train")
