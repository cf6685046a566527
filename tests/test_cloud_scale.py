"""Scaling out on Google Cloud (issue #15): multi-replica Vertex AI requests and
``submit=dataflow_transform`` (the Transform alone, on Dataflow).

A real Dataflow launch needs the network: these tests stop at the checked options, the dry run,
and Beam's own parsing of the flags recforge would hand to the ``DataflowRunner``.
"""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cloud.fixtures import (
    CloudStack,
    cloud,
    fake_service_account_key,
    gcs_tls_proxy,
    write_emit_dir,
)
from preflight_helpers import assert_rejected
from rich.console import Console

from compiler.cloud import SubmitError, VertexSubmitConfig, submit
from compiler.cloud.config import DEFAULT_EXECUTOR_IMAGE, check_replicas, check_submit_config
from compiler.cloud.dataflow import (
    DataflowTransformConfig,
    check_dataflow_config,
    dry_run_document,
    plan_launch,
)
from compiler.cloud.job_spec import StagedFile, StagingPlan, custom_job_body

__all__ = ["cloud", "fake_service_account_key", "gcs_tls_proxy"]  # fixtures used by name

ROOT = Path(__file__).resolve().parent.parent
CONFIG_HASH = "0123456789abcdef"
VERTEX = ["submit=vertex", "submit.project=my-proj1", "submit.region=europe-central2",
          "submit.staging_bucket=gs://stage-b", "submit.source_exp=gs://pipe-b/run-1/Transform_1",
          f"submit.executor_image={DEFAULT_EXECUTOR_IMAGE}"]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test, and no credentials are at hand."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network call: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)
    monkeypatch.setenv("CLOUDSDK_CONFIG", "/nonexistent-gcloud-config")


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in list(os.environ):
        if name.startswith(("RECFORGE_VERTEX_", "RECFORGE_DATAFLOW_")):
            monkeypatch.delenv(name)
    return monkeypatch


# --------------------------------------------------------------------- Vertex AI: pools


def vertex_config(**changes: Any) -> VertexSubmitConfig:
    values: dict[str, Any] = dict(project="p-12345", region="europe-central2",
                                  staging_bucket="gs://stage-b",
                                  source_exp="gs://pipe-b/run-1/Transform_1",
                                  executor_image=DEFAULT_EXECUTOR_IMAGE)
    values.update(changes)
    return VertexSubmitConfig(**values)


def staging(tmp_path: Path) -> StagingPlan:
    """A staging plan of files that exist (custom_job_body reads only their URIs)."""
    files = []
    for name in ("trainer_module.py", "transform_module.py", "manifest.json",
                 "recforge-0.1.0.tar.gz"):
        (tmp_path / name).write_text(name)
        files.append(StagedFile(name, tmp_path / name, f"gs://stage-b/objects/{name}", "0" * 64))
    return StagingPlan(objects_uri="gs://stage-b/objects", files=tuple(files),
                       extra_package_uris=(), output_dir="gs://stage-b/recforge/jobs/s1",
                       metrics_uri="gs://stage-b/recforge/jobs/s1/model_run/m.json")


def pools(cfg: VertexSubmitConfig, tmp_path: Path) -> list[dict[str, Any]]:
    body = custom_job_body(cfg, staging(tmp_path), name="n", labels={}, args=["--a", "b"])
    return body["jobSpec"]["workerPoolSpecs"]


def test_one_replica_is_one_pool_as_before(tmp_path: Path) -> None:
    [pool] = pools(vertex_config(), tmp_path)
    assert pool["replicaCount"] == "1"
    assert pool["machineSpec"] == {"machineType": "n1-standard-4"}


