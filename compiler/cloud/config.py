"""``submit=vertex``: where and how a compiled trainer runs as a Vertex AI Custom Job.

``conf/submit/vertex.yaml`` fills this schema; every value there reads an environment variable
first (``RECFORGE_VERTEX_*``) and any can be overridden on the command line
(``submit.region=europe-central2``). Nothing here names a real project, bucket or account:
those must come from the user, and :func:`check_required` says which key is missing.
"""

# ruff: noqa: UP045 - OmegaConf reads these annotations at runtime and only understands
# typing.Optional, not "X | None" (types.UnionType).
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Optional

from omegaconf import OmegaConf

from compiler.cloud.dataflow import check_dataflow_config, is_dataflow_node
from compiler.cloud.environment import DEFAULT_PREBUILT_IMAGE, job_lock
from compiler.cloud.errors import SubmitConfigError, SubmitError
from compiler.cloud.formats import (
    ACCELERATOR,
    LABEL_COMPILER_VERSION,
    LABEL_CONFIG_HASH,
    LABEL_EXPERIMENT,
    LABEL_EXPERIMENT_NUMBER,
    LABEL_SOURCE,
    LABEL_SUBMISSION,
    MACHINE_TYPE,
    MAX_LABELS,
    OWN_LABELS,
    PROJECT,
    PYTHON_MODULE,
    REGION,
    SERVICE_ACCOUNT,
    check_api_endpoint,
    check_bucket_uri,
    check_labels,
    check_packages,
    check_source,
    structured_from_node,
    value_error,
)

#: Google's newest prebuilt TensorFlow training image (pythonPackageSpec route; past its end of
#: availability, see compiler.cloud.environment) and the exact lock a job installs.
DEFAULT_EXECUTOR_IMAGE = DEFAULT_PREBUILT_IMAGE.uri
DEFAULT_PACKAGES = tuple(job_lock())


def _register_lock_resolver() -> None:
    """``${recforge_job_lock:}`` in conf/submit/vertex.yaml: the lock, the default packages."""

    if not OmegaConf.has_resolver("recforge_job_lock"):
        OmegaConf.register_new_resolver("recforge_job_lock", lambda: list(DEFAULT_PACKAGES))


_register_lock_resolver()


