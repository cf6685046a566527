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
import os
import re
from dataclasses import dataclass, field, fields
from typing import Any, Optional
from urllib.parse import urlsplit

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from compiler.cloud.environment import DEFAULT_PREBUILT_IMAGE, job_lock
from compiler.cloud.errors import SubmitConfigError, SubmitError
from compiler.errors import did_you_mean

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
    machine_type: str = "n1-standard-4"
    #: e.g. ``NVIDIA_TESLA_T4``; ``null`` for CPU only.
    accelerator_type: Optional[str] = None
    accelerator_count: int = 0
    replica_count: int = 1
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
    """A composed ``submit`` node (DictConfig) or plain dict -> :class:`VertexSubmitConfig`.

    A value that does not resolve or does not fit its type (often a ``RECFORGE_VERTEX_*``
    variable behind an interpolation of ``conf/submit/vertex.yaml``) is a
    :class:`SubmitConfigError` naming the variable, or else ``submit.<key>``.
    """
    if isinstance(node, VertexSubmitConfig):
        return node

    if isinstance(node, DictConfig):
        for key in list(node.keys()):
            try:
                node[key]  # resolves interpolations and validates against the schema
            except OmegaConfBaseException as error:
                raise _value_error(str(key), node, error) from None
    try:
        merged = OmegaConf.merge(OmegaConf.structured(VertexSubmitConfig), node)
        cfg: VertexSubmitConfig = OmegaConf.to_object(merged)  # type: ignore[assignment]
    except OmegaConfBaseException as error:
        key = str(getattr(error, "full_key", "") or getattr(error, "key", "") or "")
        raise _value_error(key.split(".")[-1], node, error) from None
    # oc.decode of a variable can yield a scalar or non-strings where a list of strings belongs.
    if not isinstance(cfg.packages, list) or not all(isinstance(p, str) for p in cfg.packages):
        raise _value_error("packages", node, TypeError(repr(cfg.packages)))
    return cfg


#: What each schema type expects, in "expected ..., got ..." words.
_EXPECTED_BY_TYPE = {
    "bool": "true or false",
    "int": "an integer",
    "float": "a number",
    "list[str]": "a list of strings, e.g. ['tf-keras~=2.17.0']",
    "dict[str, str]": "a mapping of strings",
    "dict[str, Any]": "a mapping",
}
_ENV_NAME = re.compile(r"oc\.env:([A-Z][A-Z0-9_]*)")


def _value_error(key: str, node: Any, error: Exception) -> SubmitConfigError:
    types = {f.name: str(f.type) for f in fields(VertexSubmitConfig)}
    expected = _EXPECTED_BY_TYPE.get(types.get(key, ""), "a valid value")
    if key and key not in types:
        return SubmitConfigError(f"submit.{key}", "expected a known submit key, got an unknown "
                                 "one", suggestion=did_you_mean(key, types))
    raw = _raw_value(node, key)
    env = _ENV_NAME.search(raw) if isinstance(raw, str) else None
    if env and env[1] in os.environ:
        return SubmitConfigError(env[1], f"expected {expected}, got {os.environ[env[1]]!r}")
    got = raw if raw is not None else getattr(error, "msg", str(error)).splitlines()[0]
    return SubmitConfigError(f"submit.{key}" if key else "submit",
                             f"expected {expected}, got {got!r}")


def _raw_value(node: Any, key: str) -> Any:
    """The value as written, interpolations unresolved (``None`` when it cannot be read)."""
    try:
        if isinstance(node, DictConfig):
            return OmegaConf.to_container(node, resolve=False).get(key)  # type: ignore[union-attr]
        return dict(node).get(key)
    except Exception:  # noqa: BLE001 - only used to word the message
        return None


# ----------------------------------------------------------------------------- formats
# Google's documented formats. Checked before anything is built, uploaded or sent: region and
# project become part of the Vertex AI host name and URL path, so a malformed one could send
# the credentials elsewhere (``attacker.example#`` as a region).

#: ``europe-central2``, ``us-east1``, ``northamerica-northeast1``.
REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
#: 6-30 characters: lowercase letters, digits and hyphens; starts with a letter; no trailing
#: hyphen.
PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
#: Bucket names without dots (3-63 characters); dotted (domain) names: 3-222 characters with
#: each dot-separated part at most 63.
_BUCKET_PART = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$")
#: The Vertex AI API hosts: ``<region>-aiplatform.googleapis.com`` and relatives.
_GOOGLE_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+googleapis\.com$")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
#: A pipeline run name: what TFX and Vertex Pipelines use (no path, no whitespace).
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
_PYTHON_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
_MACHINE_TYPE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_ACCELERATOR = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SERVICE_ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9._-]*@[a-z0-9-]+(?:\.[a-z0-9-]+)+$")
#: Vertex AI accepts at most 64 labels on a job.
MAX_LABELS = 64