def test_replica_count_3_is_a_chief_and_a_worker_pool_running_the_same_job(tmp_path: Path
                                                                           ) -> None:
    chief, worker = pools(vertex_config(replica_count=3, machine_type="n1-highmem-8",
                                        accelerator_type="NVIDIA_TESLA_T4",
                                        accelerator_count=1), tmp_path)
    assert (chief["replicaCount"], worker["replicaCount"]) == ("1", "2")
    assert chief["machineSpec"] == worker["machineSpec"] == {
        "machineType": "n1-highmem-8", "acceleratorType": "NVIDIA_TESLA_T4",
        "acceleratorCount": 1}
    assert chief["pythonPackageSpec"] == worker["pythonPackageSpec"]
    assert chief["pythonPackageSpec"]["args"] == ["--a", "b"]


def test_the_worker_pool_has_its_own_machine_and_accelerators(tmp_path: Path) -> None:
    base = vertex_config(replica_count=4, accelerator_type="NVIDIA_TESLA_T4",
                         accelerator_count=2, worker_machine_type="n1-standard-16")
    chief, worker = pools(replace(base, worker_accelerator_count=0), tmp_path)
    assert worker["replicaCount"] == "3"
    assert chief["machineSpec"]["acceleratorCount"] == 2
    assert worker["machineSpec"] == {"machineType": "n1-standard-16"}  # CPU-only workers
    _, worker = pools(replace(base, worker_accelerator_type="NVIDIA_L4",
                              worker_accelerator_count=1), tmp_path)
    assert worker["machineSpec"] == {"machineType": "n1-standard-16",
                                     "acceleratorType": "NVIDIA_L4", "acceleratorCount": 1}
    [chief, worker] = pools(replace(base, container_uri="eu.gcr.io/p/job:1"), tmp_path)
    assert chief["containerSpec"] == worker["containerSpec"]
    assert chief["containerSpec"]["command"] == ["python", "-m", "compiler.runner.job"]


@pytest.mark.parametrize(("changes", "error"), [
    ({"replica_count": 0}, "submit.replica_count: expected an integer of at least 1, got 0"),
    ({"replica_count": 2, "worker_accelerator_type": "NVIDIA_L4"},
     "submit.worker_accelerator_type: expected submit.worker_accelerator_type and "
     "submit.worker_accelerator_count together"),
    ({"replica_count": 2, "worker_machine_type": "N1 standard"},
     "submit.worker_machine_type: expected a machine type"),
    ({"replica_count": 2, "worker_accelerator_type": "t4", "worker_accelerator_count": 1},
     "submit.worker_accelerator_type: expected an accelerator"),
])
def test_pool_settings_are_checked(changes: dict[str, Any], error: str) -> None:
    with pytest.raises(SubmitError) as info:
        check_submit_config(vertex_config(**changes))
    assert str(info.value).startswith(error), str(info.value)


def test_more_than_one_replica_needs_multi_worker_training() -> None:
    cfg = vertex_config(replica_count=3)
    for distribution in ("none", "mirrored"):
        with pytest.raises(SubmitError) as info:
            check_replicas(cfg, distribution)
        assert str(info.value) == (
            "submit.replica_count: expected 1 unless model.distribution=multi_worker (each "
            "replica would otherwise train the whole model alone), got 3 with "
            f"model.distribution={distribution}")
    check_replicas(cfg, "multi_worker")
    check_replicas(vertex_config(), "none")


def test_cli_refuses_replicas_without_multi_worker_before_anything(
        clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        no_network: None) -> None:
    assert_rejected(["model=hybrid_v1", "features=cherng_v3", *VERTEX, "submit.replica_count=3",
                     "submit.dry_run=true", f"output_dir={tmp_path / 'out'}"],
                    tmp_path=tmp_path, key="error: submit.replica_count: expected 1 unless "
                    "model.distribution=multi_worker", in_process=True, capsys=capsys)


