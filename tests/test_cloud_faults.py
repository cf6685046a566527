"""Issue #12's submission faults, against the GCS emulator and the loopback Vertex AI server:
immutable staging, a create committed after the client's timeout, 429s, 403/404 and credential
failures while polling, a long PENDING, FAILED_PRECONDITION and Ctrl-C during create."""

from __future__ import annotations

import json
import signal
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from cloud.fixtures import (
    CloudStack,
    cloud,
    fake_service_account_key,
    gcs_tls_proxy,
    write_emit_dir,
)
from test_cloud_submit import FEATURES, GCS_JOB, RUN, output, quiet

from compiler.cloud import SubmitError, main_submit, submit

__all__ = ["cloud", "fake_service_account_key", "gcs_tls_proxy"]  # fixtures used by name

# Writes the trainer module it was given (read from gs://) into its metrics: which code ran.
ECHO_JOB = '''
import argparse, json
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

parser = argparse.ArgumentParser()
for flag in ("--trainer-module", "--transform-dir", "--output-dir", "--custom-config"):
    parser.add_argument(flag)
args = parser.parse_args()
client = storage.Client(project="job", credentials=AnonymousCredentials())

def blob(uri):
    bucket, _, name = uri[len("gs://"):].partition("/")
    return client.bucket(bucket).blob(name)

trainer = blob(args.trainer_module).download_as_bytes().decode()
metrics = {"final": {"loss": 0.5}, "trainer": trainer}
blob(args.output_dir + "/model_run/training_metrics.json").upload_from_string(json.dumps(metrics))
'''
JOBS_PATH = r"/customJobs$"
JOB_PATH = r"/customJobs/[^/:]+$"


@pytest.fixture
def source(cloud: CloudStack) -> str:
    return cloud.make_source_run(RUN, FEATURES)


def ledger_at(tmp_path: Path):  # noqa: ANN201 - compiler.ledger.Ledger
    from compiler.ledger import Ledger

    return Ledger(f"sqlite:///{tmp_path}/ledger.db")


def generation(cloud: CloudStack, uri: str) -> int:
    bucket, _, name = uri[len("gs://"):].partition("/")
    return cloud.storage.bucket(bucket).get_blob(name).generation


# ------------------------------------------------------------------------ immutable staging


@pytest.mark.slow
def test_later_submission_never_changes_what_a_pending_job_reads(
        cloud: CloudStack, source: str, tmp_path: Path) -> None:
    module = cloud.write_job_module("echo_job", ECHO_JOB)
    cloud.vertex.pending_seconds = 60.0  # the first job stays pending while the second stages
    cfg = cloud.submit_config(source_exp=RUN, python_module=module, wait=False)
    first_dir = write_emit_dir(tmp_path / "first")
    second_dir = write_emit_dir(tmp_path / "second")  # same config hash, other compiler code
    (second_dir / "trainer_module.py").write_text("# trainer v2\ndef run_fn(fn_args):\n    1\n")

    first = submit(first_dir, cfg, FEATURES, console=quiet())
    before = {f.uri: cloud.read(f.uri) for f in first.plan.files}
    generations = {f.uri: generation(cloud, f.uri) for f in first.plan.files}
    console = quiet()
    second = submit(second_dir, replace(cfg, force=True), FEATURES, console=console)
    assert cloud.vertex.jobs[first.job_id or ""].state == "JOB_STATE_PENDING"

    first_trainer = first.plan.uri_of("trainer_module.py")
    second_trainer = second.plan.uri_of("trainer_module.py")
    assert first_trainer != second_trainer
    # Unchanged content is the same object, reused and not uploaded again ...
    for name in ("transform_module.py", "manifest.json", "recforge_job_requirements-1.0.tar.gz"):
        assert first.plan.uri_of(name) == second.plan.uri_of(name)
        assert f"reused   {first.plan.uri_of(name)}" in output(console)
    # ... and no object of the first job changed, byte for byte and generation for generation.
    for f in first.plan.files:
        assert cloud.read(f.uri) == before[f.uri]
        assert generation(cloud, f.uri) == generations[f.uri]

    cloud.vertex.pending_seconds = 0.0
    for result, emit in ((first, first_dir), (second, second_dir)):
        cloud.vertex.wait_until(result.job_id or "", "JOB_STATE_SUCCEEDED", 60)
        metrics = json.loads(cloud.read(result.plan.metrics_uri))
        assert metrics["trainer"] == (emit / "trainer_module.py").read_text()


