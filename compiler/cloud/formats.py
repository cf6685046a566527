"""Google's documented formats of the values recforge sends: project, region, bucket URIs,
labels, machine types, API endpoints. Checked before anything is built, uploaded or sent, for
Vertex AI (``compiler.cloud.config``) and Dataflow (``compiler.cloud.dataflow``) alike: region
and project become part of an API host name and URL path, so a malformed one could send the
credentials elsewhere (``attacker.example#`` as a region).
"""

from __future__ import annotations

import os
import re
import secrets
import time
from dataclasses import fields
from typing import Any, TypeVar
from urllib.parse import urlsplit

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from compiler.cloud.errors import SubmitConfigError
from compiler.errors import did_you_mean

_Schema = TypeVar("_Schema")

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


#: ``europe-central2``, ``us-east1``, ``northamerica-northeast1``.
REGION = re.compile(r"^[a-z]+-[a-z]+[0-9]+$")
#: 6-30 characters: lowercase letters, digits and hyphens; starts with a letter; no trailing
#: hyphen.
PROJECT = re.compile(r"^[a-z][a-z0-9-]{4,28}[a-z0-9]$")
#: Bucket names without dots (3-63 characters); dotted (domain) names: 3-222 characters with
#: each dot-separated part at most 63.
_BUCKET_PART = re.compile(r"^[a-z0-9](?:[a-z0-9_-]{0,61}[a-z0-9])?$")
#: Google's API hosts: ``<region>-aiplatform.googleapis.com``, ``dataflow.googleapis.com``.
_GOOGLE_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+googleapis\.com$")
_LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}
#: A pipeline run name: what TFX and Vertex Pipelines use (no path, no whitespace).
_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")
PYTHON_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*$")
MACHINE_TYPE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
ACCELERATOR = re.compile(r"^[A-Z][A-Z0-9_]*$")
SERVICE_ACCOUNT = re.compile(r"^[a-z0-9][a-z0-9._-]*@[a-z0-9-]+(?:\.[a-z0-9-]+)+$")
#: Vertex AI and Dataflow accept at most 64 labels on a job.
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


def check_api_endpoint(endpoint: str, key: str = "submit.api_endpoint") -> None:
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
            key,
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


def check_labels(labels: Any, service: str = "Vertex AI") -> None:
    """User labels: Google Cloud's key/value format, none of recforge's own, and room for ours
    (``service``, Vertex AI or Dataflow, allows :data:`MAX_LABELS` on a job)."""

    room = MAX_LABELS - len(OWN_LABELS)
    if len(labels) > room:
        raise SubmitConfigError(
            "submit.labels", f"expected at most {room} labels ({service} allows {MAX_LABELS} "
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


def label_safe(text: str, max_len: int = 63) -> str:
    """A label value Google Cloud accepts: lowercase ``[a-z0-9_-]``, at most 63 characters."""
    value = re.sub(r"[^a-z0-9_-]+", "-", str(text).lower()).strip("-")
    return value[:max_len]


def new_submission_id() -> str:
    """Unique per submission: names its output folder and tags the job (label)."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


# ------------------------------------------------------------------ composed node -> schema


def structured_from_node(schema: type[_Schema], node: Any) -> _Schema:
    """A composed ``submit`` node (DictConfig) or plain dict -> an instance of ``schema``; a
    value that does not resolve or fit is a :class:`SubmitConfigError` (:func:`value_error`)."""
    if isinstance(node, DictConfig):
        for key in list(node.keys()):
            try:
                node[key]  # resolves interpolations and validates against the schema
            except OmegaConfBaseException as error:
                raise value_error(schema, str(key), node, error) from None
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as error:
        key = str(getattr(error, "full_key", "") or getattr(error, "key", "") or "")
        raise value_error(schema, key.split(".")[-1], node, error) from None


#: What each schema type expects, in "expected ..., got ..." words.
_EXPECTED_BY_TYPE = {
    "bool": "true or false",
    "int": "an integer",
    "Optional[int]": "an integer or null",
    "float": "a number",
    "list[str]": "a list of strings, e.g. ['tf-keras~=2.17.0']",
    "dict[str, str]": "a mapping of strings",
    "dict[str, Any]": "a mapping",
}
_ENV_NAME = re.compile(r"oc\.env:([A-Z][A-Z0-9_]*)")


def value_error(schema: type, key: str, node: Any, error: Exception) -> SubmitConfigError:
    """``submit.<key>: expected ..., got ...`` for a value of ``schema`` (a dataclass) that
    does not resolve or fit its type; names the environment variable behind it when one is."""
    types = {f.name: str(f.type) for f in fields(schema)}
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