@pytest.mark.slow
def test_dry_run_of_3_replicas_shows_chief_1_and_workers_2_and_parses(
        clean_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The issue's check: the dry-run request, from the CLI, parses as a CustomJob."""
    from google.cloud.aiplatform_v1 import CustomJob

    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "no-gcloud"),
           "RECFORGE_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.db"}
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "compiler", "model=hybrid_v1", "features=cherng_v3",
         "model.distribution=multi_worker", *VERTEX, "submit.replica_count=3",
         "submit.worker_machine_type=n1-standard-8", "submit.dry_run=true",
         f"output_dir={tmp_path / 'out'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "ledger.db").exists() and not (tmp_path / "out").exists()
    request = json.loads(proc.stdout)["request"]
    job = CustomJob.from_json(json.dumps(request))
    chief, worker = job.job_spec.worker_pool_specs
    assert (chief.replica_count, worker.replica_count) == (1, 2)
    assert chief.machine_spec.machine_type == "n1-standard-4"
    assert worker.machine_spec.machine_type == "n1-standard-8"
    assert chief.python_package_spec == worker.python_package_spec


@pytest.mark.slow
def test_fake_vertex_gets_both_pools_only_for_a_multi_worker_trainer(
        cloud: CloudStack, tmp_path: Path) -> None:
    """Through the real aiplatform client: a trainer compiled without multi_worker is refused
    before anything is staged or created; one compiled with it reaches Vertex as two pools."""
    features = {"customer_id_id": "int64"}
    source = cloud.make_source_run("run-1", features)
    module = cloud.write_job_module("noop_job", "print('chief or worker')\n")
    cfg = cloud.submit_config(source_exp="run-1", python_module=module, replica_count=3,
                              wait=False)
    plain = write_emit_dir(tmp_path / "plain")
    with pytest.raises(SubmitError, match="submit.replica_count: expected 1 unless"):
        submit(plain, cfg, features, console=Console(file=io.StringIO()))
    assert not cloud.vertex.jobs
    distributed = write_emit_dir(tmp_path / "distributed")
    manifest = json.loads((distributed / "manifest.json").read_text())
    manifest["resolved_config"]["model"]["distribution"] = "multi_worker"
    (distributed / "manifest.json").write_text(json.dumps(manifest))
    result = submit(distributed, cfg, features, console=Console(file=io.StringIO()))
    [job] = cloud.vertex.jobs.values()
    chief, worker = job.body["jobSpec"]["workerPoolSpecs"]
    assert (chief["replicaCount"], worker["replicaCount"]) == ("1", "2")
    assert result.transform_dir == source


# ------------------------------------------------------------------ Dataflow: the config


@pytest.fixture
def requirements(tmp_path: Path) -> Path:
    path = tmp_path / "dataflow-requirements.txt"
    path.write_text("tensorflow-transform==1.16.0\n")
    return path


def dataflow_config(requirements: Path, **changes: Any) -> DataflowTransformConfig:
    values: dict[str, Any] = dict(project="p-12345", region="europe-central2",
                                  temp_location="gs://df-b/tmp",
                                  staging_location="gs://df-b/staging",
                                  requirements_file=str(requirements))
    values.update(changes)
    return DataflowTransformConfig(**values)


@pytest.mark.parametrize(("changes", "error"), [
    ({"project": None}, "submit.project: expected a value (no default), got none"),
    ({"temp_location": None, "staging_location": None},
     "submit.temp_location: expected a value (no default), got none; also unset: "
     "staging_location"),
    ({"region": "attacker.example#"}, "submit.region: expected a region"),
    ({"project": "My Project"}, "submit.project: expected a project id"),
    ({"temp_location": "/tmp/local"}, "submit.temp_location: expected a gs:// URI"),
    ({"staging_location": "gs://google-x/s"}, "submit.staging_location: expected a bucket"),
    ({"output_dir": "gs://df-b/../x"}, "submit.output_dir: expected an object path"),
    ({"requirements_file": None}, "submit.requirements_file: expected how the workers get "
     "tensorflow-transform"),
    ({"requirements_file": "/nonexistent/reqs.txt"},
     "submit.requirements_file: expected an existing file"),
    ({"job_name": "Recforge_Job"}, "submit.job_name: expected lowercase letters"),
    ({"labels": {"Team": "x"}}, "submit.labels.Team: expected a key"),
    ({"labels": {"recforge_config_hash": "x"}}, "submit.labels.recforge_config_hash: expected "
     "a label recforge does not set itself"),
    ({"num_workers": 0}, "submit.num_workers: expected a positive integer, got 0"),
    ({"num_workers": 8, "max_num_workers": 4}, "submit.max_num_workers: expected at least"),
    ({"service_account_email": "not an address"}, "submit.service_account_email: expected"),
    ({"machine_type": "N1 STANDARD"}, "submit.machine_type: expected a machine type"),
    ({"options": ["--runner=DirectRunner"]}, "submit.options[0]: expected a flag this group "
     "does not set itself"),
    ({"options": ["network=x"]}, "submit.options[0]: expected a Beam flag"),
    ({"options": ["--dataflow_endpoint=https://attacker.example"]},
     "submit.options[0]: expected https://<host>.googleapis.com"),
])
def test_dataflow_options_are_checked(requirements: Path, changes: dict[str, Any],
                                      error: str) -> None:
    with pytest.raises(SubmitError) as info:
        check_dataflow_config(dataflow_config(requirements, **changes))
    assert str(info.value).startswith(error), str(info.value)


