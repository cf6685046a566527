"""The staging layout and the CustomJob request body, as plain data (no network, no clients).

The request is built as the REST API's JSON (camelCase keys); :func:`canonical_json` round-trips
it through ``aiplatform_v1.CustomJob`` so that what a dry run prints is exactly what the client
sends, minus the client's choice of integer enums.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from compiler.cloud import gcs
from compiler.cloud.config import (
    LABEL_COMPILER_VERSION,
    LABEL_CONFIG_HASH,
    LABEL_EXPERIMENT,
    LABEL_EXPERIMENT_NUMBER,
    LABEL_SOURCE,
    LABEL_SUBMISSION,
    VertexSubmitConfig,
    check_labels,
    worker_accelerator,
)
from compiler.cloud.errors import SubmitError
from compiler.cloud.formats import label_safe, new_submission_id  # noqa: F401 - re-exported
from compiler.cloud.package import DISTRIBUTION, REQUIREMENTS_SDIST, sha256_file

EMITTED_FILES = ("trainer_module.py", "transform_module.py", "manifest.json")
METRICS_PATH = "model_run/training_metrics.json"


@dataclass(frozen=True)
class StagedFile:
    """One file the job reads, staged under the digest of its content."""

    #: What it is, for people (``trainer_module.py``, ``recforge sdist built from /src``).
    source: str
    #: The file uploaded (in the emit dir, or a build directory that lives while staging).
    local: Path
    uri: str
    sha256: str

    @property
    def name(self) -> str:
        return self.local.name


@dataclass(frozen=True)
class StagingPlan:
    """Where everything goes; all ``gs://`` URIs.

    Every staged file lives at ``<staging>/recforge/objects/<sha256>/<file name>``: a later
    submission never overwrites an object a pending job may still read, and identical content
    is uploaded once. Only the job's output folder is per submission.
    """

    objects_uri: str
    files: tuple[StagedFile, ...]
    extra_package_uris: tuple[str, ...]
    output_dir: str
    metrics_uri: str
    requirements: tuple[str, ...] = field(default_factory=tuple)

    def uri_of(self, name: str) -> str:
        return next(f.uri for f in self.files if f.name == name)

    @property
    def stage_uri(self) -> str:
        """The folder this submission's outputs go under (the ledger's ``vertex_staging``)."""
        return self.output_dir.rsplit("/jobs/", 1)[0]

    @property
    def modules(self) -> dict[str, str]:
        return {name: self.uri_of(name) for name in EMITTED_FILES}

    @property
    def recforge_package_uri(self) -> str:
        return next(f.uri for f in self.files if f.name.startswith(f"{DISTRIBUTION}-"))

    @property
    def requirements_package_uri(self) -> str | None:
        return next((f.uri for f in self.files if f.name == REQUIREMENTS_SDIST), None)

    @property
    def package_uris(self) -> list[str]:
        uris = [self.recforge_package_uri]
        if self.requirements_package_uri:
            uris.append(self.requirements_package_uri)
        return uris + list(self.extra_package_uris)


def requirement_packages(packages: Sequence[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """``submit.packages`` split into pip requirements and ready-made ``gs://`` archives."""
    return (tuple(p for p in packages if not p.startswith("gs://")),
            tuple(p for p in packages if p.startswith("gs://")))


def staging_plan(cfg: VertexSubmitConfig, emit_dir: Path, config_hash: str, submission_id: str,
                 sdist: Path, requirements_sdist: Path | None, source_root: Path
                 ) -> StagingPlan:
    """The content-addressed staging of one submission (reads the files, touches no network).

    ``sdist`` and ``requirements_sdist`` are built by ``package.build_packages``; their names
    are kept (pip needs ``recforge-<version>.tar.gz`` to match the archive's metadata).
    """
    assert cfg.staging_bucket  # check_required ran first
    objects = gcs.join(cfg.staging_bucket, "recforge", "objects")
    requirements, extra = requirement_packages(cfg.packages)
    sources = [(name, emit_dir / name) for name in EMITTED_FILES]
    sources.append((f"recforge sdist built from {source_root}", sdist))
    if requirements_sdist is not None:
        sources.append(("requirements sdist of submit.packages", requirements_sdist))
    files = []
    for what, local in sources:
        digest = sha256_file(local)
        files.append(StagedFile(what, local, gcs.join(objects, digest, local.name), digest))
    output_dir = gcs.join(cfg.staging_bucket, "recforge", label_safe(cfg.experiment) or "default",
                          config_hash, "jobs", submission_id)
    return StagingPlan(
        objects_uri=objects, files=tuple(files), extra_package_uris=extra,
        output_dir=output_dir, metrics_uri=gcs.join(output_dir, METRICS_PATH),
        requirements=requirements,
    )


