"""The duplicate guard's lock: one GCS object per config hash and source, created atomically.

Listing Vertex AI jobs by label and then creating one is check-then-act: two submitters can
both see "no active job" and both create. So the check and the create run while holding a
lock object, ``<staging>/recforge/locks/<config-hash>--<source>.json``, created with
``if_generation_match=0``: GCS creates it for exactly one of two racing submitters and answers
412 to the other. The lock is deleted (by generation) once the job exists, which is when the
label listing sees it.

A submitter that dies while holding the lock leaves it behind; a lock older than
:func:`stale_after` (a bound on how long checking, staging and creating can take) is taken
over. Submitters share the lock only when they stage to the same bucket.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from compiler.cloud import gcs
from compiler.cloud.config import VertexSubmitConfig
from compiler.cloud.errors import SubmitError

if TYPE_CHECKING:
    from google.cloud import storage


def lock_uri(cfg: VertexSubmitConfig, config_hash: str, source: str) -> str:
    assert cfg.staging_bucket
    return gcs.join(cfg.staging_bucket, "recforge", "locks", f"{config_hash}--{source}.json")


def stale_after(cfg: VertexSubmitConfig) -> float:
    """Seconds after which a lock's holder is presumed dead: every create attempt with its
    timeout and settle listing, plus ten minutes for building and staging."""
    attempts = int(cfg.create_retries) + 1
    return attempts * (cfg.create_timeout_seconds + cfg.create_settle_seconds) + 600.0


@dataclass
class SubmissionLock:
    client: Any
    uri: str
    generation: int

    def release(self) -> None:
        """Delete the lock if it is still ours (its generation); never someone else's."""
        # lazy: Google Cloud SDK, for GCS/Vertex calls only
        from google.api_core.exceptions import NotFound, PreconditionFailed

        bucket, path = gcs.split_uri(self.uri)
        try:
            self.client.bucket(bucket).blob(path).delete(if_generation_match=self.generation,
                                                         timeout=60)
        except (NotFound, PreconditionFailed):
            pass  # taken over as stale meanwhile: not ours to delete


def acquire(client: storage.Client, uri: str, submission: str, stale_seconds: float,
            *, now: dt.datetime | None = None) -> SubmissionLock:
    """Create the lock object, or refuse naming the submission that holds it."""
    # lazy: Google Cloud SDK, for GCS/Vertex calls only
    from google.api_core.exceptions import NotFound, PreconditionFailed

    bucket_name, path = gcs.split_uri(uri)
    bucket = client.bucket(bucket_name)
    holder = json.dumps({"submission": submission, "host": socket.gethostname(),
                         "pid": os.getpid()}, sort_keys=True)
    for _ in range(3):
        blob = bucket.blob(path)
        try:
            blob.upload_from_string(holder, content_type="application/json",
                                    if_generation_match=0, timeout=60)
            return SubmissionLock(client, uri, int(blob.generation))
        except PreconditionFailed:
            pass
        existing = bucket.get_blob(path, timeout=60)
        if existing is None:
            continue  # released between our create and our look
        created = existing.time_created or existing.updated
        age = ((now or dt.datetime.now(dt.timezone.utc)) - created).total_seconds() \
            if created else 0.0
        if age > stale_seconds:
            try:
                existing.delete(if_generation_match=existing.generation, timeout=60)
            except (NotFound, PreconditionFailed):
                pass  # someone else took it over first; try again
            continue
        try:
            other = json.loads(existing.download_as_bytes(timeout=60)).get("submission", "?")
        except (NotFound, ValueError):
            other = "?"
        raise SubmitError(
            f"another submission ({other}) of this config hash and source is being created "
            f"right now (lock {uri}, {age:.0f}s old)",
            hint=f"wait a minute and submit again; the lock is taken over after "
                 f"{stale_seconds:.0f}s, or set submit.force=true", exit_code=1)
    raise SubmitError(f"could not take the submission lock {uri}: it keeps changing hands",
                      exit_code=1)