def test_setup_file_must_be_a_setup_py(requirements: Path, tmp_path: Path) -> None:
    other = tmp_path / "pyproject.toml"
    other.write_text("")
    with pytest.raises(SubmitError, match="submit.setup_file: expected a file named setup.py"):
        check_dataflow_config(dataflow_config(requirements, requirements_file=None,
                                              setup_file=str(other)))
    setup = tmp_path / "setup.py"
    setup.write_text("")
    check_dataflow_config(dataflow_config(requirements, requirements_file=None,
                                          setup_file=str(setup)))
    check_dataflow_config(dataflow_config(requirements, requirements_file=None,
                                          sdk_container_image="eu.gcr.io/p/worker:1"))


def test_the_launch_options_and_output_under_the_staging_area(requirements: Path) -> None:
    cfg = check_dataflow_config(dataflow_config(
        requirements, labels={"team": "recs"}, max_num_workers=20, machine_type="n2-highmem-4",
        options=["--no_use_public_ips", "--network=recs-net"]))
    launch = plan_launch(cfg, CONFIG_HASH, "0.1.0", "20261130-120000-abcdef")
    assert launch.output_dir == (
        f"gs://df-b/staging/recforge/default/{CONFIG_HASH}/transform/20261130-120000-abcdef")
    assert launch.job_name == "recforge-transform-0123456789ab-20261130-120000-abcdef"
    flags = launch.flags(("/tmp/recforge-0.1.0.tar.gz",))
    assert not any(f.startswith("--runner") for f in flags)  # run_transform(runner=...)
    for flag in ("--project=p-12345", "--region=europe-central2",
                 "--temp_location=gs://df-b/tmp", "--staging_location=gs://df-b/staging",
                 f"--requirements_file={requirements}", "--max_num_workers=20",
                 "--machine_type=n2-highmem-4", "--labels=team=recs",
                 f"--labels=recforge_config_hash={CONFIG_HASH}",
                 "--extra_package=/tmp/recforge-0.1.0.tar.gz", "--no_use_public_ips",
                 "--network=recs-net"):
        assert flag in flags, (flag, flags)
    assert not any(f.startswith("--num_workers") for f in flags)  # unset: Dataflow's default
    own = replace(cfg, output_dir="gs://out-b/transforms/v1/", stage_recforge=False)
    launch = plan_launch(own, CONFIG_HASH, "0.1.0")
    assert launch.output_dir == "gs://out-b/transforms/v1"
    assert "extra_packages" not in dry_run_document(launch)["pipeline_options"]


def test_cli_refuses_bad_dataflow_options_before_anything(
        clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        no_network: None) -> None:
    assert_rejected(["model=hybrid_v1", "features=cherng_v3", "submit=dataflow_transform",
                     "submit.project=p-12345", "submit.region=europe-central2",
                     "submit.temp_location=gs://df-b/tmp",
                     "submit.staging_location=gs://df-b/staging",
                     f"output_dir={tmp_path / 'out'}"],
                    tmp_path=tmp_path, key="error: submit.requirements_file: expected how the "
                    "workers get tensorflow-transform", in_process=True, capsys=capsys)