# --------------------------------------------------------------------------- creating


@pytest.mark.slow
def test_create_committed_after_the_client_timeout_makes_one_job(
        cloud: CloudStack, source: str, tmp_path: Path) -> None:
    # The server commits the job 1 s after the request came in; the client gives up at 0.3 s.
    cloud.vertex.inject("create", 200, delay=1.0)
    module = cloud.write_job_module("gcs_job", GCS_JOB)
    cfg = cloud.submit_config(source_exp=RUN, python_module=module, create_timeout_seconds=0.3,
                              create_settle_seconds=5.0)
    console = quiet()
    result = submit(write_emit_dir(tmp_path / "emit"), cfg, FEATURES, console=console)
    assert len(cloud.vertex.jobs) == 1, output(console)
    assert cloud.vertex.count("POST", JOBS_PATH) == 1  # never created again
    assert result.state == "JOB_STATE_SUCCEEDED"
    assert "the earlier create did reach Vertex AI" in output(console)


@pytest.mark.slow
def test_429_on_create_is_retried_after_listing(cloud: CloudStack, source: str, tmp_path: Path
                                                ) -> None:
    cloud.vertex.inject("create", 429, times=2)
    module = cloud.write_job_module("gcs_job", GCS_JOB)
    cfg = cloud.submit_config(source_exp=RUN, python_module=module)
    started = time.monotonic()
    result = submit(write_emit_dir(tmp_path / "emit"), cfg, FEATURES, console=quiet())
    assert len(cloud.vertex.jobs) == 1 and result.state == "JOB_STATE_SUCCEEDED"
    assert cloud.vertex.count("POST", JOBS_PATH) == 3
    # A 429 says the job was not made: a quick look by label, no settle wait.
    assert time.monotonic() - started < 3.0 * 2 + 20
    lists = [path for method, path in cloud.vertex.requests
             if method == "GET" and "recforge_submission" in path]
    assert len(lists) >= 2  # right before each re-create


@pytest.mark.slow
def test_failed_precondition_on_create_is_one_clear_error(cloud: CloudStack, source: str,
                                                          tmp_path: Path) -> None:
    cloud.vertex.inject("create", 400, status_name="FAILED_PRECONDITION")
    ledger = ledger_at(tmp_path)
    console = quiet()
    code = main_submit(write_emit_dir(tmp_path / "emit"), cloud.submit_config(source_exp=RUN),
                       FEATURES, ledger, console=console)
    text = output(console)
    assert code == 1, text
    assert "error: Vertex AI refused the job: 400" in text and "Traceback" not in text
    assert cloud.vertex.count("POST", JOBS_PATH) == 1 and cloud.vertex.jobs == {}
    [row] = ledger.list(status="failed")
    assert (row.error or "").startswith("not submitted: ")


