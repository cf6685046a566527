"""The Transform output of a pipeline run whose Transform step was cached.

Vertex Pipelines does not run a cached step again: the run has no ``Transform_*`` folder of its
own, and its Transform task's output artifacts point at the folder of the run that did the work.
The PipelineJob (its id is the run name, the folder under ``pipeline_root``) lists them in its
task details.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from compiler.cloud.config import VertexSubmitConfig
from compiler.cloud.vertex import transient_retry

#: PipelineJob ids: lowercase letters, digits and hyphens.
_PIPELINE_JOB_ID = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")


@dataclass(frozen=True)
class CachedTransform:
    transform_dir: str
    task: str
    state: str


def cached_transform(cfg: VertexSubmitConfig, credentials: Any, run: str
                     ) -> CachedTransform | None:
    """The Transform output named by the PipelineJob ``run``'s Transform task, or ``None``
    when there is no such PipelineJob or task. Errors other than 404 propagate."""
    # lazy: Google Cloud SDK, for GCS/Vertex calls only
    from google.api_core.exceptions import NotFound
    from google.cloud import aiplatform_v1

    if not _PIPELINE_JOB_ID.match(run):
        return None
    assert cfg.project and cfg.region
    endpoint = cfg.api_endpoint or f"{cfg.region}-aiplatform.googleapis.com"
    client = aiplatform_v1.PipelineServiceClient(
        transport="rest", credentials=credentials, client_options={"api_endpoint": endpoint})
    retry = transient_retry(cfg.call_timeout_seconds, cfg.poll_initial_seconds,
                            cfg.poll_max_seconds)
    name = f"projects/{cfg.project}/locations/{cfg.region}/pipelineJobs/{run}"
    try:
        job = client.get_pipeline_job(name=name, retry=retry, timeout=cfg.call_timeout_seconds)
    except NotFound:
        return None
    for task in job.job_detail.task_details:
        if not task.task_name.lower().startswith("transform"):
            continue
        for artifacts in task.outputs.values():
            for artifact in artifacts.artifacts:
                uri = artifact.uri.rstrip("/")
                if uri.startswith("gs://") and uri.endswith("/transform_graph"):
                    return CachedTransform(uri.rsplit("/", 1)[0], task.task_name,
                                           task.state.name)
    return None
