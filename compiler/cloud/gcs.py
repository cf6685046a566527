"""Google Cloud Storage: ``gs://`` URIs, uploads, downloads and finding a source experiment.

Everything goes through ``google-cloud-storage`` (which honours ``STORAGE_EMULATOR_HOST``), never
TensorFlow: submitting must not import TF.
"""

from __future__ import annotations

import base64
import difflib
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from compiler.cloud.errors import SubmitError

if TYPE_CHECKING:
    from google.cloud import storage

#: Where tf.Transform writes the schema of its output, relative to the Transform output dir.
TRANSFORMED_SCHEMA = "transform_graph/transformed_metadata/schema.pbtxt"
SPLITS = ("train", "eval", "test")
#: Seconds per GCS request (the client retries transient errors within its own deadline).
TIMEOUT = 60.0
#: A two-way split has no Split-eval (the trainer then skips validation) and a Transform may
#: have no Split-test (the trainer reports it missing); without Split-train there is nothing
#: to train on.
REQUIRED_SPLITS = ("train",)


class NoTransformOutput(SubmitError):
    """The run folder holds no Transform output at all (its Transform step may be cached)."""


def split_uri(uri: str) -> tuple[str, str]:
    """``gs://bucket/a/b`` -> ``("bucket", "a/b")``. The path never starts with ``/``."""
    if not uri.startswith("gs://"):
        raise SubmitError(f"not a gs:// URI: '{uri}'")
    bucket, _, path = uri[len("gs://"):].partition("/")
    if not bucket:
        raise SubmitError(f"no bucket in '{uri}'")
    return bucket, path.strip("/") if path.strip("/") else ""


def join(base: str, *parts: str) -> str:
    """Join URI segments with exactly one ``/`` between them (``os.path.join`` is for disks)."""
    out = base.rstrip("/")
    for part in parts:
        part = part.strip("/")
        if part:
            out = f"{out}/{part}"
    return out


def make_client(project: str | None, credentials: Any) -> storage.Client:
    # lazy: Google Cloud SDK, for GCS/Vertex calls only
    from google.cloud import storage

    return storage.Client(project=project, credentials=credentials)


def upload_file(client: storage.Client, local: Path, uri: str) -> None:
    bucket, path = split_uri(uri)
    client.bucket(bucket).blob(path).upload_from_filename(str(local))


def upload_immutable(client: storage.Client, local: Path, uri: str, *, timeout: float = 120.0
                     ) -> bool:
    """Upload ``local`` to ``uri`` only if no object is there; never overwrite one.

    ``uri`` names the content (its digest), so an object already there is the same file: it is
    reused after its MD5 and size are compared with ``local``'s. The upload carries
    ``if_generation_match=0``, so a concurrent uploader of the same object makes GCS answer 412
    instead of replacing what a job may be reading. Returns ``True`` when it uploaded.
    """
    # lazy: Google Cloud SDK, for GCS/Vertex calls only
    from google.api_core.exceptions import PreconditionFailed

    bucket_name, path = split_uri(uri)
    bucket = client.bucket(bucket_name)
    if _same_object(bucket.get_blob(path, timeout=timeout), local, uri):
        return False
    try:
        bucket.blob(path).upload_from_filename(str(local), if_generation_match=0,
                                               timeout=timeout)
    except PreconditionFailed:  # someone staged the same digest a moment ago
        _same_object(bucket.get_blob(path, timeout=timeout), local, uri)
        return False
    return True


def _same_object(blob: Any, local: Path, uri: str) -> bool:
    if blob is None:
        return False
    data = local.read_bytes()
    md5 = base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()
    if blob.size != len(data) or (blob.md5_hash and blob.md5_hash != md5):
        raise SubmitError(
            f"{uri} exists with other content than {local}; not overwriting it",
            hint="objects under recforge/objects/ are named by their SHA-256: something else "
                 "wrote there; remove it only if no job reads it", exit_code=1)
    return True


def read_bytes(client: storage.Client, uri: str) -> bytes | None:
    """The object's bytes, or ``None`` when it does not exist."""
    # lazy: Google Cloud SDK, for GCS/Vertex calls only
    from google.api_core.exceptions import NotFound

    bucket, path = split_uri(uri)
    try:
        return client.bucket(bucket).blob(path).download_as_bytes(timeout=TIMEOUT)
    except NotFound:
        return None


def list_dirs(client: storage.Client, prefix_uri: str) -> list[str]:
    """The immediate "directory" names under ``prefix_uri`` (delimiter listing)."""
    bucket, path = split_uri(prefix_uri)
    prefix = f"{path}/" if path else ""
    iterator = client.list_blobs(bucket, prefix=prefix, delimiter="/", timeout=TIMEOUT)
    for _ in iterator:  # prefixes fill in page by page while the iterator is consumed
        pass
    return sorted(p[len(prefix):].rstrip("/") for p in iterator.prefixes)


# ------------------------------------------------------------------------- source experiment


