"""compiler.cloud without any server: config, labels, schema check, packages, dry run."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from cloud.fixtures import CONFIG_HASH, write_emit_dir
from rich.console import Console

from compiler.cloud import SubmitError, VertexSubmitConfig, dry_run_request, main_submit
from compiler.cloud.config import check_required, from_omegaconf
from compiler.cloud.job_spec import label_safe, source_label
from compiler.cloud.package import build_recforge_sdist, build_requirements_sdist
from compiler.cloud.schema_check import check_compatible, find_mismatches, parse_schema
from compiler.compose import compose

ROOT = Path(__file__).resolve().parent.parent


def full_config(**changes: object) -> VertexSubmitConfig:
    values: dict[str, object] = dict(
        project="p-123", region="europe-central2", staging_bucket="gs://stage-b",
        pipeline_root="gs://pipe-b/pipeline_root", source_exp="qt-97-20260109-174616",
    )
    values.update(changes)
    return VertexSubmitConfig(**values)  # type: ignore[arg-type]


@pytest.fixture
def no_vertex_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    import os

    for name in list(os.environ):
        if name.startswith("RECFORGE_VERTEX_"):
            monkeypatch.delenv(name)
    return monkeypatch


# ------------------------------------------------------------------------------ config


def test_yaml_has_no_real_defaults_and_names_missing_keys(no_vertex_env: pytest.MonkeyPatch
                                                          ) -> None:
    cfg = from_omegaconf(compose(["submit=vertex"]).submit)
    assert (cfg.project, cfg.region, cfg.staging_bucket, cfg.pipeline_root, cfg.source_exp,
            cfg.service_account, cfg.api_endpoint) == (None,) * 7
    assert cfg.timeout_minutes == 30 and cfg.wait is True and cfg.dry_run is False
    with pytest.raises(SubmitError) as info:
        check_required(cfg)
    message = str(info.value)
    for key in ("submit.project", "submit.region", "submit.staging_bucket", "submit.source_exp"):
        assert key in message
    assert info.value.key == "submit.project"


def test_every_value_from_env_or_command_line(no_vertex_env: pytest.MonkeyPatch) -> None:
    env = no_vertex_env
    env.setenv("RECFORGE_VERTEX_PROJECT", "from-env")
    env.setenv("RECFORGE_VERTEX_REGION", "europe-central2")
    env.setenv("RECFORGE_VERTEX_WAIT", "false")
    env.setenv("RECFORGE_VERTEX_TIMEOUT_MINUTES", "7.5")
    env.setenv("RECFORGE_VERTEX_ACCELERATOR_COUNT", "2")
    env.setenv("RECFORGE_VERTEX_PACKAGES", "['tf-keras~=2.17.0', 'gs://b/x-1.0.tar.gz']")
    cfg = from_omegaconf(compose([
        "submit=vertex", "submit.project=from-cli", "submit.staging_bucket=gs://s",
        "submit.poll_initial_seconds=1", "+submit.custom_config.epochs=2",
        "+submit.labels.team=recs",
    ]).submit)
    assert cfg.project == "from-cli"  # the command line beats the environment
    assert cfg.region == "europe-central2"
    assert cfg.wait is False and cfg.timeout_minutes == 7.5 and cfg.accelerator_count == 2
    assert cfg.labels == {"team": "recs"} and cfg.custom_config == {"epochs": 2}
    assert cfg.packages == ["tf-keras~=2.17.0", "gs://b/x-1.0.tar.gz"]
    assert cfg.poll_initial_seconds == 1.0


def test_bad_values_name_their_key() -> None:
    with pytest.raises(SubmitError, match="submit.staging_bucket must be a gs:// URI"):
        check_required(full_config(staging_bucket="my-bucket"))
    with pytest.raises(SubmitError, match="submit.accelerator_type"):
        check_required(full_config(accelerator_count=1))
    with pytest.raises(SubmitError, match="submit.pipeline_root"):
        check_required(full_config(pipeline_root=None))
    check_required(full_config(pipeline_root=None, source_exp="gs://b/run/Transform_1"))


def test_labels_are_label_safe() -> None:
    assert label_safe("0.1.0") == "0-1-0"
    assert label_safe("QT-97 20260109_174616") == "qt-97-20260109_174616"
    assert len(label_safe("x" * 100)) == 63
    assert source_label("gs://bucket/root/run/Transform_9/") == "bucket-root-run-transform_9"


# ------------------------------------------------------------------------------ schema


SCHEMA = """
feature { name: "customer_id_id" type: INT }
feature { name: "cust_value_norm" type: FLOAT }
feature { name: "sales_target" type: FLOAT }
feature { name: "category_x_sub_category" type: INT }
"""


def test_transformed_schema_parses() -> None:
    assert parse_schema(SCHEMA) == {"customer_id_id": "int64", "cust_value_norm": "float32",
                                    "sales_target": "float32", "category_x_sub_category": "int64"}


def test_compiler_cloud_never_imports_tensorflow() -> None:
    code = (
        "import sys\n"
        "import compiler.cloud, compiler.cloud.vertex, compiler.cloud.gcs\n"
        "from compiler.cloud.schema_check import parse_schema\n"
        "from compiler.cloud.job_spec import canonical_json\n"
        f"parse_schema({SCHEMA!r})\n"
        "canonical_json({'displayName': 'x'})\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'keras'))\n"
        "assert not bad, bad\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=False)
    assert proc.returncode == 0, proc.stderr


def test_mismatches_are_listed() -> None:
    required = {"customer_id_id": "int64", "cust_value_norm": "int64",
                "product_id_id": "int64", "category_x_subcategory": "int64"}
    problems = find_mismatches(required, parse_schema(SCHEMA))
    assert problems == [
        "category_x_subcategory: the trainer needs it (int64); the Transform never produced it "
        "(the Transform has 'category_x_sub_category')",
        "cust_value_norm: the trainer expects int64, the Transform produced float32",
        "product_id_id: the trainer needs it (int64); the Transform never produced it",
    ]
    with pytest.raises(SubmitError, match="3 mismatches") as info:
        check_compatible(required, SCHEMA, schema_uri="gs://b/schema.pbtxt")
    assert "product_id_id" in str(info.value)
    check_compatible({"customer_id_id": "int64", "sales_target": "float"}, SCHEMA,
                     schema_uri="gs://b/schema.pbtxt")


# ----------------------------------------------------------------------------- packages


def test_sdists(tmp_path: Path) -> None:
    # An editable install may have left recforge.egg-info in the checkout; the build must not
    # write there (it builds from a copy of the tree), so compare before and after.
    checkout_before = sorted(p.name for p in ROOT.iterdir())
    sdist = build_recforge_sdist(tmp_path / "dist")
    assert sdist.name == "recforge-0.1.0.tar.gz"
    with tarfile.open(sdist) as tar:
        names = tar.getnames()
    assert "recforge-0.1.0/compiler/cloud/submit.py" in names
    assert "recforge-0.1.0/pyproject.toml" in names
    assert not any("__pycache__" in n for n in names)
    assert sorted(p.name for p in ROOT.iterdir()) == checkout_before
    reqs = build_requirements_sdist(["tf-keras~=2.17.0", "tensorflow-recommenders>=0.7.3"],
                                    tmp_path / "reqs")
    top = "recforge_job_requirements-1.0"
    with tarfile.open(reqs) as tar:
        pyproject = tar.extractfile(f"{top}/pyproject.toml").read().decode()
        requires = tar.extractfile(
            f"{top}/recforge_job_requirements.egg-info/requires.txt").read().decode()
    assert requires.split() == ["tf-keras~=2.17.0", "tensorflow-recommenders>=0.7.3"]
    assert '"tf-keras~=2.17.0"' in pyproject  # what pip reads when it builds the sdist


# ------------------------------------------------------------------------------ dry run


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a connection fails the test (a dry run must make none)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network call during a dry run: {args}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.delenv("GOOGLE_APPLICATION_CREDENTIALS", raising=False)


def test_dry_run_prints_exact_request_that_parses_as_custom_job(
        tmp_path: Path, no_network: None) -> None:
    from google.cloud.aiplatform_v1 import CustomJob

    emit = write_emit_dir(tmp_path / "emit")
    cfg = full_config(dry_run=True, accelerator_type="NVIDIA_TESLA_T4", accelerator_count=1,
                      service_account="trainer@p-123.iam.gserviceaccount.com",
                      custom_config={"epochs": 2}, labels={"team": "recs"})
    out = io.StringIO()
    code = main_submit(emit, cfg, console=Console(file=out, width=80))
    text = out.getvalue()
    assert code == 0, text
    assert "Dry run" in text and "gs://stage-b/recforge/default/0123456789abcdef/" in text
    request = text[text.index("CustomJob request: POST "):]
    url, body = request.split("\n", 1)
    assert url.endswith("/v1/projects/p-123/locations/europe-central2/customJobs")
    job = CustomJob.from_json(body)  # the exact REST body parses back
    data = json.loads(body)
    assert data["jobSpec"]["workerPoolSpecs"][0]["replicaCount"] == "1"  # int64 as string
    pool = job.job_spec.worker_pool_specs[0]
    assert pool.machine_spec.machine_type == "n1-standard-4"
    assert pool.machine_spec.accelerator_type.name == "NVIDIA_TESLA_T4"
    spec = pool.python_package_spec
    assert spec.python_module == "compiler.runner.job"
    assert spec.package_uris[0] == (
        "gs://stage-b/recforge/default/0123456789abcdef/packages/recforge-0.1.0.tar.gz")
    assert spec.package_uris[1].endswith("/recforge_job_requirements-1.0.tar.gz")
    args = list(spec.args)
    assert args[args.index("--trainer-module") + 1] == (
        "gs://stage-b/recforge/default/0123456789abcdef/trainer_module.py")
    assert args[args.index("--transform-dir") + 1].startswith(
        "gs://pipe-b/pipeline_root/qt-97-20260109-174616/")
    output = args[args.index("--output-dir") + 1]
    assert output == job.job_spec.base_output_directory.output_uri_prefix
    assert json.loads(args[args.index("--custom-config") + 1]) == {"epochs": 2}
    assert job.job_spec.service_account == "trainer@p-123.iam.gserviceaccount.com"
    assert job.labels["recforge_config_hash"] == CONFIG_HASH
    assert job.labels["recforge_compiler_version"] == "0-1-0"
    assert job.labels["recforge_source"] == "qt-97-20260109-174616"
    assert job.labels["team"] == "recs"
    assert CONFIG_HASH[:12] in job.display_name


def test_dry_run_with_transform_uri_is_exact(tmp_path: Path, no_network: None) -> None:
    emit = write_emit_dir(tmp_path / "emit")
    source = "gs://pipe-b/pipeline_root/run-1/Transform_7"
    dry = dry_run_request(emit, full_config(source_exp=source, pipeline_root=None),
                          submission_id="20260101-000000-abcdef")
    args = dry.request["jobSpec"]["workerPoolSpecs"][0]["pythonPackageSpec"]["args"]
    assert args[args.index("--transform-dir") + 1] == source
    assert dry.plan.output_dir.endswith("/jobs/20260101-000000-abcdef")
    assert dry.request["labels"]["recforge_submission"] == "20260101-000000-abcdef"


def test_bad_input_is_one_message_without_traceback(tmp_path: Path,
                                                    no_vertex_env: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    code = main_submit(tmp_path / "nowhere", VertexSubmitConfig(),
                       console=Console(file=out, width=200))
    text = out.getvalue()
    assert code == 2
    assert "submit.project" in text and "Traceback" not in text
    out = io.StringIO()
    code = main_submit(tmp_path / "nowhere", full_config(), console=Console(file=out, width=200))
    assert code == 2 and "has no trainer_module.py" in out.getvalue()
    out = io.StringIO()
    bad = full_config(labels={"Team": "x"})
    assert main_submit(write_emit_dir(tmp_path / "e"), bad, console=Console(file=out)) == 2
    assert "submit.labels.Team" in out.getvalue()