def check_user_labels(labels: Mapping[str, str]) -> None:
    """Kept for callers of the old name: see :func:`compiler.cloud.config.check_labels`."""
    check_labels(labels)


def job_labels(cfg: VertexSubmitConfig, config_hash: str, compiler_version: str, source: str,
               submission_id: str, experiment_number: int | None) -> dict[str, str]:
    labels = dict(cfg.labels)
    labels.update({
        LABEL_CONFIG_HASH: label_safe(config_hash),
        LABEL_COMPILER_VERSION: label_safe(compiler_version),
        LABEL_SOURCE: source_label(source),
        LABEL_SUBMISSION: label_safe(submission_id),
        LABEL_EXPERIMENT: label_safe(cfg.experiment),
    })
    if experiment_number is not None:
        labels[LABEL_EXPERIMENT_NUMBER] = str(experiment_number)
    return labels


def source_label(source: str) -> str:
    """The source experiment as a label value; a URI keeps its tail, the most telling part."""
    text = source.rstrip("/")
    if text.startswith("gs://"):
        text = text[len("gs://"):]
    return label_safe(text[-63:])


def display_name(experiment: str, config_hash: str, experiment_number: int | None) -> str:
    number = f"exp{experiment_number}-" if experiment_number is not None else ""
    return f"recforge-{number}{config_hash[:12]}-{label_safe(experiment, 40)}"[:128]


def job_args(plan: StagingPlan, transform_dir: str, custom_config: Mapping[str, Any]
             ) -> list[str]:
    args = [
        "--trainer-module", plan.uri_of("trainer_module.py"),
        "--transform-dir", transform_dir,
        "--output-dir", plan.output_dir,
    ]
    if custom_config:
        args += ["--custom-config", json.dumps(dict(custom_config), sort_keys=True)]
    return args


def _machine_spec(machine_type: str, accelerator_type: str | None, accelerator_count: int
                  ) -> dict[str, Any]:
    machine: dict[str, Any] = {"machineType": machine_type}
    if accelerator_type and accelerator_count:
        machine["acceleratorType"] = accelerator_type
        machine["acceleratorCount"] = int(accelerator_count)
    return machine


def _pool(cfg: VertexSubmitConfig, plan: StagingPlan, machine: dict[str, Any], replicas: int,
          args: list[str]) -> dict[str, Any]:
    pool: dict[str, Any] = {"machineSpec": machine, "replicaCount": str(replicas)}
    if cfg.container_uri:
        # The job image (docker/Dockerfile) has recforge and the lock installed already.
        pool["containerSpec"] = {
            "imageUri": cfg.container_uri,
            "command": ["python", "-m", cfg.python_module],
            "args": list(args),
        }
    else:
        pool["pythonPackageSpec"] = {
            "executorImageUri": cfg.executor_image,
            "packageUris": plan.package_uris,
            "pythonModule": cfg.python_module,
            "args": list(args),
        }
    return pool


def worker_pools(cfg: VertexSubmitConfig, plan: StagingPlan, args: list[str]
                 ) -> list[dict[str, Any]]:
    """``workerPoolSpecs``: one pool for one replica; for ``replica_count`` N > 1, the chief
    (Vertex AI's primary replica, pool 0, exactly one replica) and a worker pool of N - 1.

    Every replica runs the same entry point and arguments: Vertex AI sets ``TF_CONFIG`` (task
    ``chief`` on pool 0, ``worker`` on pool 1), from which the trainer's
    ``tf.distribute.MultiWorkerMirroredStrategy`` builds the cluster.
    """
    replicas = int(cfg.replica_count)
    chief = _machine_spec(cfg.machine_type, cfg.accelerator_type, cfg.accelerator_count)
    pools = [_pool(cfg, plan, chief, 1, args)]
    if replicas > 1:
        accelerator, count = worker_accelerator(cfg)
        worker = _machine_spec(cfg.worker_machine_type or cfg.machine_type, accelerator, count)
        pools.append(_pool(cfg, plan, worker, replicas - 1, args))
    return pools


