"""The job's pinned environment: images table, lock, Dockerfile, and the emitted trainer run
end to end under the lock's versions (``RECFORGE_JOB_PYTHON``; .ci/run sets it)."""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from compiler.cloud import environment
from compiler.core.pipeline import compile_overrides
from tests.job_env_helpers import (
    ROOT,
    job_python,
    job_versions,
    serve_in_job_env,
    train_in_job_env,
    transform_in_job_env,
)

_spec = importlib.util.spec_from_file_location("lock_job_env", ROOT / "scripts" / "lock_job_env.py")
assert _spec and _spec.loader
lock_job_env = importlib.util.module_from_spec(_spec)
sys.modules["lock_job_env"] = lock_job_env
_spec.loader.exec_module(lock_job_env)


def pinned() -> dict[str, str]:
    return {canonicalize_name(p.split("==")[0]): p.split("==")[1] for p in environment.job_lock()}


def test_lock_pins_every_top_level_requirement_exactly() -> None:
    versions = pinned()
    assert len(versions) == len(environment.job_lock())  # no name pinned twice
    assert lock_job_env.top_level_problems(versions, environment.JOB_REQUIREMENTS) == []
    assert versions["tensorflow"].startswith("2.16.")
    assert versions["tfx-bsl"].startswith("1.16.")
    for name in environment.SDIST_ONLY:
        assert canonicalize_name(name) in versions


def test_lock_is_shipped_as_package_data() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    assert f"cloud/{environment.LOCK_NAME}" in text
    assert environment.lock_text() == (ROOT / "compiler" / "cloud" /
                                       environment.LOCK_NAME).read_text()


def test_parse_lock_refuses_anything_but_exact_pins() -> None:
    assert environment.parse_lock("# c\n\nabc==1.0  # why\n") == ["abc==1.0"]
    for bad in ("abc>=1.0", "abc", "abc==", "abc==1.0 ; python_version<'3'"):
        with pytest.raises(ValueError, match="expected 'name==version'"):
            environment.parse_lock(bad)


def test_closure_check_finds_missing_and_mismatched_pins() -> None:
    versions = {"a": "1.0", "b": "2.0", "c": "1.0"}
    requires = {
        "a": ["b>=3", 'd; python_version >= "3.8"', 'e; sys_platform == "win32"', "c[x]"],
        "b": [],
        "c": ['f; extra == "x"', 'g; extra == "y"'],
    }
    problems = lock_job_env.closure_problems(versions, requires, "3.11")
    assert sorted(problems) == sorted([
        'c requires f; extra == "x", which the lock does not pin',
        "a requires b>=3, but the lock pins b==2.0",
        'a requires d; python_version >= "3.8", which the lock does not pin',
    ])
    assert lock_job_env.top_level_problems(versions, ["a>1", "z"]) == [
        "JOB_REQUIREMENTS has a>1, but the lock pins 1.0",
        "JOB_REQUIREMENTS has z, which the lock does not pin",
    ]


def test_platform_flags_cover_every_older_manylinux_tag() -> None:
    flags = lock_job_env.platform_flags("manylinux_2_36_x86_64")
    tags = flags[1::2]
    assert tags[0] == "manylinux_2_36_x86_64" and "manylinux_2_17_x86_64" in tags
    assert "manylinux2014_x86_64" in tags and "manylinux_2_37_x86_64" not in tags


def test_default_image_is_in_support_today() -> None:
    image = environment.DEFAULT_IMAGE
    assert image.past_end(dt.date.today()) is None, (
        f"{image.uri} is past its end of support ({image.end_of_support}): choose a newer "
        "image in compiler/cloud/environment.py and regenerate the lock"
    )
    assert environment.image_warning(image.uri) is None


def test_images_past_their_end_date_warn() -> None:
    today = dt.date(2026, 11, 30)
    for uri in ("us-docker.pkg.dev/vertex-ai/training/tf-cpu.2-17.py310:latest",
                "europe-docker.pkg.dev/vertex-ai/training/tf-gpu.2-16.py310:latest"):
        warning = environment.image_warning(uri, today)
        assert warning is not None and "end of availability" in warning, warning
        assert "Python 3.10" in warning
    before = environment.image_warning(
        "us-docker.pkg.dev/vertex-ai/training/tf-cpu.2-17.py310:latest", dt.date(2026, 7, 1))
    assert before is not None and "end of availability" not in before  # only the Python
    assert environment.image_warning("gcr.io/me/my-job:1", today) is None  # not ours to judge
    late = environment.image_warning(environment.DEFAULT_IMAGE.uri, dt.date(2027, 11, 1))
    assert late is not None and "end of support (2027-10-31)" in late