@dataclass
class VertexSubmitConfig:
    """Schema of the ``submit`` group for Vertex AI (registered as ``submit/submit_schema``)."""

    # -- where ------------------------------------------------------------------------------
    #: Google Cloud project id the job runs in.
    project: Optional[str] = None
    #: Vertex AI region, e.g. ``europe-central2``.
    region: Optional[str] = None
    #: ``gs://bucket[/prefix]`` for staged modules, packages and job outputs.
    staging_bucket: Optional[str] = None
    #: ``gs://bucket/prefix`` under which pipeline runs (``<run name>/...``) live.
    pipeline_root: Optional[str] = None
    #: Experiment name: a path segment of the staging area and a job label.
    experiment: str = "default"
    #: Pipeline run whose Transform output the job trains on: a run name under
    #: ``pipeline_root``, or a ``gs://`` URI of a Transform output directory itself.
    source_exp: Optional[str] = None

    # -- what runs --------------------------------------------------------------------------
    #: The machine of the chief (the primary replica, worker pool 0).
    machine_type: str = "n1-standard-4"
    #: e.g. ``NVIDIA_TESLA_T4``; ``null`` for CPU only.
    accelerator_type: Optional[str] = None
    accelerator_count: int = 0
    #: Replicas in all: 1 is one pool of one replica; N > 1 is a chief pool of 1 plus a worker
    #: pool of N - 1 running the same entry point (needs ``model.distribution=multi_worker``:
    #: Vertex AI sets ``TF_CONFIG`` on each replica and MultiWorkerMirroredStrategy reads it).
    replica_count: int = 1
    #: The worker pool's machine (``replica_count > 1``); ``null``: ``machine_type``.
    worker_machine_type: Optional[str] = None
    #: The worker pool's accelerators; both ``null``: the chief's. ``worker_accelerator_count=0``
    #: gives CPU-only workers.
    worker_accelerator_type: Optional[str] = None
    worker_accelerator_count: Optional[int] = None
    #: A prebuilt training image (``pythonPackageSpec``: the lock is pip-installed at job
    #: start), e.g. ``DEFAULT_EXECUTOR_IMAGE``. Every prebuilt TensorFlow image Google lists is
    #: past its end of availability, so there is no default: set this or ``container_uri``.
    executor_image: Optional[str] = None
    #: A job image built from docker/Dockerfile (the lock installed at build time). When set,
    #: the job runs it through ``containerSpec`` with the same entry point; nothing is
    #: pip-installed at job start and ``executor_image``/``packages`` are not used.
    container_uri: Optional[str] = None
    service_account: Optional[str] = None
    #: Extra job labels (keys and values: lowercase letters, digits, ``-`` and ``_``).
    labels: dict[str, str] = field(default_factory=dict)
    #: pip requirements installed with the recforge package (``name>=1.0``), or ``gs://``
    #: URIs of ready-made packages passed to Vertex as they are.
    packages: list[str] = field(default_factory=lambda: list(DEFAULT_PACKAGES))
    #: The job's entry point; the default is recforge's own job runner.
    python_module: str = "compiler.runner.job"
    #: Passed to the trainer as ``fn_args.custom_config`` (``--custom-config`` JSON).
    custom_config: dict[str, Any] = field(default_factory=dict)

    # -- waiting ----------------------------------------------------------------------------
    wait: bool = True
    timeout_minutes: float = 30.0
    poll_initial_seconds: float = 5.0
    poll_max_seconds: float = 60.0
    poll_multiplier: float = 1.5
    #: On Ctrl-C: cancel the job without asking (otherwise ask when interactive, else keep it).
    cancel_on_interrupt: bool = False
    #: How often a create that may or may not have reached Vertex (503, timeout) is retried,
    #: each time after listing jobs by this submission's label to see whether it did.
    create_retries: int = 3
    create_timeout_seconds: float = 60.0
    #: After a create whose outcome is unknown (timeout, dropped connection, 5xx), how long
    #: to keep listing by the submission label before creating again: a request the client
    #: gave up on can still be committed by the service for a while.
    create_settle_seconds: float = 60.0
    #: Timeout of each get/list/cancel call; transient errors (429, 5xx, connection resets)
    #: are retried with backoff within it.
    call_timeout_seconds: float = 60.0

    # -- behaviour --------------------------------------------------------------------------
    #: Print the staging plan and the CustomJob request; touch no network.
    dry_run: bool = False
    #: Submit even while a job for the same config hash and source is pending or running.
    force: bool = False
    #: Vertex AI endpoint override (tests: ``http://127.0.0.1:PORT``); default
    #: ``<region>-aiplatform.googleapis.com``.
    api_endpoint: Optional[str] = None


#: Keys that have no usable default, in the order a user would fix them.
REQUIRED_KEYS = ("project", "region", "staging_bucket")


def check_required(cfg: VertexSubmitConfig, *, need_source: bool = True) -> None:
    """Refuse a config missing a value that has no default, naming ``submit.<key>``."""
    keys = list(REQUIRED_KEYS)
    if need_source:
        keys.append("source_exp")
        source = cfg.source_exp or ""
        if source and not source.startswith("gs://") and not cfg.pipeline_root:
            keys.append("pipeline_root")
    missing = [key for key in keys if not getattr(cfg, key)]
    if missing:
        env = {key: f"RECFORGE_VERTEX_{key.upper()}" for key in missing}
        names = ", ".join(f"submit.{key}" for key in missing)
        raise SubmitError(
            f"{names} {'is' if len(missing) == 1 else 'are'} not set",
            hint="set them on the command line (e.g. submit."
            f"{missing[0]}=...) or in the environment ({', '.join(env.values())})",
            key=f"submit.{missing[0]}",
        )
    for key in ("staging_bucket", "pipeline_root"):
        value = getattr(cfg, key)
        if value and not str(value).startswith("gs://"):
            raise SubmitError(
                f"submit.{key} must be a gs:// URI, got '{value}'", key=f"submit.{key}"
            )
    numbers = {
        "timeout_minutes": cfg.timeout_minutes,
        "poll_initial_seconds": cfg.poll_initial_seconds,
        "poll_max_seconds": cfg.poll_max_seconds,
    }
    for key, number in numbers.items():
        if number <= 0:
            raise SubmitError(f"submit.{key} must be positive, got {number}", key=f"submit.{key}")
    if cfg.poll_multiplier < 1:
        raise SubmitError(
            f"submit.poll_multiplier must be at least 1, got {cfg.poll_multiplier}",
            key="submit.poll_multiplier",
        )
    if cfg.accelerator_count < 0 or (cfg.accelerator_count > 0) != bool(cfg.accelerator_type):
        raise SubmitError(
            "submit.accelerator_type and submit.accelerator_count go together "
            f"(got {cfg.accelerator_type!r} x {cfg.accelerator_count})",
            key="submit.accelerator_type",
        )
    check_pools(cfg)


