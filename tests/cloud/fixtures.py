"""pytest fixtures for offline Google Cloud tests: the GCS emulator, the TLS proxy that lets
TensorFlow's ``gs://`` reach it, a fake Vertex AI that runs jobs, and throwaway credentials.

Import them into a test module (``from cloud.fixtures import cloud, gcs_tls_proxy, ...``;
``tests/`` is on ``sys.path`` under pytest's default import mode, as for ``compile_helpers``).
The GCS emulator is ``tests/conftest.py``'s ``gcs_emulator``. Main entry point:

    def test_x(cloud: CloudStack):
        cfg = cloud.submit_config(source_exp="run-1")        # a VertexSubmitConfig
        cloud.make_source_run("run-1", {"customer_id_id": "int64"})   # or cloud.upload_dir(...)
        ...  # submit(...) from compiler.cloud: real clients, all traffic on 127.0.0.1

``cloud.job_env`` is the environment the fake Vertex gives job processes; use it for any
subprocess that must read or write ``gs://`` with TensorFlow or google-cloud-storage.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from cloud.vertex_server import FakeVertex

PROXY_SCRIPT = Path(__file__).with_name("gcs_proxy.py")
#: The config hash of :func:`write_emit_dir`'s manifest.
CONFIG_HASH = "0123456789abcdef"
PROJECT = "recforge-test-project"
REGION = "test-region1"
#: Variables that must not leak from the developer's shell into the tests.
_SCRUB = ("GOOGLE_APPLICATION_CREDENTIALS", "CLOUDSDK_CONFIG", "https_proxy", "HTTPS_PROXY",
          "http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "CURL_CA_BUNDLE",
          "GOOGLE_AUTH_TOKEN_FOR_TESTING")
#: ... nor into the jobs (which get their own values of some of them).
_SCRUB_JOB = (*_SCRUB, "STORAGE_EMULATOR_HOST", "PYTHONPATH", "GOOGLE_CLOUD_PROJECT")


# -------------------------------------------------------------------- GCS through TLS
# The GCS emulator itself is tests/conftest.py's (``gcs_emulator``, ``_gcs_emulator_server``).


@dataclass(frozen=True)
class TlsProxy:
    url: str
    ca_file: Path


@pytest.fixture(scope="session")
def gcs_tls_proxy(_gcs_emulator_server: tuple[Any, int], tmp_path_factory: pytest.TempPathFactory
                  ) -> Iterator[TlsProxy]:
    """``tests/cloud/gcs_proxy.py`` in its own process, forwarding to the session's emulator."""
    upstream = f"http://127.0.0.1:{_gcs_emulator_server[1]}"
    ca = tmp_path_factory.mktemp("gcs-proxy") / "ca.pem"
    proc = subprocess.Popen(
        [sys.executable, str(PROXY_SCRIPT), "--upstream", upstream, "--ca-out", str(ca)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None and proc.stdin is not None
    ready, _, _ = select.select([proc.stdout], [], [], 30)
    line = proc.stdout.readline() if ready else ""
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"gcs proxy did not start: {line!r}")
    try:
        yield TlsProxy(f"http://127.0.0.1:{int(line.split()[1])}", ca)
    finally:
        proc.stdin.close()  # the proxy exits when its stdin closes
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def honour_generation_preconditions() -> None:
    """Make the emulator answer ``ifGenerationMatch`` like GCS does (412 when the object's
    generation differs; 0 means "must not exist") on uploads and deletes. It ignores them
    otherwise (cloud-testing.md), and immutable staging and the submission lock rely on them.
    Idempotent and process-wide, like tests/conftest.py's other emulator patches."""
    from http import HTTPStatus

    from gcp_storage_emulator import server as emu_server
    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.handlers import objects

    if getattr(emu_server, "_recforge_preconditions", False):
        return

    def guarded(handler: Any, object_name: Any) -> Any:
        def wrapper(request: Any, response: Any, storage: Any, *args: Any, **kwargs: Any) -> Any:
            wanted = request.query.get("ifGenerationMatch")
            if wanted:
                bucket = request.params["bucket_name"]
                try:
                    current = str(storage.get_file_obj(bucket, object_name(request))
                                  ["generation"])
                except NotFound:
                    current = "0"
                if current != wanted[0]:
                    response.status = HTTPStatus.PRECONDITION_FAILED
                    message = "At least one of the pre-conditions you specified did not hold."
                    response.json({"error": {"code": 412, "message": message, "errors": [
                        {"reason": "conditionNotMet", "message": message}]}})
                    return None
            return handler(request, response, storage, *args, **kwargs)

        return wrapper

    def upload_name(request: Any) -> str:
        if request.query.get("name"):
            return request.query["name"][0]
        return request.data["meta"]["name"]  # multipart: the name is in the metadata part

    for _, handlers in emu_server.HANDLERS:
        if handlers.get(emu_server.POST) is objects.insert:
            handlers[emu_server.POST] = guarded(objects.insert, upload_name)
        if handlers.get(emu_server.DELETE) is objects.delete:
            handlers[emu_server.DELETE] = guarded(objects.delete,
                                                  lambda request: request.params["object_id"])
    emu_server._recforge_preconditions = True  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- credentials


@pytest.fixture(scope="session")
def fake_service_account_key() -> str:
    """A freshly generated RSA key (PEM) for a throwaway service account of the tests."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def write_service_account_file(path: Path, private_key: str, token_uri: str) -> Path:
    """A service account key file whose token endpoint is the fake server's ``/token``, so
    ``google.auth.default()`` and every refresh run for real, on loopback."""
    path.write_text(json.dumps({
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": "0" * 40,
        "private_key": private_key,
        "client_email": f"tests@{PROJECT}.iam.gserviceaccount.com",
        "client_id": "1",
        "token_uri": token_uri,
    }))
    return path


# --------------------------------------------------------------------------- the stack


@dataclass
class CloudStack:
    """Everything a cloud test needs; see the module docstring."""

    emulator_url: str
    vertex: FakeVertex
    proxy: TlsProxy
    job_env: dict[str, str]
    #: Buckets of this test alone (created empty).
    staging_bucket: str
    pipeline_bucket: str
    #: Directory on the fake Vertex's PYTHONPATH for test-only job modules.
    job_modules: Path
    tmp_path: Path
    storage: Any = field(repr=False)

    @property
    def vertex_endpoint(self) -> str:
        return self.vertex.endpoint

    @property
    def pipeline_root(self) -> str:
        return f"gs://{self.pipeline_bucket}/pipeline_root"

    def submit_config(self, **overrides: Any) -> Any:
        """A ``VertexSubmitConfig`` aimed at this stack, with fast polling."""
        from compiler.cloud.config import DEFAULT_EXECUTOR_IMAGE, VertexSubmitConfig

        base = VertexSubmitConfig(
            project=PROJECT, region=REGION,
            staging_bucket=f"gs://{self.staging_bucket}",
            pipeline_root=self.pipeline_root, experiment="tests",
            api_endpoint=self.vertex_endpoint,
            executor_image=DEFAULT_EXECUTOR_IMAGE,  # the loopback server runs pythonPackageSpec
            packages=["tensorflow-recommenders>=0.7.3"],
            poll_initial_seconds=0.05, poll_max_seconds=0.25, poll_multiplier=1.5,
            timeout_minutes=2.0, create_timeout_seconds=10.0, create_settle_seconds=3.0,
            call_timeout_seconds=10.0,
        )
        return replace(base, **overrides)

    # -- GCS helpers ------------------------------------------------------------------
    def _blob(self, uri: str) -> Any:
        bucket, _, name = uri[len("gs://"):].partition("/")
        return self.storage.bucket(bucket).blob(name)

    def write(self, uri: str, data: bytes | str) -> None:
        self._blob(uri).upload_from_string(data)

    def read(self, uri: str) -> bytes:
        return self._blob(uri).download_as_bytes()

    def exists(self, uri: str) -> bool:
        return self._blob(uri).exists()

    def list(self, uri: str) -> list[str]:
        bucket, _, prefix = uri[len("gs://"):].partition("/")
        return [f"gs://{bucket}/{b.name}" for b in self.storage.list_blobs(bucket, prefix=prefix)]

    def upload_dir(self, local: Path | str, uri: str) -> list[str]:
        """Copy a local directory tree (e.g. a real Transform output) to ``uri``."""
        local = Path(local)
        out = []
        for path in sorted(p for p in local.rglob("*") if p.is_file()):
            dest = f"{uri.rstrip('/')}/{path.relative_to(local).as_posix()}"
            self._blob(dest).upload_from_filename(str(path))
            out.append(dest)
        return out

    def make_source_run(self, run: str, features: Mapping[str, str], *,
                        splits: Sequence[str] = ("train", "eval", "test"),
                        schemagen: bool = True, nest: str = "1234567890") -> str:
        """A pipeline run with a (tiny, fake-data) Transform output, TFX/Vertex layout:
        ``<pipeline_root>/<nest>/<run>/Transform_<id>/...``. Returns the Transform dir URI.

        ``features``: transformed feature name -> ``int64`` / ``float32`` / ``string``, written
        into ``transform_graph/transformed_metadata/schema.pbtxt``.
        """
        types = {"int64": "INT", "float32": "FLOAT", "string": "BYTES"}
        root = "/".join(p for p in (self.pipeline_root, nest, run) if p)
        transform = f"{root}/Transform_8841"
        schema = "".join(f'feature {{\n  name: "{n}"\n  type: {types[t]}\n'
                         "  presence {\n    min_fraction: 1.0\n  }\n}\n"
                         for n, t in features.items())
        self.write(f"{transform}/transform_graph/transformed_metadata/schema.pbtxt", schema)
        self.write(f"{transform}/transform_graph/transform_fn/saved_model.pb", b"\x08\x01")
        for split in splits:
            self.write(f"{transform}/transformed_examples/Split-{split}/"
                       "transformed_examples-00000-of-00001.gz", b"not really gzip")
        if schemagen:
            self.write(f"{root}/SchemaGen_8840/schema/schema.pbtxt",
                       'feature { name: "customer_id" type: BYTES }\n')
        return transform

    def write_job_module(self, name: str, code: str) -> str:
        """A test-only job entry point the fake Vertex can run as ``python -m <name>``."""
        (self.job_modules / f"{name}.py").write_text(code)
        return name


def write_emit_dir(path: Path, config_hash: str = CONFIG_HASH) -> Path:
    """A stand-in for what the compiler emits (``trainer_module.py``, ``transform_module.py``,
    ``manifest.json``); the real trainer never runs from it."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "trainer_module.py").write_text("# trainer\ndef run_fn(fn_args):\n    pass\n")
    (path / "transform_module.py").write_text("# transform\n")
    (path / "manifest.json").write_text(json.dumps({
        "config_hash": config_hash, "compiler_version": "0.1.0",
        "model": "hybrid_v1", "features": "cherng_v3",
        "resolved_config": {"model": {"name": "hybrid_v1"}, "features": {"name": "cherng_v3"}},
        "transformed_features": [{"name": "customer_id_id", "dtype": "int64"},
                                 {"name": "sales_target", "dtype": "float32"}],
    }))
    return path


def job_environment(emulator_url: str, proxy: TlsProxy, tmpdir: Path) -> dict[str, str]:
    """What a job process needs to use ``gs://`` offline (cloud-testing.md):
    google-cloud-storage via STORAGE_EMULATOR_HOST, TensorFlow via the TLS proxy."""
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB_JOB}
    tmpdir.mkdir(parents=True, exist_ok=True)
    env.update({
        "STORAGE_EMULATOR_HOST": emulator_url,
        "https_proxy": proxy.url, "HTTPS_PROXY": proxy.url,
        "no_proxy": "127.0.0.1,localhost", "NO_PROXY": "127.0.0.1,localhost",
        "CURL_CA_BUNDLE": str(proxy.ca_file),
        "NO_GCE_CHECK": "true",
        "GOOGLE_AUTH_TOKEN_FOR_TESTING": "fake",
        # TensorFlow leaves its upload buffers behind in TMPDIR.
        "TMPDIR": str(tmpdir),
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONUNBUFFERED": "1",
    })
    return env