def test_every_image_names_its_source() -> None:
    for image in environment.SUPPORTED_IMAGES:
        assert image.source.startswith("https://"), image
        assert re.fullmatch(r"manylinux_2_\d+_x86_64", image.platform), image
        assert re.fullmatch(r"3\.\d+", image.python), image


def test_dockerfile_installs_the_lock_and_runs_the_job_runner() -> None:
    text = (ROOT / "docker" / "Dockerfile").read_text()
    froms = re.findall(r"^FROM\s+(\S+)", text, re.M)
    assert froms and froms[-1] == environment.DEFAULT_IMAGE.uri
    copied = re.findall(r"^COPY\s+(\S+)", text, re.M)
    assert f"compiler/cloud/{environment.LOCK_NAME}" in copied
    for path in copied:
        assert (ROOT / path).exists(), f"docker/Dockerfile copies {path}, which is not here"
    assert "--no-deps" in text and f"-r /tmp/{environment.LOCK_NAME}" in text
    assert re.search(r'^ENTRYPOINT \["python", "-m", "compiler\.runner\.job"\]', text, re.M)


def test_requirements_parse_as_pep508() -> None:
    for text in environment.JOB_REQUIREMENTS:
        Requirement(text)


#: The training settings of every job-environment run here (tiny data, two epochs).
JOB_CUSTOM_CONFIG = {"epochs": 2, "batch_size": 128}