def worker_accelerator(cfg: VertexSubmitConfig) -> tuple[str | None, int]:
    """The worker pool's (accelerator type, count): the chief's unless either is set."""
    if cfg.worker_accelerator_type is None and cfg.worker_accelerator_count is None:
        return cfg.accelerator_type, cfg.accelerator_count
    return cfg.worker_accelerator_type, int(cfg.worker_accelerator_count or 0)


def check_pools(cfg: VertexSubmitConfig) -> None:
    """``replica_count`` and the worker pool's machine, before anything is built or sent."""
    if isinstance(cfg.replica_count, bool) or cfg.replica_count < 1:
        raise SubmitConfigError("submit.replica_count", "expected an integer of at least 1, "
                                f"got {cfg.replica_count!r}")
    accelerator, count = worker_accelerator(cfg)
    if count < 0 or (count > 0) != bool(accelerator):
        raise SubmitConfigError(
            "submit.worker_accelerator_type", "expected submit.worker_accelerator_type and "
            "submit.worker_accelerator_count together (or both null: the chief's), got "
            f"{accelerator!r} x {count}")


def check_replicas(cfg: VertexSubmitConfig, distribution: str) -> None:
    """A multi-replica job only helps a trainer that distributes over the replicas: refuse
    ``replica_count > 1`` unless ``model.distribution`` is ``multi_worker`` (``distribution``
    is its value: ``none``, ``mirrored`` or ``multi_worker``)."""
    if cfg.replica_count > 1 and distribution != "multi_worker":
        raise SubmitConfigError(
            "submit.replica_count", "expected 1 unless model.distribution=multi_worker (each "
            "replica would otherwise train the whole model alone), got "
            f"{cfg.replica_count} with model.distribution={distribution}")


def from_omegaconf(node: Any) -> VertexSubmitConfig:
    """A composed ``submit`` node (DictConfig) or plain dict -> :class:`VertexSubmitConfig`.

    A value that does not resolve or does not fit its type (often a ``RECFORGE_VERTEX_*``
    variable behind an interpolation of ``conf/submit/vertex.yaml``) is a
    :class:`SubmitConfigError` naming the variable, or else ``submit.<key>``.
    """
    if isinstance(node, VertexSubmitConfig):
        return node
    cfg = structured_from_node(VertexSubmitConfig, node)
    # oc.decode of a variable can yield a scalar or non-strings where a list of strings belongs.
    if not isinstance(cfg.packages, list) or not all(isinstance(p, str) for p in cfg.packages):
        raise value_error(VertexSubmitConfig, "packages", node, TypeError(repr(cfg.packages)))
    return cfg