@pytest.fixture
def cloud(gcs_emulator: Any, gcs_tls_proxy: TlsProxy, fake_service_account_key: str,
          tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[CloudStack]:
    """The whole offline stack for one test. ``gcs_emulator`` (tests/conftest.py) wipes the
    store and sets STORAGE_EMULATOR_HOST; the proxy is shared by the session."""
    for name in _SCRUB:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_GCE_CHECK", "true")
    honour_generation_preconditions()
    endpoint = gcs_emulator.endpoint
    client = gcs_emulator.client()
    tag = uuid.uuid4().hex[:10]
    staging, pipeline = f"staging-{tag}", f"pipeline-{tag}"
    client.create_bucket(staging)
    client.create_bucket(pipeline)
    job_modules = tmp_path / "job_modules"
    job_modules.mkdir()
    vertex = FakeVertex(
        storage_endpoint=endpoint,
        job_env=job_environment(endpoint, gcs_tls_proxy, tmp_path / "job_tmp"),
        workdir=tmp_path / "vertex", extra_pythonpath=[job_modules],
    ).start()
    key_file = write_service_account_file(tmp_path / "service-account.json",
                                          fake_service_account_key, vertex.endpoint + "/token")
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(key_file))
    try:
        yield CloudStack(
            emulator_url=endpoint, vertex=vertex, proxy=gcs_tls_proxy,
            job_env=vertex.job_env, staging_bucket=staging, pipeline_bucket=pipeline,
            job_modules=job_modules, tmp_path=tmp_path, storage=client,
        )
    finally:
        vertex.stop()
        # pytest shows this only when the test failed: the jobs' own output, to see why.
        for job in vertex.jobs.values():
            print(f"--- fake Vertex job {job.id} ({job.state}, rc={job.returncode}) log:\n"
                  f"{job.log}")