@pytest.mark.slow
def test_ctrl_c_during_create_leaves_the_ledger_unknown(cloud: CloudStack, source: str,
                                                        tmp_path: Path) -> None:
    cloud.vertex.inject("create", 200, delay=1.5)  # a create that takes its time
    main = threading.main_thread().ident

    def interrupt_when_creating() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if cloud.vertex.count("POST", JOBS_PATH):
                time.sleep(0.2)
                signal.pthread_kill(main, signal.SIGINT)  # type: ignore[arg-type]
                return
            time.sleep(0.02)

    thread = threading.Thread(target=interrupt_when_creating, daemon=True)
    thread.start()
    ledger = ledger_at(tmp_path)
    with pytest.raises(SubmitError) as info:
        submit(write_emit_dir(tmp_path / "emit"), cloud.submit_config(source_exp=RUN),
               FEATURES, ledger, console=quiet())
    thread.join()
    assert info.value.exit_code == 130
    assert "may or may not exist" in info.value.message
    [row] = ledger.list()
    label = row.artifacts["vertex_submission_label"]
    assert label.startswith("recforge_submission=")
    assert row.status == "unknown"
    assert (row.error or "").startswith(f"check label {label}")
    assert "not submitted" not in (row.error or "")
    assert label.split("=", 1)[1] in (info.value.hint or "")


# ---------------------------------------------------------------------------- waiting


def _submit_and_fail_while_polling(cloud: CloudStack, tmp_path: Path, arm: object
                                   ) -> tuple[int, str, float, object]:
    """Submit with a job that stays PENDING; ``arm(job)`` injects the fault once it was polled."""
    cloud.vertex.pending_seconds = 60.0
    main_done = threading.Event()

    def wait_for_first_poll() -> None:
        while not main_done.is_set():
            for job in list(cloud.vertex.jobs.values()):
                if job.gets >= 1:
                    arm(job)  # type: ignore[operator]
                    return
            time.sleep(0.01)

    thread = threading.Thread(target=wait_for_first_poll, daemon=True)
    thread.start()
    ledger = ledger_at(tmp_path)
    console = quiet()
    started = time.monotonic()
    code = main_submit(write_emit_dir(tmp_path / "emit"), cloud.submit_config(source_exp=RUN),
                       FEATURES, ledger, console=console)
    elapsed = time.monotonic() - started
    main_done.set()
    return code, output(console), elapsed, ledger


@pytest.mark.parametrize("status", [403, 404])
@pytest.mark.slow
def test_403_or_404_while_polling_stops_at_once(cloud: CloudStack, source: str,
                                                tmp_path: Path, status: int) -> None:
    armed: dict[str, int] = {}

    def arm(job: object) -> None:
        cloud.vertex.inject("get", status, times=100)
        armed["gets"] = cloud.vertex.count("GET", JOB_PATH)

    code, text, elapsed, ledger = _submit_and_fail_while_polling(cloud, tmp_path, arm)
    assert code == 1, text
    assert "Traceback" not in text
    assert elapsed < 30  # not retried until submit.timeout_minutes (2 min here)
    # At most the one poll in flight while the fault was armed, then the failing one: no retry.
    assert cloud.vertex.count("GET", JOB_PATH) <= armed["gets"] + 2
    if status == 403:
        assert "Vertex AI refused to show it (403" in text
    else:
        assert "Vertex AI no longer knows it (404" in text
    [row] = ledger.list(status="failed")  # the ledger row is closed, not left running
    assert "stopped waiting" in (row.error or "")


@pytest.mark.slow
def test_credential_refresh_failure_while_polling_is_one_error(
        cloud: CloudStack, source: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # gcloud's application-default credentials (a refresh token), as after
    # `gcloud auth application-default login`; a service account would sign its own JWTs.
    user = tmp_path / "application_default_credentials.json"
    user.write_text(json.dumps({
        "type": "authorized_user", "client_id": "id", "client_secret": "secret",
        "refresh_token": "refresh", "token_uri": cloud.vertex.endpoint + "/token",
    }))
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(user))
    # google-auth always sends user credentials to Google's token endpoint: point it at the
    # loopback server (as STORAGE_EMULATOR_HOST does for GCS).
    monkeypatch.setattr("google.oauth2.credentials._GOOGLE_OAUTH2_TOKEN_ENDPOINT",
                        cloud.vertex.endpoint + "/token")
    cloud.vertex.token_lifetime = 1  # every request refreshes its token first

    def arm(job: object) -> None:
        cloud.vertex.inject("token", 400, times=1000)

    code, text, _, ledger = _submit_and_fail_while_polling(cloud, tmp_path, arm)
    assert code == 1, text
    assert "Traceback" not in text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "credentials could not be refreshed" in errors[0]
    [row] = ledger.list(status="failed")
    assert "credentials could not be refreshed" in (row.error or "")
    assert ledger.list(status="running") == []


