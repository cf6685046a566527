"""compiler.cloud without any server: config, labels, schema check, packages, dry run."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from cloud.fixtures import CONFIG_HASH, write_emit_dir
from preflight_helpers import assert_rejected
from rich.console import Console

from compiler.cloud import SubmitError, VertexSubmitConfig, main_submit
from compiler.cloud.config import (
    DEFAULT_EXECUTOR_IMAGE,
    check_required,
    check_submit_config,
    from_omegaconf,
)
from compiler.cloud.job_spec import label_safe, source_label
from compiler.cloud.package import build_recforge_sdist, build_requirements_sdist
from compiler.cloud.schema_check import check_compatible, find_mismatches, parse_schema
from compiler.core.compose import compose

ROOT = Path(__file__).resolve().parent.parent


def full_config(**changes: object) -> VertexSubmitConfig:
    values: dict[str, object] = dict(
        project="p-12345", region="europe-central2", staging_bucket="gs://stage-b",
        pipeline_root="gs://pipe-b/pipeline_root", source_exp="qt-97-20260109-174616",
        executor_image=DEFAULT_EXECUTOR_IMAGE,
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


BASE = ["submit=vertex", "submit.project=my-proj1", "submit.region=europe-central2",
        "submit.staging_bucket=gs://stage-b", "submit.pipeline_root=gs://pipe-b/root",
        "submit.source_exp=run-1", f"submit.executor_image={DEFAULT_EXECUTOR_IMAGE}"]


@pytest.mark.parametrize(("changes", "error"), [
    ({"region": "europe central2"}, "submit.region: expected a region such as "
     "'europe-central2', got 'europe central2'; did you mean 'europe-central2'?"),
    ({"region": "attacker.example#"}, "submit.region: expected a region such as "
     "'europe-central2', got 'attacker.example#'"),
    ({"region": "europe-central2/../x"}, "submit.region:"),
    ({"project": "p-123"}, "submit.project: expected a project id of 6-30"),
    ({"project": "My-Project"}, "submit.project:"),
    ({"project": "abcdef-"}, "submit.project:"),
    ({"project": "evil.example#x"}, "submit.project:"),
    ({"source_exp": "../../other"}, "submit.source_exp: expected a pipeline run name"),
    ({"source_exp": "runs/run-1"}, "submit.source_exp:"),
    ({"source_exp": "run 1"}, "submit.source_exp:"),
    ({"source_exp": "gs://pipe-b/a/../b"}, "submit.source_exp: expected an object path"),
    ({"staging_bucket": "gs://Stage_B"}, "submit.staging_bucket: expected a bucket name"),
    ({"staging_bucket": "gs://ab"}, "submit.staging_bucket:"),
    ({"pipeline_root": "gs://goog-x/root"}, "submit.pipeline_root:"),
    ({"api_endpoint": "https://attacker.example"}, "submit.api_endpoint: expected"),
    ({"api_endpoint": "https://x.googleapis.com.attacker.example"}, "submit.api_endpoint:"),
    ({"api_endpoint": "http://europe-central2-aiplatform.googleapis.com"},
     "submit.api_endpoint:"),
    ({"api_endpoint": "http://10.0.0.1:80"}, "submit.api_endpoint:"),
    ({"api_endpoint": "https://user@europe-central2-aiplatform.googleapis.com"},
     "submit.api_endpoint:"),
    ({"labels": {f"k{i}": "v" for i in range(59)}},
     "submit.labels: expected at most 58 labels (Vertex AI allows 64 and recforge adds 6), "
     "got 59"),
    ({"labels": {"Team": "x"}}, "submit.labels.Team: expected a key"),
    ({"labels": {"team": "Recs"}}, "submit.labels.team: expected a value"),
    ({"labels": {"recforge_submission": "x"}}, "submit.labels.recforge_submission:"),
    ({"packages": ["tf keras"]}, "submit.packages[0]: expected a pip requirement"),
    ({"packages": ["gs://b-1/x.txt"]}, "submit.packages[0]: expected a gs:// URI of a"),
    ({"python_module": "a-b"}, "submit.python_module:"),
    ({"service_account": "not an email"}, "submit.service_account:"),
    ({"create_settle_seconds": 0}, "submit.create_settle_seconds:"),
])
def test_check_submit_config_refuses_malformed_values(changes: dict[str, object],
                                                      error: str) -> None:
    with pytest.raises(SubmitError) as info:
        check_submit_config(full_config(**changes))
    assert str(info.value).startswith(error), str(info.value)
    assert info.value.exit_code == 2


def test_check_submit_config_accepts_google_formats() -> None:
    for changes in ({"region": "us-east1"}, {"region": "northamerica-northeast1"},
                    {"project": "a23456"}, {"project": "a" * 30},
                    {"api_endpoint": "http://127.0.0.1:8080"},
                    {"api_endpoint": "europe-central2-aiplatform.googleapis.com"},
                    {"api_endpoint": "https://europe-central2-aiplatform.googleapis.com/"},
                    {"labels": {f"k{i}": "v" for i in range(58)}},
                    {"source_exp": "gs://pipe-b/pipeline_root/1/run/Transform_3"},
                    {"packages": ["tf-keras~=2.17.0", "gs://b-1/pkgs/x-1.0.tar.gz"]},
                    {"service_account": "trainer@p-12345.iam.gserviceaccount.com"}):
        check_submit_config(full_config(**changes))


@pytest.mark.parametrize(("variable", "value", "error"), [
    ("RECFORGE_VERTEX_PACKAGES", "[unclosed", "RECFORGE_VERTEX_PACKAGES: expected a list of "
     "strings, e.g. ['tf-keras~=2.17.0'], got '[unclosed'"),
    ("RECFORGE_VERTEX_PACKAGES", "tf-keras", "RECFORGE_VERTEX_PACKAGES: expected a list"),
    ("RECFORGE_VERTEX_WAIT", "perhaps",
     "RECFORGE_VERTEX_WAIT: expected true or false, got 'perhaps'"),
    ("RECFORGE_VERTEX_TIMEOUT_MINUTES", "soon",
     "RECFORGE_VERTEX_TIMEOUT_MINUTES: expected a number, got 'soon'"),
    ("RECFORGE_VERTEX_REPLICA_COUNT", "two",
     "RECFORGE_VERTEX_REPLICA_COUNT: expected an integer, got 'two'"),
])
def test_bad_environment_variables_name_the_variable(
        no_vertex_env: pytest.MonkeyPatch, variable: str, value: str, error: str) -> None:
    no_vertex_env.setenv(variable, value)
    with pytest.raises(SubmitError) as info:
        check_submit_config(compose(BASE).submit)
    assert str(info.value).startswith(error), str(info.value)


@pytest.mark.parametrize(("args", "env", "key"), [
    (["submit.region='attacker.example#'"], {}, "error: submit.region: expected a region"),
    (["submit.region='europe central2'"], {}, "did you mean 'europe-central2'?"),
    (["submit.source_exp=../../other"], {}, "error: submit.source_exp: expected"),
    ([], {"RECFORGE_VERTEX_PACKAGES": "[unclosed"}, "error: RECFORGE_VERTEX_PACKAGES: expected"),
    ([], {"RECFORGE_VERTEX_WAIT": "perhaps"},
     "error: RECFORGE_VERTEX_WAIT: expected true or false, got 'perhaps'"),
])
def test_cli_refuses_before_writing_or_recording(
        no_vertex_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        no_network: None, args: list[str], env: dict[str, str], key: str) -> None:
    """In process, with every socket connect failing the test: refused before any network."""
    assert_rejected(["model=hybrid_v1", "features=cherng_v3", *BASE, *args,
                     f"output_dir={tmp_path / 'out'}"],
                    tmp_path=tmp_path, env=env, key=key, in_process=True, capsys=capsys)


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


@pytest.mark.slow
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


@pytest.mark.slow
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
    monkeypatch.setenv("CLOUDSDK_CONFIG", "/nonexistent-gcloud-config")  # no gcloud ADC file


@pytest.mark.slow
def test_dry_run_prints_one_json_document(tmp_path: Path, no_network: None,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from google.cloud.aiplatform_v1 import CustomJob

    from compiler.ledger import Ledger

    emit = write_emit_dir(tmp_path / "emit")
    cfg = full_config(dry_run=True, accelerator_type="NVIDIA_TESLA_T4", accelerator_count=1,
                      service_account="trainer@p-12345.iam.gserviceaccount.com",
                      custom_config={"epochs": 2}, labels={"team": "recs"})
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    code = main_submit(emit, cfg, ledger=ledger)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    document = json.loads(captured.out)  # stdout is the document and nothing else
    assert set(document) == {"request", "staging", "environment"}
    assert ledger.list() == []  # nothing recorded

    job = CustomJob.from_json(json.dumps(document["request"]))  # the exact REST body
    assert "name" not in document["request"] and "state" not in document["request"]
    assert document["request"]["jobSpec"]["workerPoolSpecs"][0]["replicaCount"] == "1"
    pool = job.job_spec.worker_pool_specs[0]
    assert pool.machine_spec.machine_type == "n1-standard-4"
    assert pool.machine_spec.accelerator_type.name == "NVIDIA_TESLA_T4"
    spec = pool.python_package_spec
    assert spec.python_module == "compiler.runner.job"
    staged = {Path(entry["uri"]).name: entry for entry in document["staging"]}
    assert set(staged) == {"trainer_module.py", "transform_module.py", "manifest.json",
                           "recforge-0.1.0.tar.gz", "recforge_job_requirements-1.0.tar.gz"}
    for name in ("trainer_module.py", "transform_module.py", "manifest.json"):
        entry = staged[name]
        digest = hashlib.sha256((emit / name).read_bytes()).hexdigest()
        assert entry == {"local": str(emit / name), "sha256": digest,
                         "uri": f"gs://stage-b/recforge/objects/{digest}/{name}"}
    assert list(spec.package_uris) == [staged["recforge-0.1.0.tar.gz"]["uri"],
                                       staged["recforge_job_requirements-1.0.tar.gz"]["uri"]]
    args = list(spec.args)
    assert args[args.index("--trainer-module") + 1] == staged["trainer_module.py"]["uri"]
    # No credentials: the source was not looked up, and stderr says so.
    assert args[args.index("--transform-dir") + 1] == (
        "gs://pipe-b/pipeline_root/qt-97-20260109-174616")
    assert "Source check skipped: no credentials file" in captured.err
    output = args[args.index("--output-dir") + 1]
    assert output == job.job_spec.base_output_directory.output_uri_prefix
    assert output.startswith(f"gs://stage-b/recforge/default/{CONFIG_HASH}/jobs/")
    assert json.loads(args[args.index("--custom-config") + 1]) == {"epochs": 2}
    assert job.job_spec.service_account == "trainer@p-12345.iam.gserviceaccount.com"
    assert job.labels["recforge_config_hash"] == CONFIG_HASH
    assert job.labels["recforge_compiler_version"] == "0-1-0"
    assert job.labels["recforge_source"] == "qt-97-20260109-174616"
    assert job.labels["recforge_submission"]
    assert job.labels["team"] == "recs"
    assert CONFIG_HASH[:12] in job.display_name
    environment = document["environment"]
    assert environment["image"] == cfg.executor_image and environment["python"] == "3.10"
    assert environment["platform"].endswith("x86_64")
    assert environment["requirements"] == list(cfg.packages)  # what the job pip-installs


@pytest.mark.slow
def test_dry_run_with_transform_uri_is_exact(tmp_path: Path, no_network: None,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    emit = write_emit_dir(tmp_path / "emit")
    source = "gs://pipe-b/pipeline_root/run-1/Transform_7"
    assert main_submit(emit, full_config(source_exp=source, pipeline_root=None,
                                         dry_run=True)) == 0
    document = json.loads(capsys.readouterr().out)
    args = document["request"]["jobSpec"]["workerPoolSpecs"][0]["pythonPackageSpec"]["args"]
    assert args[args.index("--transform-dir") + 1] == source


@pytest.mark.slow
def test_sdist_is_reproducible(tmp_path: Path) -> None:
    """Same sources, same bytes: the staged object's digest does not depend on build time."""
    import shutil

    from compiler.cloud.package import build_packages, sha256_file

    tree = tmp_path / "tree"  # a snapshot: other work in the checkout must not change it
    tree.mkdir()
    for name in ("pyproject.toml", "README.md", "compiler", "plugins"):
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, tree / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, tree / name)
    digests = set()
    for attempt in range(2):
        sdist, reqs = build_packages(tmp_path / f"out{attempt}", ["tf-keras~=2.17.0"], tree)
        digests.add((sha256_file(sdist), sha256_file(reqs)))
        (tree / "README.md").touch()  # a new mtime must not change the archive
    assert len(digests) == 1


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


@pytest.mark.slow
def test_cli_dry_run_stdout_is_only_the_json_document(
        no_vertex_env: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import os

    env = {**os.environ, "CLOUDSDK_CONFIG": str(tmp_path / "no-gcloud"),
           "RECFORGE_LEDGER_URL": f"sqlite:///{tmp_path}/ledger.db"}
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    proc = subprocess.run(
        [sys.executable, "-m", "compiler", "model=hybrid_v1", "features=cherng_v3", *BASE,
         "submit.dry_run=true", f"output_dir={tmp_path / 'out'}"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "ledger.db").exists() and not (tmp_path / "out").exists()
    document = json.loads(proc.stdout)
    assert set(document) == {"request", "staging", "environment"}