def check_formats(cfg: VertexSubmitConfig) -> None:
    """Every value's format, once :func:`check_required` found the required ones present."""
    if cfg.project and not PROJECT.match(cfg.project):
        raise SubmitConfigError(
            "submit.project", "expected a project id of 6-30 lowercase letters, digits and "
            f"hyphens, starting with a letter and not ending with a hyphen, got {cfg.project!r}")
    if cfg.region and not REGION.match(cfg.region):
        near = re.sub(r"[^a-z0-9]+", "-", cfg.region.lower()).strip("-")
        raise SubmitConfigError(
            "submit.region", f"expected a region such as 'europe-central2', got {cfg.region!r}",
            suggestion=near if REGION.match(near) else None)
    for key in ("staging_bucket", "pipeline_root"):
        if getattr(cfg, key):
            check_bucket_uri(f"submit.{key}", getattr(cfg, key))
    if cfg.source_exp:
        check_source(cfg.source_exp)
    if cfg.api_endpoint:
        check_api_endpoint(cfg.api_endpoint)
    check_labels(cfg.labels)
    check_packages(list(cfg.packages))
    if not MACHINE_TYPE.match(cfg.machine_type):
        raise SubmitConfigError("submit.machine_type", "expected a machine type such as "
                                f"'n1-standard-4', got {cfg.machine_type!r}")
    if cfg.worker_machine_type is not None and not MACHINE_TYPE.match(cfg.worker_machine_type):
        raise SubmitConfigError("submit.worker_machine_type", "expected a machine type such as "
                                f"'n1-standard-4', got {cfg.worker_machine_type!r}")
    for key in ("accelerator_type", "worker_accelerator_type"):
        accelerator = getattr(cfg, key)
        if accelerator and not ACCELERATOR.match(accelerator):
            raise SubmitConfigError(f"submit.{key}", "expected an accelerator such as "
                                    f"'NVIDIA_TESLA_T4', got {accelerator!r}")
    if cfg.service_account and not SERVICE_ACCOUNT.match(cfg.service_account):
        raise SubmitConfigError("submit.service_account", "expected a service account e-mail "
                                f"address, got {cfg.service_account!r}")
    if not PYTHON_MODULE.match(cfg.python_module):
        raise SubmitConfigError("submit.python_module", "expected a dotted module name, got "
                                f"{cfg.python_module!r}")
    if not cfg.container_uri and not cfg.executor_image:
        raise SubmitConfigError(
            "submit.container_uri",
            "expected the job container built from docker/Dockerfile (README: Running on "
            "Vertex AI), or a prebuilt submit.executor_image such as "
            f"{DEFAULT_EXECUTOR_IMAGE} (past its end of availability), got neither")
    for key in ("container_uri", "executor_image"):
        image = getattr(cfg, key)
        if image is not None and (not image or any(c.isspace() for c in image)):
            raise SubmitConfigError(f"submit.{key}", "expected a container image URI, got "
                                    f"{image!r}")
    if cfg.create_retries < 0:
        raise SubmitConfigError("submit.create_retries", "expected 0 or more, got "
                                f"{cfg.create_retries}")
    for key in ("create_timeout_seconds", "create_settle_seconds", "call_timeout_seconds"):
        if getattr(cfg, key) <= 0:
            raise SubmitConfigError(f"submit.{key}", f"expected a positive number, got "
                                    f"{getattr(cfg, key)}")
    try:
        json.dumps(cfg.custom_config)
    except (TypeError, ValueError):
        raise SubmitConfigError("submit.custom_config", "expected JSON-serialisable values, "
                                f"got {cfg.custom_config!r}") from None


def check_submit_config(node: Any, config: Any = None) -> Any:
    """Preflight for the ``submit`` group: every value checked before any network call,
    staging or ledger write. Pure: no file, no network, no ledger. Raises
    :class:`SubmitConfigError` / :class:`SubmitError` (exit 2) naming ``submit.<key>`` or the
    ``RECFORGE_VERTEX_*`` variable behind it.

    Returns a :class:`VertexSubmitConfig` (``submit=vertex``), or for
    ``submit=dataflow_transform`` a :class:`~compiler.cloud.dataflow.DataflowTransformConfig`.
    ``config`` (the validated ``ResolvedConfig``, when the caller has it) adds the checks that
    need the model: ``replica_count > 1`` needs ``model.distribution=multi_worker``.
    """
    if is_dataflow_node(node):
        return check_dataflow_config(node)
    cfg = from_omegaconf(node)
    check_required(cfg)
    check_formats(cfg)
    if config is not None:
        distribution = getattr(config.model, "distribution", None)
        check_replicas(cfg, str(getattr(distribution, "value", distribution) or "none"))
    return cfg


#: The formats and label names live in compiler.cloud.formats (Dataflow checks them too);
#: callers import them from here as well.
__all__ = [
    "ACCELERATOR", "LABEL_COMPILER_VERSION", "LABEL_CONFIG_HASH", "LABEL_EXPERIMENT",
    "LABEL_EXPERIMENT_NUMBER", "LABEL_SOURCE", "LABEL_SUBMISSION", "MACHINE_TYPE", "MAX_LABELS",
    "OWN_LABELS", "PROJECT", "PYTHON_MODULE", "REGION", "REQUIRED_KEYS", "SERVICE_ACCOUNT",
    "VertexSubmitConfig", "check_api_endpoint", "check_bucket_uri", "check_formats",
    "check_labels", "check_packages", "check_pools", "check_replicas", "check_required",
    "check_source", "check_submit_config", "from_omegaconf", "worker_accelerator",
]
