"""``submit=vertex``: where and how a compiled trainer runs as a Vertex AI Custom Job.

``conf/submit/vertex.yaml`` fills this schema; every value there reads an environment variable
first (``RECFORGE_VERTEX_*``) and any can be overridden on the command line
(``submit.region=europe-central2``). Nothing here names a real project, bucket or account:
those must come from the user, and :func:`check_required` says which key is missing.
"""

# ruff: noqa: UP045 - OmegaConf reads these annotations at runtime and only understands
# typing.Optional, not "X | None" (types.UnionType).
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional

from compiler.cloud.errors import SubmitError

#: Google's public prebuilt TensorFlow training image (not a user project). The packages below
#: must match its TensorFlow minor version; change both together.
DEFAULT_EXECUTOR_IMAGE = "us-docker.pkg.dev/vertex-ai/training/tf-cpu.2-17.py310:latest"
DEFAULT_PACKAGES = (
    "tf-keras~=2.17.0",
    "tensorflow-recommenders>=0.7.3",
    "tensorflow-transform~=1.17.0",
)


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
    machine_type: str = "n1-standard-4"
    #: e.g. ``NVIDIA_TESLA_T4``; ``null`` for CPU only.
    accelerator_type: Optional[str] = None
    accelerator_count: int = 0
    replica_count: int = 1
    executor_image: str = DEFAULT_EXECUTOR_IMAGE
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
        "replica_count": cfg.replica_count,
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


def from_omegaconf(node: Any) -> VertexSubmitConfig:
    """A composed ``submit`` node (DictConfig) or plain dict -> :class:`VertexSubmitConfig`."""
    if isinstance(node, VertexSubmitConfig):
        return node
    from omegaconf import OmegaConf

    merged = OmegaConf.merge(OmegaConf.structured(VertexSubmitConfig), node)
    return OmegaConf.to_object(merged)  # type: ignore[return-value]


def check_submit_config(node: Any) -> VertexSubmitConfig:
    """Preflight for the ``submit`` group: every value checked before any network call,
    staging or ledger write. Raises a ``RecforgeError`` (exit 2) naming ``submit.<key>``."""
    cfg = from_omegaconf(node)
    check_required(cfg, need_source=not cfg.dry_run)
    return cfg