def check_bucket_uri(key: str, uri: str) -> None:
    """``gs://bucket[/path]`` with a bucket name GCS accepts and a path without whitespace."""
    if not uri.startswith("gs://"):
        raise SubmitConfigError(key, f"expected a gs:// URI, got {uri!r}")
    bucket, _, path = uri[len("gs://"):].partition("/")
    parts = bucket.split(".")
    valid = (3 <= len(bucket) <= (222 if len(parts) > 1 else 63)
             and all(_BUCKET_PART.match(p) for p in parts)
             and not bucket.startswith("goog") and "google" not in bucket)
    if not valid:
        raise SubmitConfigError(
            key, "expected a bucket name of 3-63 lowercase letters, digits, '-', '_' or '.', "
            f"starting and ending with a letter or digit, got {bucket!r}")
    if any(c.isspace() for c in path) or any(seg in (".", "..") for seg in path.split("/")):
        raise SubmitConfigError(key, f"expected an object path without whitespace or '..', "
                                f"got {path!r}")


def check_api_endpoint(endpoint: str) -> None:
    """Only Google's API hosts, or a plain-HTTP loopback server (the tests' fake Vertex)."""

    text = endpoint if "://" in endpoint else f"https://{endpoint}"
    parts = urlsplit(text)
    host = parts.hostname or ""
    clean = (not parts.username and not parts.password and parts.path in ("", "/")
             and not parts.query and not parts.fragment)
    try:
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        clean = False
    google = parts.scheme == "https" and _GOOGLE_HOST.match(host)
    loopback = parts.scheme in ("http", "https") and host in _LOOPBACK_HOSTS
    if not (clean and (google or loopback)):
        raise SubmitConfigError(
            "submit.api_endpoint",
            "expected https://<host>.googleapis.com or a loopback http://127.0.0.1:PORT, "
            f"got {endpoint!r}")


def check_source(source: str) -> None:
    if source.startswith("gs://"):
        check_bucket_uri("submit.source_exp", source)
        return
    if not _RUN_NAME.match(source) or ".." in source:
        raise SubmitConfigError(
            "submit.source_exp",
            "expected a pipeline run name (letters, digits, '.', '_', '-'; no '/' or '..') or "
            f"a gs:// URI of a Transform output, got {source!r}")


def check_labels(labels: Any) -> None:
    """User labels: Vertex's key/value format, none of recforge's own, and room for ours."""

    room = MAX_LABELS - len(OWN_LABELS)
    if len(labels) > room:
        raise SubmitConfigError(
            "submit.labels", f"expected at most {room} labels (Vertex AI allows {MAX_LABELS} "
            f"and recforge adds {len(OWN_LABELS)}), got {len(labels)}")
    for key, value in labels.items():
        if not _LABEL_KEY.match(str(key)):
            raise SubmitConfigError(
                f"submit.labels.{key}", "expected a key of at most 63 lowercase letters, digits, "
                f"'-' and '_' starting with a letter, got {key!r}")
        if not isinstance(value, str) or not _LABEL_VALUE.match(value):
            raise SubmitConfigError(
                f"submit.labels.{key}", "expected a value of at most 63 lowercase letters, "
                f"digits, '-' and '_', got {value!r}")
        if key in OWN_LABELS:
            raise SubmitConfigError(f"submit.labels.{key}", "expected a label recforge does not "
                                    f"set itself, got {key!r}")


_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")


def check_packages(packages: list[str]) -> None:
    for index, package in enumerate(packages):
        key = f"submit.packages[{index}]"
        if package.startswith("gs://"):
            check_bucket_uri(key, package)
            if not package.endswith((".tar.gz", ".whl", ".zip")):
                raise SubmitConfigError(key, "expected a gs:// URI of a .tar.gz, .whl or .zip "
                                        f"package, got {package!r}")
            continue
        # lazy: packaging's requirement parser, only for a config that lists packages
        from packaging.requirements import InvalidRequirement, Requirement

        try:
            Requirement(package)
        except InvalidRequirement:
            raise SubmitConfigError(key, "expected a pip requirement such as 'name>=1.0' or "
                                    f"a gs:// package URI, got {package!r}") from None


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
    if not _MACHINE_TYPE.match(cfg.machine_type):
        raise SubmitConfigError("submit.machine_type", "expected a machine type such as "
                                f"'n1-standard-4', got {cfg.machine_type!r}")
    if cfg.accelerator_type and not _ACCELERATOR.match(cfg.accelerator_type):
        raise SubmitConfigError("submit.accelerator_type", "expected an accelerator such as "
                                f"'NVIDIA_TESLA_T4', got {cfg.accelerator_type!r}")
    if cfg.service_account and not _SERVICE_ACCOUNT.match(cfg.service_account):
        raise SubmitConfigError("submit.service_account", "expected a service account e-mail "
                                f"address, got {cfg.service_account!r}")
    if not _PYTHON_MODULE.match(cfg.python_module):
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


def check_submit_config(node: Any) -> VertexSubmitConfig:
    """Preflight for the ``submit`` group: every value checked before any network call,
    staging or ledger write. Pure: no file, no network, no ledger. Raises
    :class:`SubmitConfigError` / :class:`SubmitError` (exit 2) naming ``submit.<key>`` or the
    ``RECFORGE_VERTEX_*`` variable behind it."""
    cfg = from_omegaconf(node)
    check_required(cfg)
    check_formats(cfg)
    return cfg