def custom_job_body(cfg: VertexSubmitConfig, plan: StagingPlan, *, name: str,
                    labels: Mapping[str, str], args: list[str]) -> dict[str, Any]:
    """The ``CustomJob`` JSON the REST API takes (camelCase; int64 as strings)."""
    spec: dict[str, Any] = {
        "workerPoolSpecs": worker_pools(cfg, plan, args),
        "baseOutputDirectory": {"outputUriPrefix": plan.output_dir},
    }
    if cfg.service_account:
        spec["serviceAccount"] = cfg.service_account
    return {"displayName": name, "labels": dict(labels), "jobSpec": spec}


def to_custom_job(body: Mapping[str, Any]) -> Any:
    """Parse the body into ``aiplatform_v1.CustomJob``; unknown or mistyped fields fail here."""
    # lazy: Google Cloud SDK, for GCS/Vertex calls only
    from google.cloud.aiplatform_v1 import CustomJob

    try:
        return CustomJob.from_json(json.dumps(body))
    except Exception as error:  # json_format.ParseError names the bad field
        raise SubmitError(f"invalid CustomJob request: {error}") from None


def canonical_json(body: Mapping[str, Any]) -> str:
    """The request as the REST API reads it: camelCase, enum names, int64 as strings."""
    # lazy: Google Cloud SDK, for GCS/Vertex calls only
    from google.cloud.aiplatform_v1 import CustomJob

    # Only fields that are set: unset output-only fields (name, state, times) stay out.
    return CustomJob.to_json(to_custom_job(body), use_integers_for_enums=False, indent=2,
                             sort_keys=True, always_print_fields_with_no_presence=False)


# ------------------------------------------------------------- what was compiled, what ran


@dataclass
class SubmitResult:
    """What a submission produced. ``state`` is ``DRY_RUN`` for a dry run."""

    state: str
    plan: StagingPlan
    request: dict[str, Any]
    job_name: str | None = None
    job_id: str | None = None
    experiment_number: int | None = None
    metrics: dict[str, Any] | None = None
    transform_dir: str | None = None
    logs_command: str | None = None
    console_url: str | None = None

    @property
    def output_dir(self) -> str:
        return self.plan.output_dir


@dataclass(frozen=True)
class Emitted:
    emit_dir: Path
    manifest: dict[str, Any]

    @property
    def config_hash(self) -> str:
        return str(self.manifest["config_hash"])

    @property
    def compiler_version(self) -> str:
        return str(self.manifest["compiler_version"])


def read_emitted(emit_dir: Path | str) -> Emitted:
    emit_dir = Path(emit_dir)
    missing = [name for name in EMITTED_FILES if not (emit_dir / name).is_file()]
    if missing:
        raise SubmitError(f"{emit_dir} has no {', '.join(missing)}",
                          hint="compile the config first; submit uploads what the compiler emitted")
    try:
        manifest = json.loads((emit_dir / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise SubmitError(f"{emit_dir / 'manifest.json'} is unreadable: {error}") from None
    absent = [key for key in ("config_hash", "compiler_version") if not manifest.get(key)]
    if absent:
        raise SubmitError(f"{emit_dir / 'manifest.json'} lacks {', '.join(absent)}; recompile")
    return Emitted(emit_dir, manifest)


def distribution_from_manifest(manifest: Mapping[str, Any]) -> str:
    """The compiled trainer's ``model.distribution`` (absent from the resolved config when it
    is ``none``: the default leaves the config hash as it was before the knob existed)."""
    model = manifest.get("resolved_config", {}).get("model", {})
    return str(model.get("distribution") or "none")


def required_from_manifest(manifest: Mapping[str, Any]) -> dict[str, str]:
    """Fallback for ``required_features``: the manifest's ``transformed_features`` list."""
    return {str(f["name"]): str(f["dtype"]) for f in manifest.get("transformed_features", [])}


def job_request(cfg: VertexSubmitConfig, emitted: Emitted, plan: StagingPlan, transform_dir: str,
             submission_id: str, experiment_number: int | None) -> dict[str, Any]:
    assert cfg.source_exp
    labels = job_labels(cfg, emitted.config_hash, emitted.compiler_version, cfg.source_exp,
                        submission_id, experiment_number)
    return custom_job_body(
        cfg, plan,
        name=display_name(cfg.experiment, emitted.config_hash, experiment_number),
        labels=labels,
        args=job_args(plan, transform_dir, cfg.custom_config),
    )
