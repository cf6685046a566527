"""``submit.dry_run=true``: everything a submission would stage and send, and nothing else.

It prints ONE JSON document on stdout (human-readable lines go to stderr)::

    {"request":     the CustomJob as REST JSON (camelCase; no output-only fields),
     "staging":     [{"local": ..., "uri": gs://.../objects/<sha256>/<name>, "sha256": ...}],
     "environment": {"image": ..., "python": ..., "platform": ..., "requirements": [...]}}

The packages are built locally (in a temporary directory) because their content digests name
the staged objects. Nothing is uploaded, created or recorded. When Google credentials are at
hand (``GOOGLE_APPLICATION_CREDENTIALS`` or gcloud's application-default file) the source
experiment is looked up and its transformed schema checked, with GCS reads only; without them
the check is skipped and stderr says so.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from compiler.cloud import environment as images
from compiler.cloud import gcs
from compiler.cloud.config import VertexSubmitConfig
from compiler.cloud.job_spec import (
    EMITTED_FILES,
    Emitted,
    StagingPlan,
    canonical_json,
    job_request,
    new_submission_id,
    requirement_packages,
    staging_plan,
)
from compiler.cloud.package import build_packages, source_root
from compiler.cloud.source import application_credentials, check_source


@dataclass(frozen=True)
class DryRunDocument:
    document: dict[str, Any]
    plan: StagingPlan
    transform_dir: str
    #: Whether the source experiment and its schema were checked (credentials were there).
    source_checked: bool


def credentials_if_present() -> tuple[Any | None, str]:
    """Application Default Credentials when a credentials file is configured, else ``None``
    and the reason. Never probes the GCE metadata server (that would be a network call made
    only to find out that there is nothing to use)."""
    path = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if not path:
        # lazy: Google Cloud SDK, for GCS/Vertex calls only
        from google.auth import _cloud_sdk

        path = _cloud_sdk.get_application_default_credentials_path()
    if not path or not os.path.isfile(path):
        return None, ("no credentials file (GOOGLE_APPLICATION_CREDENTIALS or gcloud's "
                      "application-default credentials)")

    return application_credentials(), f"credentials from {path}"


def dry_run(emitted: Emitted, cfg: VertexSubmitConfig, required: Mapping[str, str], *,
            console: Console, submission_id: str | None = None) -> DryRunDocument:
    """Print the dry-run document on ``console.file`` (stdout by default); see the module."""
    err = Console(stderr=True)

    def say(text: str) -> None:
        err.print(text, markup=False, highlight=False, soft_wrap=True)

    result = dry_run_document(emitted, cfg, required, say=say, submission_id=submission_id)
    console.file.write(json.dumps(result.document, indent=2, sort_keys=True) + "\n")
    console.file.flush()
    say("Dry run: nothing was uploaded, created or recorded.")
    return result


def dry_run_document(emitted: Emitted, cfg: VertexSubmitConfig, required: Mapping[str, str],
                     *, say: Any = print, submission_id: str | None = None) -> DryRunDocument:
    """The document itself (no printing of it); ``say`` gets the human-readable notes."""

    assert cfg.source_exp
    root = source_root()
    credentials, why = credentials_if_present()
    if credentials is not None:
        quiet = Console(stderr=True, quiet=True)
        _, source = check_source(cfg, credentials, required, quiet)
        transform_dir, checked = source.transform_dir, True
        say(f"Source checked ({why}): {transform_dir} has all {len(required)} features the "
            "trainer reads.")
    else:
        checked = False
        if cfg.source_exp.startswith("gs://"):
            transform_dir = cfg.source_exp.rstrip("/")
        else:
            assert cfg.pipeline_root
            transform_dir = gcs.join(cfg.pipeline_root, cfg.source_exp)
            say(f"--transform-dir is the run folder {transform_dir}: the Transform output "
                "below it is found by listing GCS at submit time.")
        say(f"Source check skipped: {why}.")
    submission_id = submission_id or new_submission_id()
    requirements, _ = requirement_packages(cfg.packages)
    with tempfile.TemporaryDirectory(prefix="recforge-dry-run-") as tmp:
        sdist, reqs = build_packages(Path(tmp), requirements, root)
        plan = staging_plan(cfg, emitted.emit_dir, emitted.config_hash, submission_id, sdist,
                            reqs, root)
    body = job_request(cfg, emitted, plan, transform_dir, submission_id, None)
    say("The experiment number (from the ledger) joins the display name and labels at "
        "submit time.")
    staging = [
        {"local": str(f.local) if f.name in EMITTED_FILES else f.source, "uri": f.uri,
         "sha256": f.sha256}
        for f in plan.files
    ]
    document = {
        "request": json.loads(canonical_json(body)),
        "staging": staging,
        "environment": environment(cfg),
    }
    return DryRunDocument(document, plan, transform_dir, checked)


def environment(cfg: VertexSubmitConfig) -> dict[str, Any]:
    """What the job runs in: the image, its Python, its platform and the requirements.

    With ``submit.container_uri`` (the job container built from ``docker/Dockerfile``) the
    requirements are the exact lock baked into it; with a prebuilt ``submit.executor_image``
    they are what the job pip-installs at start: ``submit.packages``.
    """
    container = getattr(cfg, "container_uri", None)
    if container:
        return {"image": container, "python": images.DEFAULT_IMAGE.python,
                "platform": images.DEFAULT_IMAGE.platform, "requirements": images.job_lock()}
    requirements, extra = requirement_packages(cfg.packages)
    known = images.find_image(cfg.executor_image)
    match = re.search(r"\.py(3)(\d+)(?:[:@]|$)", cfg.executor_image)
    tagged = f"{match[1]}.{match[2]}" if match else None
    return {
        "image": cfg.executor_image,
        "python": known.python if known else tagged,
        # Vertex AI's training machine types (n1, n2, a2, g2 ...) are x86-64 Linux.
        "platform": known.platform if known else "linux_x86_64",
        "requirements": [*requirements, *extra],
    }