@pytest.fixture(scope="module")
def single_job(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """hybrid_v1 trained by one ``python -m compiler.runner.job`` in the job environment on a
    Transform made there: {"root", "transform", "output", "metrics"}."""
    root = tmp_path_factory.mktemp("single_job")
    modules = root / "modules"
    compile_overrides(["model=hybrid_v1"], output_dir=modules)
    transform_in_job_env(modules / "transform_module.py", root / "transform")
    output = root / "job"
    metrics = train_in_job_env(modules / "trainer_module.py", root / "transform", output,
                               JOB_CUSTOM_CONFIG)
    return {"root": root, "transform": root / "transform", "output": output, "metrics": metrics}


@pytest.mark.slow
def test_emitted_trainer_runs_end_to_end_under_the_locked_versions(single_job: dict) -> None:
    """Transform → ``python -m compiler.runner.job`` → metrics → SavedModel with both
    signatures, reloaded in a fresh process, all in the job environment."""
    versions = job_versions()
    for name in ("tensorflow", "tf-keras", "tensorflow-recommenders", "tensorflow-transform",
                 "tfx-bsl", "scann"):
        assert versions[name] == pinned()[name], (name, versions[name])

    output, metrics = single_job["output"], single_job["metrics"]

    assert metrics["model_type"] == "multitask"
    assert [row["epoch"] for row in metrics["history"]] == [1, 2]
    final = metrics["final"]
    assert {"loss", "recall_at_100", "test_rmse"} <= set(final), final
    assert 0 < final["recall_at_5"] <= final["recall_at_100"] <= 1
    candidates = metrics["candidates"]
    # The Transform's product table, one row per product; without one, all 1500 lines.
    assert candidates["rows_read"] == {"product_table": candidates["unique_products"],
                                       "splits": 1500}[candidates["source"]]

    answers = serve_in_job_env(output / "serving_model")
    assert set(answers) == {"serving_default", "serve_ranking"}
    top = answers["serving_default"]
    assert len(top["product_ids"]) == min(100, metrics["candidates"]["unique_products"])
    assert top["scores"] == sorted(top["scores"], reverse=True)
    assert answers["serve_ranking"]["predictions"] > 0


@pytest.mark.slow
def test_multi_worker_trainer_runs_as_vertex_replicas_under_the_locked_versions(
        single_job: dict, tmp_path: Path) -> None:
    """What a ``submit.replica_count=2`` job runs: the ``multi_worker`` trainer as two
    ``python -m compiler.runner.job`` processes under the job's versions, with the TF_CONFIG
    layout Vertex AI sets (a ``chief`` task in pool 0, a ``worker`` in pool 1), both writing to
    one output folder. The chief alone writes; its metrics match the one-process run of the
    same global batches (the replicas' gradients add up to the one-device gradient)."""
    from compiler.local.workers import free_loopback_ports

    modules = tmp_path / "modules"
    compile_overrides(["model=hybrid_v1", "model.distribution=multi_worker"],
                      output_dir=modules)
    single = single_job["metrics"]
    output = tmp_path / "job"
    chief, worker = (f"127.0.0.1:{port}" for port in free_loopback_ports(2))
    cluster = {"chief": [chief], "worker": [worker]}
    args = ["-m", "compiler.runner.job", "--trainer-module", str(modules / "trainer_module.py"),
            "--transform-dir", str(single_job["transform"]), "--output-dir", str(output),
            "--custom-config", json.dumps(JOB_CUSTOM_CONFIG)]
    processes = []
    for task in ({"type": "chief", "index": 0}, {"type": "worker", "index": 0}):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "2",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": task})}
        processes.append(subprocess.Popen([job_python(), *args], cwd=ROOT, env=env,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True))
    try:
        logs = [process.communicate(timeout=600)[0] for process in processes]
    finally:
        for process in processes:
            process.kill()
    assert [process.returncode for process in processes] == [0, 0], [log[-3000:] for log in logs]

    assert [path.relative_to(output) for path in output.rglob("training_metrics.json")] == [
        Path("model_run/training_metrics.json")]
    assert len(list(output.rglob("saved_model.pb"))) == 1
    multi = json.loads((output / "model_run" / "training_metrics.json").read_text())
    for key in ("loss", "recall_at_100", "test_rmse"):
        assert multi["final"][key] == pytest.approx(single["final"][key], rel=1e-3), key


def dry_run(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [sys.executable, "-m", "compiler", "model=hybrid_v1", "features=cherng_v3",
         "submit=vertex", "submit.project=my-project", "submit.region=europe-west4",
         "submit.staging_bucket=gs://my-staging", "submit.source_exp=gs://my-staging/t",
         "submit.dry_run=true", f"output_dir={tmp_path / 'out'}", *overrides],
        capture_output=True, text=True, timeout=300, cwd=ROOT,
        env={**os.environ, "RECFORGE_LEDGER_URL": f"sqlite:///{tmp_path}/l.db"},
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow
def test_container_uri_runs_the_job_image_with_container_spec(tmp_path: Path) -> None:
    """``submit.container_uri``: the request names the image and the same entry point, and
    carries no pythonPackageSpec (nothing to pip-install at job start)."""
    image = "europe-docker.pkg.dev/my-project/jobs/recforge-job:0.1.0"
    result = dry_run(tmp_path, f"submit.container_uri={image}")
    assert "warning: image" not in result.stderr + result.stdout
    document = json.loads(result.stdout[result.stdout.index("{\n"):])
    pool = document["request"]["jobSpec"]["workerPoolSpecs"][0]
    assert "pythonPackageSpec" not in pool
    spec = pool["containerSpec"]
    assert spec["imageUri"] == image
    assert spec["command"] == ["python", "-m", "compiler.runner.job"]
    assert spec["args"][0] == "--trainer-module" and "--transform-dir" in spec["args"]


def test_default_packages_are_the_lock() -> None:
    from compiler.cloud.config import DEFAULT_EXECUTOR_IMAGE, VertexSubmitConfig

    assert VertexSubmitConfig().packages == environment.job_lock()
    from compiler.core.compose import compose

    composed = compose(["submit=vertex"]).submit  # conf/submit/vertex.yaml, no env override
    assert list(composed.packages) == environment.job_lock()
    assert environment.find_image(DEFAULT_EXECUTOR_IMAGE) is environment.DEFAULT_PREBUILT_IMAGE


@pytest.mark.slow
def test_a_prebuilt_image_past_its_end_date_warns_on_stderr(tmp_path: Path) -> None:
    result = dry_run(tmp_path, f"submit.executor_image={environment.DEFAULT_PREBUILT_IMAGE.uri}")
    line = ("warning: image us-docker.pkg.dev/vertex-ai/training/tf-cpu.2-17.py310:latest is "
            "past its published end of availability (2026-07-11)")
    assert line in result.stderr
    assert "warning: image" not in result.stdout


@pytest.mark.slow
def test_a_submission_must_choose_its_image(tmp_path: Path) -> None:
    """No prebuilt TensorFlow image is in support, so there is no default to fall back on:
    without container_uri or executor_image the command stops before anything happens."""
    from tests.preflight_helpers import assert_rejected

    line = assert_rejected(
        ["submit=vertex", "submit.project=my-project", "submit.region=europe-west4",
         "submit.staging_bucket=gs://my-staging", "submit.source_exp=gs://my-staging/t",
         f"output_dir={tmp_path / 'out'}"], tmp_path=tmp_path, key="submit.container_uri")
    assert "docker/Dockerfile" in line and "got neither" in line