@pytest.mark.slow
def test_long_pending_then_success(cloud: CloudStack, source: str, tmp_path: Path) -> None:
    cloud.vertex.pending_seconds = 1.5
    module = cloud.write_job_module("gcs_job", GCS_JOB)
    console = quiet()
    result = submit(write_emit_dir(tmp_path / "emit"),
                    cloud.submit_config(source_exp=RUN, python_module=module), FEATURES,
                    console=console)
    assert result.state == "JOB_STATE_SUCCEEDED"
    text = output(console)
    assert text.index("JOB_STATE_PENDING") < text.index("JOB_STATE_RUNNING")
    [job] = cloud.vertex.jobs.values()
    assert job.gets >= 3  # polled through the queue


# ------------------------------------------------------------------- the duplicate guard


@pytest.mark.slow
def test_two_racing_submitters_make_one_job(cloud: CloudStack, source: str, tmp_path: Path
                                            ) -> None:
    module = cloud.write_job_module("gcs_job", GCS_JOB)
    cfg = cloud.submit_config(source_exp=RUN, python_module=module, wait=False)
    emit = write_emit_dir(tmp_path / "emit")
    outcomes: list[object] = []
    start = threading.Barrier(2)

    def submitter() -> None:
        start.wait()
        try:
            outcomes.append(submit(emit, cfg, FEATURES, console=quiet()))
        except SubmitError as error:
            outcomes.append(error)

    threads = [threading.Thread(target=submitter) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(cloud.vertex.jobs) == 1
    refused = [o for o in outcomes if isinstance(o, SubmitError)]
    assert len(refused) == 1 and len(outcomes) == 2
    assert ("being created right now" in refused[0].message
            or "already active" in refused[0].message)
    # The lock is gone once the job exists.
    assert not cloud.list(f"gs://{cloud.staging_bucket}/recforge/locks/")


def test_a_held_lock_refuses_and_a_stale_one_is_taken_over(cloud: CloudStack, source: str,
                                                           tmp_path: Path) -> None:
    import datetime as dt

    from test_cloud_submit import CONFIG_HASH

    from compiler.cloud import lock
    from compiler.cloud.job_spec import source_label

    cfg = cloud.submit_config(source_exp=RUN)
    uri = lock.lock_uri(cfg, CONFIG_HASH, source_label(RUN))
    held = lock.acquire(cloud.storage, uri, "someone-else", lock.stale_after(cfg))
    with pytest.raises(SubmitError) as info:
        submit(write_emit_dir(tmp_path / "emit"), cfg, FEATURES, console=quiet())
    assert "another submission (someone-else)" in info.value.message
    assert cloud.vertex.jobs == {}
    assert not cloud.list(f"gs://{cloud.staging_bucket}/recforge/objects/")  # nothing staged
    # Much later, the holder is presumed dead: its lock is taken over, and its release
    # (by its own generation) does not delete the new holder's lock.
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=2)
    mine = lock.acquire(cloud.storage, uri, "me", lock.stale_after(cfg), now=later)
    held.release()
    assert json.loads(cloud.read(uri))["submission"] == "me"
    mine.release()
    assert not cloud.exists(uri)