@pytest.mark.slow
def test_dataflow_dry_run_prints_the_options_and_does_nothing(
        clean_env: pytest.MonkeyPatch, tmp_path: Path, requirements: Path) -> None:
    """stdout is one JSON document with the options; no file, no ledger row, no network
    (no credentials are at hand, and a launch would ask for them first)."""
    from apache_beam.options.pipeline_options import (
        GoogleCloudOptions,
        PipelineOptions,
        SetupOptions,
        StandardOptions,
    )

    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "no-gcloud"),
           "RECFORGE_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.db",
           "RECFORGE_DATAFLOW_PROJECT": "p-12345"}
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "compiler", "model=hybrid_v1", "features=cherng_v3",
         "submit=dataflow_transform", "submit.region=europe-central2",
         "submit.temp_location=gs://df-b/tmp", "submit.staging_location=gs://df-b/staging",
         f"submit.requirements_file={requirements}", "submit.dry_run=true",
         f"output_dir={tmp_path / 'out'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "ledger.db").exists() and not (tmp_path / "out").exists()
    document = json.loads(proc.stdout)
    options = document["pipeline_options"]
    assert options["runner"] == "DataflowRunner" and options["project"] == "p-12345"
    assert options["requirements_file"] == str(requirements)
    assert options["extra_packages"] == ["<built at launch>/recforge-0.1.0.tar.gz"]
    output = document["output_dir"]
    assert output.startswith("gs://df-b/staging/recforge/default/")
    assert document["train_with"] == f"submit=vertex submit.source_exp={output}"
    assert "Dry run: nothing was written, recorded or sent" in proc.stderr

    # The flags a launch hands to Beam mean, to Beam's own parser, what the document shows.
    cfg = check_dataflow_config(dataflow_config(requirements))
    launch = plan_launch(cfg, CONFIG_HASH, "0.1.0")
    parsed = PipelineOptions(["--runner=DataflowRunner",
                              *launch.flags(("/tmp/recforge-0.1.0.tar.gz",))])
    cloud = parsed.view_as(GoogleCloudOptions)
    assert parsed.view_as(StandardOptions).runner == "DataflowRunner"
    assert (cloud.project, cloud.region, cloud.temp_location, cloud.staging_location,
            cloud.job_name) == ("p-12345", "europe-central2", "gs://df-b/tmp",
                                "gs://df-b/staging", launch.job_name)
    assert cloud.labels == [f"{k}={v}" for k, v in launch.options["labels"].items()]
    setup = parsed.view_as(SetupOptions)
    assert setup.requirements_file == str(requirements)
    assert setup.extra_packages == ["/tmp/recforge-0.1.0.tar.gz"]
    unknown = set(parsed.get_all_options(retain_unknown_options=True)) - \
        set(parsed.get_all_options())
    assert not unknown, unknown


def test_the_vertex_yaml_composes_with_the_pool_keys(clean_env: pytest.MonkeyPatch) -> None:
    from compiler.core.compose import compose

    vertex = check_submit_config(compose([*VERTEX, "submit.replica_count=3",
                                          "submit.worker_machine_type=n1-standard-8"]).submit)
    assert isinstance(vertex, VertexSubmitConfig)
    assert (vertex.replica_count, vertex.worker_machine_type) == (3, "n1-standard-8")
    assert (vertex.worker_accelerator_type, vertex.worker_accelerator_count) == (None, None)


