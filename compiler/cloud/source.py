"""The submission's inputs on Google Cloud: Application Default Credentials, and the source
experiment's Transform output (found on GCS, or through the pipeline run that cached it) with its
schema checked against what the trainer reads. GCS and Vertex reads only; nothing is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console

from compiler.cloud import gcs
from compiler.cloud.config import VertexSubmitConfig
from compiler.cloud.errors import SubmitError
from compiler.cloud.errors import api_errors as _api_errors
from compiler.cloud.pipelines import cached_transform
from compiler.cloud.schema_check import check_compatible

CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"


def application_credentials() -> Any:
    """Application Default Credentials; never printed, logged or written anywhere."""
    # lazy: Google Cloud SDK, for GCS/Vertex calls only
    import google.auth
    from google.auth.exceptions import DefaultCredentialsError

    try:
        credentials, _ = google.auth.default(scopes=[CLOUD_PLATFORM_SCOPE])
    except DefaultCredentialsError:
        raise SubmitError(
            "no Google Cloud credentials found",
            hint="run `gcloud auth application-default login`, or set "
                 "GOOGLE_APPLICATION_CREDENTIALS to a service account key file",
        ) from None
    return credentials


def check_source(cfg: VertexSubmitConfig, credentials: Any, required: Mapping[str, str],
                 console: Console) -> tuple[Any, gcs.SourceArtifacts]:
    """Find the source experiment's Transform output and check its schema (GCS reads only)."""
    assert cfg.source_exp
    with _api_errors("Google Cloud Storage"):
        storage = gcs.make_client(cfg.project, credentials)
        try:
            source = gcs.find_source(storage, cfg.pipeline_root, cfg.source_exp)
        except gcs.NoTransformOutput as missing:
            source = _cached_source(storage, cfg, credentials, missing, console)
        schema_bytes = gcs.read_bytes(storage, source.transformed_schema_uri)
    if schema_bytes is None:  # listed a moment ago, gone now
        raise SubmitError(f"{source.transformed_schema_uri} disappeared while reading it")
    check_compatible(required, schema_bytes.decode("utf-8"),
                     schema_uri=source.transformed_schema_uri)
    console.print(f"Source: {source.transform_dir} (splits: {', '.join(source.splits)}"
                  + (f"; schema {source.schema_uri}" if source.schema_uri else "") + ")",
                  markup=False, highlight=False)
    if "test" not in source.splits:
        console.print("[yellow]warning:[/] the source has no Split-test; the trainer will report "
                      "test metrics as missing")
    for other in source.others:
        console.print(f"  (also found, older: {other})", markup=False, highlight=False)
    console.print(f"Transform output has all {len(required)} features the trainer reads.")
    return storage, source


def _cached_source(storage: Any, cfg: VertexSubmitConfig, credentials: Any,
                   missing: SubmitError, console: Console) -> gcs.SourceArtifacts:
    """A run without a Transform folder: its Transform step may have been cached; the
    PipelineJob's task details name the output it reused."""

    assert cfg.source_exp
    if cfg.source_exp.startswith("gs://"):
        raise missing
    with _api_errors("Vertex AI: reading the pipeline run's task details"):
        cached = cached_transform(cfg, credentials, cfg.source_exp)
    if cached is None:
        missing.hint = ("no pipeline run of that name lists a Transform output either; if its "
                        "Transform step was cached, give submit.source_exp as the gs:// URI "
                        "of the Transform output it reused")
        raise missing
    console.print(f"Source: run '{cfg.source_exp}' has no Transform folder of its own; its "
                  f"pipeline run's task {cached.task} ({cached.state}) names "
                  f"{cached.transform_dir}, which is used", markup=False, highlight=False,
                  soft_wrap=True)
    return gcs.find_source(storage, None, cached.transform_dir)