def test_staging_never_overwrites(cloud: CloudStack, tmp_path: Path) -> None:
    from google.api_core.exceptions import PreconditionFailed

    from compiler.cloud.gcs import upload_immutable

    local = tmp_path / "trainer_module.py"
    local.write_text("# mine\n")
    uri = f"gs://{cloud.staging_bucket}/recforge/objects/abc/trainer_module.py"
    assert upload_immutable(cloud.storage, local, uri) is True
    assert upload_immutable(cloud.storage, local, uri) is False  # same content: reused
    blob = cloud.storage.bucket(cloud.staging_bucket).blob("recforge/objects/abc/x")
    blob.upload_from_string(b"1", if_generation_match=0)
    with pytest.raises(PreconditionFailed):  # the emulator answers 412 like GCS
        blob.upload_from_string(b"2", if_generation_match=0)
    other = tmp_path / "other.py"
    other.write_text("# someone else's\n")
    with pytest.raises(SubmitError, match="exists with other content"):
        upload_immutable(cloud.storage, other, uri)
    assert cloud.read(uri) == b"# mine\n"


# ------------------------------------------------------------------------------ dry run


@pytest.mark.slow
def test_dry_run_with_credentials_checks_the_source_and_does_nothing(
        cloud: CloudStack, source: str, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    from google.cloud.aiplatform_v1 import CustomJob

    ledger = ledger_at(tmp_path)
    emit = write_emit_dir(tmp_path / "emit")
    assert main_submit(emit, cloud.submit_config(source_exp=RUN, dry_run=True), FEATURES,
                       ledger) == 0
    captured = capsys.readouterr()
    document = json.loads(captured.out)
    job = CustomJob.from_json(json.dumps(document["request"]))
    args = list(job.job_spec.worker_pool_specs[0].python_package_spec.args)
    assert args[args.index("--transform-dir") + 1] == source  # looked up, not a placeholder
    assert "Source checked (credentials from" in captured.err
    assert cloud.vertex.jobs == {}
    assert not any("customJobs" in path for _, path in cloud.vertex.requests)
    assert not cloud.list(f"gs://{cloud.staging_bucket}/")  # nothing uploaded
    assert ledger.list() == []
    # A source the trainer cannot read fails the dry run like the submission.
    wrong = {**FEATURES, "cust_value_norm": "int64"}
    code = main_submit(emit, cloud.submit_config(source_exp=RUN, dry_run=True), wrong, ledger)
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert "cust_value_norm: the trainer expects int64" in captured.err


# ---------------------------------------------------------------- a cached Transform step


@pytest.mark.slow
def test_cached_transform_step_is_found_through_the_pipeline_run(
        cloud: CloudStack, tmp_path: Path) -> None:
    module = cloud.write_job_module("gcs_job", GCS_JOB)
    original = cloud.make_source_run("train-pipeline-20260101", FEATURES)
    # The later run reused the cached Transform: no Transform_* folder of its own.
    cached_run = "train-pipeline-20260102"
    cloud.write(f"{cloud.pipeline_root}/1234567890/{cached_run}/Trainer_9/.keep", b"")
    cloud.vertex.pipeline_jobs[cached_run] = {"jobDetail": {"taskDetails": [
        {"taskName": "schemagen", "state": "SKIPPED"},
        {"taskName": "transform", "state": "SKIPPED", "outputs": {
            "transform_graph": {"artifacts": [{"uri": f"{original}/transform_graph"}]},
            "transformed_examples": {"artifacts": [
                {"uri": f"{original}/transformed_examples"}]}}},
    ]}}
    console = quiet()
    result = submit(write_emit_dir(tmp_path / "emit"),
                    cloud.submit_config(source_exp=cached_run, python_module=module),
                    FEATURES, console=console)
    assert result.state == "JOB_STATE_SUCCEEDED"
    assert result.transform_dir == original
    text = output(console)
    assert f"run '{cached_run}' has no Transform folder of its own" in text
    assert f"task transform (SKIPPED) names {original}, which is used" in text
    # No pipeline run of that name either: the error says what to do.
    cloud.write(f"{cloud.pipeline_root}/1234567890/lonely-run/Trainer_1/.keep", b"")
    code = main_submit(write_emit_dir(tmp_path / "emit"),
                       cloud.submit_config(source_exp="lonely-run"), FEATURES, console=console)
    assert code == 2
    assert "give submit.source_exp as the gs:// URI" in output(console)