@dataclass(frozen=True)
class SourceArtifacts:
    """What a source experiment offers the trainer, as ``gs://`` URIs."""

    run_uri: str
    #: The Transform output directory: holds ``transform_graph/`` and ``transformed_examples/``.
    transform_dir: str
    #: ``{"train": uri, "eval": uri, "test": uri}``; ``test`` may be absent.
    splits: dict[str, str]
    transformed_schema_uri: str
    #: SchemaGen's ``schema/schema.pbtxt`` of the raw data, when the run has one.
    schema_uri: str | None = None
    #: Other Transform outputs in the same run that were not picked (newest one wins).
    others: tuple[str, ...] = field(default_factory=tuple)


def find_source(client: storage.Client, pipeline_root: str | None, source: str) -> SourceArtifacts:
    """Find the Transform output of a pipeline run (by run name) or at a ``gs://`` URI.

    A run lives at ``<pipeline_root>/<run name>/`` (Vertex Pipelines may add a project-number
    level: ``<pipeline_root>/<number>/<run name>/``). Refuses, naming the closest run names,
    when no run has that name.
    """
    if source.startswith("gs://"):
        run_uri = source.rstrip("/")
    else:
        if not pipeline_root:
            raise SubmitError("submit.pipeline_root is not set", key="submit.pipeline_root")
        run_uri = _find_run(client, pipeline_root, source)
    bucket, path = split_uri(run_uri)
    blobs = {
        blob.name: blob
        for blob in client.list_blobs(bucket, prefix=f"{path}/" if path else "", timeout=TIMEOUT)
    }
    return _pick_transform(run_uri, bucket, blobs, source)


def _find_run(client: storage.Client, pipeline_root: str, run: str) -> str:
    names = list_dirs(client, pipeline_root)
    if run in names:
        return join(pipeline_root, run)
    # Vertex Pipelines nests runs under the project number; look one level down there.
    nested: dict[str, str] = {}
    for name in names:
        if name.isdigit():
            for child in list_dirs(client, join(pipeline_root, name)):
                nested.setdefault(child, name)
    if run in nested:
        return join(pipeline_root, nested[run], run)
    candidates = sorted(set(names) | set(nested))
    close = difflib.get_close_matches(run, candidates, n=5, cutoff=0.5)
    if close:
        hint = "closest run names: " + ", ".join(close)
    elif candidates:
        hint = f"{len(candidates)} runs exist there, none with a similar name"
    else:
        hint = "no runs exist there at all"
    raise SubmitError(
        f"source experiment '{run}' not found under {pipeline_root}",
        hint=hint,
        key="submit.source_exp",
    )


def _pick_transform(run_uri: str, bucket: str, blobs: dict[str, Any], source: str
                    ) -> SourceArtifacts:
    names = sorted(blobs)
    roots: dict[str, list[str]] = {}
    for name in names:
        head, sep, _ = name.partition("/transform_graph/")
        if sep:
            roots.setdefault(head + "/", [])
        elif name.startswith("transform_graph/"):
            roots.setdefault("", [])
    complete: list[str] = []
    incomplete: list[str] = []
    for root in roots:
        have = [s for s in SPLITS if _has_split(names, root, s)]
        (complete if all(s in have for s in REQUIRED_SPLITS) else incomplete).append(root)
    if not complete:
        where = f"gs://{bucket}/{incomplete[0]}" if incomplete else run_uri
        problem = (
            "has transform_graph/ but no transformed_examples/Split-train"
            if incomplete
            else "has no Transform output (transform_graph/ and transformed_examples/)"
        )
        kind = SubmitError if incomplete else NoTransformOutput
        raise kind(f"source experiment '{source}': {where} {problem}", key="submit.source_exp")

    def newest(root: str) -> Any:
        stamps = [blobs[n].updated for n in names if n.startswith(root) and blobs[n].updated]
        return max(stamps) if stamps else 0

    complete.sort(key=newest, reverse=True)
    root = complete[0]
    base = f"gs://{bucket}/{root}".rstrip("/")
    splits = {
        s: join(base, "transformed_examples", f"Split-{s}")
        for s in SPLITS if _has_split(names, root, s)
    }
    schema_uri = None
    schemas = [n for n in names if n.endswith("/schema/schema.pbtxt")
               and "/transform_graph/" not in n]
    if schemas:
        schema_uri = f"gs://{bucket}/{schemas[0]}"
    transformed = root + TRANSFORMED_SCHEMA
    if transformed not in blobs:
        raise SubmitError(
            f"source experiment '{source}': {join(base, 'transform_graph')} has no "
            "transformed_metadata/schema.pbtxt, so the Transform output cannot be checked",
            key="submit.source_exp",
        )
    return SourceArtifacts(
        run_uri=run_uri,
        transform_dir=base,
        splits=splits,
        transformed_schema_uri=f"gs://{bucket}/{transformed}",
        schema_uri=schema_uri,
        others=tuple(f"gs://{bucket}/{r}".rstrip("/") for r in complete[1:]),
    )


def _has_split(names: Iterable[str], root: str, split: str) -> bool:
    prefix = f"{root}transformed_examples/Split-{split}/"
    return any(n.startswith(prefix) and not n.endswith("/") for n in names)