def test_the_dataflow_yaml_reads_its_variables(clean_env: pytest.MonkeyPatch,
                                               requirements: Path) -> None:
    from compiler.core.compose import compose

    clean_env.setenv("RECFORGE_VERTEX_PROJECT", "p-12345")  # the Dataflow group falls back
    clean_env.setenv("RECFORGE_DATAFLOW_REGION", "us-east1")
    node = compose(["submit=dataflow_transform", "submit.temp_location=gs://df-b/tmp",
                    "submit.staging_location=gs://df-b/staging",
                    f"submit.requirements_file={requirements}"]).submit
    dataflow = check_submit_config(node)
    assert isinstance(dataflow, DataflowTransformConfig)
    assert (dataflow.project, dataflow.region, dataflow.stage_recforge) == (
        "p-12345", "us-east1", True)
    clean_env.setenv("RECFORGE_DATAFLOW_NUM_WORKERS", "many")
    with pytest.raises(SubmitError, match="RECFORGE_DATAFLOW_NUM_WORKERS: expected an integer "
                                          "or null, got 'many'"):
        check_submit_config(node)  # the variables are read when the node is checked


@pytest.mark.slow
def test_dataflow_launch_stages_everything_then_stops_at_the_dataflow_api(
        cloud: CloudStack, tmp_path: Path) -> None:
    """A real launch up to the job create, offline: Beam's DataflowRunner stages to the GCS
    emulator with real credentials (the fake server's token endpoint), then calls the Dataflow
    API's create_job, which the tests' proxy refuses (503 after Beam's retries, ~1 min). The
    launch fails as one error line (exit 1); the ledger row is failed, with no
    transform_output; the modules were written before."""
    from compiler.ledger import Ledger

    ledger_url = f"sqlite:///{tmp_path}/ledger.db"
    stage = f"gs://{cloud.staging_bucket}/dataflow"
    # TensorFlow's gs:// goes through the tests' TLS proxy to the emulator (cloud.job_env).
    env = {**cloud.job_env, "RECFORGE_LEDGER_URL": ledger_url,
           "GOOGLE_APPLICATION_CREDENTIALS": os.environ["GOOGLE_APPLICATION_CREDENTIALS"]}
    proc = subprocess.run(
        [sys.executable, "-m", "compiler", "model=hybrid_v1", "features=cherng_v3",
         "submit=dataflow_transform", "submit.project=recforge-test-project",
         "submit.region=europe-central2", f"submit.temp_location={stage}/tmp",
         f"submit.staging_location={stage}/staging",
         # An image, not a requirements file: Beam would pip-download those (network).
         "submit.sdk_container_image=europe-docker.pkg.dev/p/recforge/worker:1",
         f"output_dir={tmp_path / 'out'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    last = proc.stderr.strip().splitlines()[-1]
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert last.startswith("error: the Transform on Dataflow failed: ServiceUnavailable"), last
    assert "launching Dataflow job recforge-transform-" in proc.stdout
    assert (tmp_path / "out" / "transform_module.py").is_file()
    with Ledger(ledger_url) as ledger:
        [row] = ledger.list()
    assert row.status == "failed" and "transform_output" not in row.artifacts
    assert row.error.startswith("ServiceUnavailable"), row.error
    staged = cloud.list(f"{stage}/staging")
    # Beam staged this checkout's recforge sdist for the workers (--extra_package) ...
    assert any(uri.endswith("/recforge-0.1.0.tar.gz") for uri in staged), staged
    # ... and the job's graph, under a folder named after the job.
    assert any(uri.endswith("/pipeline.pb") and "/recforge-transform-" in uri
               for uri in staged), staged


@pytest.mark.slow
def test_a_flag_beam_does_not_know_is_refused_before_anything(
        clean_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        no_network: None, requirements: Path) -> None:
    """Beam's own parser reads every flag before anything is written (importing Beam: slow)."""
    line = assert_rejected(
        ["model=hybrid_v1", "features=cherng_v3", "submit=dataflow_transform",
         "submit.project=p-12345", "submit.region=europe-central2",
         "submit.temp_location=gs://df-b/tmp", "submit.staging_location=gs://df-b/staging",
         f"submit.requirements_file={requirements}", 'submit.options=["--netwrk=recs"]',
         f"output_dir={tmp_path / 'out'}"],
        tmp_path=tmp_path, key="error: submit.options: expected a Beam pipeline option, got "
        "'--netwrk=recs'", in_process=True, capsys=capsys)
    assert "did you mean 'network'?" in line
