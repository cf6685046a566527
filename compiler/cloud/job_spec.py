"""The staging layout and the CustomJob request body, as plain data (no network, no clients).

The request is built as the REST API's JSON (camelCase keys); :func:`canonical_json` round-trips
it through ``aiplatform_v1.CustomJob`` so that what a dry run prints is exactly what the client
sends, minus the client's choice of integer enums.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from compiler.cloud import gcs
from compiler.cloud.config import VertexSubmitConfig
from compiler.cloud.errors import SubmitError
from compiler.cloud.package import REQUIREMENTS_SDIST, requirements_hash, sdist_name

#: Label keys recforge sets. Underscores, not hyphens: list filters name them as
#: ``labels.<key>``, and AIP-160 filter identifiers do not allow ``-``.
LABEL_CONFIG_HASH = "recforge_config_hash"
LABEL_COMPILER_VERSION = "recforge_compiler_version"
LABEL_SOURCE = "recforge_source"
LABEL_SUBMISSION = "recforge_submission"
LABEL_EXPERIMENT = "recforge_experiment"
LABEL_EXPERIMENT_NUMBER = "recforge_exp_number"
OWN_LABELS = (LABEL_CONFIG_HASH, LABEL_COMPILER_VERSION, LABEL_SOURCE, LABEL_SUBMISSION,
              LABEL_EXPERIMENT, LABEL_EXPERIMENT_NUMBER)

EMITTED_FILES = ("trainer_module.py", "transform_module.py", "manifest.json")
METRICS_PATH = "model_run/training_metrics.json"
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")


def label_safe(text: str, max_len: int = 63) -> str:
    """A label value Vertex accepts: lowercase ``[a-z0-9_-]``, at most 63 characters."""
    value = re.sub(r"[^a-z0-9_-]+", "-", str(text).lower()).strip("-")
    return value[:max_len]


def new_submission_id() -> str:
    """Unique per ``submit`` call: names the job's output folder and tags the job (label)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


@dataclass(frozen=True)
class StagingPlan:
    """Where everything goes; all ``gs://`` URIs."""

    stage_uri: str
    #: local file name (in the emit dir or a build dir) -> destination URI
    modules: dict[str, str]
    recforge_package_uri: str
    requirements_package_uri: str | None
    extra_package_uris: tuple[str, ...]
    output_dir: str
    metrics_uri: str
    requirements: tuple[str, ...] = field(default_factory=tuple)

    @property
    def package_uris(self) -> list[str]:
        uris = [self.recforge_package_uri]
        if self.requirements_package_uri:
            uris.append(self.requirements_package_uri)
        return uris + list(self.extra_package_uris)


def staging_plan(cfg: VertexSubmitConfig, config_hash: str, submission_id: str) -> StagingPlan:
    """``gs://<staging>/recforge/<experiment>/<config-hash>/...`` for one submission.

    The recforge archive is named after the version being packaged (this checkout's), which
    pip requires to match the archive's own metadata.
    """
    from compiler import __version__
    assert cfg.staging_bucket  # check_required ran first
    stage = gcs.join(cfg.staging_bucket, "recforge", label_safe(cfg.experiment) or "default",
                     config_hash)
    requirements = tuple(p for p in cfg.packages if not p.startswith("gs://"))
    extra = tuple(p for p in cfg.packages if p.startswith("gs://"))
    output_dir = gcs.join(stage, "jobs", submission_id)
    return StagingPlan(
        stage_uri=stage,
        modules={name: gcs.join(stage, name) for name in EMITTED_FILES},
        recforge_package_uri=gcs.join(stage, "packages", sdist_name(__version__)),
        requirements_package_uri=(
            gcs.join(stage, "packages", requirements_hash(requirements), REQUIREMENTS_SDIST)
            if requirements else None
        ),
        extra_package_uris=extra,
        output_dir=output_dir,
        metrics_uri=gcs.join(output_dir, METRICS_PATH),
        requirements=requirements,
    )


def check_user_labels(labels: Mapping[str, str]) -> None:
    for key, value in labels.items():
        if not _LABEL_KEY.match(str(key)):
            raise SubmitError(
                f"submit.labels.{key}: a label key must start with a lowercase letter and hold "
                "only lowercase letters, digits, '-' and '_' (63 at most)",
                key=f"submit.labels.{key}",
            )
        if not _LABEL_VALUE.match(str(value)):
            raise SubmitError(
                f"submit.labels.{key}: value '{value}' may hold only lowercase letters, digits, "
                "'-' and '_' (63 at most)",
                key=f"submit.labels.{key}",
            )
        if key in OWN_LABELS:
            raise SubmitError(f"submit.labels.{key}: recforge sets this label itself",
                              key=f"submit.labels.{key}")


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
        "--trainer-module", plan.modules["trainer_module.py"],
        "--transform-dir", transform_dir,
        "--output-dir", plan.output_dir,
    ]
    if custom_config:
        args += ["--custom-config", json.dumps(dict(custom_config), sort_keys=True)]
    return args


def custom_job_body(cfg: VertexSubmitConfig, plan: StagingPlan, *, name: str,
                    labels: Mapping[str, str], args: list[str]) -> dict[str, Any]:
    """The ``CustomJob`` JSON the REST API takes (camelCase; int64 as strings)."""
    machine: dict[str, Any] = {"machineType": cfg.machine_type}
    if cfg.accelerator_type and cfg.accelerator_count:
        machine["acceleratorType"] = cfg.accelerator_type
        machine["acceleratorCount"] = int(cfg.accelerator_count)
    pool = {
        "machineSpec": machine,
        "replicaCount": str(int(cfg.replica_count)),
        "pythonPackageSpec": {
            "executorImageUri": cfg.executor_image,
            "packageUris": plan.package_uris,
            "pythonModule": cfg.python_module,
            "args": list(args),
        },
    }
    spec: dict[str, Any] = {
        "workerPoolSpecs": [pool],
        "baseOutputDirectory": {"outputUriPrefix": plan.output_dir},
    }
    if cfg.service_account:
        spec["serviceAccount"] = cfg.service_account
    return {"displayName": name, "labels": dict(labels), "jobSpec": spec}


def to_custom_job(body: Mapping[str, Any]) -> Any:
    """Parse the body into ``aiplatform_v1.CustomJob``; unknown or mistyped fields fail here."""
    from google.cloud.aiplatform_v1 import CustomJob

    try:
        return CustomJob.from_json(json.dumps(body))
    except Exception as error:  # json_format.ParseError names the bad field
        raise SubmitError(f"invalid CustomJob request: {error}") from None


def canonical_json(body: Mapping[str, Any]) -> str:
    """The request as the REST API reads it: camelCase, enum names, int64 as strings."""
    from google.cloud.aiplatform_v1 import CustomJob

    return CustomJob.to_json(to_custom_job(body), use_integers_for_enums=False, indent=2,
                             sort_keys=True)
